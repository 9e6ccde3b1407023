"""Peers: the points a point is compared with in the same hour, so that what moves every peer
together (a holiday, a regency-wide rain dip) cancels out of the expectation."""

from __future__ import annotations

import numpy as np
import pandas as pd

SILENT_PEER_SHARE = 0.5  # this share of the peers' usual sales silent too: a closure, not a device
SILENT_PEER_MASS = 3.0  # ... and those silent peers usually make this many sales an hour
# Peers at under this share of their usual (their median, that hour or that day): closed or
# nearly (a regional event the calendar does not know, every lot at a tenth of its trade),
# not a yardstick a silent device or a low day can be judged against.
CLOSED_PEERS = 0.2


def peer_groups(pts: pd.DataFrame, min_peers: int) -> np.ndarray:
    """Each point's peer group: type + district when it has enough points, else the type
    regency-wide."""
    district_size = pts.groupby(["revenue_type", "district"])["point_id"].transform("size")
    return np.where(
        district_size >= min_peers,
        pts["revenue_type"] + "|" + pts["district"],
        pts["revenue_type"],
    )


PEER_LEVELS = ("peer_group", "revenue_type", None)  # district group, type group, every point


def peer_keys(
    frame: pd.DataFrame, levels: tuple[str | None, ...] = PEER_LEVELS
) -> dict[str | None, pd.Series]:
    """Per level of ``levels`` (``PEER_LEVELS`` or its tail, ending with None: every point), in
    that order, one integer per (group, hour) of each row (-1 where the row has no group): the
    same groups as grouping by the text and time columns, several times faster to hash. Worked
    out once, they serve every median of one frame (hashing its text and time columns again for
    each was most of their cost); the medians try the levels in the keys' order."""
    hour, hours = pd.factorize(frame["hour_start"])
    keys: dict[str | None, pd.Series] = {}
    for level in levels:
        if level is None:
            keys[None] = pd.Series(hour, index=frame.index)
            continue
        codes = pd.factorize(frame[level])[0].astype(np.int64)
        keys[level] = pd.Series(
            np.where(codes >= 0, codes * len(hours) + hour, -1), index=frame.index
        )
    return keys


def peer_median(
    frame: pd.DataFrame,
    values: pd.Series,
    valid: pd.Series,
    min_count: int,
    *,
    keys: dict[str | None, pd.Series] | None = None,
) -> pd.Series:
    """Median of ``values`` over the row's peers in the same hour (district group, else type group,
    else all points); where even all points have fewer than ``min_count`` valid values (a
    registry of two or three points), the mean of the *other* points' values, so two points
    closed together on a day the calendar does not know read as peers closed, not as a loss.
    NaN when no other point had a usual level. ``keys``: ``peer_keys(frame)``, when at hand."""
    keys = keys if keys is not None else peer_keys(frame)
    masked = values.where(valid)
    median, _ = _level_medians(masked, keys, min_count, with_error=False)
    if median.isna().any():
        median = median.fillna(_others_mean(masked, keys[None]))
    return median


# The day peers' median read as a common movement (spike and slab): on ordinary days what moves
# a group's points together stays within its ordinary spread of 1 (estimated per group from its
# last two weeks, at least ``COMMON_ORDINARY``: parking and markets move with the weather,
# restaurants hardly); on some days (``COMMON_EVENT_SHARE``) something moves them all by any
# amount (``COMMON_EVENT``: an event the calendar does not know). A median of a few noisy peers
# that sits at 0.85 because two of nine leak and the rest scatter is then mostly noise and reads
# near 1; nine peers that agree on 0.5 read 0.5.
COMMON_ORDINARY = 0.05
COMMON_EVENT = 0.5
COMMON_EVENT_SHARE = 0.2


def peer_median_error(
    frame: pd.DataFrame,
    values: pd.Series,
    valid: pd.Series,
    min_count: int,
    *,
    keys: dict[str | None, pd.Series] | None = None,
) -> tuple[pd.Series, pd.Series]:
    """``peer_median`` and the squared standard error of each median (1.2533 sigma / sqrt(n),
    sigma from the group's MAD; NaN where a registry too small for a median took the others'
    mean)."""
    keys = keys if keys is not None else peer_keys(frame)
    masked = values.where(valid)
    median, error = _level_medians(masked, keys, min_count, with_error=True)
    if median.isna().any():
        median = median.fillna(_others_mean(masked, keys[None]))
    return median, error


def _level_medians(
    masked: pd.Series, keys: dict[str | None, pd.Series], min_count: int, *, with_error: bool
) -> tuple[pd.Series, pd.Series | None]:
    """Per row, the median of ``masked`` over the first of its groups (the levels of ``keys``,
    in order) with ``min_count`` values (NaN where none has), and with ``with_error`` the
    median's squared standard error."""
    median = pd.Series(np.nan, index=masked.index)
    error = pd.Series(np.nan, index=masked.index) if with_error else None
    for by in keys.values():
        by = by.where(by >= 0) if (by < 0).any() else by
        grouped = masked.groupby(by)
        level_median = grouped.transform("median")
        level_count = grouped.transform("count")
        take = median.isna() & (level_count >= min_count)
        if not take.any():
            continue
        median = median.where(~take, level_median)
        if with_error:
            # The spread only of the groups some row takes its median from (after the first
            # level, a few).
            member = by.isin(by[take].unique())
            deviation = (masked[member] - level_median[member]).abs()
            level_mad = deviation.groupby(by[member]).transform("median").reindex(masked.index)
            error = error.where(~take, (1.4826 * 1.2533 * level_mad) ** 2 / level_count)
    return median, error


def _others_mean(masked: pd.Series, by: pd.Series) -> pd.Series:
    """Per row, the mean of the *other* rows' values of its group ``by`` (NaN without any)."""
    total = masked.fillna(0).groupby(by).transform("sum")
    count = masked.groupby(by).transform("count")
    others = count - masked.notna().astype(int)
    return (total - masked.fillna(0)) / others.where(others > 0)


def common_movement(median: np.ndarray, error: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Posterior mean of the common movement given the peers' ``median``, its squared standard
    ``error`` and the group's ordinary ``spread`` (the spike's); ``median`` where the error is
    unknown."""
    gap = median - 1.0
    se2 = np.nan_to_num(error, nan=0.0)
    posterior = np.zeros_like(gap)
    weights = np.zeros_like(gap)
    for tau, prior in ((spread, 1 - COMMON_EVENT_SHARE), (COMMON_EVENT, COMMON_EVENT_SHARE)):
        var = tau**2 + se2
        weight = prior * np.exp(-0.5 * gap**2 / var) / np.sqrt(var)
        posterior += weight * (1.0 + gap * tau**2 / var)
        weights += weight
    with np.errstate(invalid="ignore", divide="ignore"):
        shrunk = posterior / weights
    return np.where(np.isfinite(shrunk), shrunk, median)


def peers_silent(
    frame: pd.DataFrame,
    silent: pd.Series,
    usual_cnt: pd.Series,
    *,
    keys: dict[str | None, pd.Series] | None = None,
) -> pd.Series:
    """True where the *other* points that usually trade this hour (the peer group, else the type
    regency-wide, else every point) were mostly silent too: at least half of their usual sales
    fell in points that recorded nothing, and that silence is itself no chance (those points
    usually make 3 or more sales an hour between them). A holiday or a local closure the
    calendar does not know: the peers are the evidence."""
    keys = keys if keys is not None else peer_keys(frame)
    result = pd.Series(np.nan, index=frame.index)
    weight = usual_cnt.fillna(0.0).clip(lower=0.0)
    silent_weight = weight.where(silent, 0.0)
    for by in keys.values():
        others = weight.groupby(by).transform("sum") - weight
        others_silent = silent_weight.groupby(by).transform("sum") - silent_weight
        closed = (others_silent >= SILENT_PEER_MASS) & (others_silent >= SILENT_PEER_SHARE * others)
        result = result.fillna(closed.astype(float).where((by >= 0) & (others > 0)))
    return result.fillna(0.0) > 0.5
