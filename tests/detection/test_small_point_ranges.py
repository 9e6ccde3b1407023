"""Issue 13, point in time: whether a point is "small" (judged on its days, not its hours) is
the baseline's decision, so the same hours featured in two ranges against the same baseline get
the same ``small_shortfall``. It was read from the open hours in view (the range and the days
before it), which weigh the weekdays differently for a day alone and for a week."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.detection.features import compute_features
from tests.helpers.detect_fixtures import START, load_world, make_points, make_transactions

DAYS = 35
RETRAIN = START + pd.Timedelta(days=28)  # a Monday: the baseline is the four weeks before it
DROP_FROM = 28  # the near point sells half from the retrain moment on
BUSY, QUIET = 6.2, 1.6  # sales an open hour, Tuesdays and Wednesdays / the other days


def _near_the_line(pts: pd.DataFrame) -> pd.DataFrame:
    """A point of about ``BUSY`` sales an open hour on Tuesdays and Wednesdays and ``QUIET`` on
    the other days, half of them gone from ``DROP_FROM`` on. Its baseline slots average 2.9 (a
    small point); the open hours a Wednesday alone holds with the 15 days before it (Tuesdays
    and Wednesdays three times, the other days twice) averaged 3.3, and the ones of a Monday to
    Saturday with its 15 days before (three whole weeks) 2.9."""
    rng = np.random.default_rng(7)
    txns = make_transactions(pts, days=DAYS, seed=3)
    local = txns["occurred_at"].dt.tz_convert("Asia/Jakarta")
    weekday = local.dt.dayofweek.to_numpy()
    # make_transactions sells 14.4 x 0.6 an open hour at its first point, 1.2x at weekends.
    base = 14.4 * 0.6 * np.where(weekday >= 5, 1.2, 1.0)
    keep = np.where((weekday == 1) | (weekday == 2), BUSY, QUIET) / base
    day = ((txns["occurred_at"] - START) // pd.Timedelta(days=1)).to_numpy()
    keep = keep * np.where(day >= DROP_FROM, 0.5, 1.0)
    return txns[rng.random(len(txns)) < keep]


def test_a_point_near_the_small_line_gets_the_same_small_shortfall_in_any_range(engine):
    peers = make_points(6)
    near = make_points(1)
    near["point_id"] = ["R00"]
    pts = pd.concat([peers, near], ignore_index=True)
    txns = pd.concat(
        [make_transactions(peers, days=DAYS, seed=2), _near_the_line(near)], ignore_index=True
    )
    load_world(engine, pts, txns)
    wednesday = START + pd.Timedelta(days=30)
    # The Wednesday alone, and inside the week from Monday: the same baseline (RETRAIN).
    alone = compute_features(
        engine, wednesday, wednesday + pd.Timedelta(days=1), baseline_end=RETRAIN
    )
    in_week = compute_features(
        engine,
        wednesday - pd.Timedelta(days=2),
        wednesday + pd.Timedelta(days=4),
        baseline_end=RETRAIN,
    )
    columns = ["point_id", "hour_start", "small_shortfall"]
    day_alone = alone.loc[alone["point_id"] == "R00", columns].reset_index(drop=True)
    same_day = in_week.loc[
        (in_week["point_id"] == "R00")
        & (in_week["hour_start"] >= wednesday)
        & (in_week["hour_start"] < wednesday + pd.Timedelta(days=1)),
        columns,
    ].reset_index(drop=True)
    pd.testing.assert_frame_equal(day_alone, same_day, check_exact=True)
    # Small by its slots (and its days short): the drop shows, whichever range it is read in.
    assert day_alone["small_shortfall"].max() >= 3
