"""One case: the case and its point, its chart against the usual band, its hours and days,
its transactions, and who it may be assigned to."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from pipeline.casework.audit import confirmed_leakage_windows
from pipeline.casework.users import CASE_WORKER_ROLES
from pipeline.core.errors import NotFoundError
from pipeline.core.times import DEFAULT_TIMEZONE, HOUR, floor_hour
from pipeline.review.queries._region import WEEK, local_midnight
from pipeline.store.schema import (
    MAX_ROW_ID,
    anomalies,
    cases,
    hour_aggregates,
    points,
    transactions,
    users,
)

# Weeks of the same hour-of-week that make a point's "usual" band on the case chart.
BAND_WEEKS = 8


def get_case(engine: Engine, case_id: int):
    """The case joined with its point, or NotFoundError if there is no such case."""
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
    row = None
    if 0 < case_id <= MAX_ROW_ID:
        with engine.connect() as connection:
            row = connection.execute(query).first()
    if row is None:
        raise NotFoundError(f"case {case_id} does not exist")
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
    hour = floor_hour(case.start_at)
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
