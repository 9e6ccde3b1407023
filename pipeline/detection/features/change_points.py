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
# The log-likelihood ratio that reads as 3 noise units: e^3.5, about 33 to 1 for "a third
# lower". It was 6 (400 to 1) while the day spread was read in sample, at about half its size.
# With the spread a new day shows (``baseline``'s ``phi_day``), the dev seeds 6-25 lost nine
# events at 6 (session 14), caught main's at 4 and two more at 3.5. At 3 the CUSUM's own test
# fails (one of a small point's ordinary days reads 3): over 60 series of 106 Poisson days of
# 14 sales, 0.41% of ordinary days read 3 at a line of 3, 0.20% at 3.5, 0.05% at 4.
DECIDE = 3.5
# The log-likelihood ratio the days after a peak must take off the sum for the shift to be
# over (``_reference``): as much evidence for "usual" as it takes to decide a shift.
RELEASE = DECIDE


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
    day spread of revenue) that a day's sales do not have (None: nothing).

    Each snapshot on its own days: ``shared_level_shift`` with every row its own complete days."""
    history = {name: values[:, :-1] for name, values in days.items()}
    today = {name: values[:, -1] for name, values in days.items()}
    history["weight"], today["weight"] = weight[:, :-1], weight[:, -1]
    return shared_level_shift(history, today, np.arange(len(phi_day)), phi_day, c_ticket)


# long: the CUSUM's steps in order, each on the complete days once and on today per snapshot.
def shared_level_shift(
    history: dict[str, np.ndarray],
    today: dict[str, np.ndarray],
    row: np.ndarray,
    phi_day: np.ndarray,
    c_ticket: np.ndarray | None = None,
) -> pd.DataFrame:
    """``level_shift`` of snapshots that share their complete days: ``history`` holds each
    set of complete days once ((days set x day) matrices, oldest first: the measures of
    ``level_shift`` and ``weight``; ``phi_day`` and ``c_ticket`` per set), ``today`` each
    snapshot's day judged (one value per snapshot and measure), ``row`` each snapshot's set.

    The same numbers as one (snapshot x day) matrix per measure, to the last bit (the same
    operations on the same values, the running sums carried from the complete days into
    today), at a fraction of the work and memory: the 24 hours of a day share their complete
    days, and figuring them for every hour, in fresh (snapshot x day) matrices, was a sixth of
    a backfill's feature time (most of it the kernel mapping fresh memory)."""
    n = len(row)
    width = history["rel"].shape[1]  # the complete days; today is the day after them
    phi_day = np.asarray(phi_day, dtype=float)
    c_ticket = np.zeros(len(phi_day)) if c_ticket is None else np.asarray(c_ticket, dtype=float)
    increment = _increments(history, phi_day[:, None], c_ticket[:, None])
    today_increment = _increments(today, phi_day[row], c_ticket[row])
    cusum, state = _running_sum(increment)
    today_cusum = _running_sum(today_increment[:, None], _rows(state, row))[0][:, 0]
    # The sum before each day: 0 before the first, then the complete days' (today's is theirs).
    before = np.column_stack([np.zeros(len(cusum)), cusum])
    lowest = _reference(before)
    statistic = np.maximum(cusum - lowest[:, :width], 0.0)
    today_statistic = np.maximum(today_cusum - lowest[row, width], 0.0)
    run = _run_length(statistic > 0)
    previous = run[row, -1] if width else 0
    today_run = np.where(today_statistic > 0, previous + 1, 0)
    # A shift is a day that looks shifted itself after days that already made a case for it
    # (the sum was at least ``CARRIED`` the day before): one bad day (a device off for the
    # afternoon) is the hour and day signals' business.
    carried = statistic[row, -1] if width else np.zeros(n)
    # ... and the ordinary day before it was low too: after a real drop has ended the sum decays
    # slowly, and a single noisy low day then re-fired it at the whole run's strength (the tune
    # seeds' level-shift false alarms after an event; false alarms 7.6 -> 6.3 per 1,000).
    low = np.where(history["weight"] > 0, (increment > 0).astype(float), np.nan)
    low_before = np.zeros(len(low))
    for day in range(width):
        low_before = np.where(np.isnan(low[:, day]), low_before, low[:, day])
    shifted = (today_increment > 0) & (carried >= CARRIED) & (low_before[row] > 0)
    out = pd.DataFrame(index=pd.RangeIndex(n))
    out["level_shift"] = np.clip(
        3.0 * np.sqrt(np.where(shifted, today_statistic, 0.0) / DECIDE), 0, CAP
    )
    out["shift_days"] = today_run
    for name, column in (("shift_rev", "rev"), ("shift_exp", "expected")):
        total, state = _running_sum(zero_nan(history[column]))
        today_total = _running_sum(zero_nan(today[column])[:, None], _rows(state, row))[0][:, 0]
        # The last ``shift_days`` days: the sum to today less the sum before they began.
        begin = width - today_run
        earlier = (
            np.where(begin >= 0, total[row, np.clip(begin, 0, width - 1)], 0.0)
            if width
            else np.zeros(n)
        )
        out[name] = np.where(today_run > 0, today_total - earlier, 0.0)
    return out


def _reference(before: np.ndarray) -> np.ndarray:
    """Per row and day, the level the day's statistic is measured from: the lowest the sum
    stood at before the day over the window's days (the days before the snapshot's first are
    no part of it) - or, once the sum has fallen from its latest peak in the window by
    ``RELEASE``, the lowest since that peak.

    Why the second: after a drop has ended the sum decays slowly (an ordinary day takes off
    r^2 / 2), and a low day or two then read at the whole run's strength ("48% below every day
    for 14 days" four days after a ten-day drop ended: the dev seeds' most common false
    level shift). Days that have said "usual" as firmly as a shift is decided mean the drop is
    over; a new one must make its own case. A drop that goes on never falls that far, so it
    reads as before."""
    lowest = np.empty_like(before)
    columns = np.arange(before.shape[1])
    for day in range(before.shape[1]):
        window = before[:, max(day - LEVEL_SHIFT_DAYS + 1, 0) : day + 1]
        # The latest peak: the last column holding the window's maximum.
        peak_at = window.shape[1] - 1 - np.argmax(window[:, ::-1], axis=1)
        peak = window[np.arange(len(window)), peak_at]
        after_peak = np.where(columns[None, : window.shape[1]] >= peak_at[:, None], window, np.inf)
        since = after_peak.min(axis=1)
        lowest[:, day] = np.where(peak - since >= RELEASE, since, window.min(axis=1))
    return lowest


def _increments(days: dict[str, np.ndarray], phi_day, c_ticket) -> np.ndarray:
    """Each day's log-likelihood ratio of "``SHIFT`` lower" to "usual", times its weight."""
    rel = days["rel"]
    # A day's spread of sales: its day-to-day spread of revenue less what the tickets add to it
    # (their spread over the day's sales), or the Poisson spread of its usual sales when that is
    # larger (a small point's day is mostly counting noise).
    poisson = 1.0 / np.maximum(days["usual_cnt"], 1.0)
    counted = phi_day**2 - c_ticket**2 * poisson
    sigma = np.maximum(np.sqrt(np.maximum(counted, poisson)), 0.05)
    r = SHIFT / sigma
    # One unusually busy day does not wipe out a week of evidence (a robust CUSUM: each day
    # counts for at most 1.5 noise units in favour of "usual").
    z = np.maximum((1.0 - rel) / sigma, -1.5)
    return np.where(np.isnan(rel), 0.0, r * z - r**2 / 2) * days["weight"]


def zero_nan(values: np.ndarray) -> np.ndarray:
    """``values`` with 0 where they are NaN (a day with no yardstick adds nothing)."""
    return np.where(np.isnan(values), 0.0, values)


def _rows(state: tuple[np.ndarray, np.ndarray], row: np.ndarray):
    return tuple(part[row] for part in state)


def _running_sum(
    values: np.ndarray, state: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The running sum along each row, compensated (Kahan) as pandas' grouped ``cumsum`` is (the
    first form of these days, one frame row per day, summed so): the same numbers to the last
    bit. It matters at a tie: a sum back at its low by a rounding error above it is a day of
    a run (``shift_days``). ``state``: the (sum, compensation) of the days before the first
    column (none: zero); the state after the last is returned beside the sums, so later days
    continue the same sum."""
    if state is None:
        state = (np.zeros(len(values)), np.zeros(len(values)))
    total, compensation = state
    out = np.empty_like(values)
    for day in range(values.shape[1]):
        step = values[:, day] - compensation
        summed = total + step
        compensation = (summed - total) - step
        total = summed
        out[:, day] = summed
    return out, (total, compensation)


def _run_length(on: np.ndarray) -> np.ndarray:
    """Per (row, day), how many consecutive days of the row ending there are ``on``."""
    run = np.zeros(on.shape, dtype=np.int64)
    for day in range(on.shape[1]):
        previous = run[:, day - 1] if day > 0 else 0
        run[:, day] = np.where(on[:, day], previous + 1, 0)
    return run
