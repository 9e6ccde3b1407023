"""What the review pages show, as queries: the case queue, one case, the dashboard, pipeline health.

Routes call these and render the result; nothing here knows about HTTP. Times come back
timezone-aware (UTC); pages show them in the point's local time.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from pipeline.casework.audit import DECISIONS, STATUS_LABELS, confirmed_leakage_windows
from pipeline.casework.users import CASE_WORKER_ROLES
from pipeline.core.errors import UnusableInputError
from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.reference.points import REVENUE_TYPES
from pipeline.store.schema import (
    anomalies,
    cases,
    hour_aggregates,
    ingest_batches,
    minute_aggregates,
    pipeline_failures,
    points,
    quarantine,
    source_watermarks,
    transactions,
    users,
)

PAGE_SIZE = 50
SEVERITIES = ("high", "medium", "low")
SORTS = {
    "newest": "newest day, largest shortfall first",
    "shortfall": "largest shortfall first",
    "recent": "most recent first",
}
# Weeks of the same hour-of-week that make a point's "usual" band on the case chart.
BAND_WEEKS = 8
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)


def region_tz() -> ZoneInfo:
    """The regency's own time zone: dashboards and date filters speak in it."""
    return ZoneInfo(DEFAULT_TIMEZONE)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _parse_date(value: str, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UnusableInputError(f"filter {name}={value!r} is not a date (YYYY-MM-DD)") from None


def _choice(value: str, allowed, name: str) -> str:
    if value and value not in allowed:
        raise UnusableInputError(f"filter {name}={value!r} is not one of {', '.join(allowed)}")
    return value


# ----------------------------------------------------------------------------- case queue


@dataclass(frozen=True)
class QueueFilter:
    district: str = ""
    revenue_type: str = ""
    point_id: str = ""
    severity: str = ""
    status: str = "open"  # "" means every status
    date_from: date | None = None
    date_to: date | None = None
    sort: str = "newest"
    page: int = 1

    @classmethod
    def from_params(cls, params) -> QueueFilter:
        """Read and check the queue's query parameters (unknown values are refused, not ignored)."""

        def get(name: str) -> str:
            return (params.get(name) or "").strip()

        page_raw = get("page") or "1"
        if not page_raw.isdigit() or int(page_raw) < 1:
            raise UnusableInputError(f"page={page_raw!r} is not a page number")
        return cls(
            district=get("district"),
            revenue_type=_choice(get("revenue_type"), REVENUE_TYPES, "revenue_type"),
            point_id=get("point_id"),
            severity=_choice(get("severity"), SEVERITIES, "severity"),
            # Absent means the working queue (open cases); an empty choice means every status.
            status=(
                "open"
                if params.get("status") is None
                else _choice(get("status"), STATUS_LABELS, "status")
            ),
            date_from=_parse_date(get("date_from"), "date_from"),
            date_to=_parse_date(get("date_to"), "date_to"),
            sort=_choice(get("sort"), SORTS, "sort") or "newest",
            page=int(page_raw),
        )

    def params(self, **changes) -> dict[str, str]:
        """The filter as query parameters (for links, paging and exports)."""
        current = replace(self, **changes)
        out = {}
        for f in fields(current):
            value = getattr(current, f.name)
            if f.name == "page" and value == 1:
                continue
            out[f.name] = "" if value is None else str(value)
        return out

    def query_string(self, **changes) -> str:
        return urlencode(self.params(**changes))


def _queue_query(flt: QueueFilter):
    tz = region_tz()
    query = select(
        cases,
        points.c.name.label("point_name"),
        points.c.district,
        points.c.revenue_type,
        points.c.timezone,
    ).select_from(cases.outerjoin(points, points.c.point_id == cases.c.point_id))
    if flt.district:
        query = query.where(points.c.district == flt.district)
    if flt.revenue_type:
        query = query.where(points.c.revenue_type == flt.revenue_type)
    if flt.point_id:
        query = query.where(cases.c.point_id == flt.point_id)
    if flt.severity:
        query = query.where(cases.c.severity == flt.severity)
    if flt.status:
        query = query.where(cases.c.status == flt.status)
    if flt.date_from:
        query = query.where(cases.c.start_at >= local_midnight(flt.date_from, tz))
    if flt.date_to:
        query = query.where(cases.c.start_at < local_midnight(flt.date_to + timedelta(days=1), tz))
    return query


def _local_day(column, dialect: str):
    """The calendar day of ``column`` in the regency's time zone, in SQL."""
    tz = region_tz()
    if dialect == "postgresql":
        return func.date(func.timezone(str(tz), column))
    # SQLite keeps naive UTC text; the region has no daylight saving, so a fixed shift is exact.
    hours = int(datetime.now(tz).utcoffset() / timedelta(hours=1))
    return func.date(column, f"{hours:+d} hours")


def _ordered(query, sort: str, dialect: str):
    if sort == "shortfall":
        return query.order_by(cases.c.shortfall_rp.desc(), cases.c.start_at.desc(), cases.c.case_id)
    if sort == "recent":
        return query.order_by(cases.c.start_at.desc(), cases.c.case_id.desc())
    # newest local day first, then the largest shortfall within the day
    return query.order_by(
        _local_day(cases.c.start_at, dialect).desc(),
        cases.c.shortfall_rp.desc(),
        cases.c.case_id.desc(),
    )


@dataclass
class QueuePage:
    rows: list
    total: int
    total_shortfall_rp: int
    page: int
    pages: int


def case_queue(engine: Engine, flt: QueueFilter, *, page_size: int = PAGE_SIZE) -> QueuePage:
    """One page of the filtered queue, with the count and summed shortfall of every match."""
    base = _queue_query(flt).subquery()
    with engine.connect() as connection:
        total, shortfall = connection.execute(
            select(func.count(), func.coalesce(func.sum(base.c.shortfall_rp), 0))
        ).one()
        rows = connection.execute(
            _ordered(_queue_query(flt), flt.sort, engine.dialect.name)
            .limit(page_size)
            .offset((flt.page - 1) * page_size)
        ).all()
    pages = max(1, -(-total // page_size))
    return QueuePage(rows, total, int(shortfall), flt.page, pages)


def queue_rows_for_export(engine: Engine, flt: QueueFilter, *, limit: int = 100_000) -> list:
    """Every row matching the filter (not paged), capped so one click cannot exhaust memory."""
    with engine.connect() as connection:
        return connection.execute(
            _ordered(_queue_query(flt), flt.sort, engine.dialect.name).limit(limit)
        ).all()


def filter_choices(engine: Engine) -> dict:
    """Values for the queue's filter dropdowns."""
    with engine.connect() as connection:
        districts = connection.execute(
            select(points.c.district).distinct().order_by(points.c.district)
        ).scalars()
        point_rows = connection.execute(
            select(points.c.point_id, points.c.name).order_by(points.c.point_id)
        ).all()
        return {
            "districts": list(districts),
            "points": point_rows,
            "revenue_types": REVENUE_TYPES,
            "severities": SEVERITIES,
            "statuses": STATUS_LABELS,
            "sorts": SORTS,
        }


# ----------------------------------------------------------------------------- one case


def get_case(engine: Engine, case_id: int):
    """The case joined with its point, or UnusableInputError if there is no such case."""
    query = (
        select(
            cases,
            points.c.name.label("point_name"),
            points.c.district,
            points.c.revenue_type,
            points.c.open_hours,
            points.c.timezone,
        )
        .select_from(cases.outerjoin(points, points.c.point_id == cases.c.point_id))
        .where(cases.c.case_id == case_id)
    )
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        raise UnusableInputError(f"case {case_id} does not exist")
    return row


def case_workers(engine: Engine) -> list[str]:
    """Usernames a case may be assigned to."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(users.c.username)
                .where(users.c.role.in_(CASE_WORKER_ROLES))
                .where(users.c.active == 1)
                .order_by(users.c.username)
            ).scalars()
        )


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _quartiles(values: list[int]) -> tuple[float, float, float] | None:
    if len(values) < 3:
        return None
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def case_chart(engine: Engine, case, *, days_before: int = 3, days_after: int = 2) -> dict:
    """The point's hourly revenue around the case, its usual band, and the flagged hours.

    The band is the quartiles of the same hour-of-week over the prior ``BAND_WEEKS`` weeks,
    leaving out hours inside confirmed leakage (they are not "usual"). A missing hour aggregate
    means no paid transactions, i.e. zero revenue, once the point has any data at all.
    """
    tz = ZoneInfo(case.timezone or DEFAULT_TIMEZONE)
    start_day = case.start_at.astimezone(tz).date() - timedelta(days=days_before)
    end_day = (case.end_at - timedelta(seconds=1)).astimezone(tz).date() + timedelta(
        days=days_after + 1
    )
    window_start = local_midnight(start_day, tz)
    window_end = local_midnight(end_day, tz)
    history_start = window_start - BAND_WEEKS * WEEK
    with engine.connect() as connection:
        rows = connection.execute(
            select(hour_aggregates.c.hour_start, hour_aggregates.c.gross_paid)
            .where(hour_aggregates.c.point_id == case.point_id)
            .where(hour_aggregates.c.hour_start >= history_start)
            .where(hour_aggregates.c.hour_start < window_end)
        ).all()
        flagged_rows = connection.execute(
            select(anomalies.c.hour_start, anomalies.c.score)
            .where(anomalies.c.point_id == case.point_id)
            .where(anomalies.c.hour_start >= window_start)
            .where(anomalies.c.hour_start < window_end)
        ).all()
    gross = {r.hour_start: int(r.gross_paid) for r in rows}
    confirmed = [
        (w.start_at, w.end_at)
        for w in confirmed_leakage_windows(engine, [case.point_id])
        if w.start_at < window_end
    ]
    first_hour = min(gross) if gross else None
    last_hour = max(gross) if gross else None

    def usable(hour: datetime) -> bool:
        return (
            first_hour is not None
            and hour >= first_hour
            and not any(a <= hour < b for a, b in confirmed)
        )

    out = {"t": [], "actual": [], "q1": [], "median": [], "q3": [], "flagged": []}
    hour = window_start
    while hour < window_end:
        band = _quartiles(
            [
                gross.get(hour - k * WEEK, 0)
                for k in range(1, BAND_WEEKS + 1)
                if usable(hour - k * WEEK)
            ]
        )
        out["t"].append(int(hour.timestamp()))
        # After the last hour we have data for, the actual line stops rather than drop to zero.
        out["actual"].append(
            gross.get(hour, 0) if last_hour is not None and hour <= last_hour else None
        )
        for key, value in zip(("q1", "median", "q3"), band or (None, None, None), strict=True):
            out[key].append(None if value is None else round(value))
        out["flagged"].append(1 if case.start_at <= hour < case.end_at else 0)
        hour += HOUR
    out["other_flags"] = [
        int(r.hour_start.timestamp())
        for r in flagged_rows
        if not (case.start_at <= r.hour_start < case.end_at)
    ]
    out["tz"] = str(tz)
    out["case_span"] = [int(case.start_at.timestamp()), int(case.end_at.timestamp())]
    return out


def case_hours(engine: Engine, case, chart: dict) -> list[dict]:
    """The flagged hours one by one: revenue, usual median, voids, refunds, cash share."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(hour_aggregates)
            .where(hour_aggregates.c.point_id == case.point_id)
            .where(hour_aggregates.c.hour_start >= case.start_at)
            .where(hour_aggregates.c.hour_start < case.end_at)
        ).all()
    by_hour = {r.hour_start: r for r in rows}
    median_at = dict(zip(chart["t"], chart["median"], strict=True))
    out = []
    hour = _floor_hour(case.start_at)
    while hour < case.end_at and len(out) < 24 * 31:
        row = by_hour.get(hour)
        gross_paid = int(row.gross_paid) if row else 0
        out.append(
            {
                "hour_start": hour,
                "gross_paid": gross_paid,
                "usual": median_at.get(int(hour.timestamp())),
                "txn_count": row.txn_count if row else 0,
                "void_count": row.void_count if row else 0,
                "void_amount": int(row.void_amount) if row else 0,
                "refund_count": row.refund_count if row else 0,
                "refund_amount": int(row.refund_amount) if row else 0,
                "cash_share": (row.cash_amount / gross_paid) if row and gross_paid else None,
                "operators": row.operators if row else 0,
            }
        )
        hour += HOUR
    return out


def case_days(hours: list[dict], tz_name: str | None) -> list[dict]:
    """The case's hours summed per local day: how a reconciliation gap of weeks is read."""
    tz = ZoneInfo(tz_name or DEFAULT_TIMEZONE)
    days: dict[date, dict] = {}
    for h in hours:
        day = days.setdefault(
            h["hour_start"].astimezone(tz).date(),
            {"gross_paid": 0, "usual": 0, "txn_count": 0, "void_count": 0, "refund_count": 0},
        )
        for key in ("gross_paid", "txn_count", "void_count", "refund_count"):
            day[key] += h[key]
        day["usual"] += h["usual"] or 0
    return [{"day": d, **v} for d, v in sorted(days.items())]


def _txn_query(case):
    return (
        select(transactions)
        .where(transactions.c.point_id == case.point_id)
        .where(transactions.c.occurred_at >= case.start_at)
        .where(transactions.c.occurred_at < case.end_at)
    )


@dataclass
class TransactionPage:
    rows: list
    total: int
    page: int
    pages: int
    by_status: dict
    by_operator: list


def case_transactions(
    engine: Engine, case, page: int = 1, *, page_size: int = 25
) -> TransactionPage:
    """The flagged hours' transactions (paged), with totals by status and by operator."""
    base = _txn_query(case).subquery()
    with engine.connect() as connection:
        status_rows = connection.execute(
            select(base.c.status, func.count(), func.coalesce(func.sum(base.c.amount), 0)).group_by(
                base.c.status
            )
        ).all()
        operator_rows = connection.execute(
            select(
                base.c.operator_id,
                func.count().label("n"),
                func.sum(base.c.amount).filter(base.c.status == "paid").label("paid"),
                func.count().filter(base.c.status == "void").label("voids"),
                func.count().filter(base.c.status == "refund").label("refunds"),
            )
            .group_by(base.c.operator_id)
            .order_by(func.count().desc())
        ).all()
        total = sum(r[1] for r in status_rows)
        rows = connection.execute(
            _txn_query(case)
            .order_by(transactions.c.occurred_at, transactions.c.txn_id)
            .limit(page_size)
            .offset((page - 1) * page_size)
        ).all()
    by_status = {r[0]: {"count": r[1], "amount": int(r[2])} for r in status_rows}
    pages = max(1, -(-total // page_size))
    return TransactionPage(rows, total, page, pages, by_status, operator_rows)


def case_transactions_for_export(engine: Engine, case, *, limit: int = 200_000) -> list:
    with engine.connect() as connection:
        return connection.execute(
            _txn_query(case)
            .order_by(transactions.c.occurred_at, transactions.c.txn_id)
            .limit(limit)
        ).all()


# ----------------------------------------------------------------------------- dashboard


def _latest_data_moment(engine: Engine) -> datetime | None:
    with engine.connect() as connection:
        return connection.execute(select(func.max(minute_aggregates.c.minute_start))).scalar()


def dashboard(engine: Engine, *, now: datetime, day: date | None = None) -> dict:
    """Revenue of one local day by the minute and hour against the same weekday a week before.

    ``day`` defaults to today; when today has no transactions at all (a quiet night, or a demo
    on historical data) the latest day with data is shown instead and the page says so.
    """
    tz = region_tz()
    note = ""
    today = now.astimezone(tz).date()
    if day is None:
        day = today
        latest = _latest_data_moment(engine)
        if latest is not None and latest < local_midnight(today, tz):
            day = latest.astimezone(tz).date()
            note = (
                f"No transactions yet today; showing {day.isoformat()}, the latest day with data."
            )
            now = latest + timedelta(minutes=1)
    day_start = local_midnight(day, tz)
    day_end = local_midnight(day + timedelta(days=1), tz)
    cutoff = min(max(now, day_start), day_end)
    week_start, week_end = day_start - WEEK, day_end - WEEK
    with engine.connect() as connection:

        def minutes(begin: datetime, end: datetime):
            return connection.execute(
                select(
                    minute_aggregates.c.minute_start,
                    points.c.revenue_type,
                    points.c.district,
                    func.sum(minute_aggregates.c.gross_paid),
                )
                .select_from(
                    minute_aggregates.outerjoin(
                        points, points.c.point_id == minute_aggregates.c.point_id
                    )
                )
                .where(minute_aggregates.c.minute_start >= begin)
                .where(minute_aggregates.c.minute_start < end)
                .group_by(
                    minute_aggregates.c.minute_start, points.c.revenue_type, points.c.district
                )
            ).all()

        rows = minutes(day_start, cutoff) + minutes(week_start, week_end)
        open_count, open_rp = connection.execute(
            select(func.count(), func.coalesce(func.sum(cases.c.shortfall_rp), 0)).where(
                cases.c.status == "open"
            )
        ).one()
        field_count = connection.execute(
            select(func.count()).where(cases.c.status == "field_check")
        ).scalar()
        confirmed_count, confirmed_rp = connection.execute(
            select(func.count(), func.coalesce(func.sum(cases.c.shortfall_rp), 0))
            .where(cases.c.status == "confirmed")
            .where(cases.c.start_at >= day_start - 30 * timedelta(days=1))
        ).one()

    minutes = 24 * 60
    today_by_minute = [0] * minutes
    week_by_minute = [0] * minutes
    by_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_district: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    cutoff_offset = cutoff - day_start
    for minute_start, revenue_type, district, amount in rows:
        amount = int(amount or 0)
        if minute_start >= day_start:
            index, column = (minute_start - day_start) // timedelta(minutes=1), 0
            today_by_minute[index] += amount
        else:
            index = (minute_start - week_start) // timedelta(minutes=1)
            week_by_minute[index] += amount
            # For the by-type and by-district comparison, last week only up to the same time.
            if minute_start - week_start >= cutoff_offset:
                continue
            column = 1
        by_type[revenue_type or "unknown point"][column] += amount
        by_district[district or "unknown point"][column] += amount

    cutoff_minute = int(cutoff_offset / timedelta(minutes=1))

    def cumulative(values: list[int], upto: int) -> list[int | None]:
        out, running = [], 0
        for i, value in enumerate(values):
            running += value
            out.append(running if i < upto else None)
        return out

    def hourly(values: list[int]) -> list[int]:
        return [sum(values[h * 60 : (h + 1) * 60]) for h in range(24)]

    today_total = sum(today_by_minute)
    week_same_time = sum(week_by_minute[:cutoff_minute])

    def table(groups: dict[str, list[int]]) -> list[dict]:
        return [
            {"name": name, "today": a, "last_week": b, "change": _change(a, b)}
            for name, (a, b) in sorted(groups.items(), key=lambda kv: -kv[1][0])
        ]

    today_hours = hourly(today_by_minute)
    cutoff_hour = -(-cutoff_minute // 60)
    return {
        "day": day.isoformat(),
        "weekday": day.strftime("%A"),
        "compare_day": (day - timedelta(days=7)).isoformat(),
        "as_of": "end of day" if cutoff >= day_end else cutoff.astimezone(tz).strftime("%H:%M"),
        "is_today": day == today,
        "tz": str(tz),
        "note": note,
        "day_start": int(day_start.timestamp()),
        "today_total": today_total,
        "last_week_same_time": week_same_time,
        "last_week_total": sum(week_by_minute),
        "change": _change(today_total, week_same_time),
        "minute": {
            "today": cumulative(today_by_minute, cutoff_minute),
            "last_week": cumulative(week_by_minute, minutes),
        },
        "hour": {
            "today": [v if h < cutoff_hour else None for h, v in enumerate(today_hours)],
            "last_week": hourly(week_by_minute),
        },
        "by_revenue_type": table(by_type),
        "by_district": table(by_district),
        "open_cases": int(open_count),
        "open_shortfall_rp": int(open_rp),
        "field_check_cases": int(field_count),
        "confirmed_cases_30d": int(confirmed_count),
        "confirmed_shortfall_30d_rp": int(confirmed_rp),
    }


def _change(now_value: int, before: int) -> float | None:
    """Relative change in percent, None when there is nothing to compare with."""
    if before == 0:
        return None
    return round(100.0 * (now_value - before) / before, 1)


# ----------------------------------------------------------------------------- pipeline health


def pipeline_health(engine: Engine, *, limit: int = 50) -> dict:
    """Last good batch per source, failed batches, batches with quarantined rows, failures."""
    b = ingest_batches
    with engine.connect() as connection:
        last_ok = {
            r.source: r
            for r in connection.execute(
                select(
                    b.c.source,
                    func.max(b.c.finished_at).label("last_ok_at"),
                    func.count().label("ok_batches"),
                )
                .where(b.c.status == "ok")
                .group_by(b.c.source)
            ).all()
        }
        latest_started = (
            select(b.c.source, func.max(b.c.batch_id).label("batch_id"))
            .group_by(b.c.source)
            .subquery()
        )
        latest = connection.execute(
            select(b).join(latest_started, latest_started.c.batch_id == b.c.batch_id)
        ).all()
        sources = []
        for row in sorted(latest, key=lambda r: r.source):
            ok = last_ok.get(row.source)
            sources.append(
                {
                    "source": row.source,
                    "last_ok_at": ok.last_ok_at if ok else None,
                    "ok_batches": ok.ok_batches if ok else 0,
                    "latest": row,
                }
            )
        failed = connection.execute(
            select(b)
            .where(b.c.status.in_(("failed", "rejected")))
            .order_by(b.c.batch_id.desc())
            .limit(limit)
        ).all()
        quarantined = connection.execute(
            select(b).where(b.c.quarantined > 0).order_by(b.c.batch_id.desc()).limit(limit)
        ).all()
        failures = connection.execute(
            select(pipeline_failures).order_by(pipeline_failures.c.at.desc()).limit(limit)
        ).all()
        watermarks = connection.execute(
            select(source_watermarks).order_by(source_watermarks.c.source)
        ).all()
    return {
        "sources": sources,
        "failed": failed,
        "quarantined": quarantined,
        "failures": failures,
        "watermarks": watermarks,
    }


def batch_quarantine(engine: Engine, batch_id: int, page: int = 1, *, page_size: int = PAGE_SIZE):
    """One batch and one page of its quarantined rows (reasons and the raw row as received)."""
    with engine.connect() as connection:
        batch = connection.execute(
            select(ingest_batches).where(ingest_batches.c.batch_id == batch_id)
        ).first()
        if batch is None:
            raise UnusableInputError(f"batch {batch_id} does not exist")
        total = connection.execute(
            select(func.count()).where(quarantine.c.batch_id == batch_id)
        ).scalar()
        rows = connection.execute(
            select(quarantine)
            .where(quarantine.c.batch_id == batch_id)
            .order_by(quarantine.c.line_no, quarantine.c.quarantine_id)
            .limit(page_size)
            .offset((page - 1) * page_size)
        ).all()
    return batch, rows, total, max(1, -(-total // page_size))


__all__ = [
    "DECISIONS",
    "QueueFilter",
    "case_queue",
    "case_chart",
    "case_hours",
    "case_transactions",
    "dashboard",
    "pipeline_health",
    "batch_quarantine",
]
