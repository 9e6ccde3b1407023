"""Void/refund abuse in its own signals: voids crowded into the end of an operator's shift, and
cash refunds of sales that were paid by QRIS/card (SQLite, function level), each with a control
that must not fire the new signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.casework.cases import list_anomalies
from pipeline.detection.backfill import backfill
from pipeline.detection.features import compute_features
from pipeline.store import connect
from tests.helpers.detect_fixtures import (
    START,
    in_window,
    load_world,
    local_window,
    make_points,
    make_transactions,
)

DAYS = 28
SHIFT_END = local_window(20, 14, 21)  # operator B's shift (14:00-21:00) on Sun 22 March
REFUND_DAY = local_window(21, 7, 14)  # operator A's shift (07:00-14:00) on Mon 23 March


def _aggregated_already(engine, start, end) -> None:
    """The fixture world is written with its hour aggregates; nothing to recompute."""


def _refunds(txns: pd.DataFrame, point: str, amounts, method: str, rng) -> pd.DataFrame:
    s, e = REFUND_DAY
    times = e - pd.to_timedelta(np.sort(rng.integers(60, 1800, len(amounts))), unit="s")
    return pd.DataFrame(
        {
            "point_id": point,
            "txn_id": [f"{point}-refund-{i}" for i in range(len(amounts))],
            "occurred_at": times,
            "amount": list(amounts),
            "payment_method": method,
            "status": "refund",
            "operator_id": f"{point}-opA",
            "payer_ref": None,
        }
    )


def _plant(txns: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    s, e = SHIFT_END
    for point, crowded in (("P02", True), ("P03", False)):
        # 10 of operator B's sales that day voided: at P02 moved into the last 40 minutes of the
        # shift, at P03 (the control) left where they were, spread over the shift.
        shift = in_window(txns, point, s, e) & (txns["operator_id"] == f"{point}-opB")
        shift &= txns["status"] == "paid"
        chosen = rng.choice(np.flatnonzero(shift.to_numpy()), 10, replace=False)
        index = txns.index[chosen]
        txns.loc[index, "status"] = "void"
        if crowded:
            offsets = pd.to_timedelta(rng.integers(60, 40 * 60, len(index)), unit="s")
            txns.loc[index, "occurred_at"] = e - offsets
    # Cash refunds at P05 of amounts paid by QRIS/card that morning; at P06 (the control) the
    # same refunds paid back by QRIS, at P07 cash refunds of an amount nobody paid without cash.
    s, e = REFUND_DAY
    morning = in_window(txns, "P05", s, e - pd.Timedelta(hours=1)) & (txns["status"] == "paid")
    paid_noncash = txns.loc[morning & (txns["payment_method"] != "cash"), "amount"]
    extra = [
        _refunds(txns, "P05", paid_noncash.iloc[:4], "cash", rng),
        _refunds(txns, "P06", paid_noncash.iloc[:4], "qris", rng),
        _refunds(txns, "P07", [7500] * 4, "cash", rng),
    ]
    return pd.concat([txns, *extra], ignore_index=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voids")
    engine = connect(f"sqlite:///{folder / 'world.db'}")
    pts = make_points(8)
    rng = np.random.default_rng(5)
    txns = _plant(make_transactions(pts, days=DAYS, seed=4), rng)
    load_world(engine, pts, txns)
    end = START + pd.Timedelta(days=DAYS)
    backfill(engine, folder / "models", START, end, aggregate=_aggregated_already, hindsight=True)
    yield engine, list_anomalies(engine)
    engine.dispose()


def _flags(anomalies, point, window):
    s, e = window
    hit = (anomalies["hour_start"] >= s) & (anomalies["hour_start"] < e)
    return anomalies[hit & (anomalies["point_id"] == point)]


def test_voids_crowded_at_shift_end_are_void_abuse(world):
    engine, anomalies = world
    features = compute_features(engine, *SHIFT_END)
    at = features[features["point_id"] == "P02"]
    assert at["void_shift_end"].max() >= 3
    flags = _flags(anomalies, "P02", SHIFT_END)
    assert "void_abuse" in set(flags["kind"]), flags[["hour_start", "kind", "reasons"]]
    reasons = " ".join(flags["reasons"])
    assert (
        "operator P02-opB:" in reasons and "in the last 45 minutes of the shift vs usual" in reasons
    )
    assert set(flags.loc[flags["kind"] == "void_abuse", "operators"]) == {"P02-opB"}


def test_voids_spread_over_the_shift_do_not_fire_shift_end(world):
    engine, anomalies = world
    features = compute_features(engine, *SHIFT_END)
    assert features.loc[features["point_id"] == "P03", "void_shift_end"].max() < 3
    assert "last 45 minutes" not in " ".join(_flags(anomalies, "P03", SHIFT_END)["reasons"])


def test_cash_refunds_of_noncash_sales_are_void_abuse(world):
    engine, anomalies = world
    features = compute_features(engine, *REFUND_DAY)
    assert features.loc[features["point_id"] == "P05", "cash_refund_noncash"].max() >= 3
    flags = _flags(anomalies, "P05", REFUND_DAY)
    assert "void_abuse" in set(flags["kind"]), flags[["hour_start", "kind", "reasons"]]
    reasons = " ".join(flags["reasons"])
    assert "operator P05-opA: 4 cash refunds (Rp " in reasons
    assert "against sales paid by QRIS/card/e-wallet" in reasons


@pytest.mark.parametrize("point", ["P06", "P07"])
def test_noncash_refunds_or_unmatched_amounts_do_not_fire(world, point):
    """P06 refunds by QRIS; P07 refunds cash of an amount no one paid without cash that day."""
    engine, anomalies = world
    features = compute_features(engine, *REFUND_DAY)
    assert (features.loc[features["point_id"] == point, "cash_refund_noncash"] == 0).all()
    assert "cash refunds" not in " ".join(_flags(anomalies, point, REFUND_DAY)["reasons"])
