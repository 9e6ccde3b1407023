"""Revenue as every leader's page counts it, from the stored aggregates.

'Revenue' here is what the pipeline stores as collected: the paid amount of the transactions the
devices recorded (``gross_paid`` of the minute/hour aggregates; voids and refunds left out), in
whole rupiah, by the local time it was taken. For parking and market points that is the levy
collected; for hotel, restaurant and entertainment venues it is the sales the tax is levied on,
so targets for those types must be stated in the same terms. The dashboard's day totals, the
realisation against target, the cashless shares and the trends all read it through
``paid_revenue``, so the pages cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from pipeline.store.schema import hour_aggregates, minute_aggregates, points

GRAINS = ("minute", "hour")
GROUPS = ("at", "point_id", "name", "revenue_type", "district")
UNKNOWN_POINT = "unknown point"  # a point missing from the registry, as the dashboard says


def paid_revenue(
    connection: Connection,
    begin: datetime,
    end: datetime,
    by: tuple[str, ...],
    *,
    grain: str = "hour",
) -> list:
    """Revenue (``revenue_rp``) and its cash part (``cash_rp``) in [begin, end), grouped by the
    names in ``by`` (``GROUPS``; ``at`` is the minute or hour). The minute grain serves the live
    day; the hour grain is 60 times fewer rows for weeks and years. A point missing from the
    registry groups under None."""
    table = minute_aggregates if grain == "minute" else hour_aggregates
    at = table.c.minute_start if grain == "minute" else table.c.hour_start
    keys = {
        "at": at,
        "point_id": table.c.point_id,
        "name": points.c.name,
        "revenue_type": points.c.revenue_type,
        "district": points.c.district,
    }
    return connection.execute(
        select(
            *(keys[name].label(name) for name in by),
            func.sum(table.c.gross_paid).label("revenue_rp"),
            func.sum(table.c.cash_amount).label("cash_rp"),
        )
        .select_from(table.outerjoin(points, points.c.point_id == table.c.point_id))
        .where(at >= begin)
        .where(at < end)
        .group_by(*(keys[name] for name in by))
    ).all()


def data_span(connection: Connection) -> tuple[datetime | None, datetime | None]:
    """The first and the last stored hour of revenue (None, None when there is none)."""
    return connection.execute(
        select(func.min(hour_aggregates.c.hour_start), func.max(hour_aggregates.c.hour_start))
    ).one()


@dataclass
class PointWeeks:
    """One point's revenue and its cash part per week (lists in the order of the weeks)."""

    point_id: str
    name: str
    revenue_type: str
    district: str
    revenue_rp: list[int] = field(default_factory=list)
    cash_rp: list[int] = field(default_factory=list)


def week_starts(last_day: date, weeks: int) -> list[date]:
    """The Mondays of the ``weeks`` local weeks ending with the week that holds ``last_day``."""
    monday = last_day - timedelta(days=last_day.weekday())
    return [monday - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]


def weekly_by_point(
    connection: Connection, mondays: list[date], tz: ZoneInfo, end: datetime
) -> list[PointWeeks]:
    """Every point's revenue and cash per local week (Monday to Sunday) of ``mondays``, the last
    week cut at ``end``. One grouped read per week: each is a range of the hour index, so the
    cost follows the weeks asked for, not the history stored."""
    found: dict[str, PointWeeks] = {}
    for i, monday in enumerate(mondays):
        begin = datetime.combine(monday, time(0), tzinfo=tz).astimezone(UTC)
        finish = min(begin + timedelta(weeks=1), end)
        if finish <= begin:
            continue
        by = ("point_id", "name", "revenue_type", "district")
        for r in paid_revenue(connection, begin, finish, by):
            point = found.get(r.point_id)
            if point is None:
                point = found[r.point_id] = PointWeeks(
                    r.point_id,
                    r.name or r.point_id,
                    r.revenue_type or UNKNOWN_POINT,
                    r.district or UNKNOWN_POINT,
                    [0] * len(mondays),
                    [0] * len(mondays),
                )
            point.revenue_rp[i] += int(r.revenue_rp or 0)
            point.cash_rp[i] += int(r.cash_rp or 0)
    return sorted(found.values(), key=lambda p: p.point_id)
