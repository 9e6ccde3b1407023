"""The revenue dashboard: one local day by the minute and hour against the same weekday a week
before, by revenue type and district, with the case totals beside it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, func, select

from pipeline.core.leakage_kinds import SHORTFALL_MEASURES, shortfall_measure
from pipeline.review.queries._queue import shortfall_totals
from pipeline.review.queries._region import WEEK, local_midnight, region_tz
from pipeline.review.queries._revenue import paid_revenue
from pipeline.store.schema import cases, minute_aggregates

MINUTE = timedelta(minutes=1)
MINUTES_PER_DAY = 24 * 60


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
            now = latest + MINUTE
    day_start = local_midnight(day, tz)
    day_end = local_midnight(day + timedelta(days=1), tz)
    cutoff = min(max(now, day_start), day_end)
    week_start, week_end = day_start - WEEK, day_end - WEEK
    with engine.connect() as connection:
        rows = _minute_rows(connection, day_start, cutoff) + _minute_rows(
            connection, week_start, week_end
        )
        case_totals = _case_totals(connection, day_start)
    revenue = _Revenue.of(rows, day_start, week_start, cutoff - day_start)

    cutoff_minute = int((cutoff - day_start) / MINUTE)
    today_total = sum(revenue.today_by_minute)
    week_same_time = sum(revenue.week_by_minute[:cutoff_minute])
    today_hours = _hourly(revenue.today_by_minute)
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
        "last_week_total": sum(revenue.week_by_minute),
        "change": _change(today_total, week_same_time),
        "minute": {
            "today": _cumulative(revenue.today_by_minute, cutoff_minute),
            "last_week": _cumulative(revenue.week_by_minute, MINUTES_PER_DAY),
        },
        "hour": {
            "today": [v if h < cutoff_hour else None for h, v in enumerate(today_hours)],
            "last_week": _hourly(revenue.week_by_minute),
        },
        "by_revenue_type": _table(revenue.by_type),
        "by_district": _table(revenue.by_district),
        **case_totals,
    }


def _minute_rows(connection: Connection, begin: datetime, end: datetime) -> list:
    """Paid revenue (``_revenue``'s meaning) per minute, revenue type and district in [begin, end)."""
    rows = paid_revenue(connection, begin, end, ("at", "revenue_type", "district"), grain="minute")
    return [(r.at, r.revenue_type, r.district, r.revenue_rp) for r in rows]


def _case_totals(connection: Connection, day_start: datetime) -> dict:
    """Open and field-check cases now, and cases confirmed in the 30 days before ``day_start``;
    shortfalls per measure (``core.leakage_kinds.SHORTFALL_MEASURES``), never added across."""
    open_by = shortfall_totals(connection, select(cases).where(cases.c.status == "open"))
    field_count = connection.execute(
        select(func.count()).where(cases.c.status == "field_check")
    ).scalar()
    confirmed_by = shortfall_totals(
        connection,
        select(cases)
        .where(cases.c.status == "confirmed")
        .where(cases.c.start_at >= day_start - 30 * timedelta(days=1)),
    )
    return {
        "found_recovered_by_measure": _found_and_recovered(connection),
        "open_cases": sum(n for n, _ in open_by.values()),
        "open_shortfall_by_measure": {m: rp for m, (_, rp) in open_by.items()},
        "field_check_cases": int(field_count),
        "confirmed_cases_30d": sum(n for n, _ in confirmed_by.values()),
        "confirmed_shortfall_30d_by_measure": {m: rp for m, (_, rp) in confirmed_by.items()},
    }


def _found_and_recovered(connection: Connection) -> dict[str, dict[str, int]]:
    """Every confirmed-leakage case: the rupiah found (its shortfall) against the rupiah
    recovered so far, per measure (``SHORTFALL_MEASURES`` order), never added across measures."""
    has_collector = cases.c.operators.is_not(None)
    rows = connection.execute(
        select(
            cases.c.origin,
            cases.c.kind,
            has_collector,
            func.count(),
            func.coalesce(func.sum(cases.c.shortfall_rp), 0),
            func.coalesce(func.sum(cases.c.recovered_rp), 0),
        )
        .where(cases.c.status == "confirmed")
        .group_by(cases.c.origin, cases.c.kind, has_collector)
    ).all()
    totals: dict[str, dict[str, int]] = {}
    for origin, kind, collector, count, found, recovered in rows:
        measure = shortfall_measure(origin, kind, "collector" if collector else None)
        cell = totals.setdefault(measure, {"cases": 0, "found": 0, "recovered": 0})
        cell["cases"] += int(count)
        cell["found"] += int(found)
        cell["recovered"] += int(recovered)
    return {m: totals[m] for m in SHORTFALL_MEASURES if m in totals}


@dataclass
class _Revenue:
    """The day's and the week-before's revenue by minute, and [today, last week] per group."""

    today_by_minute: list[int] = field(default_factory=lambda: [0] * MINUTES_PER_DAY)
    week_by_minute: list[int] = field(default_factory=lambda: [0] * MINUTES_PER_DAY)
    by_type: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    by_district: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    @classmethod
    def of(
        cls, rows, day_start: datetime, week_start: datetime, cutoff_offset: timedelta
    ) -> _Revenue:
        revenue = cls()
        for minute_start, revenue_type, district, amount in rows:
            amount = int(amount or 0)
            if minute_start >= day_start:
                revenue.today_by_minute[(minute_start - day_start) // MINUTE] += amount
                column = 0
            else:
                revenue.week_by_minute[(minute_start - week_start) // MINUTE] += amount
                # For the by-type and by-district comparison, last week only up to the same time.
                if minute_start - week_start >= cutoff_offset:
                    continue
                column = 1
            revenue.by_type[revenue_type or "unknown point"][column] += amount
            revenue.by_district[district or "unknown point"][column] += amount
        return revenue


def _cumulative(values: list[int], upto: int) -> list[int | None]:
    out, running = [], 0
    for i, value in enumerate(values):
        running += value
        out.append(running if i < upto else None)
    return out


def _hourly(values: list[int]) -> list[int]:
    return [sum(values[h * 60 : (h + 1) * 60]) for h in range(24)]


def _table(groups: dict[str, list[int]]) -> list[dict]:
    return [
        {"name": name, "today": a, "last_week": b, "change": _change(a, b)}
        for name, (a, b) in sorted(groups.items(), key=lambda kv: -kv[1][0])
    ]


def _change(now_value: int, before: int) -> float | None:
    """Relative change in percent, None when there is nothing to compare with."""
    if before == 0:
        return None
    return round(100.0 * (now_value - before) / before, 1)
