"""A drop still under way at the baseline's end is not "usual".

The usual levels are learnt from the weeks before the scored ones. Leakage that began a week or
two earlier and goes on (a third of a restaurant's sales left untapped from Christmas to the end
of the data) is in those weeks unless it was already flagged: it lowers the usual level and, as
it enters, widens the point's day-to-day spread, so the level-shift CUSUM sees a smaller drop
against a wider yardstick each week and never reaches its line (dev seed 24's RST-0008: the
spread 0.23 -> 0.38 over three weeks, the CUSUM held at 2.3-3.3 units).

Hours inside open cases are already kept out (``unusual_case_windows``); this keeps out a drop
that has not yet made a case: the baseline's last days, when they sit clearly below the point's
own earlier days and its peers did not fall with them. It is a two-sample test of the window's
tail against its head on the point's peer-relative daily sales, the tail's length chosen as the
one that reads strongest. The same window gives the same answer in a backfill and in an hourly
run (it reads only the baseline's own hours), so point in time holds.

Why the tail only: a drop that has ended is in the middle of the window, among weeks the
trimmed means and the day spread's median already discount; a drop still going is at the end,
where each new week adds to it and nothing discounts it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

# Chosen on the tune seeds 1-5 and the dev seeds 6-25 (docs/detection.md, session 18), from the
# tails the first form (3 days, 15%, 4 standard errors) found in the dev seeds' weekly
# baselines: 26 of 62 were at no leakage, most of those 3-5 days long at car parks (a regional
# day off the calendar does not know, then an ordinary weekend); a week and a fifth, at 3
# standard errors, read 8 such and 38 point-weeks of sustained under-reporting (28 before),
# which lasts weeks and is 26-57% deep. Below a week the day views (1, 3 and 7 days) and the
# CUSUM are the tools.
TAIL_MIN_DAYS = 7  # a tail shorter than a week is left to the day signals
HEAD_MIN_DAYS = 14  # complete days before the tail that say what the point's level was
MIN_DROP = 0.2  # a tail less than a fifth below the head is ordinary variation (or a drift)
# The tail's mean below the head's level by this many standard errors. Over 100 synthetic
# regencies of 40 ordinary points (tests/detection/test_baseline_shift.py's days), 0.3% of
# point-weeks read 3 (0.6% with 5-day tails).
DECIDE_Z = 3.0
SPREAD_FLOOR = 0.04  # no day-to-day spread is read smaller than this
MIN_TYPE_PEERS = 3  # points of the type that trade that day for their median to count


def tail_drops(days: pd.DataFrame) -> pd.Series:
    """Per point (``pos``) with a tail drop, the first local date of the tail (dates from it
    on are not usual).

    ``days``: the baseline's complete days, one row per (``pos``, ``local_date``), with the
    point's ``revenue_type`` and its sales ``cnt``."""
    if days.empty:
        return pd.Series(dtype="datetime64[ns]")
    rel = _peer_relative(days)
    table = rel.pivot(index="pos", columns="local_date", values="rel")
    sales = days.groupby("pos")["cnt"].median().reindex(table.index).to_numpy(dtype=float)
    values = table.to_numpy(dtype=float)
    first = _tail_starts(values, sales)
    found = first >= 0
    dates = table.columns.to_numpy()
    return pd.Series(dates[first[found]], index=table.index[found], name="tail_from")


def _peer_relative(days: pd.DataFrame) -> pd.DataFrame:
    """Each day's sales against the point's usual for that weekday (the median over the window)
    over the median of the same for its type's points that day (``rel``)."""
    weekday = pd.to_datetime(days["local_date"]).dt.day_of_week
    usual = days.groupby([days["pos"], weekday])["cnt"].transform("median")
    ratio = days["cnt"] / usual.where(usual > 0)
    grouped = ratio.groupby([days["revenue_type"], days["local_date"]])
    peers = grouped.transform("median").where(grouped.transform("count") >= MIN_TYPE_PEERS)
    rel = ratio / peers.where(peers > 0).fillna(1.0)
    return pd.DataFrame({"pos": days["pos"], "local_date": days["local_date"], "rel": rel})


def _tail_starts(values: np.ndarray, sales: np.ndarray) -> np.ndarray:
    """Per row of (point x day) ``values`` (NaN: no complete day), the column the strongest
    tail drop starts at, or -1. ``sales``: the point's median day's sales (its counting noise
    bounds the spread from below)."""
    n_days = values.shape[1]
    best_z = np.zeros(len(values))
    first = np.full(len(values), -1)
    poisson = 1.0 / np.sqrt(np.maximum(sales, 1.0))
    for start in range(HEAD_MIN_DAYS, n_days - TAIL_MIN_DAYS + 1):
        head, tail = values[:, :start], values[:, start:]
        n_head = np.sum(~np.isnan(head), axis=1)
        n_tail = np.sum(~np.isnan(tail), axis=1)
        usable = (n_head >= HEAD_MIN_DAYS) & (n_tail >= TAIL_MIN_DAYS)
        if not usable.any():
            continue
        with np.errstate(all="ignore"), warnings.catch_warnings():
            # A point with no day in a part, or none with a sale (its level 0): no tail, unsaid.
            warnings.simplefilter("ignore", RuntimeWarning)
            level = np.nanmedian(head, axis=1)
            spread = np.nanmedian(np.abs(head / level[:, None] - 1), axis=1) / 0.6745
            drop = 1 - np.nanmean(tail, axis=1) / level
            spread = np.maximum(np.maximum(np.nan_to_num(spread), poisson), SPREAD_FLOOR)
            z = drop / (spread * np.sqrt(1 / np.maximum(n_tail, 1) + 1 / np.maximum(n_head, 1)))
        better = usable & (level > 0) & (drop >= MIN_DROP) & (z >= DECIDE_Z) & (z > best_z)
        best_z = np.where(better, z, best_z)
        first = np.where(better, start, first)
    return first
