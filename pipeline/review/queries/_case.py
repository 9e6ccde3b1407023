"""One case: the case and its point, its chart against the usual band, its hours and days,
its transactions, and who it may be assigned to."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from pipeline.casework.audit import confirmed_leakage_windows
from pipeline.casework.users import CASE_WORKER_ROLES
from pipeline.core.leakage_kinds import shortfall_measure
from pipeline.core.times import DEFAULT_TIMEZONE, HOUR, floor_hour
from pipeline.review.i18n import TranslatableInputError, TranslatableNotFound
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
            points.c.taxpayer_id,
        )
        .select_from(cases.outerjoin(points, points.c.point_id == cases.c.point_id))
        .where(cases.c.case_id == case_id)
    )
    row = None
    if 0 < case_id <= MAX_ROW_ID:
        with engine.connect() as connection:
            row = connection.execute(query).first()
    if row is None:
        raise TranslatableNotFound("case %(case_id)s does not exist", case_id=case_id)
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
            select(anomalies.c.hour_start, anomalies.c.case_id, anomalies.c.shortfall_rp)
            .where(anomalies.c.point_id == case.point_id)
            .where(anomalies.c.hour_start >= window_start)
            .where(anomalies.c.hour_start < window_end)
        ).all()
    # Only the hours the detector flagged for this case are this case's: a case's span also
    # covers the closed night hours between its flags, and those were never flagged.
    own = {r.hour_start: int(r.shortfall_rp) for r in flagged_rows if r.case_id == case.case_id}
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

    out = {"t": [], "actual": [], "q1": [], "median": [], "q3": [], "flagged": [], "expected": []}
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
        out["flagged"].append(1 if hour in own else 0)
        # The detector's expectation for a flagged hour: recorded plus its estimated shortfall,
        # the same figure as the breakdown table's (``case_breakdown``).
        out["expected"].append(gross.get(hour, 0) + own[hour] if hour in own else None)
        hour += HOUR
    out["other_flags"] = [
        int(r.hour_start.timestamp()) for r in flagged_rows if r.case_id != case.case_id
    ]
    out["tz"] = str(tz)
    out["case_span"] = [int(case.start_at.timestamp()), int(case.end_at.timestamp())]
    return out


def case_hours(engine: Engine, case, chart: dict) -> list[dict]:
    """The hours of the case's span one by one: revenue, the prior weeks' median, voids, refunds,
    cash share, and whether the detector flagged the hour (closed hours in a span are not)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(hour_aggregates)
            .where(hour_aggregates.c.point_id == case.point_id)
            .where(hour_aggregates.c.hour_start >= case.start_at)
            .where(hour_aggregates.c.hour_start < case.end_at)
        ).all()
    by_hour = {r.hour_start: r for r in rows}
    median_at = dict(zip(chart["t"], chart["median"], strict=True))
    flagged_at = dict(zip(chart["t"], chart["flagged"], strict=True))
    out = []
    hour = floor_hour(case.start_at)
    while hour < case.end_at and len(out) < 24 * 31:
        row = by_hour.get(hour)
        gross_paid = int(row.gross_paid) if row else 0
        out.append(
            {
                "hour_start": hour,
                "gross_paid": gross_paid,
                "median": median_at.get(int(hour.timestamp())),
                "flagged": bool(flagged_at.get(int(hour.timestamp()))),
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


_COUNTS = ("txn_count", "void_count", "void_amount", "refund_count", "refund_amount")


@dataclass
class Breakdown:
    """A detector case's shortfall hour by hour (or day by day), summing to its headline.

    ``rows`` carry ``recorded`` (paid revenue of the hour), ``shortfall`` (the detector's
    estimate for that hour, as stored with the flag) and ``expected`` = recorded + shortfall: the
    one "usual" of the case page, used by the table, the chart and the detector's reason.
    ``unattributed`` is what the headline holds beyond its hours (0 unless a case was edited by
    hand or written by an older version), shown as its own row so the table still sums.
    """

    measure: str
    per: str  # "hour" or "day"
    rows: list[dict]
    recorded: int
    expected: int
    shortfall: int
    unattributed: int


def case_breakdown(engine: Engine, case, *, max_hour_rows: int = 24) -> Breakdown:
    """The flagged hours of a detector case with their shortfalls; a case with more flagged
    hours than ``max_hour_rows`` is summed per local day."""
    with engine.connect() as connection:
        flags = connection.execute(
            select(anomalies.c.hour_start, anomalies.c.kind, anomalies.c.shortfall_rp)
            .where(anomalies.c.case_id == case.case_id)
            .order_by(anomalies.c.hour_start)
        ).all()
        aggregates = {
            r.hour_start: r
            for r in connection.execute(
                select(hour_aggregates)
                .where(hour_aggregates.c.point_id == case.point_id)
                .where(hour_aggregates.c.hour_start >= case.start_at)
                .where(hour_aggregates.c.hour_start < case.end_at)
            )
        }
    rows = []
    for f in flags:
        agg = aggregates.get(f.hour_start)
        recorded = int(agg.gross_paid) if agg else 0
        rows.append(
            {
                "hour_start": f.hour_start,
                "kind": f.kind,
                "hours": 1,
                "recorded": recorded,
                "shortfall": int(f.shortfall_rp),
                "expected": recorded + int(f.shortfall_rp),
                "txn_count": agg.txn_count if agg else 0,
                "void_count": agg.void_count if agg else 0,
                "void_amount": int(agg.void_amount) if agg else 0,
                "refund_count": agg.refund_count if agg else 0,
                "refund_amount": int(agg.refund_amount) if agg else 0,
                "cash_share": (agg.cash_amount / recorded) if agg and recorded else None,
                "operators": agg.operators if agg else 0,
            }
        )
    per = "hour"
    if len(rows) > max_hour_rows:
        tz = ZoneInfo(case.timezone or DEFAULT_TIMEZONE)
        days: dict[date, dict] = {}
        for r in rows:
            day = days.setdefault(
                r["hour_start"].astimezone(tz).date(),
                {"hours": 0, "recorded": 0, "shortfall": 0, "expected": 0, "kinds": set()}
                | dict.fromkeys(_COUNTS, 0),
            )
            for key in ("hours", "recorded", "shortfall", "expected", *_COUNTS):
                day[key] += r[key]
            day["kinds"].add(r["kind"])
        rows = [{"day": d, **v, "kinds": sorted(v["kinds"])} for d, v in sorted(days.items())]
        per = "day"
    shortfall = sum(r["shortfall"] for r in rows)
    return Breakdown(
        measure=shortfall_measure(case.origin, case.kind, case.operators),
        per=per,
        rows=rows,
        recorded=sum(r["recorded"] for r in rows),
        expected=sum(r["expected"] for r in rows),
        shortfall=shortfall,
        unattributed=int(case.shortfall_rp) - shortfall,
    )


def _txn_query(case):
    return (
        select(transactions)
        .where(transactions.c.point_id == case.point_id)
        .where(transactions.c.occurred_at >= case.start_at)
        .where(transactions.c.occurred_at < case.end_at)
    )


TXN_STATUSES = ("paid", "void", "refund")
PAYMENT_METHODS = ("cash", "qris", "card", "transfer", "ewallet")  # expectations/transactions.json
NO_OPERATOR = "-"  # the operator filter's value for transactions without one


@dataclass(frozen=True)
class TransactionFilter:
    """Which of a case's transactions the list shows: one status, one payment method, one
    operator (``NO_OPERATOR`` for none); empty means any."""

    status: str = ""
    method: str = ""
    operator: str = ""

    @classmethod
    def from_params(cls, params) -> TransactionFilter:
        def get(name: str) -> str:
            return (params.get(name) or "").strip()

        for name, allowed in (("txn_status", TXN_STATUSES), ("method", PAYMENT_METHODS)):
            if get(name) and get(name) not in allowed:
                raise TranslatableInputError(
                    "filter %(name)s=%(value)r is not one of %(allowed)s",
                    name=name,
                    value=get(name)[:40],
                    allowed=", ".join(allowed),
                )
        return cls(get("txn_status"), get("method"), get("operator")[:64])

    def params(self) -> dict[str, str]:
        pairs = (("txn_status", self.status), ("method", self.method), ("operator", self.operator))
        return {name: value for name, value in pairs if value}

    def apply(self, query):
        if self.status:
            query = query.where(transactions.c.status == self.status)
        if self.method:
            query = query.where(transactions.c.payment_method == self.method)
        if self.operator == NO_OPERATOR:
            query = query.where(transactions.c.operator_id.is_(None))
        elif self.operator:
            query = query.where(transactions.c.operator_id == self.operator)
        return query


@dataclass
class TransactionPage:
    rows: list
    total: int  # transactions the filter lets through (what the pages hold)
    page: int
    pages: int
    by_status: dict  # over the whole span, whatever the filter
    by_operator: list
    span_total: int = 0  # every transaction of the span


def case_transactions(
    engine: Engine,
    case,
    page: int = 1,
    *,
    page_size: int = 25,
    only: TransactionFilter | None = None,
) -> TransactionPage:
    """The span's transactions that ``only`` lets through (paged), with the whole span's totals
    by status and by operator."""
    only = only or TransactionFilter()
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
        span_total = sum(r[1] for r in status_rows)
        total = span_total
        if only.params():
            filtered = only.apply(_txn_query(case)).subquery()
            total = connection.execute(select(func.count()).select_from(filtered)).scalar()
        rows = connection.execute(
            only.apply(_txn_query(case))
            .order_by(transactions.c.occurred_at, transactions.c.txn_id)
            .limit(page_size)
            .offset((page - 1) * page_size)
        ).all()
    by_status = {r[0]: {"count": r[1], "amount": int(r[2])} for r in status_rows}
    pages = max(1, -(-total // page_size))
    return TransactionPage(rows, total, page, pages, by_status, operator_rows, span_total)


def case_transactions_for_export(engine: Engine, case, *, limit: int = 200_000) -> list:
    with engine.connect() as connection:
        return connection.execute(
            _txn_query(case)
            .order_by(transactions.c.occurred_at, transactions.c.txn_id)
            .limit(limit)
        ).all()


def reconciliation_view(case) -> dict | None:
    """A reconciliation case's figures side by side, period by period (None for a detector
    case). Sales figures (recorded, declared) and money figures (tax due, deposited, cash
    handed in) are kept in their own columns: they are different amounts and never compared
    as if they were one."""
    if case.origin != "reconciliation":
        return None
    try:
        details = json.loads(case.details or "{}")
    except ValueError:
        details = {}
    if not isinstance(details, dict):
        details = {}
    refs = details.get("refs") if isinstance(details.get("refs"), dict) else {}
    figures = refs.get("figures") if isinstance(refs.get("figures"), dict) else {}
    period = details.get("period") if isinstance(details.get("period"), dict) else {}
    days = details.get("days") if isinstance(details.get("days"), dict) else {}
    rows = []
    if days:  # a collector's days: cash recorded against cash handed in, day by day
        for day, v in sorted(days.items()):
            rows.append(
                {
                    "day": _iso_day(day),
                    "recorded": v.get("recorded"),
                    "handed_in": v.get("deposited"),
                }
            )
        columns = ("recorded", "handed_in")
    else:
        rows.append(
            {
                "day": None,
                "recorded": details.get("recorded_rp"),
                "declared": details.get("declared_rp"),
                "tax_on_recorded": figures.get("tax_on_recorded"),
                "tax_due_declared": figures.get("tax_due_declared"),
                "deposited": details.get("deposited_rp"),
            }
        )
        columns = tuple(
            c
            for c in ("recorded", "declared", "tax_on_recorded", "tax_due_declared", "deposited")
            if rows[0][c] is not None
        )
    # The bars of one period: sales against sales, money paid against money owed, each group
    # drawn against its own largest figure (a tax bar beside a sales bar would mean nothing).
    groups = (("recorded", "declared"), ("tax_on_recorded", "tax_due_declared", "deposited"))
    if days:
        groups = (("recorded", "handed_in"),)
    for row in rows:
        row["scales"] = {}
        for group in groups:
            top = max([1] + [row[c] for c in group if isinstance(row.get(c), int | float)])
            row["scales"].update(dict.fromkeys(group, top))
    return {
        "measure": shortfall_measure(case.origin, case.kind, case.operators),
        "no_return": case.kind == "declared_below_recorded"
        and details.get("declared_rp") is None
        and "recorded_rp" in details,
        "columns": columns,
        "rows": rows,
        "difference_rp": details.get("difference_rp"),
        "period": (_iso_day(period.get("from")), _iso_day(period.get("to"))),
        "refs": refs,
        "figures": figures,
    }


def _iso_day(value) -> date | None:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None
