"""Freshness per point: when each point (and each source feeding it) last recorded a sale, in
data time, and which points have gone silent during their open hours.

"Silent" is the detector's notion of a silent hour - an open hour of the point without a single
transaction of any status (``detection.features.hour_signals``) - counted from the point's last
transaction to a moment: a point is silent once ``min_open_hours`` whole open hours have passed
without one. The detector weighs such runs against the sales it expected (hours later, once the
hours are scored); this is the plain count ops and alerts need now. ``silent_points`` is the one
answer to "which points went silent during open hours", for the ops page, its API and alerts.

The times come from ``feed_freshness`` (kept by ingest, see ``store.freshness``): one row per
point and source, so the whole answer costs one read of a few thousand rows, where the same
figure from ``transactions`` would be a max() over millions of rows grouped by point.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from pipeline.core.times import HOUR, floor_hour, to_utc
from pipeline.reference.points import open_hours_matrix, read_registry
from pipeline.store.freshness import read_feed_freshness

# Two whole open hours without a sale: one quiet hour happens at a small point, two in a row
# during open hours is worth a look (the detector's own threshold is statistical, later).
SILENT_OPEN_HOURS = 2
# Open hours are counted back this far at most: a point silent for longer is listed as silent
# for "at least" this many open hours (and a point that never sent anything, too).
LOOKBACK = timedelta(days=7)


@dataclass(frozen=True)
class SourceFreshness:
    source: str  # how the rows came: "landing:<folder>", "api:<name>", "push", "file", ...
    last_txn_at: datetime  # the newest transaction's own time (UTC)
    last_batch_id: int


@dataclass(frozen=True)
class PointFreshness:
    point_id: str
    name: str
    district: str
    revenue_type: str
    open_hours: str  # "HH:MM-HH:MM", the point's local time
    timezone: str
    last_txn_at: datetime | None  # None: nothing stored for this point yet
    sources: tuple[SourceFreshness, ...]  # newest first
    silent_open_hours: int  # whole open hours since the last sale, up to the look-back's
    silent: bool
    at_least: bool  # silent_open_hours is the look-back's cap: the silence is longer still


def point_freshness(
    engine: Engine, *, as_of: datetime, min_open_hours: int = SILENT_OPEN_HOURS
) -> list[PointFreshness]:
    """Every registered point's newest sale per source and its silent open hours as of
    ``as_of``, by point id.

    ``as_of`` is now, or an hourly run's interval end: only the newest time is kept, so a sale
    after ``as_of`` (a replay of an old hour) counts as no silence at all."""
    if min_open_hours < 1:
        raise ValueError("min_open_hours must be at least 1")
    as_of = to_utc(as_of)
    with engine.connect() as connection:
        registry = read_registry(connection)
        seen = read_feed_freshness(connection)
    by_point: dict[str, list[SourceFreshness]] = {}
    for row in seen:
        by_point.setdefault(row.point_id, []).append(
            SourceFreshness(row.source, row.last_occurred_at, row.last_batch_id)
        )
    ids = sorted(registry)
    last = [max((s.last_txn_at for s in by_point.get(p, ())), default=None) for p in ids]
    counts, capped = silent_open_hours(
        [registry[p]["open_hours"] for p in ids],
        [registry[p]["timezone"] for p in ids],
        last,
        as_of,
    )
    out = []
    for i, point_id in enumerate(ids):
        p = registry[point_id]
        sources = sorted(
            by_point.get(point_id, ()), key=lambda s: (-s.last_txn_at.timestamp(), s.source)
        )
        out.append(
            PointFreshness(
                point_id=point_id,
                name=p["name"],
                district=p["district"],
                revenue_type=p["revenue_type"],
                open_hours=p["open_hours"],
                timezone=p["timezone"],
                last_txn_at=last[i],
                sources=tuple(sources),
                silent_open_hours=int(counts[i]),
                silent=bool(counts[i] >= min_open_hours),
                at_least=bool(capped[i]),
            )
        )
    return out


def silent_points(
    engine: Engine, *, as_of: datetime, min_open_hours: int = SILENT_OPEN_HOURS
) -> list[PointFreshness]:
    """The points silent for at least ``min_open_hours`` whole open hours as of ``as_of``, the
    longest silence first (then by point id)."""
    found = [
        p for p in point_freshness(engine, as_of=as_of, min_open_hours=min_open_hours) if p.silent
    ]
    return sorted(found, key=lambda p: (-p.silent_open_hours, p.point_id))


def silent_open_hours(
    open_hours: list[str],
    timezones: list[str],
    last_txn_at: list[datetime | None],
    as_of: datetime,
    *,
    lookback: timedelta = LOOKBACK,
) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the whole clock hours after the hour of its last sale and ending by ``as_of``
    that fall in its open hours (local time), counted back ``lookback`` at most; and whether
    that cap was hit (or the point never sold). One numpy pass per time zone."""
    n = len(open_hours)
    counts = np.zeros(n, dtype=np.int64)
    capped = np.zeros(n, dtype=bool)
    end = floor_hour(to_utc(as_of))  # hours [h, h+1) with h+1 <= as_of are whole
    window = pd.date_range(end - lookback, end, freq="h", inclusive="left")
    if not n or not len(window):
        return counts, capped
    window_ns = window.as_unit("ns").asi8
    first_silent = np.array(  # the first hour with no sale in it, in ns (Timestamp.value)
        [
            np.iinfo(np.int64).min
            if t is None
            else pd.Timestamp(floor_hour(to_utc(t)) + HOUR).value
            for t in last_txn_at
        ],
        dtype=np.int64,
    )
    start = np.searchsorted(window_ns, first_silent, side="left")
    matrix = open_hours_matrix(pd.Series(open_hours))
    zones = pd.Series(timezones)
    for zone, members in zones.groupby(zones).groups.items():
        rows = np.asarray(members)
        local_hour = window.tz_convert(zone).hour.to_numpy()
        is_open = matrix[rows][:, local_hour]  # (points of this zone, window hours)
        after = np.arange(len(window))[None, :] >= start[rows][:, None]
        counts[rows] = (is_open & after).sum(axis=1)
        capped[rows] = start[rows] == 0
    return counts, capped


__all__ = [
    "LOOKBACK",
    "SILENT_OPEN_HOURS",
    "PointFreshness",
    "SourceFreshness",
    "point_freshness",
    "silent_open_hours",
    "silent_points",
]
