"""Peers: the points a point is compared with in the same hour, so that what moves every peer
together (a holiday, a regency-wide rain dip) cancels out of the expectation."""

from __future__ import annotations

import numpy as np
import pandas as pd


def peer_groups(pts: pd.DataFrame, min_peers: int) -> np.ndarray:
    """Each point's peer group: type + district when it has enough points, else the type
    regency-wide."""
    district_size = pts.groupby(["revenue_type", "district"])["point_id"].transform("size")
    return np.where(
        district_size >= min_peers,
        pts["revenue_type"] + "|" + pts["district"],
        pts["revenue_type"],
    )


def peer_median(
    frame: pd.DataFrame, values: pd.Series, valid: pd.Series, min_count: int
) -> pd.Series:
    """Median of ``values`` over the row's peers in the same hour (district group, else type group,
    else all points); NaN when too few peers had a usual level."""
    result = pd.Series(np.nan, index=frame.index)
    masked = values.where(valid)
    # Grouped by one integer per (group, hour): the same groups as grouping by the text and
    # time columns, several times faster to hash.
    hour, hours = pd.factorize(frame["hour_start"])
    for key in ("peer_group", "revenue_type", None):
        if key is None:
            group = hour
        else:
            codes = pd.factorize(frame[key])[0].astype(np.int64)
            group = np.where(codes >= 0, codes * len(hours) + hour, -1)
        by = pd.Series(group, index=frame.index)
        grouped = masked.groupby(by.where(by >= 0) if (group < 0).any() else by)
        median = grouped.transform("median")
        count = grouped.transform("count")
        result = result.fillna(median.where(count >= min_count))
    return result
