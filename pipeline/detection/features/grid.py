"""The point x hour grid: every hour a point should be trading or did trade.

Hours with no transactions do not exist in ``hour_aggregates``; the full grid is built here so a
silent device shows up as an hour with zero sales where sales were usual. Each row carries the
point's local hour-of-week and local date, whether the registry says it is open, the special day
it falls on and whether it is kept out of the usual level (closures, confirmed leakage).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from pipeline.detection.features.config import WEEKDAYS
from pipeline.detection.features.loading import (
    StoredWeeks,
    load_hour_aggregates,
    unusual_case_windows,
)
from pipeline.intake.aggregate import AGGREGATE_COLUMNS as AGG_COLUMNS
from pipeline.reference.calendar import Calendar
from pipeline.reference.points import open_hours_matrix
from pipeline.reference.suppressions import suppression_windows


def hour_floor_utc(moment: datetime) -> pd.Timestamp:
    """``core.times.floor_hour`` as a pandas Timestamp: it keeps the resolution of what it is
    given, and the grid's hour column inherits it (a stdlib round trip would change it)."""
    return pd.Timestamp(moment).tz_convert("UTC").floor("h")


def build_grid(
    aggregates: pd.DataFrame, pts: pd.DataFrame, start: datetime, end: datetime
) -> pd.DataFrame:
    """Every point x every UTC hour of [start, end), with aggregates (zero where none), the point's
    local hour-of-week, local date and whether the registry says it is open."""
    hours = pd.date_range(hour_floor_utc(start), hour_floor_utc(end), freq="h", inclusive="left")
    n_points, n_hours = len(pts), len(hours)
    open_matrix = open_hours_matrix(pts["open_hours"])
    is_open = np.zeros((n_points, n_hours), dtype=bool)
    how = np.zeros((n_points, n_hours), dtype=np.int16)
    local_date = np.zeros((n_points, n_hours), dtype="datetime64[D]")
    for tz, index in pts.groupby("timezone").indices.items():
        local = hours.tz_convert(tz)
        local_hour = local.hour.to_numpy()
        is_open[index] = open_matrix[index][:, local_hour]
        how[index] = local.dayofweek.to_numpy() * 24 + local_hour
        local_date[index] = local.tz_localize(None).normalize().to_numpy().astype("datetime64[D]")
    grid = pd.DataFrame(
        {
            "pos": np.repeat(np.arange(n_points, dtype=np.int32), n_hours),
            # Taken from the aware index itself: its to_numpy() is one Timestamp object per
            # hour, and tiling those and parsing them back cost a tenth of the grid's time.
            "hour_start": hours[np.tile(np.arange(n_hours), n_points)],
            "is_open": is_open.ravel(),
            "how": how.ravel(),
            "local_date": local_date.ravel(),
        }
    )
    values = {name: np.zeros(n_points * n_hours, dtype=np.float64) for name in AGG_COLUMNS}
    if not aggregates.empty and n_hours:
        position = pd.Series(np.arange(n_points), index=pts["point_id"])
        point_pos = aggregates["point_id"].map(position)
        hour_pos = (aggregates["hour_start"] - hours[0]) // pd.Timedelta(hours=1)
        keep = point_pos.notna() & (hour_pos >= 0) & (hour_pos < n_hours)
        flat = (
            point_pos[keep].astype(np.int64) * n_hours + hour_pos[keep].astype(np.int64)
        ).to_numpy()
        for name in AGG_COLUMNS:
            values[name][flat] = aggregates.loc[keep, name].to_numpy(dtype=np.float64)
    for name in AGG_COLUMNS:
        grid[name] = values[name]
    return grid


def window_mask(
    grid: pd.DataFrame, pts: pd.DataFrame, windows: pd.DataFrame, begin: str, finish: str
) -> np.ndarray:
    """Rows of ``grid`` whose hour overlaps one of ``windows`` (point_id, begin, finish) of their point."""
    mask = np.zeros(len(grid), dtype=bool)
    if windows.empty:
        return mask
    position = dict(zip(pts["point_id"], range(len(pts)), strict=True))
    # Each window is held against its own point's rows only: comparing every row of the grid
    # once per window grew with the cases a walk forward raises (a nine-week grid of 1,000
    # points against hundreds of case windows, a tenth of a week's features late in a year).
    rows_of = pd.Series(np.arange(len(grid))).groupby(grid["pos"].to_numpy()).indices
    hour_start = grid["hour_start"].array
    hour_end = hour_start + pd.Timedelta(hours=1)
    for window in windows.itertuples(index=False):
        pos = position.get(window.point_id)
        rows = rows_of.get(pos) if pos is not None else None
        if rows is None:
            continue
        hit = np.asarray(hour_start[rows] < getattr(window, finish)) & np.asarray(
            hour_end[rows] > getattr(window, begin)
        )
        mask[rows[hit]] = True
    return mask


def context_grid(
    engine: Engine,
    pts: pd.DataFrame,
    begin: pd.Timestamp,
    end: pd.Timestamp,
    calendar: Calendar,
    undecided_until: pd.Timestamp | None = None,
    opened_before: datetime | None = None,
    stored: StoredWeeks | None = None,
) -> pd.DataFrame:
    """The grid over [begin, end) with peer groups, special days and suppressed/confirmed hours
    (undecided cases only before ``undecided_until``, the scored range's start, and only those
    that were cases by ``opened_before``, the baseline's end: ``unusual_case_windows``); the
    aggregates from ``stored`` when given."""
    read = stored.hour_aggregates if stored is not None else partial(load_hour_aggregates, engine)
    aggregates = read(begin.to_pydatetime(), end.to_pydatetime())
    grid = build_grid(aggregates, pts, begin, end)
    del aggregates
    grid["revenue_type"] = pts["revenue_type"].to_numpy()[grid["pos"].to_numpy()]
    grid["peer_group"] = pts["peer_group"].to_numpy()[grid["pos"].to_numpy()]
    special = calendar.special_days(range(begin.year - 1, end.year + 2))
    if special:
        names = pd.Series(list(special.values()), index=pd.to_datetime(list(special.keys())))
        names.index = names.index.to_numpy().astype("datetime64[D]")
        grid["holiday"] = grid["local_date"].map(names)
    else:
        grid["holiday"] = np.nan
    # Closures/maintenance (kind-less suppressions), confirmed leakage and cases still waiting
    # for a decision are not "usual".
    suppressed = suppression_windows(engine, begin.to_pydatetime(), end.to_pydatetime())
    suppressed = suppressed[suppressed["kind"].isna()]
    excluded = window_mask(grid, pts, suppressed, "starts_at", "ends_at")
    unusual = unusual_case_windows(
        engine,
        begin.to_pydatetime(),
        end.to_pydatetime(),
        undecided_until=undecided_until.to_pydatetime() if undecided_until is not None else None,
        opened_before=opened_before,
    )
    grid["suppressed"] = excluded | window_mask(grid, pts, unusual, "start_at", "end_at")
    return grid


HOUR_OF_WEEK_LABELS = np.array(
    [f"{WEEKDAYS[d]} {h:02d}:00" for d in range(7) for h in range(24)], dtype=object
)


def local_labels(frame: pd.DataFrame) -> pd.Series:
    """ "Tue 10:00" in the point's own timezone."""
    labels = pd.Series("", index=frame.index, dtype="object")
    for tz, index in frame.groupby("timezone").indices.items():
        local = frame["hour_start"].iloc[index].dt.tz_convert(tz)
        slot = local.dt.dayofweek.to_numpy() * 24 + local.dt.hour.to_numpy()
        labels.iloc[index] = HOUR_OF_WEEK_LABELS[slot]
    return labels
