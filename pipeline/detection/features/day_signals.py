"""Day horizons: the local day's revenue and average ticket so far, and the last 3 and 7 days',
against usual x peers (one-sided z), for slow under-reporting and ticket shaving that no single
hour shows. The longer views only count while the day itself is down, so a flag does not
outlive the drop.

Point in time inside the day too: hour h of day d is judged on day d up to the end of h (its
"so far today" against the usual share of the day those hours make, its peers' day so far at
the same hour) and on the complete days before it, never on the rest of d. So scoring hour by
hour (the hourly DAG) and a range at once (a backfill) give the same features. Each scored hour
gets its own small table of days ("snapshot": the ``HISTORY_DAYS`` complete days before it and
its day so far), and the day-level steps run over all snapshots at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.detection.features.change_points import LEVEL_SHIFT_DAYS, level_shift
from pipeline.detection.features.config import CAP, HORIZONS, FeatureConfig
from pipeline.detection.features.hour_signals import damp_of, expected_open
from pipeline.detection.features.peers import CLOSED_PEERS, peer_median
from pipeline.detection.features.rolling import rolling_sum
from pipeline.detection.features.small_points import (
    SMALL_COLUMNS,
    horizon_shortfall,
    small_points,
)

DAY_SUMS = ["rev", "usual", "usual_cnt", "cnt", "at_usual_ticket", "any_n", "usual_in_view"]
# The complete days before an hour's own day that its snapshot holds: the level-shift CUSUM's
# window (its first day is the baseline of what the CUSUM carried into today), and so every
# longer horizon.
HISTORY_DAYS = max(*HORIZONS, LEVEL_SHIFT_DAYS)
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
    snapshots = _horizon_drops(snapshots, scales)
    phi = snapshots["pos"].map(scales["phi_day"]).fillna(0.15)
    by_snapshot = snapshots.assign(pos=snapshots["snapshot"])
    ordinary = _ordinary_days(snapshots, frame)
    snapshots = snapshots.join(level_shift(by_snapshot, phi, ordinary))
    small = horizon_shortfall(snapshots, scales, ordinary, small_points(frame))
    today = snapshots[snapshots["today"]].set_index("snapshot").join(small)
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


def _hour_parts(frame: pd.DataFrame) -> pd.DataFrame:
    """Per hour of ``frame``, what it adds to its local day's figures (its expected hours)."""
    expected = expected_open(frame)
    cnt = frame["txn_count"].where(expected, 0)
    return pd.DataFrame(
        {
            "pos": frame["pos"],
            "local_date": frame["local_date"],
            "hour_start": frame["hour_start"],
            "rev": frame["gross_paid"].where(expected, 0),
            "usual": frame["usual_rev"].where(expected, 0),
            "usual_cnt": frame["usual_cnt"].where(expected, 0),
            "cnt": cnt,
            "any_n": frame["txn_count"] + frame["void_count"] + frame["refund_count"],
            # What these sales would have come to at the usual ticket of each hour.
            "at_usual_ticket": (cnt * frame["usual_ticket"]).fillna(0),
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


def _horizon_drops(day: pd.DataFrame, scales: pd.DataFrame) -> pd.DataFrame:
    """Revenue and average ticket of the last 1, 3 and 7 days against usual x peers, per
    snapshot; the day's own figures go with them for the reasons."""
    phi = day["pos"].map(scales["phi_day"]).fillna(0.15)
    c_ticket = day["pos"].map(scales["c_ticket"]).fillna(0.5)
    source = day["source"].to_numpy()
    own = source == np.arange(len(day))
    peers = day.loc[own, ["peer_group", "revenue_type"]].assign(hour_start=day["peer_key"][own])
    at_source = (np.cumsum(own) - 1)[source]

    def peer_of(values: pd.Series) -> pd.Series:
        """The peer median of each row's group, taken once per group of source rows."""
        median = peer_median(peers, values[own], values[own].notna(), 3).to_numpy()
        return pd.Series(median[at_source], index=day.index)

    z_rev, z_ticket = {}, {}
    for h in HORIZONS:
        rolled = rolling_sum(day, ["snapshot"], DAY_SUMS, h)
        ratio = (rolled["rev"] / rolled["usual"]).where(rolled["usual"] > 0)
        peer = peer_of(ratio).fillna(1.0).clip(lower=0.05)
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
        ticket = (rolled["rev"] / rolled["at_usual_ticket"]).where(
            (rolled["cnt"] >= 3) & (rolled["at_usual_ticket"] > 0)
        )
        peer_t = peer_of(ticket).fillna(1.0).clip(lower=0.05)
        sd_t = np.sqrt(c_ticket**2 / rolled["cnt"].clip(lower=1) + 0.03**2)
        z_ticket[h] = ((ticket / peer_t - 1) / sd_t).fillna(0)
        if h == 1:
            day["day_ratio"], day["day_peer"], day["day_ticket_ratio"] = ratio, peer, ticket
            # What the level-shift CUSUM reads: the day against usual x peers.
            # Days before the point's first transaction in view are no evidence: it was not
            # there yet (or the data starts later).
            started = day.groupby("snapshot")["any_n"].cumsum() > 0
            # ... nor are days the peers were closed too (a holiday the calendar does not know).
            day["rel"] = (ratio / peer).where(started & (peer >= CLOSED_PEERS))
            day["expected"] = rolled["usual"] * peer
    day["day_drop"] = _sustained_drop(z_rev)
    day["ticket_day_drop"] = _sustained_drop(z_ticket)
    return day


def _sustained_drop(z: dict[int, pd.Series]) -> np.ndarray:
    """The day's one-sided drop, or the 3 or 7 days' when larger, but those only while the day
    itself is down (more than one noise unit)."""
    down = -z[1] > 1.0
    longer = np.maximum(-z[3], -z[7])
    return np.clip(np.maximum(-z[1], np.where(down, longer, 0.0)), 0, CAP)
