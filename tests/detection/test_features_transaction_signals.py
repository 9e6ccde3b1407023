"""Transaction-level signals on tiny planted frames (no database): one operator skimming cash,
one payer splitting a payment, tiny tickets; the planted hour scores high, an ordinary one ~0."""

from __future__ import annotations

import pandas as pd

from pipeline.detection.features import FeatureConfig
from pipeline.detection.features.transaction_signals import transaction_signals

PLANTED = pd.Timestamp("2026-03-03 03:00", tz="UTC")
ORDINARY = PLANTED + pd.Timedelta(days=1)  # another local day: day-level evidence stays apart
PTS = pd.DataFrame({"point_id": ["P0"], "timezone": ["Asia/Jakarta"]})
SCALES = pd.DataFrame({"point_ticket": [5000.0]}, index=pd.RangeIndex(1, name="pos"))
OP_USUAL = pd.DataFrame(
    {
        "point_id": ["P0", "P0"],
        "operator_id": ["A", "B"],
        "paid_n": [1000.0, 1000.0],
        "cash_n": [650.0, 650.0],
        "op_usual_cash": [0.65, 0.65],
        "op_usual_cash_n": [0.65, 0.65],
        "op_usual_void": [0.02, 0.02],
        "op_usual_cash_refund": [0.001, 0.001],
    }
)


def sales(hour, operator, n, *, cash, amount=5000, payer=None, start=0):
    """``n`` paid sales in ``hour`` by ``operator``, the first ``cash`` of them in cash."""
    return pd.DataFrame(
        {
            "point_id": "P0",
            "occurred_at": [hour + pd.Timedelta(minutes=start + 2 * i) for i in range(n)],
            "amount": amount,
            "payment_method": ["cash" if i < cash else "qris" for i in range(n)],
            "status": "paid",
            "operator_id": operator,
            "payer_ref": [
                payer if payer else (None if i < cash else f"h{start}-{i}") for i in range(n)
            ],
        }
    )


def signals(*frames) -> pd.DataFrame:
    txns = pd.concat(frames, ignore_index=True)
    out = transaction_signals(txns, PTS, SCALES, OP_USUAL, FeatureConfig())
    return out.set_index("hour_start")


def test_the_operator_whose_cash_share_collapsed_is_named_and_scores_high():
    out = signals(
        sales(PLANTED, "A", 14, cash=0),  # A takes the cash sales' money: none recorded in cash
        sales(PLANTED, "B", 14, cash=9, start=1),
        sales(ORDINARY, "A", 14, cash=9),
        sales(ORDINARY, "B", 14, cash=9, start=1),
    )
    assert out.loc[PLANTED, "op_cash_id"] == "A"
    assert out.loc[PLANTED, "op_cash_z"] > 3
    assert out.loc[ORDINARY, "op_cash_z"] < 1
    assert out.loc[PLANTED, "operators_active"] == "A,B"


def test_one_payer_paying_again_and_again_in_an_hour_scores_high():
    out = signals(
        sales(PLANTED, "A", 7, cash=0, payer="h-same"),
        sales(ORDINARY, "A", 7, cash=0),
    )
    assert out.loc[PLANTED, "payer_ref_top"] == "h-same"
    assert out.loc[PLANTED, "payer_top"] == (7 - 3) * 2.0
    assert out.loc[ORDINARY, "payer_top"] == 0


def test_tiny_tickets_are_counted_against_the_points_usual_ticket():
    out = signals(
        sales(PLANTED, "A", 10, cash=10, amount=500),  # a tenth of the usual Rp 5.000
        sales(ORDINARY, "A", 10, cash=10),
    )
    assert out.loc[PLANTED, "tiny_n"] == 10
    assert out.loc[ORDINARY, "tiny_n"] == 0
