"""Reconciliation: sales recorded vs tax declared vs money deposited; every gap becomes a case.

Two matches are made:

* **Taxpayer points** (hotel, restaurant, entertainment, other), per point and return period
  (normally a calendar month): device-recorded sales (paid minus refunded, from ``transactions``)
  vs the self-assessed return's declared sales and tax due vs the tax deposited on the treasury
  bank statement for that period.
* **Levy collectors** (parking attendants, market collectors: the ``operator_id`` on cash
  transactions at parking/market points), per collector and day: cash recorded vs cash handed in.

Gaps are raised as ``cases`` with origin ``reconciliation`` (the review queue): the three numbers
side by side, the difference in rupiah and references to the underlying rows are in ``details``.
Raising is idempotent: a rerun updates the open case it raised before; a case an auditor decided
(status other than ``open``) is never changed or erased. Consecutive gap days of one collector
form one case, like consecutive flagged hours do in the detector.

Nothing here calls ``now()`` to decide what is due: the caller passes ``as_of`` (a DAG's interval
end, the CLI's today), so a rerun of a past window gives the same answer.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, partial
from pathlib import Path
from statistics import median, pstdev
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, delete, func, insert, select, update

from pipeline.core.errors import UnusableInputError
from pipeline.reference.points import known_points
from pipeline.store.schema import (
    bank_deposits,
    case_events,
    cases,
    collector_deposits,
    suppressions,
    tax_returns,
    transactions,
)

ORIGIN = "reconciliation"
TAX_TYPES = ("hotel_tax", "restaurant_tax", "entertainment_tax", "other")
LEVY_TYPES = ("parking", "market")
DEFAULT_TZ = "Asia/Jakarta"
UNATTRIBUTED = "UNATTRIBUTED"  # cases.point_id of a deposit attributed to no known point

KINDS = {
    "declared_below_recorded": "the return declares less than the devices recorded",
    "deposit_below_declared": "less tax deposited than the return declares due",
    "deposit_below_recorded": "a collector handed in less cash than their transactions recorded",
    "flat_deposits": "a fixed amount handed in day after day while recorded cash varies (setoran)",
    "late_deposit": "money deposited later than the allowed business days after it was due",
    "unmatched_deposit": "a bank credit that matches no point, collector or period",
    "no_deposit": "a point or collector that deposited nothing for a period it owed",
}
# Collector day gaps merge with an adjacent or overlapping open case of the same collector and kind.
_MERGING = {
    "deposit_below_recorded",
    "flat_deposits",
    "late_deposit:collector",
    "no_deposit:collector",
}
_PERIOD_TOKEN = re.compile(
    r"(?<!\d)(20\d\d)[-/.]?(0[1-9]|1[0-2])(?!\d)|(?<!\d)(0[1-9]|1[0-2])[-/.](20\d\d)(?!\d)"
)


# --- Configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconConfig:
    """Tolerances and rules; every field has a default and a line of help in ``RECON_OPTIONS``."""

    tax_rates: dict = field(
        default_factory=lambda: {
            "hotel_tax": 0.10,
            "restaurant_tax": 0.10,
            "entertainment_tax": 0.10,
            "other": 0.10,
        }
    )
    point_tax_rates: dict = field(default_factory=dict)
    rounding_rp: int = 1_000
    relative_tolerance: float = 0.005
    bank_fee_rp: int = 7_500
    tax_due_day: int = 10
    collector_due_days: int = 1
    allowed_days_late: int = 1
    public_holidays: bool = True
    closed_days: tuple = ()  # "YYYY-MM-DD" strings
    flat_window_days: int = 14
    flat_min_days: int = 7
    flat_max_spread: float = 0.02
    flat_min_recorded_cv: float = 0.10
    match_window_days: int = 3

    def rate_for(self, point_id: str, revenue_type: str) -> float:
        if point_id in self.point_tax_rates:
            return float(self.point_tax_rates[point_id])
        return float(self.tax_rates.get(revenue_type, self.tax_rates.get("other", 0.10)))

    def tolerance(self, base: int) -> int:
        """How far two amounts may differ and still agree: rounding, or a share of the base."""
        return max(self.rounding_rp, int(self.relative_tolerance * abs(base)))

    @classmethod
    def from_file(cls, path: Path | str | None) -> ReconConfig:
        """Defaults, overridden by a JSON or YAML file of ``name: value`` (empty path: defaults)."""
        if not path:
            return cls()
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UnusableInputError(
                f"reconciliation config {path}: cannot open ({exc.strerror})"
            ) from None
        import yaml

        try:
            values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text) or {}
        except (ValueError, yaml.YAMLError) as exc:
            raise UnusableInputError(f"reconciliation config {path}: not valid ({exc})") from None
        if not isinstance(values, dict):
            raise UnusableInputError(
                f"reconciliation config {path}: expected name: value pairs, got {type(values).__name__}"
            )
        return cls.from_mapping(values, where=str(path))

    @classmethod
    def from_mapping(cls, values: dict, *, where: str = "reconciliation config") -> ReconConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UnusableInputError(
                f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        checked = {}
        for name, value in values.items():
            default = getattr(cls(), name)
            try:
                if isinstance(default, tuple):
                    checked[name] = tuple(
                        parse_iso_day(str(v), f"{where}: {name}").isoformat() for v in value
                    )
                elif isinstance(default, dict):
                    # A file naming one revenue type's rate keeps the defaults for the others.
                    checked[name] = {
                        **default,
                        **{str(k): float(v) for k, v in dict(value).items()},
                    }
                elif isinstance(default, bool):
                    checked[name] = (
                        value
                        if isinstance(value, bool)
                        else str(value).lower() in ("1", "true", "yes")
                    )
                else:
                    checked[name] = type(default)(value)
            except (TypeError, ValueError):
                raise UnusableInputError(
                    f"{where}: {name}={value!r} is not a {type(default).__name__}"
                ) from None
        return cls(**checked)


def parse_iso_day(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UnusableInputError(f"{where}: {text!r} is not a date written YYYY-MM-DD") from None


RECON_OPTIONS: tuple[tuple[str, str], ...] = (
    (
        "tax_rates",
        "Tax rate per revenue type (10% restaurant/hotel; entertainment 10-35% by perda).",
    ),
    ("point_tax_rates", "Per-point rate overrides, e.g. a discotheque at 0.35."),
    ("rounding_rp", "Amounts this close (rupiah) agree: rounding to the nearest thousand."),
    ("relative_tolerance", "...or this share of the larger figure (POS timing, cancelled orders)."),
    ("bank_fee_rp", "Transfer fee a bank may take off each deposit without it counting as short."),
    ("tax_due_day", "Tax for a period is due by this day of the following month."),
    ("collector_due_days", "Collector cash is due this many days after the collection day."),
    (
        "allowed_days_late",
        "Business days a deposit may land after its due date (weekends roll over).",
    ),
    ("public_holidays", "Treat Indonesian public holidays as non-business days (banks closed)."),
    (
        "closed_days",
        "More days banks are closed, e.g. cuti bersama around Lebaran (YYYY-MM-DD list).",
    ),
    ("flat_window_days", "Trailing days examined for flat (fixed 'setoran') deposits."),
    ("flat_min_days", "Deposit days needed in the window before calling deposits flat."),
    ("flat_max_spread", "Deposits within this share of their median count as one fixed amount."),
    (
        "flat_min_recorded_cv",
        "...while recorded cash varies at least this much (coefficient of variation).",
    ),
    (
        "match_window_days",
        "Days a collector's bank credit may lag their cash hand-in and still match.",
    ),
)


# --- Calendar ------------------------------------------------------------------------------------


@cache
def _holidays(years: tuple[int, ...]) -> frozenset[date]:
    import holidays

    return frozenset(holidays.country_holidays("ID", years=list(years)))


def is_business_day(day: date, config: ReconConfig) -> bool:
    if day.weekday() >= 5 or day.isoformat() in config.closed_days:
        return False
    return not (config.public_holidays and day in _holidays((day.year - 1, day.year, day.year + 1)))


def roll_forward(day: date, config: ReconConfig) -> date:
    """A due date on a weekend or holiday moves to the next business day, as banks do."""
    while not is_business_day(day, config):
        day += timedelta(days=1)
    return day


def business_days_late(due: date, landed: date, config: ReconConfig) -> int:
    """Business days after the (rolled) due date on which the money landed; 0 if on time."""
    due = roll_forward(due, config)
    late, day = 0, due
    while day < landed:
        day += timedelta(days=1)
        if is_business_day(day, config):
            late += 1
    return late


def last_allowed_day(due: date, config: ReconConfig) -> date:
    """The last day money due on ``due`` may land without being late."""
    day, allowed = roll_forward(due, config), config.allowed_days_late
    while allowed:
        day += timedelta(days=1)
        if is_business_day(day, config):
            allowed -= 1
    return day


def tax_due_date(period_end: date, config: ReconConfig) -> date:
    following = (period_end.replace(day=1) + timedelta(days=32)).replace(day=1)
    return following.replace(day=min(config.tax_due_day, 28))


def month_bounds(period: str) -> tuple[date, date]:
    """``2026-03`` -> (2026-03-01, 2026-04-01)."""
    try:
        start = datetime.strptime(period, "%Y-%m").date()
    except ValueError:
        raise UnusableInputError(f"period {period!r} is not a month written YYYY-MM") from None
    return start, (start + timedelta(days=32)).replace(day=1)


def _months(start: date, end: date) -> list[tuple[date, date]]:
    months, current = [], start.replace(day=1)
    while current < end:
        following = (current + timedelta(days=32)).replace(day=1)
        months.append((current, following - timedelta(days=1)))
        current = following
    return months


def _utc(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC)


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


# --- Gaps ----------------------------------------------------------------------------------------


@dataclass
class Gap:
    """One reconciliation gap, before it becomes (or updates) a case."""

    kind: str
    subject: str  # "point:P01", "collector:C07", "line:<bank line id>"
    point_id: str
    start_day: date  # local calendar day
    end_day: date  # exclusive
    tz: str
    recorded: int | None
    declared: int | None
    deposited: int | None
    difference_rp: int
    shortfall_rp: int
    reasons: str
    refs: dict
    collector_id: str | None = None
    days: dict = field(
        default_factory=dict
    )  # per-day figures for collector gaps, "YYYY-MM-DD" -> {...}

    @property
    def merges(self) -> bool:
        scope = "collector" if self.collector_id else "point"
        return self.kind in _MERGING or f"{self.kind}:{scope}" in _MERGING


@dataclass
class ReconResult:
    start: date
    end: date
    as_of: date
    gaps: list[Gap] = field(default_factory=list)
    periods_checked: int = 0
    collector_days_checked: int = 0
    deposits_checked: int = 0
    cases_created: int = 0
    cases_updated: int = 0
    cases_kept: int = 0  # decided by an auditor: left exactly as they are
    cases_cleared: int = 0  # open, untouched, and no longer a gap on rerun: removed

    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for gap in self.gaps:
            counts[gap.kind] += 1
        return dict(counts)


def _rp(value: int | None) -> str:
    return "-" if value is None else f"Rp {value:,.0f}".replace(",", ".")


def _points(engine: Engine) -> dict[str, dict]:
    return known_points(engine)


def _recorded_by_point(engine: Engine, point_rows: dict[str, dict], start: date, end: date) -> dict:
    """(point_id, period_start) -> recorded net sales, for calendar months in [start, end)."""
    recorded: dict[tuple[str, date], int] = defaultdict(int)
    by_tz: dict[str, list[str]] = defaultdict(list)
    for point_id, row in point_rows.items():
        by_tz[row["timezone"] or DEFAULT_TZ].append(point_id)
    with engine.connect() as connection:
        for tz, point_ids in by_tz.items():
            for month_start, month_end in _months(start, end):
                lo, hi = _utc(month_start, tz), _utc(month_end + timedelta(days=1), tz)
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


def _recorded_in(engine: Engine, point_id: str, tz: str, first: date, last: date) -> int:
    with engine.connect() as connection:
        rows = connection.execute(
            select(transactions.c.status, func.sum(transactions.c.amount))
            .where(
                transactions.c.point_id == point_id,
                transactions.c.occurred_at >= _utc(first, tz),
                transactions.c.occurred_at < _utc(last + timedelta(days=1), tz),
                transactions.c.status.in_(("paid", "refund")),
            )
            .group_by(transactions.c.status)
        ).all()
    return sum(int(total or 0) * (1 if status == "paid" else -1) for status, total in rows)


def _severity(shortfall: int) -> str:
    return "high" if shortfall >= 5_000_000 else "medium" if shortfall >= 500_000 else "low"


def _share(part: int, whole: int | None) -> float:
    return round(min(1.0, abs(part) / whole), 4) if whole else 1.0


def _point_gap(base, refs, figures, kind, difference, shortfall, reasons, **more) -> Gap:
    return Gap(
        **base,
        kind=kind,
        difference_rp=difference,
        shortfall_rp=max(0, shortfall),
        reasons=reasons,
        refs={**refs, "figures": {**figures, **more}},
    )


# --- Taxpayer points -----------------------------------------------------------------------------


def _tax_gaps(engine, point_rows, start, end, as_of, config, result) -> list[Gap]:
    tax_points = {p: r for p, r in point_rows.items() if r["revenue_type"] in TAX_TYPES}
    if not tax_points:
        return []
    # Tax periods are months: a window starting mid-month (the first day of data, say) still
    # reconciles the month it starts in.
    start = start.replace(day=1)
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
    recorded = _recorded_by_point(
        engine, tax_points, start, end
    )  # calendar months touching the window
    deposits_for: dict[tuple[str, date], list[dict]] = defaultdict(list)
    for line in deposits:
        deposits_for[
            (line["point_id"], deposit_period(line["reference"], line["booked_on"]))
        ].append(line)

    periods: dict[tuple[str, date], date] = {}  # (point, period_start) -> period_end
    for (point_id, period_start), row in returns.items():
        if point_id in tax_points:
            periods[(point_id, period_start)] = row["period_end"]
    for (point_id, month_start), total in recorded.items():
        if total > 0 and start <= month_start < end:
            periods.setdefault(
                (point_id, month_start), _months(month_start, month_start + timedelta(days=1))[0][1]
            )

    gaps = []
    for (point_id, period_start), period_end in sorted(periods.items()):
        point = tax_points[point_id]
        tz = point["timezone"] or DEFAULT_TZ
        result.periods_checked += 1
        ret = returns.get((point_id, period_start))
        if (point_id, period_start) in recorded and period_end == _months(
            period_start, period_start + timedelta(days=1)
        )[0][1]:
            rec = recorded[(point_id, period_start)]
        else:  # a return for a non-calendar period: count that exact span
            rec = _recorded_in(engine, point_id, tz, period_start, period_end)
        rate = config.rate_for(point_id, point["revenue_type"])
        lines = sorted(deposits_for.get((point_id, period_start), []), key=lambda d: d["booked_on"])
        deposited = sum(d["amount"] for d in lines)
        due = tax_due_date(period_end, config)
        overdue = as_of > last_allowed_day(due, config)
        declared = ret["declared_sales"] if ret else None
        tax_due = ret["tax_due"] if ret else None
        refs = {
            "tax_returns": [{"point_id": point_id, "period_start": period_start.isoformat()}]
            if ret
            else [],
            "bank_deposits": [d["line_id"] for d in lines],
            "transactions": {
                "point_id": point_id,
                "from": _utc(period_start, tz).isoformat(),
                "to": _utc(period_end + timedelta(days=1), tz).isoformat(),
                "status": ["paid", "refund"],
            },
        }
        extra = {
            "period": f"{period_start.isoformat()}..{period_end.isoformat()}",
            "tax_rate": rate,
            "tax_on_recorded": round(rec * rate),
            "tax_due_declared": tax_due,
            "due_date": roll_forward(due, config).isoformat(),
        }

        gap = partial(
            _point_gap,
            dict(
                subject=f"point:{point_id}",
                point_id=point_id,
                start_day=period_start,
                end_day=period_end + timedelta(days=1),
                tz=tz,
                recorded=rec,
                declared=declared,
                deposited=deposited,
            ),
            refs,
            extra,
        )

        if ret is None:
            # Not filing at all is declaring nothing, once the filing deadline has passed.
            if rec > config.tolerance(rec) and overdue:
                gaps.append(
                    gap(
                        "declared_below_recorded",
                        rec,
                        round(rec * rate),
                        f"no return filed for {extra['period']}; devices recorded {_rp(rec)}",
                    )
                )
            continue
        if rec - declared > config.tolerance(rec):
            gaps.append(
                gap(
                    "declared_below_recorded",
                    rec - declared,
                    round((rec - declared) * rate),
                    f"declared {_rp(declared)} vs recorded {_rp(rec)}: {_rp(rec - declared)} "
                    f"({(rec - declared) / rec:.0%}) undeclared; "
                    f"tax {_rp(round((rec - declared) * rate))}",
                )
            )
        if tax_due > config.rounding_rp:
            fees = config.bank_fee_rp * max(1, len(lines))
            if not lines:
                if overdue:
                    gaps.append(
                        gap(
                            "no_deposit",
                            tax_due,
                            tax_due,
                            f"tax due {_rp(tax_due)} for {extra['period']}, nothing deposited "
                            f"by {last_allowed_day(due, config).isoformat()}",
                        )
                    )
            elif tax_due - deposited > config.rounding_rp + fees and overdue:
                gaps.append(
                    gap(
                        "deposit_below_declared",
                        tax_due - deposited,
                        tax_due - deposited,
                        f"tax due {_rp(tax_due)} vs deposited {_rp(deposited)}: "
                        f"{_rp(tax_due - deposited)} short",
                    )
                )
        late = [
            (d, business_days_late(due, d["booked_on"], config))
            for d in lines
            if business_days_late(due, d["booked_on"], config) > config.allowed_days_late
        ]
        if late:
            worst = max(days for _, days in late)
            amount = sum(d["amount"] for d, _ in late)
            gaps.append(
                gap(
                    "late_deposit",
                    amount,
                    0,
                    f"{_rp(amount)} deposited up to {worst} business days after the due date "
                    f"{roll_forward(due, config).isoformat()} (allowed {config.allowed_days_late})",
                    late_lines=[d["line_id"] for d, _ in late],
                    business_days_late=worst,
                )
            )
    return gaps


# --- Levy collectors -----------------------------------------------------------------------------


def _utc_hour(dialect: str):
    """The transaction's UTC hour, computed in the database: summing by hour first keeps a
    month of levy cash to a few thousand rows. Local days are whole UTC hours in Indonesia's
    zones (UTC+7/+8/+9), so no sale is put on the wrong day."""
    if dialect == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", transactions.c.occurred_at))
    # SQLite keeps UTCDateTime as naive UTC text "YYYY-MM-DD HH:MM:SS[.ffffff]".
    return func.strftime("%Y-%m-%d %H:00:00", transactions.c.occurred_at)


def _collector_cash(engine, levy_points, first: date, end: date) -> dict:
    """collector -> day -> {"cash": rupiah, "points": {point: rupiah}} from cash transactions."""
    cash: dict[str, dict[date, dict]] = defaultdict(dict)
    by_tz: dict[str, list[str]] = defaultdict(list)
    for point_id, row in levy_points.items():
        by_tz[row["timezone"] or DEFAULT_TZ].append(point_id)
    with engine.connect() as connection:
        hour = _utc_hour(connection.dialect.name).label("hour")
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
                    transactions.c.occurred_at >= _utc(first, tz),
                    transactions.c.occurred_at < _utc(end, tz),
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
    reasons,
    per_day,
) -> Gap:
    point_id = _home_point(per_day, days_cash, days_handed)
    tz = (point_rows.get(point_id) or {}).get("timezone") or DEFAULT_TZ
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
        reasons=reasons,
        refs={
            # collector_deposits rows are keyed by collector and day.
            "collector_deposits": {
                "collector_id": collector_id,
                "days": [d.isoformat() for d in sorted(per_day) if d in days_handed],
            },
            "transactions": {
                "operator_id": collector_id,
                "point_ids": sorted(point_ids),
                "from": _utc(day_from, tz).isoformat(),
                "to": _utc(day_to, tz).isoformat(),
                "payment_method": "cash",
            },
        },
        days={d.isoformat(): v for d, v in per_day.items()},
    )


def _collector_gaps(engine, point_rows, start, end, as_of, config, result) -> list[Gap]:
    levy_points = {p: r for p, r in point_rows.items() if r["revenue_type"] in LEVY_TYPES}
    if not levy_points:
        return []
    lookback = start - timedelta(days=config.flat_window_days - 1)
    cash = _collector_cash(engine, levy_points, lookback, end)
    with engine.connect() as connection:
        handed = defaultdict(dict)
        for row in connection.execute(
            select(collector_deposits).where(
                collector_deposits.c.day >= lookback, collector_deposits.c.day < end
            )
        ).mappings():
            handed[row["collector_id"]][row["day"]] = dict(row)

    gaps: list[Gap] = []
    for collector_id in sorted(set(cash) | set(handed)):
        days_cash, days_handed = cash.get(collector_id, {}), handed.get(collector_id, {})

        gap = partial(_collector_gap, collector_id, days_cash, days_handed, point_rows)

        # Flat deposits over a trailing window ending on each day; those days are not also "short".
        flat_days: set[date] = set()
        day = start
        while day < end:
            window = [day - timedelta(days=i) for i in range(config.flat_window_days - 1, -1, -1)]
            both = [
                d
                for d in window
                if d in days_handed and (days_cash.get(d) or {}).get("cash", 0) > 0
            ]
            amounts = [days_handed[d]["cash_amount"] for d in both]
            recorded = [days_cash[d]["cash"] for d in both]
            if _is_flat(amounts, recorded, config):
                per_day = {
                    d: {
                        "recorded": days_cash[d]["cash"],
                        "deposited": days_handed[d]["cash_amount"],
                    }
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
                        f"handed in {_rp(int(median(amounts)))} a day on {len(both)} days "
                        f"while recorded cash ranged {_rp(min(recorded))}..{_rp(max(recorded))}; "
                        f"{_rp(short)} short",
                        per_day,
                    )
                )
                flat_days.update(d for d in both if d >= start)
            day += timedelta(days=1)

        day = start
        while day < end:
            recorded = (days_cash.get(day) or {}).get("cash", 0)
            deposit = days_handed.get(day)
            result.collector_days_checked += recorded > 0 or deposit is not None
            due = day + timedelta(days=config.collector_due_days)
            per_day = {
                day: {"recorded": recorded, "deposited": deposit["cash_amount"] if deposit else 0}
            }
            if deposit is None:
                if recorded > config.tolerance(recorded) and as_of > last_allowed_day(due, config):
                    gaps.append(
                        gap(
                            "no_deposit",
                            day,
                            day + timedelta(days=1),
                            recorded,
                            0,
                            recorded,
                            recorded,
                            f"{day.isoformat()}: {_rp(recorded)} cash recorded, nothing handed in",
                            per_day,
                        )
                    )
            else:
                amount = deposit["cash_amount"]
                if day not in flat_days and recorded - amount > config.tolerance(recorded):
                    gaps.append(
                        gap(
                            "deposit_below_recorded",
                            day,
                            day + timedelta(days=1),
                            recorded,
                            amount,
                            recorded - amount,
                            recorded - amount,
                            f"{day.isoformat()}: {_rp(recorded)} cash recorded, "
                            f"{_rp(amount)} handed in",
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
                            day + timedelta(days=1),
                            recorded,
                            amount,
                            amount,
                            0,
                            f"{day.isoformat()}: handed in on "
                            f"{deposit['deposited_on'].isoformat()}, "
                            f"{late} business days late (allowed {config.allowed_days_late})",
                            per_day,
                        )
                    )
            day += timedelta(days=1)
    return gaps


# --- Bank credits that match nothing -------------------------------------------------------------


def _unmatched_gaps(engine, point_rows, start, end, config, result) -> list[Gap]:
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
        first = min(d["booked_on"] for d in lines)
        handed_days: dict[str, list[date]] = defaultdict(list)
        for collector_id, deposited_on in connection.execute(
            select(collector_deposits.c.collector_id, collector_deposits.c.deposited_on).where(
                collector_deposits.c.deposited_on
                >= first - timedelta(days=config.match_window_days),
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
        known_collectors = set(handed_days) | {
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

    gaps = []
    for line in sorted(lines, key=lambda d: (d["booked_on"], d["line_id"])):
        result.deposits_checked += 1
        point_id, collector_id = line["point_id"], line["collector_id"]
        point = point_rows.get(point_id) if point_id else None
        reason = None
        if collector_id:
            window = [
                line["booked_on"] - timedelta(days=config.match_window_days),
                line["booked_on"],
            ]
            if collector_id not in known_collectors:
                reason = f"attributed to collector {collector_id}, who has handed in no cash"
            elif not any(window[0] <= d <= window[1] for d in handed_days.get(collector_id, [])):
                reason = (
                    f"attributed to collector {collector_id}, who handed in no cash in the "
                    f"{config.match_window_days} days before {line['booked_on'].isoformat()}"
                )
        elif point_id and point is None:
            reason = f"attributed to point {point_id!r}, which is not in the registry"
        elif point is not None and point["revenue_type"] in TAX_TYPES:
            period = deposit_period(line["reference"], line["booked_on"])
            if (point_id, period) not in periods_with_return:
                tz = point["timezone"] or DEFAULT_TZ
                period_end = _months(period, period + timedelta(days=1))[0][1]
                if _recorded_in(engine, point_id, tz, period, period_end) <= 0:
                    reason = (
                        f"for {point_id} period {period:%Y-%m}, "
                        "which has no return and no recorded sales"
                    )
        elif point is None:
            reason = "attributed to no point and no collector"
        if reason is None:
            continue
        tz = (point or {}).get("timezone") or DEFAULT_TZ
        gaps.append(
            Gap(
                kind="unmatched_deposit",
                subject=f"line:{line['line_id']}",
                point_id=point_id if point is not None else UNATTRIBUTED,
                collector_id=collector_id,
                start_day=line["booked_on"],
                end_day=line["booked_on"] + timedelta(days=1),
                tz=tz,
                recorded=None,
                declared=None,
                deposited=line["amount"],
                difference_rp=line["amount"],
                shortfall_rp=0,
                reasons=f"{_rp(line['amount'])} credited {line['booked_on'].isoformat()} "
                f"({line['reference']}) {reason}",
                refs={"bank_deposits": [line["line_id"]], "figures": {"channel": line["channel"]}},
            )
        )
    return gaps


# --- Gaps -> cases -------------------------------------------------------------------------------


def _suppressed(connection, gap: Gap) -> bool:
    lo, hi = _utc(gap.start_day, gap.tz), _utc(gap.end_day, gap.tz)
    row = connection.execute(
        select(suppressions.c.suppression_id).where(
            suppressions.c.point_id == gap.point_id,
            suppressions.c.starts_at <= lo,
            suppressions.c.ends_at >= hi,
            (suppressions.c.kind.is_(None)) | (suppressions.c.kind == gap.kind),
        )
    ).first()
    return row is not None


def _case_row(gap: Gap, now: datetime) -> dict:
    base = (
        gap.recorded
        if gap.kind in ("declared_below_recorded", "deposit_below_recorded", "flat_deposits")
        else None
    )
    if gap.kind in ("deposit_below_declared", "no_deposit") and gap.declared is not None:
        base = (gap.refs.get("figures") or {}).get("tax_due_declared")
    # Key order is display order (the case page lists details as they come): the three
    # numbers side by side and the difference first, references last.
    details = {
        "recorded_rp": gap.recorded,
        "declared_rp": gap.declared,
        "deposited_rp": gap.deposited,
        "difference_rp": gap.difference_rp,
        "period": {
            "from": gap.start_day.isoformat(),
            "to": (gap.end_day - timedelta(days=1)).isoformat(),
        },
        "subject": gap.subject,
        "collector_id": gap.collector_id,
        "refs": gap.refs,
    }
    if gap.days:
        details["days"] = gap.days
    return {
        "origin": ORIGIN,
        "point_id": gap.point_id,
        "start_at": _utc(gap.start_day, gap.tz),
        "end_at": _utc(gap.end_day, gap.tz),
        "kind": gap.kind,
        "score": _share(gap.difference_rp, base or gap.difference_rp),
        "severity": _severity(gap.shortfall_rp) if gap.shortfall_rp else "low",
        "reasons": gap.reasons,
        "shortfall_rp": gap.shortfall_rp,
        "operators": gap.collector_id,
        "model_version": None,
        "details": json.dumps(details, ensure_ascii=False),
        "updated_at": now,
    }


def _combine(gap: Gap, days: dict, start_day: date, end_day: date, deposit_refs: list) -> Gap:
    # deposit_refs: the other side's collector_deposits days (YYYY-MM-DD), united with gap's.
    """A collector gap over the union of days: sums, difference and reasons redone from the days."""
    merged = replace(gap, start_day=start_day, end_day=end_day, days=days)
    recorded = sum(v.get("recorded", 0) for v in days.values())
    deposited = sum(v.get("deposited", 0) for v in days.values())
    span = f"{len(days)} day(s) {min(days)}..{max(days)}"
    if gap.kind == "late_deposit":
        merged.difference_rp, merged.shortfall_rp = deposited, 0
        worst = max(v.get("business_days_late", 0) for v in days.values())
        merged.reasons = (
            f"{span}: cash handed in late, up to {worst} business days ({_rp(deposited)} in all)"
        )
    else:
        merged.difference_rp = merged.shortfall_rp = max(0, recorded - deposited)
        merged.reasons = (
            f"{span}: {_rp(recorded)} cash recorded, {_rp(deposited)} handed in, "
            f"{_rp(recorded - deposited)} short"
        )
        if gap.kind == "flat_deposits":
            handed = [v["deposited"] for v in days.values()]
            taken = [v["recorded"] for v in days.values()]
            merged.reasons += (
                f"; a fixed ~{_rp(int(median(handed)))} a day while recorded cash ranged "
                f"{_rp(min(taken))}..{_rp(max(taken))}"
            )
    merged.recorded, merged.deposited = recorded, deposited
    own = gap.refs.get("collector_deposits") or {}
    merged.refs = {
        **gap.refs,
        "collector_deposits": {
            "collector_id": own.get("collector_id", gap.collector_id),
            "days": sorted(set(own.get("days", [])) | set(deposit_refs)),
        },
        "transactions": {
            **gap.refs["transactions"],
            "from": _utc(start_day, gap.tz).isoformat(),
            "to": _utc(end_day, gap.tz).isoformat(),
        },
    }
    return merged


def _merge(existing: dict | None, gap: Gap, row: dict) -> dict:
    """An open collector case grown by an adjacent or overlapping gap: days united, sums redone.

    A new collector case goes through here too (``existing`` None), so a rerun that merges a day
    into the case it already holds produces exactly the same row.
    """
    old = json.loads(existing["details"] or "{}") if existing else {}
    start_day, end_day = gap.start_day, gap.end_day
    if old:
        start_day = min(start_day, old_day(old["period"]["from"]))
        end_day = max(end_day, old_day(old["period"]["to"]) + timedelta(days=1))
    merged = _combine(
        gap,
        {**old.get("days", {}), **gap.days},
        start_day,
        end_day,
        (old.get("refs", {}).get("collector_deposits") or {}).get("days", []),
    )
    return _case_row(merged, row["updated_at"])


def merge_runs(gaps: list[Gap]) -> list[Gap]:
    """Overlapping or adjacent collector gaps of one kind and collector become one gap."""
    out, runs = [], defaultdict(list)
    for gap in gaps:
        (runs[(gap.kind, gap.subject)] if gap.merges else out).append(gap)
    for run in runs.values():
        run.sort(key=lambda g: g.start_day)
        current = run[0]
        for gap in run[1:]:
            if gap.start_day <= current.end_day:
                current = _combine(
                    gap,
                    {**current.days, **gap.days},
                    current.start_day,
                    max(current.end_day, gap.end_day),
                    (current.refs.get("collector_deposits") or {}).get("days", []),
                )
            else:
                out.append(current)
                current = gap
        out.append(current)
    return out


def old_day(text: str) -> date:
    return date.fromisoformat(text)


_SCOPE_SUBJECT = {"tax": "point:", "collector": "collector:", "bank": "line:"}


def raise_cases(
    engine: Engine,
    gaps: list[Gap],
    *,
    now: datetime | None = None,
    clear_within: tuple[date, date] | None = None,
    clear_scopes: tuple[str, ...] = (),
    result: ReconResult | None = None,
) -> ReconResult:
    """Upsert one case per gap (merging collector runs); decided cases are never touched.

    With ``clear_within``, open reconciliation cases of ``clear_scopes`` lying wholly inside that
    window that this run did not produce, and that nobody has acted on (no case events), are
    removed: the money turned up (a late file was ingested) and the gap is gone.
    """
    now = now or datetime.now(UTC)
    result = result or ReconResult(date.min, date.min, date.min)
    touched: set[int] = set()
    with engine.begin() as connection:
        for gap in sorted(gaps, key=lambda g: (g.subject, g.kind, g.start_day)):
            if _suppressed(connection, gap):
                continue
            row = _case_row(gap, now)
            query = select(cases).where(cases.c.origin == ORIGIN, cases.c.kind == gap.kind)
            if gap.subject.startswith("collector:"):
                query = query.where(cases.c.operators == gap.collector_id)
            else:
                query = query.where(cases.c.point_id == gap.point_id)
            query = query.where(
                cases.c.start_at <= row["end_at"], cases.c.end_at >= row["start_at"]
            )
            candidates = [
                dict(c)
                for c in connection.execute(query).mappings()
                if json.loads(c["details"] or "{}").get("subject") == gap.subject
            ]
            decided = [
                c
                for c in candidates
                if c["status"] != "open"
                and c["start_at"] < row["end_at"]
                and c["end_at"] > row["start_at"]
            ]
            if decided:
                # An auditor has ruled on (part of) this gap: leave their case exactly as it is.
                result.cases_kept += 1
                touched.update(c["case_id"] for c in decided)
                continue
            same = [c for c in candidates if c["status"] == "open"]
            if not gap.merges:
                same = [
                    c
                    for c in same
                    if (c["start_at"], c["end_at"]) == (row["start_at"], row["end_at"])
                ]
            if not same:
                if gap.merges:
                    row = _merge(None, gap, row)
                created = connection.execute(
                    insert(cases).values(**row, status="open", created_at=now)
                )
                result.cases_created += 1
                touched.add(created.inserted_primary_key[0])
                continue
            target = same[0]
            if gap.merges:
                for extra in same[1:]:  # a gap that bridges two open runs joins them into one
                    target = {
                        **target,
                        "details": _merge(target, _gap_from(extra, gap), row)["details"],
                    }
                    connection.execute(delete(cases).where(cases.c.case_id == extra["case_id"]))
                row = _merge(target, gap, row)
            if any(target.get(k) != v for k, v in row.items() if k != "updated_at"):
                connection.execute(
                    update(cases).where(cases.c.case_id == target["case_id"]).values(**row)
                )
                result.cases_updated += 1
            touched.add(target["case_id"])
        if clear_within is not None and clear_scopes:
            result.cases_cleared += _clear_stale(connection, clear_within, clear_scopes, touched)
    return result


def _clear_stale(connection, window: tuple[date, date], scopes, touched: set[int]) -> int:
    # Day bounds in other Indonesian zones (WITA, WIT) sit up to 2 hours off Jakarta's; allow slack.
    lo = _utc(window[0], DEFAULT_TZ) - timedelta(hours=3)
    hi = _utc(window[1], DEFAULT_TZ) + timedelta(hours=3)
    prefixes = tuple(_SCOPE_SUBJECT[s] for s in scopes)
    stale = connection.execute(
        select(cases.c.case_id, cases.c.details).where(
            cases.c.origin == ORIGIN,
            cases.c.status == "open",
            cases.c.start_at >= lo,
            cases.c.end_at <= hi,
            ~select(case_events.c.event_id)
            .where(case_events.c.case_id == cases.c.case_id)
            .exists(),
        )
    ).all()
    cleared = 0
    for case_id, details in stale:
        subject = json.loads(details or "{}").get("subject", "")
        if case_id not in touched and subject.startswith(prefixes):
            connection.execute(
                delete(cases).where(cases.c.case_id == case_id, cases.c.status == "open")
            )
            cleared += 1
    return cleared


def _gap_from(case: dict, like: Gap) -> Gap:
    details = json.loads(case["details"] or "{}")
    return replace(
        like,
        start_day=date.fromisoformat(details["period"]["from"]),
        end_day=date.fromisoformat(details["period"]["to"]) + timedelta(days=1),
        days=details.get("days", {}),
        refs={
            **like.refs,
            "collector_deposits": details.get("refs", {}).get("collector_deposits") or {},
        },
    )


# --- Entry point ---------------------------------------------------------------------------------

SCOPES = ("tax", "collector", "bank")


def find_gaps(
    engine: Engine,
    start: date,
    end: date,
    *,
    as_of: date,
    config: ReconConfig | None = None,
    scopes: tuple[str, ...] = SCOPES,
) -> ReconResult:
    """Every gap in [start, end) as of ``as_of`` (money not yet due is no gap); raises no cases."""
    if end <= start:
        raise UnusableInputError(
            f"reconciliation window {start}..{end} is empty: end must be after start"
        )
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise UnusableInputError(
            f"reconciliation scope(s) {', '.join(unknown)} not one of {', '.join(SCOPES)}"
        )
    config = config or ReconConfig()
    point_rows = _points(engine)
    result = ReconResult(start=start, end=end, as_of=as_of)
    if "tax" in scopes:
        result.gaps += _tax_gaps(engine, point_rows, start, end, as_of, config, result)
    if "collector" in scopes:
        result.gaps += _collector_gaps(engine, point_rows, start, end, as_of, config, result)
    if "bank" in scopes:
        result.gaps += _unmatched_gaps(engine, point_rows, start, end, config, result)
    result.gaps = merge_runs(result.gaps)
    return result


def reconcile(
    engine: Engine,
    start: date,
    end: date,
    *,
    as_of: date,
    config: ReconConfig | None = None,
    scopes: tuple[str, ...] = SCOPES,
    now: datetime | None = None,
) -> ReconResult:
    """Find the gaps in [start, end) and raise them as cases in the review queue (idempotent)."""
    result = find_gaps(engine, start, end, as_of=as_of, config=config, scopes=scopes)
    return raise_cases(
        engine, result.gaps, now=now, clear_within=(start, end), clear_scopes=scopes, result=result
    )


def gap_summary(gap: Gap) -> dict:
    """A flat dict for printing: the three numbers side by side and the difference."""
    return {
        "kind": gap.kind,
        "subject": gap.subject,
        "point_id": gap.point_id,
        "from": gap.start_day.isoformat(),
        "to": (gap.end_day - timedelta(days=1)).isoformat(),
        "recorded_rp": gap.recorded,
        "declared_rp": gap.declared,
        "deposited_rp": gap.deposited,
        "difference_rp": gap.difference_rp,
        "shortfall_rp": gap.shortfall_rp,
        "reasons": gap.reasons,
    }


def interval_window(schedule: str, as_of: date, lookback_days: int = 8) -> tuple[date, date, tuple]:
    """The window and scopes a scheduled run reconciles, from the day its interval ends.

    ``daily``: the trailing ``lookback_days`` of collector days and bank credits. ``monthly``:
    the tax period (calendar month) before the month ``as_of`` falls in.
    """
    if schedule == "daily":
        return as_of - timedelta(days=lookback_days), as_of, ("collector", "bank")
    if schedule == "monthly":
        period_end = as_of.replace(day=1)
        return (period_end - timedelta(days=1)).replace(day=1), period_end, ("tax",)
    raise UnusableInputError(f"schedule {schedule!r} is not daily or monthly")


def reconcile_interval(
    engine: Engine, schedule: str, as_of: date, config: ReconConfig, lookback_days: int = 8
) -> dict:
    """A scheduled run's whole job: reconcile the scheduled window as of the interval's end and
    return a summary for the log/XCom. Settings come from the caller (an entry point)."""
    start, end, scopes = interval_window(schedule, as_of, lookback_days)
    result = reconcile(engine, start, end, as_of=as_of, config=config, scopes=scopes)
    return {
        "window": [start.isoformat(), end.isoformat()],
        "as_of": as_of.isoformat(),
        "scopes": list(scopes),
        "gaps": result.by_kind(),
        "cases_created": result.cases_created,
        "cases_updated": result.cases_updated,
        "cases_kept": result.cases_kept,
        "cases_cleared": result.cases_cleared,
    }
