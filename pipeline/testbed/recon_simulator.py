"""Simulated returns, bank statement and collector deposits, with labelled gaps of each pattern.

The simulator proper (``pipeline/testbed/simulator.py``) writes ``points.csv`` and ``feeds/*.csv``; this
module reads any such folder (or, given none, writes a small one of its own) and adds what the
taxpayers declared and what reached the treasury:

* ``returns.csv``            point_id, period_start, period_end, declared_sales, tax_due,
                             filed_at, return_ref
* ``bank_statement.csv``     line_id, booked_on, value_date, description, debit, credit,
                             balance, channel, point_id, collector_id  (one treasury account)
* ``collector_deposits.csv`` collector_id, day, cash_amount, deposited_on, point_id, receipt_ref
* ``recon_labels.csv``       pattern, subject, point_id, start, end  (end inclusive; pattern
                             ``clean`` marks a subject and span where nothing was planted)

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
from zoneinfo import ZoneInfo

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

TAX_PATTERNS = ("declared_below_recorded", "deposit_below_declared", "late_deposit", "no_deposit")
COLLECTOR_PATTERNS = ("flat_deposits", "deposit_below_recorded", "no_deposit", "late_deposit")
PATTERNS = tuple(
    dict.fromkeys((*TAX_PATTERNS, *COLLECTOR_PATTERNS, "unmatched_deposit"))
)  # every kind reconciliation raises
_TYPES_SMALL = (
    "parking", "parking", "parking", "parking", "market", "market",
    "restaurant_tax", "restaurant_tax", "restaurant_tax", "hotel_tax", "hotel_tax",
    "entertainment_tax",
)  # fmt: skip


@dataclass
class ReconManifest:
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


# --- A small transaction set, when no simulator output is given ----------------------------------


def write_small_books(
    out_dir: Path, *, seed: int, start: date, days: int
) -> tuple[Path, list[Path]]:
    """points.csv + feeds/transactions.csv (feed format): 12 points, 2 collectors per levy point."""
    rng = np.random.default_rng(seed)
    zone = ZoneInfo("Asia/Jakarta")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "feeds").mkdir(exist_ok=True)
    registry = []
    for i, revenue_type in enumerate(_TYPES_SMALL, start=1):
        registry.append(
            {
                "point_id": f"P{i:03d}",
                "name": f"{revenue_type.replace('_', ' ').title()} {i}",
                "revenue_type": revenue_type,
                "district": ("Kota", "Utara", "Selatan")[i % 3],
                "open_hours": "06:00-22:00",
                "timezone": "Asia/Jakarta",
            }
        )
    points_csv = out_dir / "points.csv"
    pd.DataFrame(registry).to_csv(points_csv, index=False)

    frames = []
    for point in registry:
        levy = point["revenue_type"] in LEVY_TYPES
        scale = rng.uniform(0.6, 1.6)
        operators = [f"C{point['point_id'][1:]}{k}" for k in "AB"] if levy else ["kasir1", "kasir2"]
        day_list = [start + timedelta(days=o) for o in range(days)]
        weekend = np.array([1.3 if d.weekday() >= 5 else 1.0 for d in day_list])
        # One row per (day, shift): how many sales; then one row per sale.
        counts = rng.poisson(np.repeat(weekend, 2) * (12 if levy else 8) * scale).clip(min=1)
        shift = np.tile([0, 1], days).repeat(counts)
        day_index = np.repeat(np.arange(days), 2).repeat(counts)
        n = int(counts.sum())
        minutes = rng.integers(0, 8 * 60, n) + 6 * 60 + 8 * 60 * shift
        base = np.array([datetime.combine(d, time(0), tzinfo=zone) for d in day_list], dtype=object)
        stamps = [
            (base[i] + timedelta(minutes=int(m))).isoformat()
            for i, m in zip(day_index, minutes, strict=True)
        ]
        if levy:
            amount = rng.choice([2_000, 3_000, 5_000, 10_000], n)
            method = np.where(rng.random(n) < 0.9, "cash", "qris")
            status = np.full(n, "paid")
        else:
            amount = np.round(rng.lognormal(11.6, 0.6, n), -2).astype(np.int64)  # ~Rp 110k a bill
            method = rng.choice(["cash", "qris", "card", "ewallet"], n)
            status = np.where(rng.random(n) < 0.02, "refund", "paid")
        frames.append(
            pd.DataFrame(
                {
                    "point_id": point["point_id"],
                    "occurred_at": stamps,
                    "amount": amount,
                    "payment_method": method,
                    "status": status,
                    "operator_id": np.array(operators)[shift],
                    "payer_ref": "",
                }
            )
        )
    transactions = pd.concat(frames, ignore_index=True)
    transactions.insert(0, "txn_id", [f"S{i:08d}" for i in range(1, len(transactions) + 1)])
    feed = out_dir / "feeds" / "transactions.csv"
    transactions.to_csv(feed, index=False)
    return points_csv, [feed]


# --- Reading what the simulator wrote ------------------------------------------------------------


def read_books(points_csv: Path, feeds: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The registry and the usable transactions (rows that would be quarantined are skipped)."""
    if not points_csv.is_file():
        raise UnusableInputError(f"simulator output: {points_csv} is missing")
    registry = pd.read_csv(points_csv, dtype=str).fillna("")
    registry["timezone"] = registry.get("timezone", "").replace("", "Asia/Jakarta")
    frames = []
    for feed in feeds:
        frame = pd.read_csv(feed, dtype=str, keep_default_na=False)
        frames.append(
            frame[
                [
                    "txn_id",
                    "point_id",
                    "occurred_at",
                    "amount",
                    "payment_method",
                    "status",
                    "operator_id",
                ]
            ]
        )
    if not frames:
        raise UnusableInputError(f"simulator output: no feeds next to {points_csv}")
    txns = pd.concat(frames, ignore_index=True)
    txns["amount"] = pd.to_numeric(txns["amount"], errors="coerce")
    txns["occurred_at"] = pd.to_datetime(
        txns["occurred_at"], errors="coerce", utc=True, format="ISO8601"
    )
    known = set(registry["point_id"])
    usable = (
        txns["amount"].notna()
        & (txns["amount"] >= 0)
        & txns["occurred_at"].notna()
        & txns["point_id"].isin(known)
        & txns["status"].isin(["paid", "refund"])
        # Ingest quarantines times in the future; so must the books built from the same feed.
        & (txns["occurred_at"] <= pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=10))
    )
    # A resent row is one sale: the same receipt number at one point counts once.
    txns = txns[usable].drop_duplicates(subset=["point_id", "txn_id"]).copy()
    txns["amount"] = txns["amount"].astype("int64")
    tz_of = dict(zip(registry["point_id"], registry["timezone"], strict=True))
    txns["day"] = [
        ts.tz_convert(tz_of[p]).date()
        for ts, p in zip(txns["occurred_at"], txns["point_id"], strict=True)
    ]
    txns["signed"] = np.where(txns["status"] == "paid", txns["amount"], -txns["amount"])
    return registry, txns


# --- Writing declared and deposited money --------------------------------------------------------


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
    # Stray credits are labelled by line id, known only once the statement is numbered.
    by_description = {line["description"]: line["line_id"] for line in lines}
    for label in labels:
        if label["subject"].startswith("stray:"):
            label["subject"] = f"line:{by_description[label['subject'][6:]]}"
    labels_csv = out_dir / "recon_labels.csv"
    with labels_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["pattern", "subject", "point_id", "start", "end"]
        )
        writer.writeheader()
        for label in labels:
            writer.writerow(
                {**label, "start": label["start"].isoformat(), "end": label["end"].isoformat()}
            )
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
        pattern = planted.get(collector)
        span: list[date] = []
        if pattern == "flat_deposits":
            run = min(21, len(days))
        elif pattern:
            run = int(rng.integers(2, 5))
        if pattern and len(days) > run + 2:
            begin = int(rng.integers(1, len(days) - run))
            span = days[begin : begin + run]
        elif pattern:
            pattern = None
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


# --- Evaluation ----------------------------------------------------------------------------------


def load_books(engine, manifest: ReconManifest) -> None:
    """Points and transactions straight into the store, then the three reconciliation feeds
    through the real ingest path with its expectation suites."""
    from pipeline.reconciliation.feeds import ingest_feed

    load_transactions(engine, manifest)
    ingest_feed(engine, "returns", manifest.returns_csv)
    ingest_feed(engine, "bank", manifest.bank_csv)
    ingest_feed(engine, "collector", manifest.collector_csv)


def load_transactions(engine, manifest: ReconManifest) -> None:
    """The registry and the simulated transactions the books were built on, inserted directly
    (rows ingest would quarantine are left out, as ``read_books`` does); the transaction feed
    checks belong to, and are tested by, the ingest lane."""
    from sqlalchemy import insert

    from pipeline.reference.points import load_registry
    from pipeline.store.schema import ingest_batches, transactions

    load_registry(engine, manifest.points_csv)
    _, txns = read_books(manifest.points_csv, manifest.feeds)
    with engine.begin() as connection:
        batch_id = connection.execute(
            insert(ingest_batches).values(
                source="simulate_recon:direct",
                source_ref=", ".join(str(f) for f in manifest.feeds),
                started_at=datetime.now(UTC),
                finished_at=datetime.now(UTC),
                status="ok",
                rows_read=len(txns),
                accepted=len(txns),
                quarantined=0,
                duplicates=0,
            )
        ).inserted_primary_key[0]
        rows = [
            {
                "point_id": point_id,
                "txn_id": txn_id,
                "occurred_at": occurred_at.to_pydatetime(),
                "amount": int(amount),
                "payment_method": method,
                "status": status,
                "operator_id": operator or None,
                "batch_id": batch_id,
            }
            for point_id, txn_id, occurred_at, amount, method, status, operator in zip(
                txns["point_id"],
                txns["txn_id"],
                txns["occurred_at"],
                txns["amount"],
                txns["payment_method"],
                txns["status"],
                txns["operator_id"],
                strict=True,
            )
        ]
        for first in range(0, len(rows), 5_000):
            connection.execute(insert(transactions), rows[first : first + 5_000])


def score_cases(engine, labels_csv: Path) -> dict:
    """Planted gaps found (same kind, same subject, overlapping span) and cases nothing explains."""
    import json

    from sqlalchemy import select

    from pipeline.store.schema import cases

    labels = pd.read_csv(labels_csv, dtype=str).to_dict("records")
    with engine.connect() as connection:
        raised = (
            connection.execute(select(cases).where(cases.c.origin == "reconciliation"))
            .mappings()
            .all()
        )
    found = []
    for case in raised:
        details = json.loads(case["details"])
        found.append(
            (case["kind"], details["subject"], details["period"]["from"], details["period"]["to"])
        )

    def overlaps(label, gap):
        return gap[2] <= label["end"] and gap[3] >= label["start"]

    labelled: dict[str, int] = defaultdict(int)
    hits: dict[str, int] = defaultdict(int)
    explained: set[int] = set()
    for label in labels:
        if label["pattern"] == "clean":
            continue
        labelled[label["pattern"]] += 1
        matches = [
            i
            for i, gap in enumerate(found)
            if gap[0] == label["pattern"] and gap[1] == label["subject"] and overlaps(label, gap)
        ]
        hits[label["pattern"]] += bool(matches)
        explained.update(matches)
    clean = [label for label in labels if label["pattern"] == "clean"]
    false_gaps = [found[i] for i in range(len(found)) if i not in explained]
    on_clean = [
        gap for gap in false_gaps if any(gap[1] == c["subject"] and overlaps(c, gap) for c in clean)
    ]
    return {
        "labelled": dict(labelled),
        "found": dict(hits),
        "clean_periods": len(clean),
        "false_gaps": len(false_gaps),
        "false_gaps_on_clean": len(on_clean),
        "false_gap_examples": [list(g) for g in false_gaps[:5]],
        "cases": len(found),
    }


def evaluate_reconciliation(
    work_dir: Path,
    *,
    seeds: tuple[int, ...] = (7, 8),
    config: ReconConfig | None = None,
    days: int = 59,
    sim_dir: Path | None = None,
) -> dict:
    """Simulate books with planted gaps for each seed, reconcile them, and score the cases:
    recall per pattern, and false gaps (cases no planted gap explains; on clean periods apart).

    Books are built on ``sim_dir`` (the simulator's points.csv + feeds/) when given, else on a
    small transaction set of their own (``days`` long)."""
    from pipeline.reconciliation.reconcile import reconcile
    from pipeline.store import connect

    config = config or ReconConfig()
    totals: dict[str, dict[str, int]] = {"labelled": defaultdict(int), "found": defaultdict(int)}
    per_seed, false_gaps, on_clean, clean_periods, examples = [], 0, 0, 0, []
    for seed in seeds:
        out = Path(work_dir) / f"seed{seed}"
        manifest = simulate_recon(out, sim_dir=sim_dir, seed=seed, days=days, config=config)
        db = out / "recon-eval.db"
        db.unlink(missing_ok=True)
        engine = connect(f"sqlite:///{db}")
        try:
            load_books(engine, manifest)
            # Everything is long overdue by as_of: a clean book must still raise nothing.
            horizon = manifest.end + timedelta(days=70)
            reconcile(
                engine, manifest.start, horizon, as_of=horizon + timedelta(days=30), config=config
            )
            scored = score_cases(engine, manifest.labels_csv)
        finally:
            engine.dispose()
        per_seed.append({"seed": seed, **scored})
        for key in ("labelled", "found"):
            for pattern, n in scored[key].items():
                totals[key][pattern] += n
        false_gaps += scored["false_gaps"]
        on_clean += scored["false_gaps_on_clean"]
        clean_periods += scored["clean_periods"]
        examples += scored["false_gap_examples"]
    recall = {
        p: round(totals["found"][p] / n, 3) for p, n in sorted(totals["labelled"].items()) if n
    }
    return {
        "seeds": list(seeds),
        "recall": recall,
        "labelled": dict(totals["labelled"]),
        "found": dict(totals["found"]),
        "overall_recall": round(
            sum(totals["found"].values()) / max(1, sum(totals["labelled"].values())), 3
        ),
        "false_gaps": false_gaps,
        "false_gaps_on_clean": on_clean,
        "clean_periods": clean_periods,
        "false_gap_examples": examples[:5],
        "per_seed": per_seed,
    }


def reconcile_simulation(
    engine, sim_dir: Path, out_dir: Path, *, seed: int = 7, config: ReconConfig | None = None
):
    """For the demo: books on the simulator's output (whose transactions ``engine`` already
    holds), the three feeds ingested, and the whole span reconciled as of a day when all of it
    is overdue. Returns (manifest, ReconResult)."""
    from pipeline.reconciliation.feeds import ingest_feed
    from pipeline.reconciliation.reconcile import reconcile

    manifest = simulate_recon(out_dir, sim_dir=sim_dir, seed=seed, config=config)
    ingest_feed(engine, "returns", manifest.returns_csv)
    ingest_feed(engine, "bank", manifest.bank_csv)
    ingest_feed(engine, "collector", manifest.collector_csv)
    horizon = manifest.end + timedelta(days=70)
    result = reconcile(
        engine, manifest.start, horizon, as_of=horizon + timedelta(days=30), config=config
    )
    return manifest, result
