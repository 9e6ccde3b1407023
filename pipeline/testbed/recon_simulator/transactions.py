"""The transactions the books are built on: a simulator folder read as ingest would keep it, or,
given none, a small set written here."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from pipeline.core.errors import UnusableInputError
from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.reconciliation.reconcile import LEVY_TYPES
from pipeline.reference.points import parse_registry

_TYPES_SMALL = (
    "parking", "parking", "parking", "parking", "market", "market",
    "restaurant_tax", "restaurant_tax", "restaurant_tax", "hotel_tax", "hotel_tax",
    "entertainment_tax",
)  # fmt: skip


def write_small_books(
    out_dir: Path, *, seed: int, start: date, days: int
) -> tuple[Path, list[Path]]:
    """points.csv + feeds/transactions.csv (feed format): 12 points, 2 collectors per levy point."""
    rng = np.random.default_rng(seed)
    zone = ZoneInfo(DEFAULT_TIMEZONE)
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
                "timezone": DEFAULT_TIMEZONE,
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


def read_books(points_csv: Path, feeds: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The registry and the usable transactions (rows that would be quarantined are skipped)."""
    if not points_csv.is_file():
        raise UnusableInputError(f"simulator output: {points_csv} is missing")
    # Read and checked as ingest reads it (the default zone filled in where none is named).
    registry = pd.DataFrame(parse_registry(points_csv))
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
