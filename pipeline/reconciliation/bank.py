"""Bank credits that match nothing: money on the treasury statement attributed to no known point,
to a collector who handed in no cash, or to a tax period with no return and no recorded sales."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Connection, Engine, select

from pipeline.core.phrases import Phrase, phrase
from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.reconciliation.business_days import month_end
from pipeline.reconciliation.config import ReconConfig
from pipeline.reconciliation.gaps import UNATTRIBUTED, Gap, ReconResult
from pipeline.reconciliation.tax import TAX_TYPES, deposit_period, recorded_in
from pipeline.store.schema import bank_deposits, collector_deposits, tax_returns


def unmatched_gaps(
    engine: Engine,
    point_rows: dict[str, dict],
    start: date,
    end: date,
    config: ReconConfig,
    result: ReconResult,
) -> list[Gap]:
    """Every bank credit booked in [start, end) that matches no point, collector or period."""
    with engine.connect() as connection:
        lines = [
            dict(r)
            for r in connection.execute(
                select(bank_deposits).where(
                    bank_deposits.c.booked_on >= start,
                    bank_deposits.c.booked_on < end,
                    bank_deposits.c.amount > 0,
                )
            ).mappings()
        ]
        if not lines:
            return []
        known = _known_payers(connection, lines, end, config)
    gaps = []
    for line in sorted(lines, key=lambda d: (d["booked_on"], d["line_id"])):
        result.deposits_checked += 1
        point = point_rows.get(line["point_id"]) if line["point_id"] else None
        reason = _unmatched_reason(engine, line, point, known, config)
        if reason is not None:
            gaps.append(_unmatched_gap(line, point, reason))
    return gaps


@dataclass(frozen=True)
class _KnownPayers:
    """Who a credit could be from: collectors' hand-in days, periods with a return."""

    handed_days: dict[str, list[date]]  # collector -> days they handed in cash, near the lines
    collectors: set[str]  # collectors who ever handed in cash
    periods_with_return: set[tuple[str, date]]  # (point, period start)


def _known_payers(connection: Connection, lines: list[dict], end: date, config) -> _KnownPayers:
    first = min(d["booked_on"] for d in lines)
    handed_days: dict[str, list[date]] = defaultdict(list)
    for collector_id, deposited_on in connection.execute(
        select(collector_deposits.c.collector_id, collector_deposits.c.deposited_on).where(
            collector_deposits.c.deposited_on >= first - timedelta(days=config.match_window_days),
            collector_deposits.c.deposited_on < end,
        )
    ):
        handed_days[collector_id].append(deposited_on)
    periods_with_return = {
        (p, s)
        for p, s in connection.execute(
            select(tax_returns.c.point_id, tax_returns.c.period_start).where(
                tax_returns.c.point_id.in_({d["point_id"] for d in lines if d["point_id"]})
            )
        )
    }
    collectors = set(handed_days) | {
        c
        for (c,) in connection.execute(
            select(collector_deposits.c.collector_id)
            .distinct()
            .where(
                collector_deposits.c.collector_id.in_(
                    {d["collector_id"] for d in lines if d["collector_id"]}
                )
            )
        )
    }
    return _KnownPayers(handed_days, collectors, periods_with_return)


def _unmatched_reason(engine, line: dict, point, known: _KnownPayers, config) -> Phrase | None:
    """Why a credit matches nothing, or None when it matches."""
    point_id, collector_id = line["point_id"], line["collector_id"]
    if collector_id:
        window = [line["booked_on"] - timedelta(days=config.match_window_days), line["booked_on"]]
        if collector_id not in known.collectors:
            return phrase(
                "attributed to collector %(collector)s, who has handed in no cash",
                collector=collector_id,
            )
        if not any(window[0] <= d <= window[1] for d in known.handed_days.get(collector_id, [])):
            return phrase(
                "attributed to collector %(collector)s, who handed in no cash in the"
                " %(window_n)s days before %(booked_day)s",
                collector=collector_id,
                window_n=config.match_window_days,
                booked_day=line["booked_on"],
            )
        return None
    if point_id and point is None:
        return phrase(
            "attributed to point %(point)s, which is not in the registry", point=repr(point_id)
        )
    if point is not None and point["revenue_type"] in TAX_TYPES:
        period = deposit_period(line["reference"], line["booked_on"])
        if (point_id, period) in known.periods_with_return:
            return None
        tz = point["timezone"] or DEFAULT_TIMEZONE
        if recorded_in(engine, point_id, tz, period, month_end(period)) <= 0:
            return phrase(
                "for %(point)s period %(period_month)s, which has no return and no recorded sales",
                point=point_id,
                period_month=f"{period:%Y-%m}",
            )
        return None
    if point is None:
        return phrase("attributed to no point and no collector")
    return None


def _unmatched_gap(line: dict, point, reason: Phrase) -> Gap:
    return Gap(
        kind="unmatched_deposit",
        subject=f"line:{line['line_id']}",
        point_id=line["point_id"] if point is not None else UNATTRIBUTED,
        collector_id=line["collector_id"],
        start_day=line["booked_on"],
        end_day=line["booked_on"] + timedelta(days=1),
        tz=(point or {}).get("timezone") or DEFAULT_TIMEZONE,
        recorded=None,
        declared=None,
        deposited=line["amount"],
        difference_rp=line["amount"],
        shortfall_rp=0,
        parts=[
            phrase(
                "%(amount_rp)s credited %(booked_day)s (%(reference)s) %(why_part)s",
                amount_rp=line["amount"],
                booked_day=line["booked_on"],
                reference=line["reference"],
                why_part=reason,
            )
        ],
        refs={"bank_deposits": [line["line_id"]], "figures": {"channel": line["channel"]}},
    )
