"""LearntUsuals, the walk's slot usuals learnt once per baseline: the same levels and scales as
``slot_usuals`` of the hours given, learnt again only when the hours (or registry, config)
differ, whatever the row labels and the grid's other columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

import pipeline.detection.features.baseline as baseline
from pipeline.detection.features.baseline import LearntUsuals, slot_usuals
from pipeline.detection.features.config import FeatureConfig
from pipeline.detection.features.peers import peer_groups
from tests.helpers.detect_fixtures import count_calls, make_points


def _history(n_points: int, seed: int) -> pd.DataFrame:
    """Three weeks of a grid's baseline hours: many zero hours (ties, tickets and cash shares
    missing), some closed hours, extra columns the usual levels do not read."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2026-03-02", periods=21 * 24, freq="h", tz="UTC")
    rows = len(hours) * n_points
    counts = rng.poisson(1.5, rows) * rng.integers(0, 2, rows)
    frame = pd.DataFrame(
        {
            "pos": np.repeat(np.arange(n_points), len(hours)),
            "hour_start": np.tile(hours, n_points),
            "how": np.tile((hours.dayofweek * 24 + hours.hour).to_numpy(), n_points),
            "local_date": np.tile(hours.date, n_points),
            "is_open": np.tile(((hours.hour >= 6) & (hours.hour < 22)), n_points),
            "txn_count": counts,
            "gross_paid": counts * 2000,  # one ticket: ties everywhere
            "cash_amount": counts * 2000 * rng.integers(0, 2, rows),
            "void_count": rng.poisson(0.05, rows),
            "refund_count": rng.poisson(0.02, rows),
            "suppressed": False,
        }
    )
    frame.index = frame.index * 3 + 7  # labels as a slice of a larger grid has them
    return frame


def _same(got: tuple, expected: tuple) -> None:
    for a, b in zip(got, expected, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_learnt_usuals_are_slot_usuals_learnt_once_for_the_same_hours(monkeypatch):
    pts = make_points(4)
    config = FeatureConfig()
    pts["peer_group"] = peer_groups(pts, config.min_peers)
    history = _history(4, seed=2)
    expected = slot_usuals(history, pts, config)
    real = baseline.slot_usuals
    learnt_times = count_calls(monkeypatch, baseline, "slot_usuals")
    learnt = LearntUsuals()
    first = learnt.slot_usuals(history, pts, config)
    _same(first, expected)
    first[0].loc[:, "usual_rev"] = -1.0  # a caller's change stays its own
    # The same hours from another week's grid: other labels, another column order, more columns.
    relabelled = history.reset_index(drop=True)[::-1].iloc[::-1].assign(extra=1.5)
    _same(learnt.slot_usuals(relabelled, pts, config), expected)
    assert len(learnt_times) == 1

    changed = history.copy()
    changed.loc[changed.index[5], "txn_count"] += 1  # one hour differs: learnt again
    _same(learnt.slot_usuals(changed, pts, config), real(changed, pts, config))
    assert len(learnt_times) == 2
    other_config = FeatureConfig(min_slot_samples=config.min_slot_samples + 2)
    _same(learnt.slot_usuals(changed, pts, other_config), real(changed, pts, other_config))
    assert len(learnt_times) == 3
