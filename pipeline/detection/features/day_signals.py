"""Day horizons: the local day's revenue and average ticket so far, and the last 3 and 7 days',
against usual x peers (one-sided z), for slow under-reporting and ticket shaving that no single
hour shows. The longer views only count while the day itself is down, so a flag does not
outlive the drop."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.detection.features.change_points import level_shift
from pipeline.detection.features.config import CAP, HORIZONS, FeatureConfig
from pipeline.detection.features.hour_signals import damp_of, expected_open
from pipeline.detection.features.peers import peer_median
from pipeline.detection.features.rolling import rolling_sum

CLOSED_PEERS = 0.2  # peers at under this share of their usual day: closed, not a yardstick
DAY_SUMS = ["rev", "usual", "usual_cnt", "cnt", "at_usual_ticket", "any_n"]
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
]


def day_signals(
    frame: pd.DataFrame, slots: pd.DataFrame, scales: pd.DataFrame, config: FeatureConfig
) -> pd.DataFrame:
    """``frame`` with each hour's local-day figures and the day features (holiday-damped)."""
    day = _day_totals(frame)
    day = _usual_whole_days(day, frame, slots, scales)
    day = _horizon_drops(day, scales)
    day = day.join(
        level_shift(day, day["pos"].map(scales["phi_day"]).fillna(0.15), _ordinary_days(day, frame))
    )
    day = day.rename(columns={"rev": "day_rev", "usual": "day_usual"})
    frame = frame.merge(
        day[["pos", "local_date", *DAY_COLUMNS]], on=["pos", "local_date"], how="left"
    )
    expected = expected_open(frame)
    for column in ("day_drop", "ticket_day_drop", "level_shift"):
        frame[column] = frame[column].where(expected, 0).fillna(0)
    damp = damp_of(frame, config)
    frame["day_drop"] = frame["day_drop"] * damp
    frame["ticket_day_drop"] = frame["ticket_day_drop"] * damp
    return frame


def _ordinary_days(day: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """Per day row, 1 on an ordinary day and 0 on a holiday or regional event."""
    special = frame["holiday"].notna().groupby([frame["pos"], frame["local_date"]]).any()
    keys = pd.MultiIndex.from_frame(day[["pos", "local_date"]])
    on_holiday = special.reindex(keys).fillna(False).to_numpy(dtype=bool)
    return np.where(on_holiday, 0.0, 1.0)


def _day_totals(frame: pd.DataFrame) -> pd.DataFrame:
    """Per point and local date, the recorded and usual revenue and sales of its expected hours."""
    expected = expected_open(frame)
    cnt = frame["txn_count"].where(expected, 0)
    day = (
        pd.DataFrame(
            {
                "pos": frame["pos"],
                "local_date": frame["local_date"],
                "rev": frame["gross_paid"].where(expected, 0),
                "usual": frame["usual_rev"].where(expected, 0),
                "usual_cnt": frame["usual_cnt"].where(expected, 0),
                "cnt": cnt,
                "any_n": frame["txn_count"] + frame["void_count"] + frame["refund_count"],
                # What these sales would have come to at the usual ticket of each hour.
                "at_usual_ticket": (cnt * frame["usual_ticket"]).fillna(0),
                "peer_group": frame["peer_group"],
                "revenue_type": frame["revenue_type"],
            }
        )
        .groupby(["pos", "local_date", "peer_group", "revenue_type"], as_index=False)[DAY_SUMS]
        .sum()
        .sort_values(["pos", "local_date"])
        .reset_index(drop=True)
    )
    day["hour_start"] = day["local_date"]  # peers compared on the same local date
    return day


def _usual_whole_days(
    day: pd.DataFrame, frame: pd.DataFrame, slots: pd.DataFrame, scales: pd.DataFrame
) -> pd.DataFrame:
    """The usual day (per weekday), times the share of it that the hours in view usually make."""
    hours_in_view = frame.groupby(["pos", "local_date"])["usual_rev"].sum()
    slot_day = (
        slots.assign(weekday=slots["how"] // 24).groupby(["pos", "weekday"])["usual_rev"].sum()
    )
    weekday = pd.to_datetime(day["local_date"]).dt.dayofweek.to_numpy()
    in_view = hours_in_view.reindex(pd.MultiIndex.from_frame(day[["pos", "local_date"]])).to_numpy()
    whole = slot_day.reindex(pd.MultiIndex.from_arrays([day["pos"], weekday])).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.clip(np.nan_to_num(in_view / whole, nan=1.0), 0, 1)
    pos = day["pos"].to_numpy()
    for measure, column in (("rev", "usual"), ("cnt", "usual_cnt")):
        table = scales[[f"day_{measure}_{w}" for w in range(7)]].to_numpy()
        whole_day = table[pos, weekday]
        # Without enough complete days (a new point) the summed hourly usuals stand in.
        day[column] = np.where(np.isfinite(whole_day), whole_day * share, day[column])
    return day


def _horizon_drops(day: pd.DataFrame, scales: pd.DataFrame) -> pd.DataFrame:
    """Revenue and average ticket of the last 1, 3 and 7 days against usual x peers; the day's
    own figures go with them for the reasons."""
    phi = day["pos"].map(scales["phi_day"]).fillna(0.15)
    c_ticket = day["pos"].map(scales["c_ticket"]).fillna(0.5)
    z_rev, z_ticket = {}, {}
    for h in HORIZONS:
        rolled = rolling_sum(day, ["pos"], DAY_SUMS, h)
        ratio = (rolled["rev"] / rolled["usual"]).where(rolled["usual"] > 0)
        peer = peer_median(day, ratio, ratio.notna(), 3).fillna(1.0).clip(lower=0.05)
        sd = np.sqrt(phi**2 / h + 1.5 / rolled["usual_cnt"].clip(lower=1))
        z_rev[h] = ((ratio / peer - 1) / sd).fillna(0)
        ticket = (rolled["rev"] / rolled["at_usual_ticket"]).where(
            (rolled["cnt"] >= 3) & (rolled["at_usual_ticket"] > 0)
        )
        peer_t = peer_median(day, ticket, ticket.notna(), 3).fillna(1.0).clip(lower=0.05)
        sd_t = np.sqrt(c_ticket**2 / rolled["cnt"].clip(lower=1) + 0.03**2)
        z_ticket[h] = ((ticket / peer_t - 1) / sd_t).fillna(0)
        if h == 1:
            day["day_ratio"], day["day_peer"], day["day_ticket_ratio"] = ratio, peer, ticket
            # What the level-shift CUSUM reads: the day against usual x peers.
            # Days before the point's first transaction in view are no evidence: it was not
            # there yet (or the data starts later).
            started = day.groupby("pos")["any_n"].cumsum() > 0
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
