"""The books: returns, the treasury's bank statement and collector deposits, with planted gaps.

Clean books carry the noise reconciliation must tolerate: declared sales and collector cash
rounded down to the thousand, bank fees taken off tax transfers, tax paid in two instalments,
money landing on the next business day after a weekend or holiday, or one business day late.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.errors import UnusableInputError
from pipeline.reconciliation.reconcile import (
    LEVY_TYPES,
    TAX_TYPES,
    ReconConfig,
    is_business_day,
    last_allowed_day,
    roll_forward,
    tax_due_date,
)
from pipeline.testbed.recon_simulator.transactions import read_books, write_small_books

TAX_PATTERNS = ("declared_below_recorded", "deposit_below_declared", "late_deposit", "no_deposit")
COLLECTOR_PATTERNS = ("flat_deposits", "deposit_below_recorded", "no_deposit", "late_deposit")
PATTERNS = tuple(
    dict.fromkeys((*TAX_PATTERNS, *COLLECTOR_PATTERNS, "unmatched_deposit"))
)  # every kind reconciliation raises


@dataclass
class ReconManifest:
    """What one book simulation wrote, and how many gaps of each pattern it planted."""

    out_dir: Path
    points_csv: Path
    feeds: list[Path]
    returns_csv: Path
    bank_csv: Path
    collector_csv: Path
    labels_csv: Path
    start: date
    end: date  # exclusive: last simulated day + 1
    labels: dict[str, int] = field(default_factory=dict)  # pattern -> labelled gaps


def _month_span(month_start: date) -> tuple[date, date]:
    following = (month_start + timedelta(days=32)).replace(day=1)
    return month_start, following - timedelta(days=1)


def _business_after(day: date, n: int, config: ReconConfig) -> date:
    day = roll_forward(day, config)
    while n:
        day += timedelta(days=1)
        if is_business_day(day, config):
            n -= 1
    return day


class _Statement:
    """The treasury account: lines with a running balance, written as the bank exports them."""

    def __init__(self, opening: int):
        self.balance = opening
        self.lines: list[dict] = []

    def credit(
        self,
        booked_on: date,
        amount: int,
        description: str,
        channel: str,
        point_id="",
        collector_id="",
    ):
        self.lines.append(
            {
                "booked_on": booked_on,
                "description": description,
                "credit": amount,
                "debit": 0,
                "channel": channel,
                "point_id": point_id,
                "collector_id": collector_id,
            }
        )
        return self

    def debit(self, booked_on: date, amount: int, description: str):
        self.lines.append(
            {
                "booked_on": booked_on,
                "description": description,
                "credit": 0,
                "debit": amount,
                "channel": "other",
                "point_id": "",
                "collector_id": "",
            }
        )

    def write(self, path: Path) -> list[dict]:
        ordered = sorted(enumerate(self.lines), key=lambda pair: (pair[1]["booked_on"], pair[0]))
        out = []
        for n, (_, line) in enumerate(ordered, start=1):
            self.balance += line["credit"] - line["debit"]
            out.append(
                {
                    "line_id": f"BPD-{line['booked_on']:%Y%m%d}-{n:06d}",
                    "booked_on": line["booked_on"].isoformat(),
                    "value_date": line["booked_on"].isoformat(),
                    "description": line["description"],
                    "debit": line["debit"] or "",
                    "credit": line["credit"] or "",
                    "balance": self.balance,
                    "channel": line["channel"],
                    "point_id": line["point_id"],
                    "collector_id": line["collector_id"],
                }
            )
        pd.DataFrame(out).to_csv(path, index=False)
        return out


def simulate_recon(
    out_dir: Path,
    *,
    sim_dir: Path | None = None,
    seed: int = 7,
    start: date = date(2026, 1, 1),
    days: int = 59,
    config: ReconConfig | None = None,
) -> ReconManifest:
    """Write returns, bank statement, collector deposits and labels next to simulated transactions.

    With ``sim_dir`` (the simulator's output: points.csv + feeds/*.csv) those transactions are
    used; without, a small set is written to ``out_dir`` first (``start``, ``days``).
    """
    config = config or ReconConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if sim_dir is not None:
        sim_dir = Path(sim_dir)
        points_csv, feeds = sim_dir / "points.csv", sorted((sim_dir / "feeds").glob("*.csv*"))
    else:
        points_csv, feeds = write_small_books(out_dir, seed=seed, start=start, days=days)
    registry, txns = read_books(points_csv, feeds)
    if txns.empty:
        raise UnusableInputError(f"simulator output {points_csv.parent}: no usable transactions")
    first_day, last_day = min(txns["day"]), max(txns["day"])
    rng = np.random.default_rng(seed + 1000)
    revenue = dict(zip(registry["point_id"], registry["revenue_type"], strict=True))
    labels: list[dict] = []
    statement = _Statement(opening=int(rng.integers(50, 500)) * 1_000_000)

    returns = _tax_books(txns, revenue, rng, config, statement, labels)
    deposits = _collector_books(txns, revenue, rng, config, statement, labels, first_day, last_day)
    _stray_credits(statement, labels, first_day, last_day, rng, revenue)
    # Monthly account fees: debits reconciliation must ignore.
    month = first_day.replace(day=1)
    while month <= last_day:
        statement.debit(_month_span(month)[1], 15_000, "BIAYA ADMINISTRASI BULANAN")
        month = (month + timedelta(days=32)).replace(day=1)

    returns_csv = out_dir / "returns.csv"
    pd.DataFrame(returns).to_csv(returns_csv, index=False)
    collector_csv = out_dir / "collector_deposits.csv"
    pd.DataFrame(deposits).to_csv(collector_csv, index=False)
    bank_csv = out_dir / "bank_statement.csv"
    lines = statement.write(bank_csv)
    labels_csv = out_dir / "recon_labels.csv"
    _write_labels(labels_csv, labels, lines)
    counts: dict[str, int] = defaultdict(int)
    for label in labels:
        counts[label["pattern"]] += 1
    return ReconManifest(
        out_dir=out_dir,
        points_csv=points_csv,
        feeds=feeds,
        returns_csv=returns_csv,
        bank_csv=bank_csv,
        collector_csv=collector_csv,
        labels_csv=labels_csv,
        start=first_day,
        end=last_day + timedelta(days=1),
        labels=dict(counts),
    )


def _write_labels(path: Path, labels: list[dict], lines: list[dict]) -> None:
    """recon_labels.csv. Stray credits are labelled by line id, known only once the statement
    is numbered (``lines``), so their ``stray:<description>`` subjects are resolved here."""
    by_description = {line["description"]: line["line_id"] for line in lines}
    for label in labels:
        if label["subject"].startswith("stray:"):
            label["subject"] = f"line:{by_description[label['subject'][6:]]}"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["pattern", "subject", "point_id", "start", "end"]
        )
        writer.writeheader()
        for label in labels:
            writer.writerow(
                {**label, "start": label["start"].isoformat(), "end": label["end"].isoformat()}
            )


def _assign(subjects: list, patterns: tuple[str, ...], share: float, rng) -> dict:
    """Plant one pattern on about ``share`` of the subjects; every pattern at least once."""
    order = list(rng.permutation(len(subjects)))
    planted = max(len(patterns), int(round(share * len(subjects))))
    chosen = {}
    for k, index in enumerate(order[: min(planted, len(subjects))]):
        chosen[subjects[index]] = patterns[k % len(patterns)]
    return chosen


def _tax_books(txns, revenue, rng, config, statement, labels) -> list[dict]:
    tax = txns[txns["point_id"].map(revenue).isin(TAX_TYPES)].copy()
    tax["month"] = [d.replace(day=1) for d in tax["day"]]
    recorded = tax.groupby(["point_id", "month"])["signed"].sum()
    subjects = sorted(recorded.index)
    planted = _assign(subjects, TAX_PATTERNS + ("declared_below_recorded",), 0.4, rng)
    rows = []
    for point_id, month in subjects:
        period_start, period_end = _month_span(month)
        rec = int(recorded[(point_id, month)])
        rate = config.rate_for(point_id, revenue[point_id])
        pattern = planted.get((point_id, month))
        due = roll_forward(tax_due_date(period_end, config), config)
        label = {
            "subject": f"point:{point_id}",
            "point_id": point_id,
            "start": period_start,
            "end": period_end,
        }
        labels.append({"pattern": pattern or "clean", **label})
        declared = rec // 1_000 * 1_000 if rng.random() < 0.7 else rec
        if pattern == "declared_below_recorded":
            if rng.random() < 0.25:  # a non-filer: declares nothing at all
                continue
            declared = int(rec * rng.uniform(0.6, 0.95)) // 1_000 * 1_000
        tax_due = int(round(declared * rate))
        rows.append(
            {
                "point_id": point_id,
                "period_start": period_start.isoformat(),
                "period_end": period_end.isoformat(),
                "declared_sales": declared,
                "tax_due": tax_due,
                "filed_at": datetime.combine(
                    period_end + timedelta(days=int(rng.integers(3, 9))), time(10), tzinfo=UTC
                ).isoformat(),
                "return_ref": f"SPTPD/{point_id}/{period_start:%Y%m}",
            }
        )
        if pattern == "no_deposit":
            continue
        amount = tax_due
        if pattern == "deposit_below_declared":
            amount = int(tax_due * rng.uniform(0.4, 0.9))
        if pattern == "late_deposit":
            booked = _business_after(due, int(rng.integers(3, 9)), config)
        else:
            # On time: some days early, on the (rolled) due date, or within the allowed late days.
            booked = rng.choice(
                [due - timedelta(days=int(rng.integers(1, 8))), due, last_allowed_day(due, config)]
            )
        reference = (
            f"SSPD {point_id} {period_start:%Y-%m}"
            if rng.random() < 0.8
            else f"PAJAK DAERAH {point_id}"
        )
        fee = int(rng.choice([0, 0, 2_500, 6_500]))
        if amount > 200_000 and rng.random() < 0.25 and pattern != "late_deposit":
            first = amount // 2  # paid in two instalments, the second on the booked day
            statement.credit(booked - timedelta(days=2), first - fee, reference, "va", point_id)
            statement.credit(booked, amount - first - fee, reference, "va", point_id)
        else:
            statement.credit(booked, amount - fee, reference, "va", point_id)
    return rows


def _collector_books(
    txns, revenue, rng, config, statement, labels, first_day, last_day
) -> list[dict]:
    levy = txns[
        txns["point_id"].map(revenue).isin(LEVY_TYPES)
        & (txns["payment_method"] == "cash")
        & (txns["operator_id"] != "")
    ]
    cash = levy.groupby(["operator_id", "day"])["signed"].sum()
    home = levy.groupby("operator_id")["point_id"].agg(lambda s: s.value_counts().index[0])
    collectors = sorted(home.index)
    planted = _assign(collectors, COLLECTOR_PATTERNS, 0.45, rng)
    rows = []
    for collector in collectors:
        days = sorted(d for (c, d) in cash.index if c == collector)
        pattern, span = _planted_span(planted.get(collector), days, rng)
        if span:
            labels.append(
                {"pattern": pattern, "subject": f"collector:{collector}",
                 "point_id": home[collector], "start": span[0], "end": span[-1]}
            )  # fmt: skip
        else:
            labels.append(
                {"pattern": "clean", "subject": f"collector:{collector}",
                 "point_id": home[collector], "start": first_day, "end": last_day}
            )  # fmt: skip
        # The fixed setoran sits well below what the collector usually takes, rounded as
        # people agree amounts (to Rp 5 000, or Rp 1 000 for small takings).
        usual = int(np.median([cash[(collector, d)] for d in span]) * 0.6) if span else 0
        setoran = usual // 5_000 * 5_000 if usual >= 10_000 else max(1_000, usual // 1_000 * 1_000)
        banked: dict[date, int] = defaultdict(int)
        for day in days:
            recorded = int(cash[(collector, day)])
            if recorded <= 0:
                continue
            in_span = day in span
            if in_span and pattern == "no_deposit":
                continue
            amount = recorded // 1_000 * 1_000
            due = roll_forward(day + timedelta(days=config.collector_due_days), config)
            choice = rng.random()
            on = (
                day
                if choice < 0.6
                else due
                if choice < 0.9
                else last_allowed_day(day + timedelta(days=1), config)
            )
            if in_span and pattern == "flat_deposits":
                amount = setoran
            elif in_span and pattern == "deposit_below_recorded":
                amount = int(recorded * rng.uniform(0.5, 0.9)) // 1_000 * 1_000
            elif in_span and pattern == "late_deposit":
                on = _business_after(due, int(rng.integers(3, 7)), config)
            rows.append(
                {
                    "collector_id": collector,
                    "day": day.isoformat(),
                    "cash_amount": amount,
                    "deposited_on": on.isoformat(),
                    "point_id": home[collector],
                    "receipt_ref": f"TBP/{collector}/{day:%Y%m%d}",
                }
            )
            # The treasurer banks what was handed in on the next business day (or the same day).
            banked[roll_forward(on, config)] += amount
        for booked, amount in sorted(banked.items()):
            statement.credit(
                booked, amount, f"SETORAN RETRIBUSI {collector}", "cash_collector", "", collector
            )
    return rows


def _planted_span(pattern: str | None, days: list[date], rng) -> tuple[str | None, list[date]]:
    """The run of a collector's days a pattern is planted on (21 days of flat deposits, else 2-4
    days), or no pattern when the collector has too few days for one."""
    if not pattern:
        return None, []
    run = min(21, len(days)) if pattern == "flat_deposits" else int(rng.integers(2, 5))
    if len(days) > run + 2:
        begin = int(rng.integers(1, len(days) - run))
        return pattern, days[begin : begin + run]
    return None, []


def _stray_credits(statement, labels, first_day, last_day, rng, revenue):
    """Money that belongs to nothing: unattributed, attributed to a point that does not exist,
    and tax for a period in which a point neither filed nor sold."""
    tax_points = sorted(p for p, t in revenue.items() if t in TAX_TYPES)
    span = (last_day - first_day).days
    before = (first_day.replace(day=1) - timedelta(days=40)).replace(day=1)
    strays = [
        (f"TRF MASUK {int(rng.integers(10**6, 10**7))} TANPA KETERANGAN", "", "teller"),
        (f"SSPD PX{int(rng.integers(900, 999))} {first_day:%Y-%m}", "PX999", "va"),
    ]
    if tax_points:
        point = tax_points[int(rng.integers(0, len(tax_points)))]
        strays.append((f"SSPD {point} {before:%Y-%m}", point, "va"))
    for description, point_id, channel in strays:
        booked = roll_forward(
            first_day + timedelta(days=int(rng.integers(5, max(6, span - 5)))), ReconConfig()
        )
        statement.credit(booked, int(rng.integers(50, 900)) * 1_000, description, channel, point_id)
        labels.append(
            {"pattern": "unmatched_deposit", "subject": f"stray:{description}",
             "point_id": point_id or "UNATTRIBUTED", "start": booked, "end": booked}
        )  # fmt: skip
