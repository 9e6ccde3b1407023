"""Taxpayer points (hotel, restaurant, entertainment, other), per point and return period:
device-recorded net sales vs the return's declared sales and tax due vs the tax deposited for the
period on the treasury bank statement."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial

from sqlalchemy import Engine, func, select

from pipeline.core.phrases import phrase
from pipeline.core.times import DEFAULT_TIMEZONE, local_midnight
from pipeline.reconciliation.business_days import (
    business_days_late,
    calendar_months,
    last_allowed_day,
    month_end,
    roll_forward,
    tax_due_date,
)
from pipeline.reconciliation.config import ReconConfig
from pipeline.reconciliation.gaps import Gap, ReconResult
from pipeline.store.schema import bank_deposits, tax_returns, transactions

TAX_TYPES = ("hotel_tax", "restaurant_tax", "entertainment_tax", "other")
_PERIOD_TOKEN = re.compile(
    r"(?<!\d)(20\d\d)[-/.]?(0[1-9]|1[0-2])(?!\d)|(?<!\d)(0[1-9]|1[0-2])[-/.](20\d\d)(?!\d)"
)


def deposit_period(reference: str, booked_on: date) -> date:
    """First day of the tax period a deposit is for: the period its reference names (an SSPD /
    e-billing reference carries the 'masa pajak'), else the month before it was booked."""
    match = _PERIOD_TOKEN.search(reference or "")
    if match:
        year, month = (
            (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
        )
        return date(int(year), int(month), 1)
    return (booked_on.replace(day=1) - timedelta(days=1)).replace(day=1)


def recorded_by_month(engine: Engine, point_rows: dict[str, dict], start: date, end: date) -> dict:
    """(point_id, month start) -> recorded net sales, for the calendar months touching [start, end)."""
    recorded: dict[tuple[str, date], int] = defaultdict(int)
    by_tz: dict[str, list[str]] = defaultdict(list)
    for point_id, row in point_rows.items():
        by_tz[row["timezone"] or DEFAULT_TIMEZONE].append(point_id)
    with engine.connect() as connection:
        for tz, point_ids in by_tz.items():
            for month_start, last_day in calendar_months(start, end):
                lo = local_midnight(month_start, tz)
                hi = local_midnight(last_day + timedelta(days=1), tz)
                query = (
                    select(
                        transactions.c.point_id,
                        transactions.c.status,
                        func.sum(transactions.c.amount),
                    )
                    .where(
                        transactions.c.point_id.in_(point_ids),
                        transactions.c.occurred_at >= lo,
                        transactions.c.occurred_at < hi,
                        transactions.c.status.in_(("paid", "refund")),
                    )
                    .group_by(transactions.c.point_id, transactions.c.status)
                )
                for point_id, status, total in connection.execute(query):
                    sign = 1 if status == "paid" else -1
                    recorded[(point_id, month_start)] += sign * int(total or 0)
    return recorded


def recorded_in(engine: Engine, point_id: str, tz: str, first: date, last: date) -> int:
    """Net sales (paid minus refunded) a point's devices recorded on local days first..last."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(transactions.c.status, func.sum(transactions.c.amount))
            .where(
                transactions.c.point_id == point_id,
                transactions.c.occurred_at >= local_midnight(first, tz),
                transactions.c.occurred_at < local_midnight(last + timedelta(days=1), tz),
                transactions.c.status.in_(("paid", "refund")),
            )
            .group_by(transactions.c.status)
        ).all()
    return sum(int(total or 0) * (1 if status == "paid" else -1) for status, total in rows)


def _point_gap(base, refs, figures, kind, difference, shortfall, reason, **more) -> Gap:
    return Gap(
        **base,
        kind=kind,
        difference_rp=difference,
        shortfall_rp=max(0, shortfall),
        parts=[reason],
        refs={**refs, "figures": {**figures, **more}},
    )


def tax_gaps(
    engine: Engine,
    point_rows: dict[str, dict],
    start: date,
    end: date,
    as_of: date,
    config: ReconConfig,
    result: ReconResult,
) -> list[Gap]:
    """Every taxpayer point's return periods in [start, end), checked as of ``as_of``."""
    tax_points = {p: r for p, r in point_rows.items() if r["revenue_type"] in TAX_TYPES}
    if not tax_points:
        return []
    # Tax periods are months: a window starting mid-month (the first day of data, say) still
    # reconciles the month it starts in.
    start = start.replace(day=1)
    returns, deposits_for = _returns_and_deposits(engine, tax_points, start, end)
    recorded = recorded_by_month(engine, tax_points, start, end)  # months touching the window
    gaps = []
    for (point_id, period_start), period_end in sorted(
        _periods(returns, recorded, tax_points, start, end).items()
    ):
        result.periods_checked += 1
        period = _tax_period(
            engine,
            point_id,
            tax_points[point_id],
            period_start,
            period_end,
            returns.get((point_id, period_start)),
            recorded,
            deposits_for.get((point_id, period_start), []),
            as_of,
            config,
        )
        gaps += _period_gaps(period, config)
    return gaps


def _returns_and_deposits(engine: Engine, tax_points: dict, start: date, end: date):
    """The returns of periods starting in [start, end), keyed (point, period start), and the
    tax deposits of those points keyed by the period they are for."""
    with engine.connect() as connection:
        returns = {
            (r["point_id"], r["period_start"]): dict(r)
            for r in connection.execute(
                select(tax_returns).where(
                    tax_returns.c.period_start >= start, tax_returns.c.period_start < end
                )
            ).mappings()
        }
        # Deposits for a period land after it ends, up to months late: look well past `end`.
        deposits = [
            dict(r)
            for r in connection.execute(
                select(bank_deposits).where(
                    bank_deposits.c.point_id.in_(list(tax_points)),
                    bank_deposits.c.amount > 0,
                    bank_deposits.c.booked_on >= start,
                    bank_deposits.c.booked_on < end + timedelta(days=400),
                )
            ).mappings()
        ]
    deposits_for: dict[tuple[str, date], list[dict]] = defaultdict(list)
    for line in deposits:
        period = deposit_period(line["reference"], line["booked_on"])
        deposits_for[(line["point_id"], period)].append(line)
    return returns, deposits_for


def _periods(returns: dict, recorded: dict, tax_points: dict, start: date, end: date) -> dict:
    """(point, period start) -> period end of every period to check: each return filed, and each
    calendar month in the window in which the point's devices recorded sales."""
    periods: dict[tuple[str, date], date] = {}
    for (point_id, period_start), row in returns.items():
        if point_id in tax_points:
            periods[(point_id, period_start)] = row["period_end"]
    for (point_id, month_start), total in recorded.items():
        if total > 0 and start <= month_start < end:
            periods.setdefault((point_id, month_start), month_end(month_start))
    return periods


@dataclass(frozen=True)
class _TaxPeriod:
    """One point's return period with its three numbers, as the checks read it."""

    name: str  # "2026-03-01..2026-03-31"
    days: tuple[str, str]  # its first and last day, ISO (a reason's ``_days`` value)
    rate: float
    recorded: int
    declared: int | None  # None: no return filed
    tax_due: int | None
    lines: list  # its bank deposits, by booking day
    deposited: int
    due: date  # before rolling to a business day
    overdue: bool  # as of the run, past the last day the money may land
    gap: partial  # (kind, difference, shortfall, reason phrase, **figures) -> Gap


def _tax_period(
    engine, point_id, point, period_start, period_end, ret, recorded, lines, as_of, config
) -> _TaxPeriod:
    tz = point["timezone"] or DEFAULT_TIMEZONE
    if (point_id, period_start) in recorded and period_end == month_end(period_start):
        rec = recorded[(point_id, period_start)]
    else:  # a return for a non-calendar period: count that exact span
        rec = recorded_in(engine, point_id, tz, period_start, period_end)
    rate = config.rate_for(point_id, point["revenue_type"])
    lines = sorted(lines, key=lambda d: d["booked_on"])
    deposited = sum(d["amount"] for d in lines)
    due = tax_due_date(period_end, config)
    declared = ret["declared_sales"] if ret else None
    tax_due = ret["tax_due"] if ret else None
    refs = {
        "tax_returns": [{"point_id": point_id, "period_start": period_start.isoformat()}]
        if ret
        else [],
        "bank_deposits": [d["line_id"] for d in lines],
        "transactions": {
            "point_id": point_id,
            "from": local_midnight(period_start, tz).isoformat(),
            "to": local_midnight(period_end + timedelta(days=1), tz).isoformat(),
            "status": ["paid", "refund"],
        },
    }
    figures = {
        "period": f"{period_start.isoformat()}..{period_end.isoformat()}",
        "tax_rate": rate,
        "tax_on_recorded": round(rec * rate),
        "tax_due_declared": tax_due,
        "due_date": roll_forward(due, config).isoformat(),
    }
    base = dict(
        subject=f"point:{point_id}",
        point_id=point_id,
        start_day=period_start,
        end_day=period_end + timedelta(days=1),
        tz=tz,
        recorded=rec,
        declared=declared,
        deposited=deposited,
    )
    return _TaxPeriod(
        name=figures["period"],
        days=(period_start.isoformat(), period_end.isoformat()),
        rate=rate,
        recorded=rec,
        declared=declared,
        tax_due=tax_due,
        lines=lines,
        deposited=deposited,
        due=due,
        overdue=as_of > last_allowed_day(due, config),
        gap=partial(_point_gap, base, refs, figures),
    )


def _period_gaps(period: _TaxPeriod, config: ReconConfig) -> list[Gap]:
    if period.declared is None:
        return _unfiled_gaps(period, config)
    return (
        _declaration_gaps(period, config)
        + _deposit_gaps(period, config)
        + _late_gaps(period, config)
    )


def _unfiled_gaps(period: _TaxPeriod, config: ReconConfig) -> list[Gap]:
    # Not filing at all is declaring nothing, once the filing deadline has passed.
    rec = period.recorded
    if not (rec > config.tolerance(rec) and period.overdue):
        return []
    return [
        period.gap(
            "declared_below_recorded",
            rec,
            round(rec * period.rate),
            phrase(
                "no return filed for %(period_days)s; devices recorded %(recorded_rp)s",
                period_days=period.days,
                recorded_rp=rec,
            ),
        )
    ]


def _declaration_gaps(period: _TaxPeriod, config: ReconConfig) -> list[Gap]:
    rec, declared, rate = period.recorded, period.declared, period.rate
    if not rec - declared > config.tolerance(rec):
        return []
    return [
        period.gap(
            "declared_below_recorded",
            rec - declared,
            round((rec - declared) * rate),
            phrase(
                "declared %(declared_rp)s vs recorded %(recorded_rp)s: %(undeclared_rp)s"
                " (%(undeclared_pct)s) undeclared; tax %(tax_rp)s",
                declared_rp=declared,
                recorded_rp=rec,
                undeclared_rp=rec - declared,
                undeclared_pct=(rec - declared) / rec,
                tax_rp=round((rec - declared) * rate),
            ),
        )
    ]


def _deposit_gaps(period: _TaxPeriod, config: ReconConfig) -> list[Gap]:
    tax_due, deposited = period.tax_due, period.deposited
    if not tax_due > config.rounding_rp or not period.overdue:
        return []
    if not period.lines:
        return [
            period.gap(
                "no_deposit",
                tax_due,
                tax_due,
                phrase(
                    "tax due %(due_rp)s for %(period_days)s, nothing deposited by %(last_day)s",
                    due_rp=tax_due,
                    period_days=period.days,
                    last_day=last_allowed_day(period.due, config),
                ),
            )
        ]
    fees = config.bank_fee_rp * max(1, len(period.lines))
    if not tax_due - deposited > config.rounding_rp + fees:
        return []
    return [
        period.gap(
            "deposit_below_declared",
            tax_due - deposited,
            tax_due - deposited,
            phrase(
                "tax due %(due_rp)s vs deposited %(deposited_rp)s: %(short_rp)s short",
                due_rp=tax_due,
                deposited_rp=deposited,
                short_rp=tax_due - deposited,
            ),
        )
    ]


def _late_gaps(period: _TaxPeriod, config: ReconConfig) -> list[Gap]:
    late = [
        (d, days)
        for d in period.lines
        if (days := business_days_late(period.due, d["booked_on"], config))
        > config.allowed_days_late
    ]
    if not late:
        return []
    worst = max(days for _, days in late)
    amount = sum(d["amount"] for d, _ in late)
    return [
        period.gap(
            "late_deposit",
            amount,
            0,
            phrase(
                "%(late_rp)s deposited up to %(late_n)s business days after the due date"
                " %(due_day)s (allowed %(allowed_n)s)",
                late_rp=amount,
                late_n=worst,
                due_day=roll_forward(period.due, config),
                allowed_n=config.allowed_days_late,
            ),
            late_lines=[d["line_id"] for d, _ in late],
            business_days_late=worst,
        )
    ]
