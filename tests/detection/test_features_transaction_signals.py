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


def _two_zone_day() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Points in Jakarta (UTC+7) and Jayapura (UTC+9), a local day of each with two operators,
    voids late in a shift, cash refunds of QRIS sales and one payer paying again and again."""
    pts = pd.DataFrame({"point_id": ["P0", "P1"], "timezone": ["Asia/Jakarta", "Asia/Jayapura"]})
    frames = []
    for point in ("P0", "P1"):
        for hour in pd.date_range(PLANTED - pd.Timedelta(hours=4), periods=10, freq="h"):
            for operator, start in (("A", 0), ("B", 1)):
                frame = sales(hour, operator, 9, cash=5, start=start, amount=7000)
                frames.append(frame.assign(point_id=point))
        late = PLANTED + pd.Timedelta(hours=3, minutes=30)
        voids = sales(late, "A", 5, cash=5).assign(point_id=point, status="void")
        refunds = sales(late, "B", 3, cash=3, amount=7000).assign(point_id=point, status="refund")
        payer = sales(PLANTED, "A", 6, cash=0, payer="h-same", start=1).assign(point_id=point)
        frames += [voids, refunds, payer]
    return pts, pd.concat(frames, ignore_index=True)


def test_each_hour_reads_its_local_day_only_up_to_its_end_in_every_timezone():
    """One pass over a range gives each point-hour what the transactions up to that hour's end
    alone give (an hourly run), once per point-hour, whatever the point's timezone: a pass per
    local hour of the day once gave a Jayapura point's hours twice, the second copy reading
    two hours past them."""
    pts, txns = _two_zone_day()
    scales = pd.DataFrame({"point_ticket": [5000.0, 5000.0]}, index=pd.RangeIndex(2, name="pos"))
    usual = pd.concat([OP_USUAL, OP_USUAL.assign(point_id="P1")], ignore_index=True)
    bulk = transaction_signals(txns, pts, scales, usual, FeatureConfig())
    assert not bulk.duplicated(["point_id", "hour_start"]).any()
    assert bulk["shift_end_z"].max() > 3 and bulk["cash_refund_z"].max() > 3
    for hour in bulk["hour_start"].unique():
        known = txns[txns["occurred_at"] < hour + pd.Timedelta(hours=1)]
        alone = transaction_signals(known, pts, scales, usual, FeatureConfig())
        expected = alone[alone["hour_start"] == hour].reset_index(drop=True)
        got = bulk[bulk["hour_start"] == hour].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_an_ordinary_slack_shift_at_a_busy_point_is_not_an_operators_cash_short():
    """A busy point's day is busy or slack as a whole: an operator's cash a quarter under usual
    on one day (under two of the point's day-to-day spreads) read over three noise units short
    on counting noise alone; it stays under the evidence gate, and cash 60% short still scores
    high."""
    from pipeline.detection.features.operator_signals import _shortest_cash_run

    expected = 2_000_000.0  # 400 tickets of Rp 5.000 in the operator's hours that day
    so_far = pd.DataFrame(
        {
            "point_id": ["P0", "P0"],
            "hour_start": [PLANTED, PLANTED],
            "operator_id": ["A", "B"],
            "local_date": [PLANTED.normalize()] * 2,
            "point_ticket": [5000.0, 5000.0],
            "s_rev": [1.5, 1.5],
            "phi_day": [0.15, 0.15],
            "obs": [0.75 * expected, 0.4 * expected],
            "exp": [expected, expected],
        }
    )
    # No earlier working days: the day alone, whichever view reads it.
    earlier = so_far[["point_id", "operator_id", "local_date"]].assign(
        obs_2=0.0, exp_2=0.0, days_2=0.0, obs_4=0.0, exp_4=0.0, days_4=0.0
    )
    z = _shortest_cash_run(so_far, earlier)["op_short_z"].tolist()
    assert z[0] < 3.0 < 5.0 < z[1]
