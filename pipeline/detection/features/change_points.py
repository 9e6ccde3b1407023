"""Level shifts: a one-sided CUSUM on each point's peer-relative daily revenue ratio.

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
chunked backfill and an hourly run see the same statistic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.detection.features.config import CAP
from pipeline.detection.features.rolling import rolling_min

SHIFT = 0.3  # the drop the CUSUM is tuned to: a third of a day's revenue missing
LEVEL_SHIFT_DAYS = 14  # the CUSUM's window: the longest run of days it sums
CARRIED = 1.0  # log-likelihood ratio the days before today must already have gathered
DECIDE = (
    6.0  # the log-likelihood ratio (about 400 to 1 for "a third lower") that reads as 3 noise units
)


def level_shift(day: pd.DataFrame, phi_day: pd.Series, weight: np.ndarray) -> pd.DataFrame:
    """Per (point, local day) row of ``day`` (sorted by pos, local_date; ``rel`` the day's revenue
    / (usual x peers), ``usual_cnt``, ``rev``, ``expected``): the CUSUM in noise units
    (``level_shift``, 3 x sqrt(log-likelihood ratio / ``DECIDE``), 0 on days that do not look
    shifted themselves or are the first such day), the days the shift has run (``shift_days``) and its recorded and
    expected revenue over them (``shift_rev``, ``shift_exp``). ``weight`` is what each day's
    evidence counts for (0 on holidays and regional events: trade moves differently then, so
    such a day neither starts, feeds nor ends a shift)."""
    # A day's spread: its own day-to-day spread, or the Poisson spread of its usual sales when
    # that is larger (a small point's day is mostly counting noise).
    sigma = np.sqrt(np.maximum(phi_day**2, 1.0 / day["usual_cnt"].clip(lower=1.0))).clip(lower=0.05)
    r = SHIFT / sigma
    # One unusually busy day does not wipe out a week of evidence (a robust CUSUM: each day
    # counts for at most 1.5 noise units in favour of "usual").
    z = ((1.0 - day["rel"]) / sigma).clip(lower=-1.5)
    increment = (r * z - r**2 / 2).where(day["rel"].notna(), 0.0)
    increment = increment.to_numpy() * weight
    work = pd.DataFrame({"pos": day["pos"].to_numpy(), "cusum": increment}, index=day.index)
    work["cusum"] = work.groupby("pos")["cusum"].cumsum()
    first = work["pos"] != work["pos"].shift()
    work["before"] = work.groupby("pos")["cusum"].shift(1).where(~first, 0.0)
    lowest = rolling_min(work, ["pos"], ["before"], LEVEL_SHIFT_DAYS)["before"]
    statistic = (work["cusum"] - lowest).clip(lower=0.0)
    days = _run_length(work["pos"].to_numpy(), (statistic > 0).to_numpy())
    # A shift is a day that looks shifted itself after days that already made a case for it
    # (the sum was at least ``CARRIED`` the day before): one bad day (a device off for the
    # afternoon) is the hour and day signals' business.
    first = work["pos"] != work["pos"].shift()
    carried = statistic.groupby(work["pos"]).shift(1).where(~first, 0.0).fillna(0.0)
    # ... and the ordinary day before it was low too: after a real drop has ended the sum decays
    # slowly, and a single noisy low day then re-fired it at the whole run's strength (the tune
    # seeds' level-shift false alarms after an event; false alarms 7.6 -> 6.3 per 1,000).
    low = pd.Series(increment > 0, index=day.index).astype(float).where(weight > 0)
    low_before = low.groupby(work["pos"]).shift(1).groupby(work["pos"]).ffill().fillna(0.0)
    shifted = (increment > 0) & (carried >= CARRIED) & (low_before > 0).to_numpy()
    out = pd.DataFrame(index=day.index)
    out["level_shift"] = np.clip(3.0 * np.sqrt(statistic.where(shifted, 0.0) / DECIDE), 0, CAP)
    out["shift_days"] = days
    for name, column in (("shift_rev", "rev"), ("shift_exp", "expected")):
        total = day[column].fillna(0.0).groupby(day["pos"]).cumsum().to_numpy()
        index = np.arange(len(day))
        begin = index - days
        pos = work["pos"].to_numpy()
        same = (begin >= 0) & (pos[np.maximum(begin, 0)] == pos)
        earlier = np.where(same, total[np.maximum(begin, 0)], 0.0)
        out[name] = np.where(days > 0, total - earlier, 0.0)
    return out


def _run_length(pos: np.ndarray, on: np.ndarray) -> np.ndarray:
    """For each row, how many consecutive rows of the same point ending here are ``on``."""
    out = np.zeros(len(on), dtype=np.int64)
    for i in range(len(on)):
        if on[i]:
            out[i] = out[i - 1] + 1 if i > 0 and pos[i - 1] == pos[i] else 1
    return out
