"""Day horizons: the local day's revenue and average ticket so far, and the last 3 and 7 days',
against usual x peers (one-sided z), for slow under-reporting and ticket shaving that no single
hour shows. The longer views only count while the day itself is down, so a flag does not
outlive the drop.

Point in time inside the day too: hour h of day d is judged on day d up to the end of h (its
"so far today" against the usual share of the day those hours make, its peers' day so far at
the same hour) and on the complete days before it, never on the rest of d. So scoring hour by
hour (the hourly DAG) and a range at once (a backfill) give the same features. Each scored hour
is judged on its own table of days ("snapshot": the ``HISTORY_DAYS`` complete days before it and
its day so far).

How the snapshots are built, and why so: the 24 hours of a day share their complete days, and
those days' peers with them. So the complete days are figured once per *view* (the moments
that see the same points on the same local dates: a UTC day has one view per local midnight of
the points' timezones), peer medians included, and only the day so far (a running sum within
the day) is figured per scored hour; each snapshot is then one row of a matrix per measure,
its complete days gathered from its view and its day so far last. One table of 15 day-rows per
point-hour, the first form of this module, did every complete day's work 24 times over (53% of
a backfill's feature time); ``tests/detection/test_day_tables.py`` holds it as the reference
the matrices must match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.detection.features.change_points import (
    LEVEL_SHIFT_DAYS,
    shared_level_shift,
    zero_nan,
)
from pipeline.detection.features.config import CAP, HORIZONS, FeatureConfig
from pipeline.detection.features.hour_signals import damp_of, expected_open
from pipeline.detection.features.peers import (
    CLOSED_PEERS,
    COMMON_ORDINARY,
    PEER_LEVELS,
    common_movement,
    peer_keys,
    peer_median,
    peer_median_error,
)
from pipeline.detection.features.small_points import (
    MIN_TODAY_SHARE,
    SMALL_COLUMNS,
    horizon_shortfall,
    small_points,
)

# The ticket's views' sums (``_hour_parts``): sales weighed against bursts, and their worth at
# the usual ticket.
TICKET_SUMS = ["ticket_rev", "ticket_cnt", "at_usual_ticket"]
DAY_SUMS = ["rev", "usual", "usual_cnt", "cnt", *TICKET_SUMS, "any_n", "usual_in_view"]
# The complete days before an hour's own day that its snapshot holds: the level-shift CUSUM's
# window (its first day is the baseline of what the CUSUM carried into today), and so every
# longer horizon.
HISTORY_DAYS = max(*HORIZONS, LEVEL_SHIFT_DAYS)
# A day is held against its whole type group, not its district group: a district group is often
# four restaurants with the point itself among them, and their median day followed its own
# lasting drop (docs/detection.md, sessions 14 and 16).
DAY_PEER_LEVELS = PEER_LEVELS[1:]
# What ``compute_features`` loads before the first scored hour so that each snapshot's days
# are complete whatever the hour and the point's timezone (one more day for the offset).
DAY_LEAD = pd.Timedelta(days=HISTORY_DAYS + 1)
DAY_COLUMNS = [
    "day_rev",
    "day_usual",
    "day_ratio",
    "day_peer",
    "day_ticket_ratio",
    "day_drop",
    "ticket_day_drop",
    "level_shift",
    "shift_days",
    "shift_rev",
    "shift_exp",
    *SMALL_COLUMNS,
]
# The day measures the horizons sum over a snapshot's last days.
ROLLED = ["rev", "usual", "usual_cnt", "cnt", *TICKET_SUMS, "share"]
# An hour's sales count in the ticket's views for at most this many times its usual sales (at
# least one): a burst of a hundred tiny QRIS payments from one payer is split transactions, the
# burst's own signals' business, and at full weight its tiny tickets read as the ticket shaved
# for the three and seven days after it (dev 6-25: 32 false ticket-shaving flags in the days
# after a split-transactions event). Shaving keeps the sales as usual, so it keeps its weight.
BURST_SALES = 3.0


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
    today = _day_so_far(parts, wanted)
    features = pd.DataFrame(np.nan, index=frame.index, columns=DAY_COLUMNS)
    if len(today):
        history, history_row = _complete_days(whole_days, today)
        history = _usual_whole_days(history, slots, scales)
        history["ordinary"] = _ordinary_days(history, frame)
        history = _day_against_peers(history)
        today["hour_in_view"] = parts.loc[today.index, "usual_in_view"].to_numpy()
        today = _usual_whole_days(today, slots, scales)
        today["ordinary"] = _ordinary_days(today, frame)
        days = _snapshot_days(history, today, history_row)
        judged = _judge_today(today, days, scales, small_points(slots, frame))
        features.loc[today.index] = judged[DAY_COLUMNS].to_numpy()
    frame[DAY_COLUMNS] = features
    # The hour in which half of its day's usual trade comes into view: the first that the day
    # views judge (``MIN_TODAY_SHARE``), one per point and day, the same in a backfill and in
    # the hourly run that scores it (it reads only its own day so far).
    frame["day_judged_hour"] = False
    if len(today):
        first = (today["share"] >= MIN_TODAY_SHARE) & (today["share_before"] < MIN_TODAY_SHARE)
        frame.loc[today.index, "day_judged_hour"] = first.to_numpy()
    expected = expected_open(frame)
    for column in ("day_drop", "ticket_day_drop", "level_shift", "small_shortfall"):
        frame[column] = frame[column].where(expected, 0).fillna(0)
    damp = damp_of(frame, config)
    frame["day_drop"] = frame["day_drop"] * damp
    frame["ticket_day_drop"] = frame["ticket_day_drop"] * damp
    return frame


def _hour_parts(frame: pd.DataFrame) -> pd.DataFrame:
    """Per hour of ``frame``, what it adds to its local day's figures: its sales whatever the
    hour (the usual whole day they are held against is learnt from every hour of the baseline's
    days), its usual levels where it is expected open."""
    expected = expected_open(frame)
    cnt = frame["txn_count"]
    weight = np.minimum(
        1.0, BURST_SALES * np.maximum(frame["usual_cnt"].fillna(0), 1.0) / cnt.where(cnt > 0)
    ).fillna(1.0)
    return pd.DataFrame(
        {
            "pos": frame["pos"],
            "local_date": frame["local_date"],
            "hour_start": frame["hour_start"],
            "rev": frame["gross_paid"],
            "usual": frame["usual_rev"].where(expected, 0),
            "usual_cnt": frame["usual_cnt"].where(expected, 0),
            "cnt": cnt,
            "any_n": frame["txn_count"] + frame["void_count"] + frame["refund_count"],
            # The ticket's views: a burst's sales at the weight of ``BURST_SALES`` usual hours,
            # and what they would have come to at the usual ticket of each hour.
            "ticket_rev": frame["gross_paid"] * weight,
            "ticket_cnt": cnt * weight,
            "at_usual_ticket": (cnt * weight * frame["usual_ticket"]).fillna(0),
            # The usual revenue of every hour in view, open or not: the share of the day.
            "usual_in_view": frame["usual_rev"].fillna(0),
            "peer_group": frame["peer_group"],
            "revenue_type": frame["revenue_type"],
        },
        index=frame.index,
    )


def _day_totals(parts: pd.DataFrame) -> pd.DataFrame:
    """Per point and local date, the sums of its hours."""
    return parts.groupby(
        ["pos", "local_date", "peer_group", "revenue_type"], as_index=False, sort=True
    )[DAY_SUMS].sum()


def _day_so_far(parts: pd.DataFrame, wanted: pd.Series) -> pd.DataFrame:
    """For each wanted hour (a snapshot, in ``parts``' index), its local day's sums up to the
    end of that hour and the hour's UTC start (what its peers are compared at); sorted by point
    and hour."""
    ordered = parts.sort_values(["pos", "hour_start"])
    running = ordered.groupby(["pos", "local_date"], sort=False)[DAY_SUMS].cumsum()
    so_far = ordered[["pos", "local_date", "hour_start", "peer_group", "revenue_type"]].join(
        running
    )
    return so_far[wanted.reindex(so_far.index)]


def _views(today: pd.DataFrame) -> np.ndarray:
    """Per snapshot, its view: one code per set of (point, local date) that a moment's
    snapshots hold. Moments with the same view have the same complete days before them, and
    the same peers on those days."""
    days = today["local_date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    point_day = today["pos"].to_numpy().astype(np.int64) * 1_000_000 + days
    moment = pd.factorize(today["hour_start"])[0]
    order = np.lexsort((point_day, moment))
    members = pd.Series(point_day[order]).groupby(moment[order]).agg(tuple)
    # ``members`` is indexed by every moment code 0..n-1 in order.
    return pd.factorize(members)[0][moment]


def _complete_days(
    whole_days: pd.DataFrame, today: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray]:
    """The ``HISTORY_DAYS`` complete days before each view's day of each of its points, oldest
    first (``HISTORY_DAYS`` rows per view-point, in order), and per snapshot the view-point its
    complete days are. ``peer_key`` joins the rows of one view's same earlier day (what
    ``peer_median`` groups on)."""
    view = _views(today)
    pos = today["pos"].to_numpy()
    view_point = view.astype(np.int64) * (int(pos.max()) + 1) + pos
    _, first, history_row = np.unique(view_point, return_index=True, return_inverse=True)
    offsets = np.arange(HISTORY_DAYS, 0, -1)
    first_pos = pos[first]
    dates = today["local_date"].to_numpy().astype("datetime64[D]")[first]
    earlier_dates = (dates[:, None] - offsets[None, :].astype("timedelta64[D]")).ravel()
    point = np.repeat(first_pos, HISTORY_DAYS)
    keyed = whole_days.set_index(["pos", "local_date"])
    history = keyed.reindex(pd.MultiIndex.from_arrays([point, earlier_dates])).reset_index(
        drop=True
    )
    history["pos"] = point
    history["local_date"] = earlier_dates
    # Days the grid does not reach (before the data) are days without sales or usual levels.
    missing = history["peer_group"].isna()
    history.loc[missing, DAY_SUMS] = 0.0
    for column in ("peer_group", "revenue_type"):
        history[column] = history[column].fillna(
            pd.Series(today[column].to_numpy()[first].repeat(HISTORY_DAYS))
        )
    order = np.tile(np.arange(HISTORY_DAYS), len(first))
    history["peer_key"] = (
        np.repeat(view[first].astype(np.int64), HISTORY_DAYS) * HISTORY_DAYS + order
    )
    return history, history_row.ravel()


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
    if "hour_in_view" in day:  # a day so far: the share before its last hour
        with np.errstate(divide="ignore", invalid="ignore"):
            before = (in_view - day["hour_in_view"].to_numpy()) / whole
        day["share_before"] = np.clip(np.nan_to_num(before, nan=1.0), 0, 1)
    pos = day["pos"].to_numpy()
    for measure, column in (("rev", "usual"), ("cnt", "usual_cnt")):
        table = scales[[f"day_{measure}_{w}" for w in range(7)]].to_numpy()
        whole_day = table[pos, weekday]
        # Without enough complete days (a new point) the summed hourly usuals stand in.
        day[column] = np.where(np.isfinite(whole_day), whole_day * share, day[column])
    return day


def _day_against_peers(history: pd.DataFrame) -> pd.DataFrame:
    """Each complete day's revenue against usual (``day_ratio``) and its peers' common movement
    (``day_peer``: the median of the same over the same day of the other points in its view,
    read against ``common_spread``, how far that median strays from 1 on the view-point's
    ordinary days)."""
    ratio = (history["rev"] / history["usual"]).where(history["usual"] > 0)
    peers = history[["peer_group", "revenue_type"]].assign(hour_start=history["peer_key"])
    keys = peer_keys(peers, DAY_PEER_LEVELS)
    median, error = peer_median_error(peers, ratio, ratio.notna(), 3, keys=keys)
    spread = _ordinary_spread(median, error, history["ordinary"])
    history["common_spread"] = np.repeat(spread, HISTORY_DAYS)
    history["day_ratio"] = ratio
    history["day_peer"] = _common(median, error, history["common_spread"].to_numpy())
    return history


def _ordinary_spread(median: pd.Series, error: pd.Series, ordinary: pd.Series) -> np.ndarray:
    """Per view-point (``HISTORY_DAYS`` rows each), the spread of its peers' common movement:
    how far their median strayed from 1 on its ordinary days less what the median's own error
    explains (method of moments), at least ``COMMON_ORDINARY``."""
    counted = (ordinary.to_numpy() > 0) & np.isfinite(error.to_numpy())
    gap2 = np.where(counted, (median.fillna(1.0).clip(lower=0.05) - 1.0) ** 2, 0.0)
    se2 = np.where(counted, error.to_numpy(), 0.0)
    # A view-point without an ordinary day has no excess (the floor).
    days = np.maximum(counted.reshape(-1, HISTORY_DAYS).sum(axis=1), 1)
    excess = gap2.reshape(-1, HISTORY_DAYS).sum(axis=1) / days - (
        se2.reshape(-1, HISTORY_DAYS).sum(axis=1) / days
    )
    return np.sqrt(np.clip(excess, COMMON_ORDINARY**2, None))


def _common(median: pd.Series, error: pd.Series, spread: np.ndarray) -> np.ndarray:
    """The peers' ``median`` (1 where there are none, at least 5%) read as a common movement."""
    median = median.fillna(1.0).clip(lower=0.05).to_numpy()
    return np.clip(common_movement(median, error.to_numpy(), spread), 0.05, None)


def _peer_ratio(
    peers: pd.DataFrame, ratio: pd.Series, keys: dict, spread: np.ndarray | None = None
) -> pd.Series:
    """The peers' median of ``ratio`` (1 where there are none), at least 5%; with the group's
    ordinary ``spread``, read as a common movement (``_common``)."""
    if spread is None:
        return peer_median(peers, ratio, ratio.notna(), 3, keys=keys).fillna(1.0).clip(lower=0.05)
    median, error = peer_median_error(peers, ratio, ratio.notna(), 3, keys=keys)
    return pd.Series(_common(median, error, spread), index=ratio.index)


@dataclass(frozen=True)
class SnapshotDays:
    """Per measure, the days of every snapshot as they are shared: each view-point's complete
    days once (``history``: (view-point x day) matrices, oldest first) and each snapshot's day
    so far (``today``: one value per snapshot); ``row`` is each snapshot's view-point. The 24
    hours of a day share their complete days, so these hold a day's snapshots in about a
    twentieth of the memory of one (snapshot x day) matrix per measure, which the kernel had to
    map fresh for every week (most of those matrices' cost)."""

    history: dict[str, np.ndarray]
    today: dict[str, np.ndarray]
    row: np.ndarray

    def full(self, column: str, snapshots: np.ndarray) -> np.ndarray:
        """The (snapshot x day) matrix of ``column`` for ``snapshots``: complete days, today."""
        earlier = self.history[column][self.row[snapshots]]
        return np.column_stack([earlier, self.today[column][snapshots]])

    def last_days_sum(self, column: str, days: int) -> np.ndarray:
        """Per snapshot, the sum of ``column`` over today and the ``days`` - 1 complete days
        before it, added oldest first from 0 as numpy sums a row of a few days (so the same
        numbers as the sum over the last ``days`` columns of the snapshot's matrix)."""
        history = self.history[column]
        total = np.zeros(len(history))
        for day in range(history.shape[1] - (days - 1), history.shape[1]):
            total = total + history[:, day]
        return total[self.row] + self.today[column]

    def per_view_point(self, values: np.ndarray) -> np.ndarray:
        """A snapshot value that is the same for all of a view-point's snapshots (a point's
        scales), per view-point."""
        out = np.empty(len(self.history["any_n"]))
        out[self.row] = values
        return out


def _snapshot_days(
    history: pd.DataFrame, today: pd.DataFrame, history_row: np.ndarray
) -> SnapshotDays:
    """The measures of every snapshot's days: its view-point's rows of ``history`` and its day
    so far. ``day_peer`` holds only the complete days (today's is NaN: ``_judge_today``
    figures it)."""
    earlier, own = {}, {}
    for column in [*ROLLED, "any_n", "ordinary", "day_peer", "common_spread"]:
        earlier[column] = history[column].to_numpy(dtype=float).reshape(-1, HISTORY_DAYS)
        own[column] = (
            today[column].to_numpy(dtype=float) if column in today else np.full(len(today), np.nan)
        )
    return SnapshotDays(earlier, own, history_row)


def _ordinary_days(days: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """Per row of ``days`` (pos, local_date), 1 on an ordinary day and 0 on a holiday or
    regional event (as ``frame``'s hours say)."""
    special = frame["holiday"].notna().groupby([frame["pos"], frame["local_date"]]).any()
    keys = pd.MultiIndex.from_arrays(
        [days["pos"], days["local_date"].to_numpy().astype("datetime64[D]")]
    )
    on_holiday = special.reindex(keys).fillna(False).to_numpy(dtype=bool)
    return np.where(on_holiday, 0.0, 1.0)


def _judge_today(
    today: pd.DataFrame, days: SnapshotDays, scales: pd.DataFrame, small: pd.Series
) -> pd.DataFrame:
    """Per snapshot (``today``'s rows), the day features of its day so far: the horizons'
    drops, the level-shift CUSUM and the small point's shortfall over its days."""
    pos = today["pos"]
    phi = pos.map(scales["phi_day"]).fillna(0.15).to_numpy()
    c_ticket = pos.map(scales["c_ticket"]).fillna(0.5).to_numpy()
    peers = today[["peer_group", "revenue_type", "hour_start"]]
    keys = peer_keys(peers, DAY_PEER_LEVELS)  # the same groups for each horizon's two medians
    spread = days.history["common_spread"][days.row, 0]
    out = pd.DataFrame(index=today.index)
    out["day_rev"], out["day_usual"] = today["rev"], today["usual"]
    z_rev, z_ticket = {}, {}
    for h in HORIZONS:
        # Today and the h - 1 complete days before it.
        rolled = {column: days.last_days_sum(column, h) for column in ROLLED}
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(rolled["usual"] > 0, rolled["rev"] / rolled["usual"], np.nan)
            ticket = np.where(
                (rolled["ticket_cnt"] >= 3) & (rolled["at_usual_ticket"] > 0),
                rolled["ticket_rev"] / rolled["at_usual_ticket"],
                np.nan,
            )
        peer = _peer_ratio(peers, pd.Series(ratio, index=today.index), keys, spread).to_numpy()
        # The days in view, today counted by the share of it so far: a morning is noisier
        # than a whole day (its spread phi_day is a whole day's).
        in_view = np.maximum(rolled["share"], 0.25)
        sd = np.sqrt(phi**2 / in_view + 1.5 / np.maximum(rolled["usual_cnt"], 1))
        z_rev[h] = zero_nan((ratio / peer - 1) / sd)
        if h == 1:
            # A day the peers were closed on (a regional event the calendar does not know) is
            # no yardstick: divided by peers clipped at 5%, a point closed with them read as
            # several noise units down. No day drop then (and so none of the longer views,
            # which count only while the day itself is down).
            z_rev[h] = np.where(peer >= CLOSED_PEERS, z_rev[h], 0.0)
        peer_t = _peer_ratio(peers, pd.Series(ticket, index=today.index), keys).to_numpy()
        sd_t = np.sqrt(c_ticket**2 / np.maximum(rolled["ticket_cnt"], 1) + 0.03**2)
        z_ticket[h] = zero_nan((ticket / peer_t - 1) / sd_t)
        if h == 1:
            out["day_ratio"], out["day_peer"], out["day_ticket_ratio"] = ratio, peer, ticket
            days.today["day_peer"] = peer
    late = days.today["share"] >= MIN_TODAY_SHARE
    out["day_drop"] = _sustained_drop(z_rev, late)
    out["ticket_day_drop"] = _sustained_drop(z_ticket, late)
    started, started_today = _started(days)
    history = {**_cusum_days(days.history, started), "weight": days.history["ordinary"]}
    own = {**_cusum_days(days.today, started_today), "weight": days.today["ordinary"]}
    shift = shared_level_shift(
        history, own, days.row, days.per_view_point(phi), days.per_view_point(c_ticket)
    )
    # As for the small points' horizons: until half of today is in view, a shift is the days
    # before it, which their own hours raised.
    shift["level_shift"] = shift["level_shift"].where(late, 0.0)
    out[list(shift.columns)] = shift.to_numpy()
    out[SMALL_COLUMNS] = _small_shortfall(days, pos.to_numpy(), scales, small, late)
    return out


def _small_shortfall(
    days: SnapshotDays, pos: np.ndarray, scales: pd.DataFrame, small: pd.Series, late: np.ndarray
) -> np.ndarray:
    """``horizon_shortfall``'s columns per snapshot, figured on the snapshots it can give
    anything but 0 (a small point's, half of today in view) from their (snapshot x day)
    matrices; 0 for the others, as it gives them."""
    figured = np.flatnonzero(small.reindex(pos).fillna(False).to_numpy(dtype=bool) & late)
    measures = {
        c: days.full(c, figured) for c in ("cnt", "usual_cnt", "day_peer", "any_n", "share")
    }
    weight = days.full("ordinary", figured)
    shortfall = horizon_shortfall(measures, pos[figured], scales, weight, small)
    out = np.zeros((len(pos), len(SMALL_COLUMNS)))
    out[figured] = shortfall[SMALL_COLUMNS].to_numpy()
    return out


def _started(days: SnapshotDays) -> tuple[np.ndarray, np.ndarray]:
    """Per complete day and per today, whether the point's first transaction in view came by
    then (a running count of them above 0)."""
    so_far = np.cumsum(days.history["any_n"], axis=1)
    before = so_far[days.row, -1] if so_far.shape[1] else 0.0
    return so_far > 0, (before + days.today["any_n"]) > 0


def _cusum_days(
    days: dict[str, np.ndarray], started: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """What the level-shift CUSUM reads of each snapshot's days: the day's sales against usual
    x peers (``rel``), its usual sales, recorded and expected revenue. ``started``: whether
    the point's first transaction in view had come by each day (default: from the days' own
    ``any_n``)."""
    peer = days["day_peer"]
    # Days before the point's first transaction in view are no evidence: it was not there yet
    # (or the data starts later) ...
    if started is None:
        started = np.cumsum(days["any_n"], axis=1) > 0
    # ... nor are days the peers were closed too (a holiday the calendar does not know).
    with np.errstate(divide="ignore", invalid="ignore"):
        sales = np.where(days["usual_cnt"] > 0, days["cnt"] / days["usual_cnt"], np.nan)
    rel = np.where(started & (peer >= CLOSED_PEERS), sales / peer, np.nan)
    return {
        "rel": rel,
        "usual_cnt": days["usual_cnt"],
        "rev": days["rev"],
        "expected": days["usual"] * peer,
    }


def _sustained_drop(z: dict[int, np.ndarray], late: np.ndarray) -> np.ndarray:
    """The day's one-sided drop, or the 3 or 7 days' when larger, but those only while the day
    itself is down (more than one noise unit) and half of it is in view (``late``: before, the
    longer views are mostly the days before it, which their own hours raised)."""
    down = (-z[1] > 1.0) & late
    longer = np.maximum(-z[3], -z[7])
    return np.clip(np.maximum(-z[1], np.where(down, longer, 0.0)), 0, CAP)
