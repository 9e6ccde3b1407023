"""The level-shift CUSUM on tiny planted day series (no database): a sustained drop is raised
within three days whatever day it starts on (a holiday included) and stays raised while it
lasts; one bad day, ordinary noise and a small point's ordinary days are not a shift; a small
point's lasting drop is raised once a week of its sales makes the case."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.detection.features.change_points import level_shift
from pipeline.detection.features.day_signals import HISTORY_DAYS

DAYS = 28


def day_frame(rel, *, usual_cnt: float = 300.0, usual_rev: float = 1_500_000.0) -> pd.DataFrame:
    """One point's days: ``rel`` the day's revenue over usual x peers."""
    rel = np.asarray(rel, dtype=float)
    return pd.DataFrame(
        {
            "pos": 0,
            "local_date": pd.date_range("2026-03-01", periods=len(rel), freq="D").date,
            "rel": rel,
            "usual_cnt": usual_cnt,
            "rev": rel * usual_rev,
            "expected": usual_rev,
        }
    )


def _shift(frame, phi=0.1, weight=None):
    """Each day judged on its own snapshot, as ``day_signals`` builds them: the day and the
    ``HISTORY_DAYS`` before it (days before the series: no yardstick, no evidence)."""
    weight = np.ones(len(frame)) if weight is None else np.asarray(weight, dtype=float)
    lead = np.full(HISTORY_DAYS, np.nan)
    series = {
        column: np.concatenate([lead, frame[column].to_numpy(dtype=float)])
        for column in ("rel", "usual_cnt", "rev", "expected")
    }
    series["usual_cnt"][:HISTORY_DAYS] = frame["usual_cnt"].iloc[0]
    ordinary = np.concatenate([np.ones(HISTORY_DAYS), weight])
    rows = np.arange(len(frame))[:, None] + np.arange(HISTORY_DAYS + 1)[None, :]
    days = {column: values[rows] for column, values in series.items()}
    return level_shift(days, np.full(len(frame), phi), ordinary[rows])


def test_a_sustained_drop_starting_on_a_holiday_is_raised_within_three_days_and_stays():
    rng = np.random.default_rng(1)
    rel = 1 + rng.normal(0, 0.08, DAYS)
    start = 14  # a holiday: no evidence either way
    rel[start:] *= 0.67
    weight = np.ones(DAYS)
    weight[start] = 0.0
    out = _shift(day_frame(rel), weight=weight)
    assert (out["level_shift"].iloc[:start] < 3).all()
    raised = np.flatnonzero(out["level_shift"].to_numpy() >= 3)
    assert raised.min() <= start + 2  # within 1-3 days of the first day
    # and it does not fade as the drop goes on: every later day still raised
    assert (out["level_shift"].iloc[start + 2 :] >= 3).all()
    assert out["level_shift"].iloc[start] == 0  # nothing flagged on the holiday itself
    last = out.iloc[-1]
    assert last["shift_days"] >= 10
    assert last["shift_exp"] - last["shift_rev"] > 0.25 * last["shift_exp"]


def test_one_bad_day_is_not_a_level_shift():
    rel = np.ones(DAYS)
    rel[20] = 0.55  # a device off for the afternoon
    assert (_shift(day_frame(rel))["level_shift"] == 0).all()


def test_ordinary_noise_is_not_a_level_shift():
    rng = np.random.default_rng(7)
    rel = 1 + rng.normal(0, 0.1, 200)
    assert (_shift(day_frame(rel))["level_shift"] < 3).all()


def test_a_small_points_ordinary_days_are_not_a_shift_and_its_week_of_40pct_drop_is():
    """About one sale an hour (14 a day): a day is mostly counting noise, a week is not."""
    rng = np.random.default_rng(3)
    usual = 14.0
    counts = rng.poisson(usual, 120).astype(float)
    counts[-7:] = rng.poisson(usual * 0.6, 7)
    rel = counts / usual
    out = _shift(day_frame(rel, usual_cnt=usual, usual_rev=usual * 5000), phi=0.3)
    assert (out["level_shift"].iloc[:-7] < 3).all()
    assert out["level_shift"].iloc[-7:].max() >= 3


def test_days_without_a_yardstick_add_nothing():
    rel = np.full(DAYS, np.nan)
    out = _shift(day_frame(rel))
    assert (out["level_shift"] == 0).all() and (out["shift_days"] == 0).all()


def test_a_days_sales_spread_leaves_out_what_the_tickets_add():
    """A restaurant of 15 sales a day whose revenue varies 30% from day to day, most of it its
    tickets' spread: a third of its sales gone is raised sooner on the spread of its sales."""
    rng = np.random.default_rng(3)
    rel = 1 + rng.normal(0, 0.2, DAYS)
    start = 10
    rel[start:] *= 0.67
    frame = day_frame(rel, usual_cnt=15.0)
    lead = np.full(HISTORY_DAYS, np.nan)

    def first_raised(c_ticket):
        series = {c: np.concatenate([lead, frame[c].to_numpy(float)]) for c in frame.columns[2:]}
        series["usual_cnt"][:HISTORY_DAYS] = 15.0
        rows = np.arange(DAYS)[:, None] + np.arange(HISTORY_DAYS + 1)[None, :]
        days = {column: values[rows] for column, values in series.items()}
        weight = np.ones((DAYS, HISTORY_DAYS + 1))
        out = level_shift(days, np.full(DAYS, 0.3), weight, np.full(DAYS, c_ticket))
        raised = np.flatnonzero(out["level_shift"].to_numpy() >= 3)
        return raised.min() if len(raised) else DAYS

    assert first_raised(0.9) < first_raised(0.0)
    assert first_raised(0.9) <= start + 7


def test_the_cusum_reads_the_days_sales_not_their_revenue():
    from pipeline.detection.features.day_signals import _cusum_days

    usual_cnt = np.full((2, 3), 20.0)
    days = {
        "usual_cnt": usual_cnt,
        "usual": np.full((2, 3), 1_000_000.0),
        "day_peer": np.ones((2, 3)),
        "day_ratio": np.array([[1.0, 1.0, 1.0], [0.5, 0.5, 0.5]]),  # revenue
        "cnt": np.array([[13.0, 13.0, 13.0], [20.0, 20.0, 20.0]]),  # sales
        "rev": np.array([[1e6, 1e6, 1e6], [5e5, 5e5, 5e5]]),
        "any_n": np.ones((2, 3)),
    }
    rel = _cusum_days(days)["rel"]
    # A third of the sales unrecorded at a full revenue (bigger tickets) reads as the drop it is;
    # tickets shaved with every sale recorded is the ticket signals' business, not a shift.
    assert np.allclose(rel[0], 0.65) and np.allclose(rel[1], 1.0)


def test_low_days_after_a_drop_has_ended_make_their_own_case():
    # Ten days at half the sales, then ordinary days; on the fifth and sixth ordinary day two
    # low days (a fifth down). The ended drop's sum is still high then, and read at the run's
    # strength they were a level shift "every day for 15 days"; the ordinary days in between
    # said "usual" firmly enough that the drop is over, and two days a fifth down are no shift.
    rel = np.ones(DAYS)
    rel[4:14] = 0.5
    rel[18:20] = 0.8
    out = _shift(day_frame(rel))
    assert (out["level_shift"].iloc[6:14] >= 3).all()  # the drop itself, raised and kept
    assert (out["level_shift"].iloc[14:] < 3).all()
    assert out["shift_days"].iloc[19] <= 2


def test_one_ordinary_day_inside_a_drop_does_not_end_it():
    rel = np.full(DAYS, 1.0)
    rel[4:] = 0.6
    rel[12] = 1.0  # one day at its usual level in the middle of the drop
    out = _shift(day_frame(rel))
    assert (out["level_shift"].iloc[6:12] >= 3).all()
    # The day after it is no shift on its own (the day before it was not low); from the next
    # day on the drop is raised again.
    assert (out["level_shift"].iloc[14:] >= 3).all()
