"""``grid.window_mask``, which holds each window against its own point's rows only, marks the
rows that holding every window against the whole grid marks: windows inside an hour, across
hours and days, at the grid's edges, of a point outside the registry, empty, and a grid in
any row order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.detection.features.grid import build_grid, window_mask
from tests.helpers.detect_fixtures import START, make_points


def _every_row_per_window(grid, pts, windows, begin, finish) -> np.ndarray:
    """The plain form: every window compared with every row of the grid."""
    mask = np.zeros(len(grid), dtype=bool)
    if windows.empty:
        return mask
    position = dict(zip(pts["point_id"], range(len(pts)), strict=True))
    hour_end = grid["hour_start"] + pd.Timedelta(hours=1)
    for window in windows.itertuples(index=False):
        pos = position.get(window.point_id)
        if pos is None:
            continue
        mask |= (
            (grid["pos"].to_numpy() == pos)
            & (grid["hour_start"] < getattr(window, finish)).to_numpy()
            & (hour_end > getattr(window, begin)).to_numpy()
        )
    return mask


def _windows(pts: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 40
    begin = pd.Timestamp(START) + pd.to_timedelta(rng.integers(-2 * 24 * 60, 12 * 24 * 60, n), "m")
    begin = begin.where(np.arange(n) % 2 == 0, begin.floor("h"))  # half on an hour's edge
    length = pd.to_timedelta(rng.integers(0, 3 * 24 * 60, n), "m")
    length = length.where(np.arange(n) % 3 != 0, length.floor("h"))  # some empty, some whole
    points = rng.choice([*pts["point_id"], "NOT-REGISTERED"], n)
    return pd.DataFrame({"point_id": points, "start_at": begin, "end_at": begin + length})


def test_window_mask_marks_what_every_row_per_window_marks():
    pts = make_points(6)
    grid = build_grid(pd.DataFrame(), pts, START, START + pd.Timedelta(days=10))
    shuffled = grid.sample(frac=1.0, random_state=1)  # the rule is per row, not per order
    marked = 0
    for seed in range(5):
        windows = _windows(pts, seed)
        for frame in (grid, shuffled):
            expected = _every_row_per_window(frame, pts, windows, "start_at", "end_at")
            got = window_mask(frame, pts, windows, "start_at", "end_at")
            np.testing.assert_array_equal(got, expected)
            marked += int(expected.sum())
    assert marked > 0  # the windows do reach the grid
    no_windows = _windows(pts, 0).iloc[:0]
    assert not window_mask(grid, pts, no_windows, "start_at", "end_at").any()
