"""The day horizons as first written, one table of 15 day-rows per scored hour (main at
007cc3f: ``day_signals``, ``change_points.level_shift`` and ``small_points.horizon_shortfall``):
the reference ``tests/detection/test_day_tables.py`` holds the shared-days form against. Slow
(every complete day figured again for each of its 24 hours) but plain: each hour's snapshot is
built and judged on its own rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.detection.features.change_points import CARRIED, DECIDE, LEVEL_SHIFT_DAYS, SHIFT
from pipeline.detection.features.config import CAP, HORIZONS, SCALE_DEFAULTS, FeatureConfig

# What each hour adds to its day is the same in both forms; the forms differ in how days are shared.
from pipeline.detection.features.day_signals import (
    DAY_COLUMNS,
    DAY_PEER_LEVELS,
    DAY_SUMS,
    HISTORY_DAYS,
    _hour_parts,
)
from pipeline.detection.features.hour_signals import damp_of, expected_open
from pipeline.detection.features.noise_units import poisson_shortfall
from pipeline.detection.features.peers import (
    CLOSED_PEERS,
    COMMON_ORDINARY,
    common_movement,
    peer_keys,
    peer_median_error,
)
from pipeline.detection.features.rolling import rolling_min, rolling_sum
from pipeline.detection.features.small_points import (
    HORIZONS_DAYS,
    MIN_EXTRA_SPREAD,
    MIN_TODAY_SHARE,
    SLACK,
    SMALL_COLUMNS,
    small_points,
)


def day_signals(
    frame: pd.DataFrame,
    slots: pd.DataFrame,
    scales: pd.DataFrame,
    config: FeatureConfig,
    *,
    scored_from: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """``frame`` with each hour's local-day figures and the day features (holiday-damped), for
    the hours from ``scored_from`` on (all of ``frame``'s without it; NaN/0 before it);
    ``frame`` must hold the ``HISTORY_DAYS`` complete local days before them (``DAY_LEAD``)."""
    parts = _hour_parts(frame)
    whole_days = _day_totals(parts)
    # Every point at each moment some point is scored: the peers of a day are the same points
    # whichever hours are scored with it.
    scored = frame["is_open"] | (parts["any_n"] > 0)
    if scored_from is not None:
        scored &= frame["hour_start"] >= scored_from
    wanted = frame["hour_start"].isin(frame.loc[scored, "hour_start"].unique())
    so_far = _day_so_far(parts, wanted)
    snapshots = _snapshots(whole_days, so_far)
    snapshots = _usual_whole_days(snapshots, slots, scales)
    ordinary = _ordinary_days(snapshots, frame)
    snapshots = _horizon_drops(snapshots, scales, ordinary)
    phi = snapshots["pos"].map(scales["phi_day"]).fillna(0.15)
    by_snapshot = snapshots.assign(pos=snapshots["snapshot"])
    c_ticket = snapshots["pos"].map(scales["c_ticket"]).fillna(0.5)
    snapshots = snapshots.join(level_shift(by_snapshot, phi, ordinary, c_ticket))
    small = horizon_shortfall(snapshots, scales, ordinary, small_points(slots, frame))
    today = snapshots[snapshots["today"]].set_index("snapshot").join(small)
    today["level_shift"] = today["level_shift"].where(today["share"] >= MIN_TODAY_SHARE, 0.0)
    today = today.rename(columns={"rev": "day_rev", "usual": "day_usual"})
    for column in DAY_COLUMNS:
        frame[column] = np.nan
        frame.loc[so_far.index, column] = today[column].reindex(so_far["snapshot"]).to_numpy()
    expected = expected_open(frame)
    for column in ("day_drop", "ticket_day_drop", "level_shift", "small_shortfall"):
        frame[column] = frame[column].where(expected, 0).fillna(0)
    damp = damp_of(frame, config)
    frame["day_drop"] = frame["day_drop"] * damp
    frame["ticket_day_drop"] = frame["ticket_day_drop"] * damp
    return frame


def _day_totals(parts: pd.DataFrame) -> pd.DataFrame:
    """Per point and local date, the sums of its hours."""
    return parts.groupby(
        ["pos", "local_date", "peer_group", "revenue_type"], as_index=False, sort=True
    )[DAY_SUMS].sum()


def _day_so_far(parts: pd.DataFrame, wanted: pd.Series) -> pd.DataFrame:
    """For each wanted hour, its local day's sums up to the end of that hour; one snapshot id
    per hour, and the hour's UTC start (what its peers are compared at)."""
    ordered = parts.sort_values(["pos", "hour_start"])
    running = ordered.groupby(["pos", "local_date"], sort=False)[DAY_SUMS].cumsum()
    so_far = ordered[["pos", "local_date", "hour_start", "peer_group", "revenue_type"]].join(
        running
    )
    so_far = so_far[wanted.reindex(so_far.index)]
    so_far["snapshot"] = np.arange(len(so_far))
    return so_far


def _snapshots(whole_days: pd.DataFrame, so_far: pd.DataFrame) -> pd.DataFrame:
    """One table of days per wanted hour: the ``HISTORY_DAYS`` complete days of its point before
    its day, then its day so far (``today``), sorted by snapshot and date. ``peer_key`` joins
    the rows of one day at one moment (what ``peer_median`` groups on)."""
    n = len(so_far)
    offsets = np.arange(HISTORY_DAYS, 0, -1)
    keyed = whole_days.set_index(["pos", "local_date"])
    dates = so_far["local_date"].to_numpy().astype("datetime64[D]")
    earlier_dates = dates[:, None] - offsets[None, :].astype("timedelta64[D]")
    pos = np.repeat(so_far["pos"].to_numpy(), len(offsets))
    earlier_index = pd.MultiIndex.from_arrays([pos, earlier_dates.ravel()])
    earlier = keyed.reindex(earlier_index).reset_index(drop=True)
    earlier["pos"] = pos
    earlier["local_date"] = earlier_dates.ravel()
    earlier["snapshot"] = np.repeat(so_far["snapshot"].to_numpy(), len(offsets))
    earlier["moment"] = np.repeat(so_far["hour_start"].to_numpy(), len(offsets))
    earlier["order"] = np.tile(np.arange(len(offsets)), n)
    earlier["today"] = False
    # Days the grid does not reach (before the data) are days without sales or usual levels.
    missing = earlier["peer_group"].isna()
    earlier.loc[missing, DAY_SUMS] = 0.0
    for column in ("peer_group", "revenue_type"):
        earlier[column] = earlier[column].fillna(
            pd.Series(so_far[column].to_numpy().repeat(len(offsets)))
        )
    today = so_far.rename(columns={"hour_start": "moment"}).assign(order=len(offsets), today=True)
    snapshots = pd.concat([earlier, today.reset_index(drop=True)], ignore_index=True)
    snapshots = snapshots.sort_values(["snapshot", "order"], kind="stable").reset_index(drop=True)
    moment_code = pd.factorize(snapshots["moment"])[0].astype(np.int64)
    snapshots["peer_key"] = moment_code * (len(offsets) + 1) + snapshots["order"].to_numpy()
    snapshots["source"] = _earlier_day_sources(so_far, len(offsets) + 1)
    return snapshots


def _earlier_day_sources(so_far: pd.DataFrame, rows_per_snapshot: int) -> np.ndarray:
    """Per snapshot row, the row that holds the same figures and the same peers: itself for
    today, and for an earlier complete day the row of the first moment whose snapshots hold the
    same points on the same local dates (the 24 hours of a day share their earlier days, and
    those days' peers with them). The peer medians are taken over the source rows only."""
    days = so_far["local_date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    point_day = so_far["pos"].to_numpy().astype(np.int64) * 1_000_000 + days
    moment = pd.factorize(so_far["hour_start"])[0]
    # The points and local dates of each moment's snapshots, as one code per moment.
    order = np.lexsort((point_day, moment))
    members = pd.Series(point_day[order]).groupby(moment[order]).agg(tuple)
    alike = pd.Series(pd.factorize(members)[0], index=members.index)
    snapshot = so_far["snapshot"].to_numpy()
    first = (
        pd.Series(snapshot)
        .groupby([alike.reindex(moment).to_numpy(), so_far["pos"].to_numpy()])
        .transform("min")
        .to_numpy()
    )
    rows = np.arange(len(so_far) * rows_per_snapshot)
    within = rows % rows_per_snapshot
    earlier_source = first[rows // rows_per_snapshot] * rows_per_snapshot + within
    return np.where(within == rows_per_snapshot - 1, rows, earlier_source)


def _ordinary_days(snapshots: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """Per snapshot row, 1 on an ordinary day and 0 on a holiday or regional event."""
    special = frame["holiday"].notna().groupby([frame["pos"], frame["local_date"]]).any()
    keys = pd.MultiIndex.from_arrays(
        [snapshots["pos"], snapshots["local_date"].to_numpy().astype("datetime64[D]")]
    )
    on_holiday = special.reindex(keys).fillna(False).to_numpy(dtype=bool)
    return np.where(on_holiday, 0.0, 1.0)


def _usual_whole_days(day: pd.DataFrame, slots: pd.DataFrame, scales: pd.DataFrame) -> pd.DataFrame:
    """The usual day (per weekday), times the share of it that the hours in view usually make
    (the whole day for earlier days, the hours so far for today)."""
    slot_day = (
        slots.assign(weekday=slots["how"] // 24).groupby(["pos", "weekday"])["usual_rev"].sum()
    )
    weekday = pd.to_datetime(day["local_date"]).dt.dayofweek.to_numpy()
    in_view = day["usual_in_view"].to_numpy()
    whole = slot_day.reindex(pd.MultiIndex.from_arrays([day["pos"], weekday])).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.clip(np.nan_to_num(in_view / whole, nan=1.0), 0, 1)
    day["share"] = share
    pos = day["pos"].to_numpy()
    for measure, column in (("rev", "usual"), ("cnt", "usual_cnt")):
        table = scales[[f"day_{measure}_{w}" for w in range(7)]].to_numpy()
        whole_day = table[pos, weekday]
        # Without enough complete days (a new point) the summed hourly usuals stand in.
        day[column] = np.where(np.isfinite(whole_day), whole_day * share, day[column])
    return day


def _horizon_drops(day: pd.DataFrame, scales: pd.DataFrame, ordinary: np.ndarray) -> pd.DataFrame:
    """Revenue and average ticket of the last 1, 3 and 7 days against usual x peers (the
    revenue's peers read as a common movement against the spread of the snapshot's earlier
    ordinary days), per snapshot; the day's own figures go with them for the reasons."""
    phi = day["pos"].map(scales["phi_day"]).fillna(0.15)
    c_ticket = day["pos"].map(scales["c_ticket"]).fillna(0.5)
    source = day["source"].to_numpy()
    own = source == np.arange(len(day))
    peers = day.loc[own, ["peer_group", "revenue_type"]].assign(hour_start=day["peer_key"][own])
    at_source = (np.cumsum(own) - 1)[source]
    keys = peer_keys(peers, DAY_PEER_LEVELS)

    def median_of(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """The peer median of each row's group and its squared error, taken once per group of
        source rows."""
        median, error = peer_median_error(peers, values[own], values[own].notna(), 3, keys=keys)
        median = median.fillna(1.0).clip(lower=0.05).to_numpy()
        return median[at_source], error.to_numpy()[at_source]

    def peer_of(values: pd.Series, spread: np.ndarray | None = None) -> pd.Series:
        median, error = median_of(values)
        if spread is not None:
            median = np.clip(common_movement(median, error, spread), 0.05, None)
        return pd.Series(median, index=day.index)

    # The spread of the peers' common movement: over each snapshot's earlier ordinary days,
    # how far their median strayed from 1 less what its error explains.
    median, error = median_of((day["rev"] / day["usual"]).where(day["usual"] > 0))
    earlier = (~day["today"].to_numpy()) & (ordinary > 0) & np.isfinite(error)
    moments = pd.DataFrame(
        {
            "gap2": np.where(earlier, (median - 1.0) ** 2, np.nan),
            "se2": np.where(earlier, error, np.nan),
        }
    ).groupby(day["snapshot"].to_numpy())
    excess = (moments["gap2"].mean() - moments["se2"].mean()).fillna(0.0)
    spread = np.sqrt(excess.clip(lower=COMMON_ORDINARY**2)).reindex(day["snapshot"]).to_numpy()

    z_rev, z_ticket = {}, {}
    for h in HORIZONS:
        rolled = rolling_sum(day, ["snapshot"], DAY_SUMS, h)
        ratio = (rolled["rev"] / rolled["usual"]).where(rolled["usual"] > 0)
        peer = peer_of(ratio, spread)
        # The days in view, today counted by the share of it so far: a morning is noisier
        # than a whole day (its spread phi_day is a whole day's).
        days = rolling_sum(day, ["snapshot"], ["share"], h)["share"].clip(lower=0.25)
        sd = np.sqrt(phi**2 / days + 1.5 / rolled["usual_cnt"].clip(lower=1))
        z_rev[h] = ((ratio / peer - 1) / sd).fillna(0)
        if h == 1:
            # A day the peers were closed on (a regional event the calendar does not know) is
            # no yardstick: divided by peers clipped at 5%, a point closed with them read as
            # several noise units down. No day drop then (and so none of the longer views,
            # which count only while the day itself is down).
            z_rev[h] = z_rev[h].where(peer >= CLOSED_PEERS, 0.0)
        ticket = (rolled["ticket_rev"] / rolled["at_usual_ticket"]).where(
            (rolled["ticket_cnt"] >= 3) & (rolled["at_usual_ticket"] > 0)
        )
        peer_t = peer_of(ticket)
        sd_t = np.sqrt(c_ticket**2 / rolled["ticket_cnt"].clip(lower=1) + 0.03**2)
        z_ticket[h] = ((ticket / peer_t - 1) / sd_t).fillna(0)
        if h == 1:
            day["day_ratio"], day["day_peer"], day["day_ticket_ratio"] = ratio, peer, ticket
            # What the level-shift CUSUM reads: the day's sales against usual x peers.
            # Days before the point's first transaction in view are no evidence: it was not
            # there yet (or the data starts later).
            started = day.groupby("snapshot")["any_n"].cumsum() > 0
            # ... nor are days the peers were closed too (a holiday the calendar does not know).
            sales = (rolled["cnt"] / rolled["usual_cnt"]).where(rolled["usual_cnt"] > 0)
            day["rel"] = (sales / peer).where(started & (peer >= CLOSED_PEERS))
            day["expected"] = rolled["usual"] * peer
    late = day["share"] >= MIN_TODAY_SHARE
    day["day_drop"] = _sustained_drop(z_rev, late)
    day["ticket_day_drop"] = _sustained_drop(z_ticket, late)
    return day


def _sustained_drop(z: dict[int, pd.Series], late: pd.Series) -> np.ndarray:
    """The day's one-sided drop, or the 3 or 7 days' when larger, but those only while the day
    itself is down (more than one noise unit) and half of it is in view."""
    down = (-z[1] > 1.0) & late
    longer = np.maximum(-z[3], -z[7])
    return np.clip(np.maximum(-z[1], np.where(down, longer, 0.0)), 0, CAP)


def level_shift(
    day: pd.DataFrame, phi_day: pd.Series, weight: np.ndarray, c_ticket: pd.Series
) -> pd.DataFrame:
    """Per (point, local day) row of ``day`` (sorted by pos, local_date; ``rel`` the day's sales
    / (usual x peers), ``usual_cnt``, ``rev``, ``expected``): the CUSUM in noise units
    (``level_shift``, 3 x sqrt(log-likelihood ratio / ``DECIDE``), 0 on days that do not look
    shifted themselves or are the first such day), the days the shift has run (``shift_days``) and its recorded and
    expected revenue over them (``shift_rev``, ``shift_exp``). ``weight`` is what each day's
    evidence counts for (0 on holidays and regional events: trade moves differently then, so
    such a day neither starts, feeds nor ends a shift)."""
    # A day's spread of sales: its day-to-day spread of revenue less what the tickets add to it,
    # or the Poisson spread of its usual sales when that is larger.
    poisson = 1.0 / day["usual_cnt"].clip(lower=1.0)
    counted = phi_day**2 - c_ticket**2 * poisson
    sigma = np.sqrt(np.maximum(counted, poisson)).clip(lower=0.05)
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


def horizon_shortfall(
    snapshots: pd.DataFrame, scales: pd.DataFrame, weight: np.ndarray, small: pd.Series
) -> pd.DataFrame:
    """For each snapshot's today row (``snapshots`` sorted by snapshot and order, each snapshot
    the same number of day rows, today last): the strongest one-sided shortfall z of its sales
    over ``HORIZONS_DAYS`` (``small_shortfall``; 0 at points that are not ``small``) and the
    horizon's days, sales and expected sales (for the reasons). Indexed by snapshot.

    ``snapshots`` columns used: snapshot, pos, cnt, usual_cnt, day_peer, any_n, share;
    ``weight`` per row, 1 on an ordinary day and 0 on a holiday or regional event."""
    rows_per = (
        int(snapshots.groupby("snapshot", sort=False).size().iloc[0]) if len(snapshots) else 0
    )
    n = len(snapshots) // rows_per if rows_per else 0
    out = pd.DataFrame(0.0, index=pd.RangeIndex(n, name="snapshot"), columns=SMALL_COLUMNS)
    if n == 0:
        return out
    # Peers lower the expectation (a holiday, rain, a closure move every point), never raise
    # it: their ratio is the median of bigger points, and a small point that did not share
    # their busy day is weak evidence of a loss (the tune seeds' Boxing Day false alarms).
    peer = np.minimum(snapshots["day_peer"].to_numpy(dtype=float), 1.0)
    started = snapshots.groupby("snapshot", sort=False)["any_n"].cumsum().to_numpy() > 0
    counts = (weight > 0) & started & (peer >= CLOSED_PEERS)
    observed = np.where(counts, snapshots["cnt"].to_numpy(dtype=float), 0.0)
    expected = np.where(counts, snapshots["usual_cnt"].to_numpy(dtype=float) * peer, 0.0)
    # Newest day first: column j is j days before today.
    observed = observed.reshape(n, rows_per)[:, ::-1]
    expected = expected.reshape(n, rows_per)[:, ::-1]
    used = counts.reshape(n, rows_per)[:, ::-1].astype(float)
    pos = snapshots["pos"].to_numpy().reshape(n, rows_per)[:, 0]
    own = scales["phi_day_own"]  # the day's own spread: the horizons add the usual's error
    phi = pd.Series(pos).map(own).fillna(SCALE_DEFAULTS["phi_day_own"]).to_numpy()
    c_ticket = pd.Series(pos).map(scales["c_ticket"]).fillna(SCALE_DEFAULTS["c_ticket"]).to_numpy()
    # How many of each weekday the usual day was learnt from (a new baseline: four).
    weeks = np.clip(pd.Series(pos).map(scales["history_days"]).fillna(28).to_numpy() / 7, 1, 8)
    cum_obs, cum_exp, cum_days = (np.cumsum(a, axis=1) for a in (observed, expected, used))
    today_share = snapshots["share"].to_numpy(dtype=float).reshape(n, rows_per)[:, -1]
    late = today_share >= MIN_TODAY_SHARE
    # Today so far must be short of its own expectation (and be a day that counts).
    today_down = (used[:, 0] > 0) & (observed[:, 0] < expected[:, 0])
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
        # The day-to-day spread beyond counting noise (the point's own day spread holds
        # both: the sales' Poisson noise and their tickets' spread), and what it adds to the
        # variance of h days' sum relative to Poisson.
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
    is_small = small.reindex(pos).fillna(False).to_numpy(dtype=bool)
    keep = today_down & is_small & late
    out["small_shortfall"] = np.where(keep, best, 0.0)
    out["small_days"] = np.where(keep, best_days, 0.0)
    out["small_cnt"] = np.where(keep, best_obs, 0.0)
    out["small_expected"] = np.where(keep, best_exp, 0.0)
    return out
