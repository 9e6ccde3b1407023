"""What may raise an alert, read from the tables their owners write: cases at or above a
severity, points silent in their open hours, pipeline failures; and an inspector's open cases
for the daily digest. Reads only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, func, select

from pipeline.casework.audit import DECIDABLE
from pipeline.casework.cases import SEVERITY_RANK
from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.reference.points import known_points
from pipeline.reference.suppressions import suppression_windows
from pipeline.store.schema import cases, points, transactions

# How far back the silence check looks for a point's last sale: a point silent longer than this
# is reported as silent for all of it (its feed or device is gone, not a quiet afternoon).
SILENCE_LOOKBACK = timedelta(days=8)


@dataclass(frozen=True)
class CaseToAlert:
    case_id: int
    point_id: str
    point_name: str
    timezone: str
    kind: str
    severity: str
    start_at: datetime
    end_at: datetime
    shortfall_rp: int
    reasons: str
    reason_parts: str | None
    assignee: str | None
    due_on: date | None


def _case_query():
    return select(
        cases.c.case_id,
        cases.c.point_id,
        func.coalesce(points.c.name, cases.c.point_id).label("point_name"),
        func.coalesce(points.c.timezone, DEFAULT_TIMEZONE).label("timezone"),
        cases.c.kind,
        cases.c.severity,
        cases.c.start_at,
        cases.c.end_at,
        cases.c.shortfall_rp,
        cases.c.reasons,
        cases.c.reason_parts,
        cases.c.assignee,
        cases.c.due_on,
    ).select_from(cases.outerjoin(points, points.c.point_id == cases.c.point_id))


def cases_at_severity(engine: Engine, min_severity: str, *, opened_since: datetime) -> list:
    """Undecided cases of ``min_severity`` or above opened at or after ``opened_since``."""
    severities = [s for s, rank in SEVERITY_RANK.items() if rank >= SEVERITY_RANK[min_severity]]
    query = (
        _case_query()
        .where(
            cases.c.status.in_(DECIDABLE),
            cases.c.severity.in_(severities),
            cases.c.created_at >= opened_since,
        )
        .order_by(cases.c.case_id)
    )
    with engine.connect() as connection:
        return [CaseToAlert(**row._mapping) for row in connection.execute(query)]


def open_cases_of(engine: Engine, username: str) -> list:
    """The undecided cases assigned to ``username``: the soonest due first, then the largest."""
    query = (
        _case_query()
        .where(cases.c.status.in_(DECIDABLE), cases.c.assignee == username)
        .order_by(cases.c.due_on.is_(None), cases.c.due_on, cases.c.shortfall_rp.desc())
    )
    with engine.connect() as connection:
        return [CaseToAlert(**row._mapping) for row in connection.execute(query)]


@dataclass(frozen=True)
class SilentPoint:
    point_id: str
    point_name: str
    timezone: str
    last_sale_at: datetime | None  # None: none in SILENCE_LOOKBACK
    silent_minutes: int  # open minutes since the last sale (or the lookback's start)


def _open_minutes(open_hours: str, zone: ZoneInfo, start: datetime, end: datetime) -> int:
    """Minutes of [start, end) inside the point's open hours ("HH:MM-HH:MM" local; an end at or
    before the start runs past midnight), walking the local days it spans."""
    begin, finish = open_hours.split("-")
    opens = int(begin[:2]) * 60 + int(begin[3:])
    closes = int(finish[:2]) * 60 + int(finish[3:])
    if closes <= opens:
        closes += 24 * 60
    total = 0.0
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date():
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        window_start = midnight + timedelta(minutes=opens)
        window_end = midnight + timedelta(minutes=closes)
        overlap = (min(end, window_end) - max(start, window_start)).total_seconds()
        total += max(overlap, 0.0)
        day += timedelta(days=1)
    return int(total // 60)


def points_silent_in_open_hours(engine: Engine, as_of: datetime, min_minutes: int) -> list:
    """Points whose open hours since their last sale (data time) add up to ``min_minutes`` as of
    ``as_of``. Points under an announced closure (a suppression of every kind) are left out.

    A stand-in until ops' freshness helper is in pipeline/: it knows no holidays and no peers;
    it is the one silence helper alerts use, and is replaced by that one when it lands.
    """
    since = as_of - SILENCE_LOOKBACK
    query = (
        select(transactions.c.point_id, func.max(transactions.c.occurred_at).label("last"))
        .where(and_(transactions.c.occurred_at > since, transactions.c.occurred_at <= as_of))
        .group_by(transactions.c.point_id)
    )
    with engine.connect() as connection:
        last_sale = {row.point_id: row.last for row in connection.execute(query)}
    closures = suppression_windows(engine, as_of - timedelta(minutes=1), as_of)
    closed = set(closures.loc[closures["kind"].isna() | (closures["kind"] == ""), "point_id"])
    found = []
    for point_id, point in sorted(known_points(engine).items()):
        if point_id in closed:
            continue
        zone = ZoneInfo(point["timezone"] or DEFAULT_TIMEZONE)
        last = last_sale.get(point_id)
        minutes = _open_minutes(point["open_hours"], zone, last or since, as_of)
        if minutes >= min_minutes:
            found.append(SilentPoint(point_id, point["name"], zone.key, last, minutes))
    return found
