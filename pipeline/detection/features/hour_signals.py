"""Hour-level features: each point-hour's revenue, sales, ticket, cash share and voids against
the usual level times what the point's peers did in the same hour, in noise units (>= 0)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.detection.features.config import CAP, FeatureConfig
from pipeline.detection.features.noise_units import (
    binomial_excess,
    poisson_shortfall,
    poisson_surplus,
)
from pipeline.detection.features.peers import CLOSED_PEERS, peer_keys, peer_median, peers_silent


def damp_of(frame: pd.DataFrame, config: FeatureConfig) -> np.ndarray:
    """Per row, what its volume evidence is multiplied by: the run's ``holiday_damping`` on a
    holiday or regional event (each point's trade moves its own way then), 1 on other days."""
    return np.where(frame["holiday"].notna(), config.holiday_damping, 1.0)


def expected_open(frame: pd.DataFrame) -> pd.Series:
    """Hours the point is open and usually sells in."""
    return frame["is_open"] & (frame["usual_cnt"] > 0)


def hour_signals(frame: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    """``frame`` (the grid with usual levels and scales) with the hour-level features added."""
    # One set of peer groups for the five peer views of the same hours.
    keys = peer_keys(frame)
    frame = volume_signals(frame, damp_of(frame, config), keys=keys)
    return pattern_signals(frame, config, keys=keys)


def pattern_signals(
    frame: pd.DataFrame, config: FeatureConfig, *, keys: dict | None = None
) -> pd.DataFrame:
    """The ticket, cash-share and void features of ``frame``'s hours (``volume_signals`` already
    added). Each reads only its own hour and its peers' in that hour, and only hours with sales
    count as peers, so the hours a run scores (open or trading) give the same figures alone as
    among the days before them, which read only the volume side (``compute_features``)."""
    damp = damp_of(frame, config)
    keys = keys if keys is not None else peer_keys(frame)
    frame = ticket_signals(frame, damp, keys=keys)
    frame = cash_share_signals(frame, keys=keys)
    return void_signals(frame)


def volume_signals(
    frame: pd.DataFrame, damp: np.ndarray, *, keys: dict | None = None
) -> pd.DataFrame:
    """Revenue and sales below usual x peers, and silent runs of open hours."""
    rev, cnt = frame["gross_paid"], frame["txn_count"]
    expected = expected_open(frame)
    ratio_rev = (rev / frame["usual_rev"]).where(expected & (frame["usual_cnt"] >= 2))
    ratio_cnt = (cnt / frame["usual_cnt"]).where(expected & (frame["usual_cnt"] >= 2))
    valid = ratio_rev.notna()
    peer_rev = peer_median(frame, ratio_rev, valid, 3, keys=keys)
    peer_cnt = peer_median(frame, ratio_cnt, valid, 3, keys=keys)
    frame["peer_rev"] = peer_rev.fillna(1.0).clip(0, 2.0)
    frame["peer_cnt"] = peer_cnt.fillna(1.0).clip(0, 2.0)
    frame["expected_rev"] = (frame["usual_rev"] * frame["peer_rev"]).where(expected, 0.0)
    frame["expected_cnt"] = (frame["usual_cnt"] * frame["peer_cnt"]).where(expected, 0.0)
    unit = ticket_unit(frame)
    # Revenue is counted in units of the usual ticket so both use the same (Poisson) yardstick.
    frame["rev_drop"] = (
        poisson_shortfall(rev / unit, frame["expected_rev"] / unit, frame["s_rev"]) * damp
    )
    frame["count_drop"] = poisson_shortfall(cnt, frame["expected_cnt"], frame["s_cnt"]) * damp
    # A point silent while its peers are silent too is closed with them (a holiday or local
    # event the calendar does not know), not a device switched off; so is one whose peers sold
    # under a fifth of their usual that hour (most of them closed, a few selling a little:
    # silence is what the point's own share of that looks like).
    silent = (cnt == 0) & (frame["void_count"] + frame["refund_count"] == 0)
    usual_cnt = frame["usual_cnt"].where(expected, 0.0)
    frame["peers_closed"] = peers_silent(frame, silent, usual_cnt, keys=keys) | (
        frame["peer_cnt"] < CLOSED_PEERS
    )
    frame["silence"] = np.where(frame["peers_closed"], 0.0, silence(frame, expected) * damp)
    for column in ("rev_drop", "count_drop"):
        frame[column] = np.where(frame["peers_closed"] & silent, 0.0, frame[column])
    return frame


def ticket_unit(frame: pd.DataFrame) -> pd.Series:
    """The usual ticket of each hour (at least 1 rupiah): revenue is counted in these units."""
    return frame["usual_ticket"].fillna(frame["point_ticket"]).fillna(1.0).clip(lower=1)


def ticket_signals(
    frame: pd.DataFrame, damp: np.ndarray, *, keys: dict | None = None
) -> pd.DataFrame:
    """Average ticket below usual and peers' ticket movement; a burst of sales at a lower ticket."""
    rev, cnt = frame["gross_paid"], frame["txn_count"]
    ticket = rev / cnt.where(cnt > 0)
    ratio_ticket = ticket / frame["usual_ticket"]
    frame["ticket"] = ticket
    frame["peer_ticket"] = peer_median(
        frame, ratio_ticket, ratio_ticket.notna() & (cnt >= 3), 3, keys=keys
    ).fillna(1.0)
    sd_ticket = np.sqrt(frame["c_ticket"] ** 2 / cnt.clip(lower=1) + 0.03**2)
    z_ticket = (ratio_ticket / frame["peer_ticket"] - 1) / sd_ticket
    frame["ticket_drop"] = np.clip(-z_ticket.where(cnt >= 3), 0, CAP).fillna(0) * damp
    z_surge = poisson_surplus(cnt, frame["expected_cnt"], frame["s_cnt"])
    frame["burst"] = np.minimum(z_surge, frame["ticket_drop"] / damp)
    return frame


def cash_share_signals(frame: pd.DataFrame, *, keys: dict | None = None) -> pd.DataFrame:
    """Cash share against usual and peers' movement, in units of (over-dispersed) binomial noise."""
    rev, cnt = frame["gross_paid"], frame["txn_count"]
    cash_share = frame["cash_amount"] / rev.where(rev > 0)
    frame["cash_share"] = cash_share
    diff_cash = cash_share - frame["usual_cash"]
    valid = diff_cash.notna() & (cnt >= 3)
    frame["peer_cash"] = peer_median(frame, diff_cash, valid, 3, keys=keys).fillna(0.0)
    p = frame["usual_cash"].clip(0.02, 0.98)
    sd_cash = np.sqrt((frame["s_cash"] ** 2) * p * (1 - p) / cnt.clip(lower=1) + 0.02**2)
    z_cash = (diff_cash - frame["peer_cash"]) / sd_cash
    frame["cash_drop"] = np.clip(-z_cash.where(cnt >= 3), 0, CAP).fillna(0)
    return frame


def void_signals(frame: pd.DataFrame) -> pd.DataFrame:
    """Voids and refunds above the point's usual share (at least three of them)."""
    void_n = frame["void_count"] + frame["refund_count"]
    all_n = frame["txn_count"] + void_n
    frame["void_share"] = void_n / all_n.where(all_n > 0)
    frame["void_excess"] = np.where(
        void_n >= 3, binomial_excess(void_n, all_n, frame["usual_void"]), 0.0
    )
    return frame


def silence(frame: pd.DataFrame, expected_open: pd.Series) -> np.ndarray:
    """For each open hour without a single transaction, how unlikely its whole silent run is:
    consecutive silent open hours of one point pool their expected sales (a device switched off
    for five busy hours is far less likely than one quiet hour). Point in time: an hour pools its
    run up to itself, not the silent hours after it."""
    silent = (frame["txn_count"] == 0) & (frame["void_count"] + frame["refund_count"] == 0)
    rows = frame.loc[frame["is_open"], ["pos", "hour_start", "expected_cnt", "s_cnt"]].copy()
    rows["silent"] = silent[frame["is_open"]] & expected_open[frame["is_open"]]
    rows = rows.sort_values(["pos", "hour_start"])
    boundary = (rows["silent"] != rows["silent"].shift()) | (rows["pos"] != rows["pos"].shift())
    rows["run"] = boundary.cumsum()
    pooled = rows.groupby("run")["expected_cnt"].cumsum()
    z = poisson_shortfall(np.zeros(len(rows)), pooled, rows["s_cnt"])
    out = pd.Series(0.0, index=frame.index)
    out.loc[rows.index] = np.where(rows["silent"], z, 0.0)
    return out.to_numpy()
