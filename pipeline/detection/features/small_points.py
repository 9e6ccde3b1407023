"""Small points (issue 13 part 5): a point with about one sale an hour cannot be judged hour by
hour, but a few days of it can. Its sales over the last days (today so far included) are
counted against what was usual for those days times what its peers did on them, and the
shortfall is read from the Poisson lower tail, over-dispersed by the point's own day-to-day
spread beyond counting noise.

Why a count over days and not the hour's revenue: at 1-2 sales an hour even a silent hour is
not one noise unit down (P(0 sales | 1 expected) = 0.37), and a third of the sales missing is
three noise units only once about 80 sales were expected (0.33 x sqrt(80) ~ 3): 3-7 days at a
point of 12-25 sales a day. So the view runs over ``HORIZONS_DAYS``; each horizon's tail is
read at the same ``min_evidence`` as every other feature and the strongest one counts (the
shortest horizon that shows a drop shows it soonest: a day for a device off all day, a week
for a third of the sales gone). The look-elsewhere cost of four nested horizons is about a
factor two on the tail (nested windows are strongly correlated), below the factor the one-sided
3-unit threshold leaves.

Only while today is itself below its expectation (the horizon says how sure, today says it is
still going on), so a flag does not outlive the leakage by a week. Holidays and regional
events (weight 0: trade moves differently then), days the peers were closed and days before
the point's first sale in view count for nothing, neither way.

Point in time: each scored hour's snapshot holds the complete days before its day and its day
so far (``day_signals``), so this reads nothing after the hour.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.detection.features.config import SCALE_DEFAULTS
from pipeline.detection.features.noise_units import poisson_shortfall
from pipeline.detection.features.peers import CLOSED_PEERS

# Days (today included) the sales are summed over: a whole bad day, a few days, a week, two.
HORIZONS_DAYS = (1, 3, 7, 14)
# A point whose usual sales per open hour are below this cannot be judged hour by hour: a
# third of an hour's sales missing is one noise unit at about 9 expected, and a silent hour
# reaches three units (P < 0.0013) only from about 7 expected sales.
SMALL_HOURLY = 3.0
# The least extra (non-Poisson) day-to-day spread of a point's trade assumed: weekday and
# trend effects the usual level does not hold exactly.
MIN_EXTRA_SPREAD = 0.05
# Ordinary trade drifts (a point's trend over weeks, a season its usual level has not learnt
# yet): the shortfall is measured from this share below the expectation, so a drift of a few
# tenths over a fortnight is not read as leakage (on the tune seeds the 14-day view flagged a
# small car park drifting 20% down for a week without it). Leakage takes a quarter or more.
SLACK = 0.1
# Today counts in the horizons only once this share of its usual trade is in view (before, they
# are the complete days before it): a morning's few sales against a usual profile learnt from
# about one sale per slot is no day (the tune seeds' small entertainment points, silent on a
# Saturday afternoon before their evening trade).
MIN_TODAY_SHARE = 0.5
SMALL_COLUMNS = ["small_shortfall", "small_days", "small_cnt", "small_expected"]


def small_points(slots: pd.DataFrame, frame: pd.DataFrame) -> pd.Series:
    """Per point (``pos``) of ``frame``, whether its hours are too thin to judge one by one: its
    usual sales per open hour below ``SMALL_HOURLY``, the mean of its open slots' usual sales
    (``slots``: the baseline's, per point and local hour of the week; open: the registry's
    hours, which ``frame``'s ``is_open`` carries) with each slot counted once.

    Each slot once, and not each hour in view: ``frame`` holds the range and the days before
    it, so a day alone and the same day inside a week weigh the weekdays differently, and a
    point near the line was small in one and not in the other (a 40-point x 8-week simulation:
    one restaurant's ``small_shortfall`` differed in 42 of 15,740 hours between ranges; issue
    13: a backfill must flag what the hourly runs flag). So the decision is the baseline's,
    the same for every range judged against it."""
    open_slots = frame.loc[frame["is_open"], ["pos", "how"]].drop_duplicates()
    usual = open_slots.merge(slots[["pos", "how", "usual_cnt"]], on=["pos", "how"], how="left")
    per_hour = usual["usual_cnt"].where(usual["usual_cnt"] > 0).groupby(usual["pos"]).mean()
    points = pd.Index(frame["pos"].unique(), name="pos")
    return per_hour.reindex(points).fillna(0.0) < SMALL_HOURLY


def horizon_shortfall(
    days: dict[str, np.ndarray],
    pos: np.ndarray,
    scales: pd.DataFrame,
    weight: np.ndarray,
    small: pd.Series,
) -> pd.DataFrame:
    """For each snapshot's today (a row of ``days``' (snapshot x day) matrices, oldest day first,
    today last; ``pos`` its point): the strongest one-sided shortfall z of its sales over
    ``HORIZONS_DAYS`` (``small_shortfall``; 0 at points that are not ``small``) and the
    horizon's days, sales and expected sales (for the reasons). Indexed by snapshot.

    ``days`` measures used: cnt, usual_cnt, day_peer, any_n, share; ``weight`` per day, 1 on an
    ordinary day and 0 on a holiday or regional event."""
    n, rows_per = weight.shape
    out = pd.DataFrame(0.0, index=pd.RangeIndex(n, name="snapshot"), columns=SMALL_COLUMNS)
    if n == 0:
        return out
    # Peers lower the expectation (a holiday, rain, a closure move every point), never raise
    # it: their ratio is the median of bigger points, and a small point that did not share
    # their busy day is weak evidence of a loss (the tune seeds' Boxing Day false alarms).
    peer = np.minimum(days["day_peer"], 1.0)
    started = np.cumsum(days["any_n"], axis=1) > 0
    counts = (weight > 0) & started & (peer >= CLOSED_PEERS)
    observed = np.where(counts, days["cnt"], 0.0)
    expected = np.where(counts, days["usual_cnt"] * peer, 0.0)
    # Newest day first: column j is j days before today.
    observed = observed[:, ::-1]
    expected = expected[:, ::-1]
    used = counts[:, ::-1].astype(float)
    late = days["share"][:, -1] >= MIN_TODAY_SHARE
    # Today so far must be short of its own expectation (and be a day that counts).
    today_down = (used[:, 0] > 0) & (observed[:, 0] < expected[:, 0])
    is_small = small.reindex(pos).fillna(False).to_numpy(dtype=bool)
    # Before half of today is in view, the horizons are the complete days, which their own hours
    # raised: a morning after a drop has ended is not more of it (dev seeds' false alarms).
    keep = np.flatnonzero(today_down & is_small & late)
    # The horizons only of those snapshots (row by row, so the same figures): the others read 0
    # whatever their horizons say, and they are most of them (four Poisson tails each).
    best = _best_horizon(
        observed[keep],
        expected[keep],
        used[keep],
        np.asarray(pos)[keep],
        scales,
        late[keep],
        rows_per,
    )
    for column, values in zip(SMALL_COLUMNS, best, strict=True):
        full = np.zeros(n)
        full[keep] = values
        out[column] = full
    return out


def _best_horizon(
    observed: np.ndarray,
    expected: np.ndarray,
    used: np.ndarray,
    pos: np.ndarray,
    scales: pd.DataFrame,
    late: np.ndarray,
    rows_per: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per snapshot (rows of the newest-first day matrices), the strongest of its horizons'
    shortfall z, and that horizon's days, sales and expected sales (0 where none is short)."""
    n = len(pos)
    phi = pd.Series(pos).map(scales["phi_day_own"]).fillna(SCALE_DEFAULTS["phi_day"]).to_numpy()
    c_ticket = pd.Series(pos).map(scales["c_ticket"]).fillna(SCALE_DEFAULTS["c_ticket"]).to_numpy()
    # How many of each weekday the usual day was learnt from (a new baseline: four).
    weeks = np.clip(pd.Series(pos).map(scales["history_days"]).fillna(28).to_numpy() / 7, 1, 8)
    cum_obs, cum_exp, cum_days = (np.cumsum(a, axis=1) for a in (observed, expected, used))
    best = np.zeros(n)
    best_days = np.zeros(n)
    best_obs = np.zeros(n)
    best_exp = np.zeros(n)
    for h in HORIZONS_DAYS:
        if h >= rows_per:
            break
        # Until half of today is in view, the horizon is the h complete days before it.
        obs, exp, days = (
            np.where(late, cum[:, h - 1], cum[:, h] - cum[:, 0])
            for cum in (cum_obs, cum_exp, cum_days)
        )
        per_day = exp / np.maximum(days, 1.0)
        # The day-to-day spread beyond counting noise (the point's own, in-sample day spread
        # holds both: the sales' Poisson noise and their tickets' spread; not phi_day, which
        # holds the usual's error too, added below), and what it adds to h days' variance.
        extra = np.maximum(
            phi**2 - (1 + c_ticket**2) / np.maximum(per_day, 1.0), MIN_EXTRA_SPREAD**2
        )
        # ... and the error of the usual itself: each weekday's usual day is a mean of ``weeks``
        # days of a few sales, the same error on every such weekday in view (at 8 sales a
        # day learnt from four weeks, about 18%: more than the day-to-day spread beyond
        # counting noise; the tune seeds' small entertainment points after Christmas).
        weekdays = np.clip(days, 1.0, 7.0)
        learnt = (1.0 / np.maximum(per_day, 1.0) + extra) / (weeks * weekdays)
        dispersion = np.sqrt(1.0 + exp * (extra / np.maximum(days, 1.0) + learnt))
        z = poisson_shortfall(obs, (1.0 - SLACK) * exp, dispersion)
        better = z > best
        best = np.where(better, z, best)
        best_days = np.where(better, days, best_days)
        best_obs = np.where(better, obs, best_obs)
        best_exp = np.where(better, exp, best_exp)
    return best, best_days, best_obs, best_exp


def small_point_down(rows: pd.DataFrame, min_evidence: float) -> pd.Series:
    """Flagged hours of a small point whose days are short (``small_shortfall`` at
    ``min_evidence``) and that sold less than expected themselves: such an hour cannot be some
    noise units down on its own, but it is one of the hours the shortfall is made of (the
    hours at or above their expectation are not flagged for it)."""
    return (rows["small_shortfall"] >= min_evidence) & (rows["gross_paid"] < rows["expected_rev"])


def thin_silence(frame: pd.DataFrame, min_evidence: float) -> pd.Series:
    """Silent hours flagged for their small point's days (``small_shortfall``) whose silence is
    not itself ``min_evidence`` strong: at about a sale an hour a silent hour or two is
    ordinary, so such an hour is one of the days' missing sales (under-reporting, volume
    evidence: a case once seen on three days), not a device off (a case at once)."""
    silent = (frame["txn_count"] == 0) & (frame["void_count"] + frame["refund_count"] == 0)
    return silent & (frame["small_shortfall"] >= min_evidence) & (frame["silence"] < min_evidence)
