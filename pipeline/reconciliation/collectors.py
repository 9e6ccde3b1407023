"""Levy collectors (parking attendants, market collectors: the ``operator_id`` on cash
transactions at parking/market points), per collector and day: cash recorded vs cash handed in,
and a fixed amount handed in day after day while recorded cash varies (a flat "setoran")."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from functools import partial
from statistics import median, pstdev
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from pipeline.core.phrases import phrase
from pipeline.core.times import DEFAULT_TIMEZONE, local_midnight
from pipeline.reconciliation.business_days import business_days_late, last_allowed_day
from pipeline.reconciliation.config import ReconConfig
from pipeline.reconciliation.gaps import UNATTRIBUTED, Gap, ReconResult
from pipeline.store.schema import collector_deposits, transactions

LEVY_TYPES = ("parking", "market")


def _utc_hour_floor_sql(dialect: str):
    """A SQL expression for the transaction's UTC hour, floored in the database: summing by hour first keeps a
    month of levy cash to a few thousand rows. Local days are whole UTC hours in Indonesia's
    zones (UTC+7/+8/+9), so no sale is put on the wrong day."""
    if dialect == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", transactions.c.occurred_at))
    # SQLite keeps UTCDateTime as naive UTC text "YYYY-MM-DD HH:MM:SS[.ffffff]".
    return func.strftime("%Y-%m-%d %H:00:00", transactions.c.occurred_at)


def _collector_cash(engine: Engine, levy_points: dict, first: date, end: date) -> dict:
    """collector -> day -> {"cash": rupiah, "points": {point: rupiah}} from cash transactions."""
    cash: dict[str, dict[date, dict]] = defaultdict(dict)
    by_tz: dict[str, list[str]] = defaultdict(list)
    for point_id, row in levy_points.items():
        by_tz[row["timezone"] or DEFAULT_TIMEZONE].append(point_id)
    with engine.connect() as connection:
        hour = _utc_hour_floor_sql(connection.dialect.name).label("hour")
        for tz, point_ids in by_tz.items():
            zone = ZoneInfo(tz)
            query = (
                select(
                    transactions.c.point_id,
                    transactions.c.operator_id,
                    transactions.c.status,
                    hour,
                    func.sum(transactions.c.amount),
                )
                .where(
                    transactions.c.point_id.in_(point_ids),
                    transactions.c.payment_method == "cash",
                    transactions.c.status.in_(("paid", "refund")),
                    transactions.c.operator_id.is_not(None),
                    transactions.c.occurred_at >= local_midnight(first, tz),
                    transactions.c.occurred_at < local_midnight(end, tz),
                )
                .group_by(
                    transactions.c.point_id, transactions.c.operator_id, transactions.c.status, hour
                )
            )
            for point_id, operator_id, status, at, amount in connection.execute(query):
                at = datetime.fromisoformat(at) if isinstance(at, str) else at
                day = at.replace(tzinfo=UTC).astimezone(zone).date()
                entry = cash[operator_id].setdefault(day, {"cash": 0, "points": defaultdict(int)})
                signed = int(amount) if status == "paid" else -int(amount)
                entry["cash"] += signed
                entry["points"][point_id] += signed
    return cash


def _is_flat(amounts: list[int], recorded: list[int], config: ReconConfig) -> bool:
    if len(amounts) < config.flat_min_days:
        return False
    middle = median(amounts)
    if middle <= 0 or (max(amounts) - min(amounts)) / middle > config.flat_max_spread:
        return False
    mean = sum(recorded) / len(recorded)
    if mean <= 0 or pstdev(recorded) / mean < config.flat_min_recorded_cv:
        return False
    return sum(recorded) - sum(amounts) > config.tolerance(sum(recorded))


def _home_point(days, days_cash, days_handed) -> str:
    """The point a collector took most cash at on these days (or the one their receipts name)."""
    totals: dict[str, int] = defaultdict(int)
    for day in days:
        for point_id, amount in (days_cash.get(day) or {"points": {}})["points"].items():
            totals[point_id] += amount
        stated = (days_handed.get(day) or {}).get("point_id")
        if stated:
            totals[stated] += 0
    return max(totals, key=totals.get) if totals else UNATTRIBUTED


def _collector_gap(
    collector_id,
    days_cash,
    days_handed,
    point_rows,
    kind,
    day_from,
    day_to,
    rec,
    dep,
    diff,
    shortfall,
    reason,
    per_day,
) -> Gap:
    point_id = _home_point(per_day, days_cash, days_handed)
    tz = (point_rows.get(point_id) or {}).get("timezone") or DEFAULT_TIMEZONE
    point_ids = {p for d in per_day for p in (days_cash.get(d) or {"points": {}})["points"]}
    return Gap(
        kind=kind,
        subject=f"collector:{collector_id}",
        collector_id=collector_id,
        point_id=point_id,
        start_day=day_from,
        end_day=day_to,
        tz=tz,
        recorded=rec,
        declared=None,
        deposited=dep,
        difference_rp=diff,
        shortfall_rp=max(0, shortfall),
        parts=[reason],
        refs={
            # collector_deposits rows are keyed by collector and day.
            "collector_deposits": {
                "collector_id": collector_id,
                "days": [d.isoformat() for d in sorted(per_day) if d in days_handed],
            },
            "transactions": {
                "operator_id": collector_id,
                "point_ids": sorted(point_ids),
                "from": local_midnight(day_from, tz).isoformat(),
                "to": local_midnight(day_to, tz).isoformat(),
                "payment_method": "cash",
            },
        },
        days={d.isoformat(): v for d, v in per_day.items()},
    )


def collector_gaps(
    engine: Engine,
    point_rows: dict[str, dict],
    start: date,
    end: date,
    as_of: date,
    config: ReconConfig,
    result: ReconResult,
) -> list[Gap]:
    """Every levy collector's days in [start, end): cash recorded vs handed in, checked as of
    ``as_of``; flat hand-ins are judged over the trailing ``flat_window_days``."""
    levy_points = {p: r for p, r in point_rows.items() if r["revenue_type"] in LEVY_TYPES}
    if not levy_points:
        return []
    lookback = start - timedelta(days=config.flat_window_days - 1)
    cash = _collector_cash(engine, levy_points, lookback, end)
    handed = _handed_in(engine, lookback, end)
    gaps: list[Gap] = []
    for collector_id in sorted(set(cash) | set(handed)):
        days_cash, days_handed = cash.get(collector_id, {}), handed.get(collector_id, {})
        gap = partial(_collector_gap, collector_id, days_cash, days_handed, point_rows)
        flat, flat_days = _flat_gaps(gap, days_cash, days_handed, start, end, config)
        gaps += flat
        day = start
        while day < end:
            gaps += _day_gaps(gap, day, days_cash, days_handed, flat_days, as_of, config, result)
            day += timedelta(days=1)
    return gaps


def _handed_in(engine: Engine, first: date, end: date) -> dict[str, dict[date, dict]]:
    """collector -> day -> their collector_deposits row, for days in [first, end)."""
    handed: dict[str, dict[date, dict]] = defaultdict(dict)
    with engine.connect() as connection:
        for row in connection.execute(
            select(collector_deposits).where(
                collector_deposits.c.day >= first, collector_deposits.c.day < end
            )
        ).mappings():
            handed[row["collector_id"]][row["day"]] = dict(row)
    return handed


def _flat_gaps(gap, days_cash, days_handed, start, end, config) -> tuple[list[Gap], set[date]]:
    """Flat deposits over a trailing window ending on each day, and the days they cover (those
    days are not also reported "short")."""
    gaps, flat_days = [], set()
    day = start
    while day < end:
        window = [day - timedelta(days=i) for i in range(config.flat_window_days - 1, -1, -1)]
        both = [
            d for d in window if d in days_handed and (days_cash.get(d) or {}).get("cash", 0) > 0
        ]
        amounts = [days_handed[d]["cash_amount"] for d in both]
        recorded = [days_cash[d]["cash"] for d in both]
        if _is_flat(amounts, recorded, config):
            per_day = {
                d: {"recorded": days_cash[d]["cash"], "deposited": days_handed[d]["cash_amount"]}
                for d in both
            }
            short = sum(recorded) - sum(amounts)
            gaps.append(
                gap(
                    "flat_deposits",
                    both[0],
                    both[-1] + timedelta(days=1),
                    sum(recorded),
                    sum(amounts),
                    short,
                    short,
                    phrase(
                        "handed in %(daily_rp)s a day on %(days_n)s days while recorded cash"
                        " ranged %(low_rp)s..%(high_rp)s; %(short_rp)s short",
                        daily_rp=int(median(amounts)),
                        days_n=len(both),
                        low_rp=min(recorded),
                        high_rp=max(recorded),
                        short_rp=short,
                    ),
                    per_day,
                )
            )
            flat_days.update(d for d in both if d >= start)
        day += timedelta(days=1)
    return gaps, flat_days


def _day_gaps(gap, day, days_cash, days_handed, flat_days, as_of, config, result) -> list[Gap]:
    """One collector day: nothing handed in, less handed in than recorded, or handed in late."""
    recorded = (days_cash.get(day) or {}).get("cash", 0)
    deposit = days_handed.get(day)
    result.collector_days_checked += recorded > 0 or deposit is not None
    due = day + timedelta(days=config.collector_due_days)
    # One per-day dict for every gap of the day: the late check adds its dates to it, so a short
    # day's case shows them too.
    per_day = {day: {"recorded": recorded, "deposited": deposit["cash_amount"] if deposit else 0}}
    next_day = day + timedelta(days=1)
    if deposit is None:
        if recorded > config.tolerance(recorded) and as_of > last_allowed_day(due, config):
            return [
                gap(
                    "no_deposit",
                    day,
                    next_day,
                    recorded,
                    0,
                    recorded,
                    recorded,
                    phrase(
                        "%(on_day)s: %(recorded_rp)s cash recorded, nothing handed in",
                        on_day=day,
                        recorded_rp=recorded,
                    ),
                    per_day,
                )
            ]
        return []
    gaps = []
    amount = deposit["cash_amount"]
    if day not in flat_days and recorded - amount > config.tolerance(recorded):
        gaps.append(
            gap(
                "deposit_below_recorded",
                day,
                next_day,
                recorded,
                amount,
                recorded - amount,
                recorded - amount,
                phrase(
                    "%(on_day)s: %(recorded_rp)s cash recorded, %(handed_rp)s handed in",
                    on_day=day,
                    recorded_rp=recorded,
                    handed_rp=amount,
                ),
                per_day,
            )
        )
    late = business_days_late(due, deposit["deposited_on"], config)
    if late > config.allowed_days_late:
        per_day[day]["deposited_on"] = deposit["deposited_on"].isoformat()
        per_day[day]["business_days_late"] = late
        gaps.append(
            gap(
                "late_deposit",
                day,
                next_day,
                recorded,
                amount,
                amount,
                0,
                phrase(
                    "%(on_day)s: handed in on %(handed_day)s, %(late_n)s business days late"
                    " (allowed %(allowed_n)s)",
                    on_day=day,
                    handed_day=deposit["deposited_on"],
                    late_n=late,
                    allowed_n=config.allowed_days_late,
                ),
                per_day,
            )
        )
    return gaps
