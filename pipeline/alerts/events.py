"""The cases that may raise an alert (at or above a rule's severity) and an inspector's open
cases for the daily digest, read from ``cases``. Reads only. (Silent points are
``reference.freshness.silent_points``'s answer, failures ``store.failures``'.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, func, select

from pipeline.casework.audit import DECIDABLE
from pipeline.casework.cases import SEVERITY_RANK
from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.store.schema import cases, points


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


# A case whose hours ended longer than this before the run is history, not news: a backfill of
# last year opens thousands of cases at once, and they belong in the queue, not in an inbox. A
# month's reconciliation gap, raised by the 20th of the next month, is still inside it.
CASE_NEWS_WINDOW = timedelta(days=35)


def cases_at_severity(
    engine: Engine, min_severity: str, *, opened_since: datetime, as_of: datetime
) -> list:
    """Undecided cases of ``min_severity`` or above opened at or after ``opened_since`` whose
    hours end within ``CASE_NEWS_WINDOW`` before ``as_of``."""
    severities = [s for s, rank in SEVERITY_RANK.items() if rank >= SEVERITY_RANK[min_severity]]
    query = (
        _case_query()
        .where(
            cases.c.status.in_(DECIDABLE),
            cases.c.severity.in_(severities),
            cases.c.created_at >= opened_since,
            cases.c.end_at >= as_of - CASE_NEWS_WINDOW,
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
