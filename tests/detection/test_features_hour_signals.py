"""The hour-level feature maths on tiny planted frames (no database): each signal scores the
planted point-hour high and an ordinary one about zero."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.detection.features import FeatureConfig, damp_of
from pipeline.detection.features.hour_signals import hour_signals, silence

HOUR = pd.Timestamp("2026-03-03 03:00", tz="UTC")
N_POINTS = 8
USUAL_CNT, TICKET = 20.0, 5000.0


def hour_frame(hours: int = 1, **overrides) -> pd.DataFrame:
    """``N_POINTS`` parking lots of one peer group, ``hours`` ordinary open hours each: 20 sales
    of Rp 5.000 where 20 are usual, 65% cash, no voids. ``overrides`` maps a column to
    {point: value} for point 0..7 (every hour of that point)."""
    pos = np.repeat(np.arange(N_POINTS), hours)
    frame = pd.DataFrame(
        {
            "pos": pos,
            "point_id": [f"P{p}" for p in pos],
            "hour_start": np.tile(pd.date_range(HOUR, periods=hours, freq="h"), N_POINTS),
            "is_open": True,
            "peer_group": "parking|Kota",
            "revenue_type": "parking",
            "holiday": None,
            "txn_count": USUAL_CNT,
            "gross_paid": USUAL_CNT * TICKET,
            "cash_amount": 0.65 * USUAL_CNT * TICKET,
            "void_count": 0.0,
            "refund_count": 0.0,
            "usual_cnt": USUAL_CNT,
            "usual_rev": USUAL_CNT * TICKET,
            "usual_ticket": TICKET,
            "point_ticket": TICKET,
            "usual_cash": 0.65,
            "usual_void": 0.02,
            "s_cnt": 1.0,
            "s_rev": 1.0,
            "c_ticket": 0.3,
            "s_cash": 1.0,
        }
    )
    for column, values in overrides.items():
        for point, value in values.items():
            frame.loc[frame["pos"] == point, column] = value
    return frame


def scored(frame: pd.DataFrame, config: FeatureConfig | None = None) -> pd.DataFrame:
    return hour_signals(frame.copy(), config or FeatureConfig())


@pytest.mark.parametrize(
    ("feature", "planted"),
    [
        # Sales and revenue fall to a fifth of usual while peers trade normally.
        ("rev_drop", {"txn_count": {0: 4.0}, "gross_paid": {0: 4 * TICKET}}),
        ("count_drop", {"txn_count": {0: 4.0}, "gross_paid": {0: 4 * TICKET}}),
        # Usual sales at half the usual ticket.
        ("ticket_drop", {"gross_paid": {0: USUAL_CNT * TICKET / 2}}),
        # No cash at all where 65% is usual.
        ("cash_drop", {"cash_amount": {0: 0.0}}),
        # Eight voids beside twenty sales where 2% is usual.
        ("void_excess", {"void_count": {0: 8.0}}),
    ],
)
def test_a_planted_hour_scores_high_and_an_ordinary_one_about_zero(feature, planted):
    out = scored(hour_frame(**planted))
    assert out.loc[out["pos"] == 0, feature].iloc[0] > 4
    assert out.loc[out["pos"] == 1, feature].iloc[0] < 1


@pytest.mark.parametrize("peers_level", [1.0, 0.25])
def test_a_drop_counts_against_what_peers_did_in_the_same_hour(peers_level):
    """Point 0 sells a quarter of its usual: alone, that is a drop; when every peer is down alike (a
    holiday, a rain dip), the expectation moves with them and it is not."""
    others = {p: USUAL_CNT * peers_level for p in range(1, N_POINTS)}
    frame = hour_frame(
        txn_count={0: USUAL_CNT / 4, **others},
        gross_paid={0: USUAL_CNT / 4 * TICKET, **{p: n * TICKET for p, n in others.items()}},
    )
    drop = scored(frame).loc[lambda f: f["pos"] == 0, "rev_drop"].iloc[0]
    if peers_level == 1.0:
        assert drop > 3
    else:
        assert drop < 1


def test_a_run_of_silent_open_hours_pools_its_expected_sales():
    """Five open hours without a sale where ten were expected each: the run's later hours score
    far higher than one quiet hour would, point in time (each hour pools the run up to itself,
    so its first hour scores what one quiet hour does), and the hours of a point that traded
    score zero."""
    frame = hour_frame(hours=5, txn_count={0: 0.0}, gross_paid={0: 0.0}, cash_amount={0: 0.0})
    frame["expected_cnt"] = 10.0
    expected_open = frame["is_open"] & (frame["usual_cnt"] > 0)
    z = silence(frame, expected_open)
    planted, normal = z[frame["pos"] == 0], z[frame["pos"] == 1]
    assert (np.diff(planted) >= 0).all() and planted[-1] > 8 and (normal == 0).all()
    one_hour = frame[frame["hour_start"] == HOUR].reset_index(drop=True)
    single = silence(one_hour, expected_open[frame["hour_start"] == HOUR].reset_index(drop=True))
    assert single[0] == pytest.approx(planted[0]) and single[0] < planted[-1]


@pytest.mark.parametrize("damping", [0.6, 0.2, 1.0])
def test_volume_evidence_on_a_holiday_is_damped_by_the_runs_config(damping):
    config = FeatureConfig(holiday_damping=damping)
    planted = {"txn_count": {0: 4.0}, "gross_paid": {0: 4 * TICKET}}
    ordinary = scored(hour_frame(**planted), config)
    holiday = scored(hour_frame(**planted, holiday={p: "Nyepi" for p in range(N_POINTS)}), config)
    for feature in ("rev_drop", "count_drop"):
        assert holiday[feature].iloc[0] == pytest.approx(ordinary[feature].iloc[0] * damping)
    assert damp_of(holiday, config).tolist() == [damping] * N_POINTS
    assert damp_of(ordinary, config).tolist() == [1.0] * N_POINTS


def test_on_a_holiday_by_default_a_silent_point_and_a_low_hour_give_no_volume_evidence():
    """Issue 13 (no flag on a public holiday): each point's holiday trade moves its own way
    (closing early, a family day), so by default an hour's drop or silence then is no evidence
    of a loss. What the transactions themselves show still is: an hour of voids on the same
    holiday scores as on any day."""
    silent = {"txn_count": {0: 0.0}, "gross_paid": {0: 0.0}, "cash_amount": {0: 0.0}}
    voids = {"void_count": {1: 12.0}}
    on_holiday = {"holiday": {p: "Hari Raya Nyepi" for p in range(N_POINTS)}}
    ordinary = scored(hour_frame(hours=3, **silent, **voids))
    holiday = scored(hour_frame(hours=3, **silent, **voids, **on_holiday))
    point0 = ordinary["pos"] == 0
    assert ordinary.loc[point0, "silence"].iloc[-1] > 5  # the planted silence is strong
    for feature in ("silence", "rev_drop", "count_drop"):
        assert (holiday.loc[point0, feature] == 0).all(), feature
    point1 = ordinary["pos"] == 1
    assert (ordinary.loc[point1, "void_excess"] > 3).all()
    assert (
        holiday.loc[point1, "void_excess"].tolist() == ordinary.loc[point1, "void_excess"].tolist()
    )


@pytest.mark.parametrize(("peers_level", "device_off"), [(1.0, True), (0.1, False)])
def test_a_silent_point_is_a_device_off_only_while_its_peers_trade(peers_level, device_off):
    """Point 0 sells nothing for three open hours. With its peers trading that is a device
    off; with every peer at a tenth of its usual and none quite silent (a regional day off the
    calendar does not know: most lots closed, a few selling a little) it is closed with them:
    no silence and no volume drop (issue 13 part 4, the peers are the evidence)."""
    others = {p: round(USUAL_CNT * peers_level) for p in range(1, N_POINTS)}
    frame = hour_frame(
        hours=3,
        txn_count={0: 0.0, **others},
        gross_paid={0: 0.0, **{p: n * TICKET for p, n in others.items()}},
        cash_amount={0: 0.0, **{p: 0.65 * n * TICKET for p, n in others.items()}},
    )
    out = scored(frame)
    silent = out[out["pos"] == 0]
    assert bool(silent["peers_closed"].all()) is not device_off
    if device_off:
        assert silent["silence"].iloc[-1] > 5
    else:
        assert (silent[["silence", "rev_drop", "count_drop"]] == 0).all().all()
