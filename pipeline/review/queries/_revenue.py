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

from datetime import datetime

from sqlalchemy import Connection, func, select

from pipeline.store.schema import hour_aggregates, minute_aggregates, points

GRAINS = ("minute", "hour")
GROUPS = ("at", "point_id", "name", "revenue_type", "district")


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
