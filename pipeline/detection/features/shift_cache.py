"""The operators' complete days, cached: every hourly run of a point's local day reads the same
complete days before it for the operators' cash shortfall (who ran each shift, and the cash of
their shifts; ``operator_signals.ShiftDays``), and figuring them merged every sale of ten days
with every hour of them, each hour again. They are kept on disk beside the baseline they were
figured against (numpy ``.npz``, no pickle), keyed by that baseline's file, the points' local
days and a fingerprint of the hour aggregates they were figured from: a late row landing in one
of those days changes its hour's aggregates, so the next run figures them again from the store
(point in time, nothing lost)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.detection.features.operator_signals import (
    CASH_SHORT_LEAD_DAYS,
    SHIFT_CHOICE_DAYS,
    SHIFT_LOOKBACK_DAYS,
    ShiftDays,
)
from pipeline.intake.aggregate import AGGREGATE_COLUMNS

DAILY_VALUES = ("obs", "exp")


def points_today(frame: pd.DataFrame, hour: pd.Timestamp) -> tuple[pd.Series, np.ndarray]:
    """Each point's local date at ``hour``, from the grid's rows of that hour: by point_id, and
    for every row of ``frame`` its own point's."""
    at = frame[frame["hour_start"] == hour]
    by_pos = np.zeros(int(frame["pos"].max()) + 1, dtype=at["local_date"].dtype)
    by_pos[at["pos"].to_numpy()] = at["local_date"].to_numpy()
    today = pd.Series(at["local_date"].to_numpy(), index=at["point_id"].to_numpy())
    return today, by_pos[frame["pos"].to_numpy()]


def shift_days_path(
    baseline_path: Path, frame: pd.DataFrame, today: pd.Series, row_today: np.ndarray
) -> Path:
    """Cache file of the complete days before each point's ``today``, figured against the
    baseline kept at ``baseline_path`` from the hour aggregates in ``frame`` (the grid with its
    usual levels; ``row_today``: each row's point's ``today``). The name changes when any hour
    those days read changes: every point's hours from the first of them to the last point's
    ``today``, the peers' hours included (the expected cash of an hour reads its peers)."""
    local_date = frame["local_date"].to_numpy()
    hour = frame["hour_start"].array.asi8  # UTC, in the column's unit
    first_day = row_today - np.timedelta64(CASH_SHORT_LEAD_DAYS - 1, "D")
    begin = hour[(local_date < row_today) & (local_date >= first_day)].min()
    # The first hour of each point's today, and of those the last.
    on_today = local_date >= row_today
    end = pd.Series(hour[on_today]).groupby(frame["pos"].to_numpy()[on_today]).min().max()
    read = (hour >= begin) & (hour < end)
    digest = hashlib.sha256()
    digest.update(repr((baseline_path.name, SHIFT_CHOICE_DAYS, SHIFT_LOOKBACK_DAYS)).encode())
    digest.update("\x00".join(today.index).encode())
    digest.update(today.to_numpy().astype("datetime64[D]").tobytes())
    digest.update(hour[read].tobytes())
    for column in ("pos", "is_open", *AGGREGATE_COLUMNS):
        digest.update(np.ascontiguousarray(frame[column].to_numpy()[read]).tobytes())
    newest = max(today.to_numpy()).astype("datetime64[D]")
    return baseline_path.parent / f"shifts-{newest}-{digest.hexdigest()[:16]}.npz"


def write_shift_days(path: Path, days: ShiftDays) -> None:
    """Keep ``days`` at ``path``, written to a temporary file and moved into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, rows in (("counts", days.counts), ("daily", days.daily)):
        arrays[f"{name}_point_id"] = rows["point_id"].to_numpy().astype(str)
        arrays[f"{name}_operator_id"] = rows["operator_id"].to_numpy().astype(str)
        arrays[f"{name}_local_date"] = rows["local_date"].to_numpy().astype("datetime64[D]")
    arrays["counts_local_hour"] = days.counts["local_hour"].to_numpy(dtype=np.int64)
    arrays["counts_n"] = days.counts["n"].to_numpy(dtype=np.int64)
    for column in DAILY_VALUES:
        arrays[f"daily_{column}"] = days.daily[column].to_numpy(dtype=np.float64)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    # A day's file is read by that day's hourly runs only (~4 MB at 1,000 points): the ones of
    # its day and before go, those of its data before late rows came included. A later day's
    # stays (a past day scored again beside the live runs).
    day = path.name[len("shifts-") :][:10]
    for old in path.parent.glob("shifts-*.npz"):
        written = not old.name.endswith(".tmp.npz")  # another run's, being written
        if written and old != path and old.name[len("shifts-") :][:10] <= day:
            old.unlink(missing_ok=True)


def read_shift_days(path: Path, hours: pd.DataFrame) -> ShiftDays | None:
    """The ``ShiftDays`` kept at ``path``, with the column types of ``hours`` (the run's hour
    rows: its local dates and hours of the day); None when there is no file."""
    date_type, hour_type = hours["local_date"].dtype, hours["local_hour"].dtype
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:  # none yet, or a later day's run has just pruned it
        return None
    with data:

        def keys(name: str) -> dict:
            return {
                "point_id": pd.Series(data[f"{name}_point_id"], dtype="str"),
                "operator_id": pd.Series(data[f"{name}_operator_id"], dtype="str"),
                "local_date": pd.Series(data[f"{name}_local_date"]).astype(date_type),
            }

        counts = pd.DataFrame(keys("counts"))
        counts.insert(1, "local_hour", data["counts_local_hour"].astype(hour_type))
        counts["n"] = data["counts_n"]
        daily = pd.DataFrame(keys("daily"))
        for column in DAILY_VALUES:
            daily[column] = data[f"daily_{column}"]
    return ShiftDays(counts=counts, daily=daily)
