"""The day-to-day spread a point's days are judged with (``phi_day``) is their error against a
usual learnt without them: leave one out, not the in-sample residuals of a median of four."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.detection.features.baseline import (
    _leave_one_out_usual,
    _trimmed_mean,
    _usual_days,
)


def test_leave_one_out_usual_is_the_trimmed_mean_of_the_other_days_of_its_group():
    rng = np.random.default_rng(3)
    values = pd.Series(rng.normal(100.0, 20.0, 120))
    group = pd.Series(rng.integers(0, 20, 120))  # groups of about 2 to 12 rows
    group.iloc[[0, 119]] = [98, 99]  # and two of one row, one of them sorted last
    got = _leave_one_out_usual(values, group)
    for row in range(len(values)):
        others = values[(group == group[row]) & (values.index != row)]
        if others.empty:
            assert np.isnan(got[row])
            continue
        expected = _trimmed_mean(others.groupby(np.zeros(len(others)))).iloc[0]
        assert got[row] == pytest.approx(expected)


def _four_weeks_of_days(points: int, spread: float, seed: int) -> pd.DataFrame:
    """``points`` busy points' hours over four weeks: each day's trade a lognormal ``spread``
    around the same level (no weekly rhythm, no trend), spread evenly over its 24 hours."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2025-11-03", periods=28, freq="D")
    day_level = 2_400_000.0 * rng.lognormal(0.0, spread, (points, len(dates)))
    pos = np.repeat(np.arange(points), len(dates) * 24)
    local_date = np.tile(np.repeat(dates, 24), points)
    rev = np.repeat(day_level.ravel() / 24, 24)
    return pd.DataFrame({"pos": pos, "local_date": local_date, "rev": rev, "cnt": rev / 20_000})


def test_the_day_spread_of_a_four_week_baseline_is_the_spread_a_new_day_shows():
    # Four weeks: each weekday's usual is the median of four days. Against it, a new day of
    # the same point strays by the day spread and the usual's own error together; the spread
    # must say so, or a busy point reads two ordinary low days as several noise units down.
    spread = 0.12
    work = _four_weeks_of_days(points=60, spread=spread, seed=11)
    scales = _usual_days(work, pd.DataFrame(index=pd.RangeIndex(60, name="pos")))
    # What a fifth week's day strays from the four weeks' usual, measured on fresh days.
    rng = np.random.default_rng(12)
    usual = np.median(rng.lognormal(0.0, spread, (200_000, 4)), axis=1)
    new_day = rng.lognormal(0.0, spread, 200_000)
    predictive = np.quantile(np.abs(new_day / usual - 1), 0.5) / 0.6745
    assert scales["phi_day"].median() == pytest.approx(predictive, rel=0.15)
