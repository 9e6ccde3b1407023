"""Feature computation details that are about how, not what: the baseline cache of the hourly
runs must give exactly the features of a run without it."""

from __future__ import annotations

import pandas as pd

import pipeline.detection.features.assemble as features_module
from pipeline.detection.features import compute_features
from tests.helpers.detect_fixtures import (
    START,
    count_calls,
    load_world,
    make_points,
    make_transactions,
)


def test_cached_baseline_gives_the_features_of_a_fresh_one(engine, tmp_path, monkeypatch):
    pts = make_points(5)
    txns = make_transactions(pts, days=21, seed=4, scale=0.8)
    # Some sales without an operator: their usual shares are cached under a missing operator.
    txns.loc[txns.index[::7], "operator_id"] = None
    load_world(engine, pts, txns)
    end = START + pd.Timedelta(days=20, hours=15)
    start = end - pd.Timedelta(days=2)
    fresh = compute_features(engine, start, end)

    cache = tmp_path / "baselines"
    written = compute_features(engine, start, end, cache_dir=cache)
    assert len(list(cache.glob("baseline-*.npz"))) == 1
    sql_passes = count_calls(monkeypatch, features_module, "operator_usuals")
    read = compute_features(engine, start, end, cache_dir=cache)
    assert sql_passes == []  # the operators' usual shares came from the cache too
    assert fresh["op_cash_drop"].gt(0).any()  # the operator signals are exercised
    pd.testing.assert_frame_equal(fresh, written, check_exact=True)
    pd.testing.assert_frame_equal(fresh, read, check_exact=True)
