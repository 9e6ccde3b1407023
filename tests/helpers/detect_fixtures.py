"""Small, seeded transaction worlds with planted leakage for the detection tests.

The project's simulator is the test bed for the evaluation; these frames are deliberately tiny and
inline so each pattern can be pinned by a unit test in a second or two. Hour aggregates are
computed here with the same definitions as ``hour_aggregates`` so the detector can be tested on
its own stage.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import insert

from pipeline.store.schema import hour_aggregates, ingest_batches, points, transactions
from pipeline.store.upsert import upsert

START = datetime(2026, 3, 2, tzinfo=UTC) - pd.Timedelta(hours=7)  # Monday 00:00 Jakarta
OPEN_HOURS = "07:00-21:00"
PROFILE = np.array(
    [0] * 7 + [6, 10, 14, 16, 18, 20, 18, 16, 14, 14, 16, 18, 14, 8] + [0] * 3, dtype=float
)


def make_points(
    n: int = 8, *, revenue_type: str = "parking", district: str = "Kota"
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "point_id": [f"P{i:02d}" for i in range(n)],
            "name": [f"Parkir {i}" for i in range(n)],
            "revenue_type": revenue_type,
            "district": district,
            "open_hours": OPEN_HOURS,
            "timezone": "Asia/Jakarta",
        }
    )


def make_transactions(
    pts: pd.DataFrame, *, days: int = 28, seed: int = 1, scale: float = 1.0
) -> pd.DataFrame:
    """Poisson sales per open hour, parking-like tickets, ~65% cash, two operators on shifts."""
    rng = np.random.default_rng(seed)
    rows = []
    hours = pd.date_range(START, periods=days * 24, freq="h")
    local = hours.tz_convert("Asia/Jakarta")
    for p, point in enumerate(pts["point_id"]):
        size = scale * (0.6 + 0.15 * p)
        lam = PROFILE[local.hour] * size * np.where(local.dayofweek >= 5, 1.2, 1.0)
        counts = rng.poisson(lam)
        n = int(counts.sum())
        hour_of = np.repeat(np.arange(len(hours)), counts)
        occurred = hours[hour_of] + pd.to_timedelta(rng.integers(0, 3600, n), unit="s")
        cash = rng.random(n) < 0.65
        method = np.where(cash, "cash", rng.choice(["qris", "ewallet", "card"], n))
        amount = rng.choice([2000, 3000, 5000, 5000, 10000], n)
        status = np.where(rng.random(n) < 0.02, "void", "paid")
        shift = np.where(local.hour[hour_of] < 14, "A", "B")
        payer = np.where(cash, None, np.char.add("h", rng.integers(0, 10**7, n).astype(str)))
        rows.append(
            pd.DataFrame(
                {
                    "point_id": point,
                    "txn_id": [f"{point}-{i}" for i in range(n)],
                    "occurred_at": occurred,
                    "amount": amount,
                    "payment_method": method,
                    "status": status,
                    "operator_id": np.char.add(f"{point}-op", shift),
                    "payer_ref": payer,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def local_window(day: int, hour_from: int, hour_to: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """UTC bounds of local (Jakarta) hours [hour_from, hour_to) on day ``day`` after START."""
    base = START + pd.Timedelta(days=day)
    return base + pd.Timedelta(hours=hour_from), base + pd.Timedelta(hours=hour_to)


def in_window(txns: pd.DataFrame, point: str, start, end) -> pd.Series:
    return (
        (txns["point_id"] == point) & (txns["occurred_at"] >= start) & (txns["occurred_at"] < end)
    )


def aggregate_hours(txns: pd.DataFrame) -> pd.DataFrame:
    """Hour aggregates as the ingest lane defines them (paid amounts; voids and refunds apart)."""
    t = txns.copy()
    t["hour_start"] = t["occurred_at"].dt.floor("h")
    paid = t["status"] == "paid"
    t["paid"] = paid.astype(int)
    t["gross"] = t["amount"].where(paid, 0)
    t["void"] = (t["status"] == "void").astype(int)
    t["void_amt"] = t["amount"].where(t["status"] == "void", 0)
    t["refund"] = (t["status"] == "refund").astype(int)
    t["refund_amt"] = t["amount"].where(t["status"] == "refund", 0)
    t["cash"] = t["amount"].where(paid & (t["payment_method"] == "cash"), 0)
    t["paid_ticket"] = t["amount"].where(paid, 0)
    grouped = t.groupby(["point_id", "hour_start"])
    out = grouped.agg(
        txn_count=("paid", "sum"),
        gross_paid=("gross", "sum"),
        void_count=("void", "sum"),
        void_amount=("void_amt", "sum"),
        refund_count=("refund", "sum"),
        refund_amount=("refund_amt", "sum"),
        cash_amount=("cash", "sum"),
        operators=("operator_id", "nunique"),
        max_ticket=("paid_ticket", "max"),
    ).reset_index()
    return out


def load_world(engine, pts: pd.DataFrame, txns: pd.DataFrame, *, aggregates: bool = True) -> None:
    """Write points, transactions (one batch) and (unless told not to) their hour aggregates."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        upsert(connection, points, [{**r, "updated_at": now} for r in pts.to_dict("records")])
        batch = connection.execute(
            insert(ingest_batches).values(
                source="test", source_ref="inline", started_at=now, status="ok"
            )
        ).inserted_primary_key[0]
        records = txns.assign(batch_id=batch).to_dict("records")
        for r in records:
            r["occurred_at"] = r["occurred_at"].to_pydatetime()
            r["amount"] = int(r["amount"])
            if r["payer_ref"] is not None and not isinstance(r["payer_ref"], str):
                r["payer_ref"] = None
        connection.execute(insert(transactions), records)
        if not aggregates:
            return
        hours = aggregate_hours(txns)
        hour_rows = hours.to_dict("records")
        for r in hour_rows:
            r["hour_start"] = r["hour_start"].to_pydatetime()
            for k, v in r.items():
                if isinstance(v, np.integer):
                    r[k] = int(v)
        connection.execute(insert(hour_aggregates), hour_rows)


def count_calls(monkeypatch, module, name: str) -> list[tuple]:
    """Wrap ``module.name`` so each call is recorded (its positional arguments) and still
    carried out; the list of calls so far, for a test to assert how often the work was done."""
    calls: list[tuple] = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls
