"""Issue 13 part 5 on tiny planted day series (no database): a small point's lasting loss of
sales is raised once its days make the case, its ordinary days are not, and holidays, busy
peers and big points are left to their own rules."""

from __future__ import annotations

import numpy as np
import pandas as pd

import tests.helpers.day_tables_reference as reference
from pipeline.detection.features.day_signals import HISTORY_DAYS
from pipeline.detection.features.small_points import horizon_shortfall, small_point_down

DAYS = 60
ROWS = HISTORY_DAYS + 1


def snapshots_of(cnt, *, usual: float, peer=None, weight=None):
    """One snapshot per day from day ``HISTORY_DAYS`` on (a row of each (snapshot x day)
    matrix): its ``HISTORY_DAYS`` days before and the day itself, complete (share 1), as
    ``day_signals`` builds them."""
    cnt = np.asarray(cnt, dtype=float)
    peer = np.ones(len(cnt)) if peer is None else np.asarray(peer, dtype=float)
    weight = np.ones(len(cnt)) if weight is None else np.asarray(weight, dtype=float)
    rows = np.concatenate(
        [np.arange(d - HISTORY_DAYS, d + 1) for d in range(HISTORY_DAYS, len(cnt))]
    )
    rows = rows.reshape(-1, ROWS)
    days = {
        "cnt": cnt[rows],
        "usual_cnt": np.full(rows.shape, usual),
        "day_peer": peer[rows],
        "any_n": cnt[rows] + 1,
        "share": np.ones(rows.shape),
    }
    return days, weight[rows]


def run(cnt, *, usual=12.0, small=True, peer=None, weight=None, phi=0.3):
    days, w = snapshots_of(cnt, usual=usual, peer=peer, weight=weight)
    scales = pd.DataFrame({"phi_day_own": [phi], "c_ticket": [0.5], "history_days": [56]})
    pos = np.zeros(len(w), dtype=np.int64)
    out = horizon_shortfall(days, pos, scales, w, pd.Series([small]))
    return out["small_shortfall"].to_numpy()


def test_a_small_points_lasting_loss_of_40pct_is_raised_within_a_week_and_stays():
    """About one sale an hour (12 a day): no day shows it, a few days do."""
    rng = np.random.default_rng(5)
    cnt = rng.poisson(12.0, DAYS).astype(float)
    start = 40
    cnt[start:] = rng.poisson(12.0 * 0.6, DAYS - start)
    z = run(cnt)
    before, during = z[: start - HISTORY_DAYS], z[start - HISTORY_DAYS :]
    assert (before < 3).all()
    assert np.flatnonzero(during >= 3).min() <= 6
    # Raised on most of the later days: only a day that is not itself short is let off.
    assert (during[7:] >= 3).mean() >= 0.7


def test_a_small_points_ordinary_days_are_not_a_shortfall():
    rng = np.random.default_rng(11)
    cnt = rng.poisson(12.0, 2_000).astype(float)
    z = run(cnt)
    assert (z >= 3).mean() < 0.005


def test_a_holiday_today_is_no_evidence_and_busy_peers_raise_no_expectation():
    rng = np.random.default_rng(2)
    cnt = rng.poisson(12.0, DAYS).astype(float)
    cnt[-1] = 0.0
    weight = np.ones(DAYS)
    weight[-1] = 0.0  # the silent last day is a holiday
    assert run(cnt, weight=weight)[-1] == 0
    # Every day ordinary, its peers at 160% of their usual: no shortfall for not following.
    cnt = rng.poisson(12.0, DAYS).astype(float)
    assert (run(cnt, peer=np.full(DAYS, 1.6)) < 3).all()


def test_a_point_big_enough_to_judge_by_the_hour_is_left_to_the_hour_and_day_rules():
    cnt = np.full(DAYS, 300.0)
    cnt[-10:] = 150.0
    assert (run(cnt, usual=300.0, small=False, phi=0.1) == 0).all()


def test_only_the_hours_that_sold_less_than_expected_are_down_for_their_days():
    rows = pd.DataFrame(
        {
            "small_shortfall": [4.0, 4.0, 2.0],
            "gross_paid": [0.0, 90_000.0, 0.0],
            "expected_rev": [40_000.0, 40_000.0, 40_000.0],
        }
    )
    assert small_point_down(rows, 3.0).tolist() == [True, False, False]


def test_the_morning_after_a_small_points_loss_carries_none_of_it_until_half_the_day_is_in_view():
    """The dev seeds' false alarms the morning after an event: before half of today is in view
    its horizons are the complete days before it, which their own hours raised already."""
    rng = np.random.default_rng(5)
    cnt = rng.poisson(12.0, DAYS).astype(float)
    cnt[40:-1] = rng.poisson(12.0 * 0.6, DAYS - 41)  # the loss, up to yesterday
    days, weight = snapshots_of(cnt, usual=12.0)
    scales = pd.DataFrame({"phi_day_own": [0.3], "c_ticket": [0.5], "history_days": [56]})
    pos = np.zeros(len(weight), dtype=np.int64)

    def today(share: float, sold: float) -> float:
        days["share"][-1, -1] = share
        days["usual_cnt"][-1, -1] = 12.0 * share
        days["cnt"][-1, -1] = sold
        out = horizon_shortfall(days, pos, scales, weight, pd.Series([True]))
        return float(out["small_shortfall"].iloc[-1])

    assert today(0.2, 1.0) == 0  # a morning a sale short of its usual 2.4
    assert today(0.6, 4.0) >= 3  # the afternoon still short: the loss goes on


def _every_snapshot_figured(
    days: dict[str, np.ndarray],
    pos: np.ndarray,
    scales: pd.DataFrame,
    weight: np.ndarray,
    small: pd.Series,
) -> pd.DataFrame:
    """The plain form: every snapshot's horizons figured, then kept where they count
    (``day_tables_reference.horizon_shortfall``, on the same days laid out a row per day)."""
    n, rows_per = weight.shape
    snapshots = pd.DataFrame(
        {
            "snapshot": np.repeat(np.arange(n), rows_per),
            "pos": np.repeat(pos, rows_per),
            **{column: days[column].ravel() for column in days},
        }
    )
    return reference.horizon_shortfall(snapshots, scales, weight.ravel(), small)


def test_horizon_shortfall_figures_only_the_kept_snapshots_with_the_same_figures():
    rng = np.random.default_rng(11)
    n, rows_per = 3000, HISTORY_DAYS + 1
    usual = rng.uniform(2, 30, (n, rows_per))
    days = {
        "cnt": rng.poisson(usual * rng.uniform(0.3, 1.2, (n, 1))).astype(float),
        "usual_cnt": usual,
        "day_peer": rng.uniform(0.1, 1.4, (n, rows_per)),
        "any_n": rng.poisson(0.9, (n, rows_per)).astype(float),
        "share": rng.uniform(0, 1, (n, rows_per)),
    }
    weight = (rng.random((n, rows_per)) < 0.9).astype(float)
    pos = rng.integers(0, 6, n)
    scales = pd.DataFrame(
        {
            "phi_day_own": [0.2, 0.3, np.nan, 0.1, 0.25, 0.4],
            "c_ticket": [0.5, np.nan, 0.4, 0.6, 0.3, 0.5],
            "history_days": [56, 21, 7, 56, 0, 40],
        }
    )
    small = pd.Series([True, True, True, False, True, True])
    got = horizon_shortfall(days, pos, scales, weight, small)
    expected = _every_snapshot_figured(days, pos, scales, weight, small)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert (got["small_shortfall"] > 3).sum() > 10  # some snapshots are short
    assert (got["small_shortfall"] == 0).sum() > n / 2  # most are not kept
