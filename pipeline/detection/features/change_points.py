"""Level shifts: a one-sided CUSUM on each point's peer-relative daily sales ratio.

Sales (the count), not revenue: leakage that leaves sales unrecorded lowers both alike, and the
count does not carry the tickets' spread (a restaurant's day of 15 sales varies about a third
more in revenue than in sales). The rupiah the shift has cost (``shift_rev``, ``shift_exp``) is
still summed in revenue.

A drop that starts on some day and continues (a third of the sales left unrecorded every day)
is weak evidence on any one day at a small point and becomes "usual" if it lasts long enough
for the baseline to learn it. The cumulative sum of each day's log-likelihood ratio between
"the day is at its usual level" and "the day is ``SHIFT`` lower" grows by about the same amount
every day the drop lasts, whatever day it started on, and falls back to zero once the days look
usual again.

Why CUSUM and not Page-Hinkley: Page-Hinkley measures a drift against the running mean of the
series itself, which here would be the leakage once it has lasted; CUSUM compares each day
with a fixed reference (the point's usual level from before, times what its peers did that day),
which this pipeline already has, and its log-likelihood-ratio increments weigh a day by how much
its volume supports (a point with 12 sales a day adds little per day and needs about a week, a
busy one two days). The sum runs over a fixed window of the last ``LEVEL_SHIFT_DAYS`` days, so a
chunked backfill and an hourly run see the same statistic: each day is judged on its own
snapshot of days (``day_signals``), one row of a (snapshot x day) matrix, oldest day first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.detection.features.config import CAP

SHIFT = 0.3  # the drop the CUSUM is tuned to: a third of a day's revenue missing
LEVEL_SHIFT_DAYS = 14  # the CUSUM's window: the longest run of days it sums
CARRIED = 1.0  # log-likelihood ratio the days before today must already have gathered
DECIDE = (
    6.0  # the log-likelihood ratio (about 400 to 1 for "a third lower") that reads as 3 noise units
)


def level_shift(
    days: dict[str, np.ndarray],
    phi_day: np.ndarray,
    weight: np.ndarray,
    c_ticket: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per snapshot (a row of ``days``' (snapshot x day) matrices, oldest day first, the day
    judged last; ``rel`` the day's sales / (usual x peers), ``usual_cnt``, ``rev``,
    ``expected``), for its last day: the CUSUM in noise units (``level_shift``, 3 x
    sqrt(log-likelihood ratio / ``DECIDE``), 0 on days that do not look shifted themselves or
    are the first such day), the days the shift has run (``shift_days``) and its recorded and
    expected revenue over them (``shift_rev``, ``shift_exp``). ``phi_day`` per snapshot;
    ``weight`` per day, what its evidence counts for (0 on holidays and regional events: trade
    moves differently then, so such a day neither starts, feeds nor ends a shift).
    ``c_ticket`` per snapshot: the point's ticket spread, what tickets add to ``phi_day`` (its
    day spread of revenue) that a day's sales do not have (None: nothing)."""
    rel = days["rel"]
    n, width = rel.shape
    # A day's spread of sales: its day-to-day spread of revenue less what the tickets add to it
    # (their spread over the day's sales), or the Poisson spread of its usual sales when that is
    # larger (a small point's day is mostly counting noise).
    poisson = 1.0 / np.maximum(days["usual_cnt"], 1.0)
    c_ticket = np.zeros(n) if c_ticket is None else np.asarray(c_ticket, dtype=float)
    counted = phi_day[:, None] ** 2 - c_ticket[:, None] ** 2 * poisson
    sigma = np.maximum(np.sqrt(np.maximum(counted, poisson)), 0.05)
    r = SHIFT / sigma
    # One unusually busy day does not wipe out a week of evidence (a robust CUSUM: each day
    # counts for at most 1.5 noise units in favour of "usual").
    z = np.maximum((1.0 - rel) / sigma, -1.5)
    increment = np.where(np.isnan(rel), 0.0, r * z - r**2 / 2) * weight
    cusum = _running_sum(increment)
    before = np.column_stack([np.zeros(n), cusum[:, :-1]])
    # The lowest the sum stood at before each day, over the window's days (the days before the
    # snapshot's first are no part of it): a running minimum until the window is full.
    lowest = np.minimum.accumulate(before, axis=1)
    for day in range(LEVEL_SHIFT_DAYS, width):
        lowest[:, day] = before[:, day - LEVEL_SHIFT_DAYS + 1 : day + 1].min(axis=1)
    statistic = np.maximum(cusum - lowest, 0.0)
    run = _run_length(statistic > 0)
    # A shift is a day that looks shifted itself after days that already made a case for it
    # (the sum was at least ``CARRIED`` the day before): one bad day (a device off for the
    # afternoon) is the hour and day signals' business.
    carried = statistic[:, -2] if width > 1 else np.zeros(n)
    # ... and the ordinary day before it was low too: after a real drop has ended the sum decays
    # slowly, and a single noisy low day then re-fired it at the whole run's strength (the tune
    # seeds' level-shift false alarms after an event; false alarms 7.6 -> 6.3 per 1,000).
    low = np.where(weight > 0, (increment > 0).astype(float), np.nan)
    low_before = np.zeros(n)
    for day in range(width - 1):
        low_before = np.where(np.isnan(low[:, day]), low_before, low[:, day])
    last = increment[:, -1]
    shifted = (last > 0) & (carried >= CARRIED) & (low_before > 0)
    out = pd.DataFrame(index=pd.RangeIndex(n))
    out["level_shift"] = np.clip(
        3.0 * np.sqrt(np.where(shifted, statistic[:, -1], 0.0) / DECIDE), 0, CAP
    )
    shift_days = run[:, -1]
    out["shift_days"] = shift_days
    for name, column in (("shift_rev", "rev"), ("shift_exp", "expected")):
        values = days[column]
        total = _running_sum(np.where(np.isnan(values), 0.0, values))
        # The last ``shift_days`` days: the sum to today less the sum before they began.
        begin = width - 1 - shift_days
        earlier = np.where(begin >= 0, total[np.arange(n), np.maximum(begin, 0)], 0.0)
        out[name] = np.where(shift_days > 0, total[:, -1] - earlier, 0.0)
    return out


def _running_sum(values: np.ndarray) -> np.ndarray:
    """The running sum along each row, compensated (Kahan) as pandas' grouped ``cumsum`` is (the
    first form of these days, one frame row per day, summed so): the same numbers to the last
    bit. It matters at a tie: a sum back at its low by a rounding error above it is a day of
    a run (``shift_days``)."""
    total = np.zeros(len(values))
    compensation = np.zeros(len(values))
    out = np.empty_like(values)
    for day in range(values.shape[1]):
        step = values[:, day] - compensation
        summed = total + step
        compensation = (summed - total) - step
        total = summed
        out[:, day] = summed
    return out


def _run_length(on: np.ndarray) -> np.ndarray:
    """Per (row, day), how many consecutive days of the row ending there are ``on``."""
    run = np.zeros(on.shape, dtype=np.int64)
    for day in range(on.shape[1]):
        previous = run[:, day - 1] if day > 0 else 0
        run[:, day] = np.where(on[:, day], previous + 1, 0)
    return run
