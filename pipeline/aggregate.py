"""Minute and hour aggregates per point, computed in the database from stored transactions.

Every aggregate row is a pure function of the transactions in its minute/hour, so recomputing
an interval (delete, then insert from a GROUP BY) is idempotent: a rerun or a late row gives
the same rows as a single clean pass. Intervals are snapped to whole UTC hours so an hour row
is never built from part of its hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, and_, case, delete, func, insert, literal, select

from pipeline.store.schema import hour_aggregates, minute_aggregates, transactions

HOUR = timedelta(hours=1)
AGGREGATE_COLUMNS = (
    "txn_count",
    "gross_paid",
    "void_count",
    "void_amount",
    "refund_count",
    "refund_amount",
    "cash_amount",
    "operators",
    "max_ticket",
)


def floor_hour(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}; times must be timezone-aware")
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(when: datetime) -> datetime:
    start = floor_hour(when)
    return start if start == when.astimezone(UTC) else start + HOUR


def _truncate(connection: Connection, unit: str):
    """occurred_at truncated to the UTC minute/hour, in the form each backend stores it."""
    column = transactions.c.occurred_at
    if connection.dialect.name == "sqlite":
        # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" (naive UTC); cut and pad in that form.
        keep, pad = (16, ":00.000000") if unit == "minute" else (13, ":00:00.000000")
        return func.substr(column, 1, keep).op("||")(literal(pad))
    return func.date_trunc(unit, column, "UTC")


def _measures():
    paid = transactions.c.status == "paid"
    amount = transactions.c.amount
    return [
        func.sum(case((paid, 1), else_=0)),
        func.sum(case((paid, amount), else_=0)),
        func.sum(case((transactions.c.status == "void", 1), else_=0)),
        func.sum(case((transactions.c.status == "void", amount), else_=0)),
        func.sum(case((transactions.c.status == "refund", 1), else_=0)),
        func.sum(case((transactions.c.status == "refund", amount), else_=0)),
        func.sum(case((and_(paid, transactions.c.payment_method == "cash"), amount), else_=0)),
        func.count(func.distinct(transactions.c.operator_id)),
        func.coalesce(func.max(case((paid, amount), else_=None)), 0),
    ]


def aggregate_in(
    connection: Connection, start: datetime, end: datetime, point_ids: Sequence[str] | None = None
) -> None:
    """Recompute minute and hour aggregates of [start, end) inside the caller's transaction."""
    start, end = floor_hour(start), ceil_hour(end)
    if end <= start:
        return
    for table, key, unit in (
        (minute_aggregates, "minute_start", "minute"),
        (hour_aggregates, "hour_start", "hour"),
    ):
        bucket = _truncate(connection, unit)
        wipe = delete(table).where(table.c[key] >= start, table.c[key] < end)
        source = select(transactions.c.point_id, bucket.label(key), *_measures()).where(
            transactions.c.occurred_at >= start, transactions.c.occurred_at < end
        )
        if point_ids is not None:
            wipe = wipe.where(table.c.point_id.in_(list(point_ids)))
            source = source.where(transactions.c.point_id.in_(list(point_ids)))
        source = source.group_by(transactions.c.point_id, bucket)
        connection.execute(wipe)
        connection.execute(insert(table).from_select(["point_id", key, *AGGREGATE_COLUMNS], source))


def aggregate_range(
    engine: Engine, start: datetime, end: datetime, point_ids: Iterable[str] | None = None
) -> None:
    """Recompute and replace the minute and hour aggregates of [start, end), whole UTC hours.

    ``point_ids`` limits the work to those points; None means every point.
    """
    with engine.begin() as connection:
        aggregate_in(connection, start, end, None if point_ids is None else sorted(set(point_ids)))


def hour_runs(hours: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Merge touched hour starts into [start, end) runs of consecutive hours."""
    runs: list[tuple[datetime, datetime]] = []
    for hour in sorted(set(hours)):
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + HOUR)
        else:
            runs.append((hour, hour + HOUR))
    return runs
