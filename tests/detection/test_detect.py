"""Detection on a small seeded world with one planted case per leakage pattern, a holiday that
moves every point, a regency-wide rain dip and an announced closure (SQLite: the function level;
the stage tests in test_cases/test_backfill run on PostgreSQL too)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from pipeline.casework.cases import list_anomalies, list_cases
from pipeline.detection.backfill import backfill
from pipeline.detection.detector import LeakageDetector
from pipeline.detection.features import FEATURES, compute_features
from pipeline.detection.model_store import ModelVersionDriftWarning, load_model, save_model
from pipeline.reference.points import open_hours_matrix
from pipeline.reference.suppressions import add_suppression
from pipeline.store import connect
from tests.helpers.detect_fixtures import (
    START,
    in_window,
    load_world,
    local_window,
    make_points,
    make_transactions,
)

DAYS = 28


def _aggregated_already(engine, start, end) -> None:
    """The fixture world is written with its hour aggregates; nothing to recompute."""


PLANTED: dict[str, tuple[str, pd.Timestamp, pd.Timestamp]] = {}


def _plant(txns: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One case of each pattern, each at its own point and day (no public holiday)."""
    s, e = local_window(9, 10, 14)  # Wed 11 March
    PLANTED["device_off"] = ("P03", s, e)
    txns = txns[~in_window(txns, "P03", s, e)]

    s, e = local_window(10, 7, 24 * 2 + 21)  # three days at half the sales
    PLANTED["under_reporting"] = ("P05", s, e)
    txns = txns[~(in_window(txns, "P05", s, e) & (rng.random(len(txns)) < 0.5))]

    s, e = local_window(12, 14, 24 * 3 + 21)  # operator B's shift for four days
    PLANTED["cash_skimming"] = ("P06", s, e)
    skim = in_window(txns, "P06", s, e) & (txns["operator_id"] == "P06-opB")
    skim &= (txns["payment_method"] == "cash") & (rng.random(len(txns)) < 0.6)
    txns = txns[~skim]

    s, e = local_window(23, 7, 14)
    PLANTED["void_abuse"] = ("P02", s, e)
    voided = in_window(txns, "P02", s, e) & (rng.random(len(txns)) < 0.25)
    txns.loc[voided, "status"] = "void"

    s, e = local_window(6, 7, 21)
    PLANTED["ticket_shaving"] = ("P07", s, e)
    shaved = in_window(txns, "P07", s, e)
    txns.loc[shaved, "amount"] = (txns.loc[shaved, "amount"] * 0.5).astype(int)

    s, e = local_window(24, 16, 18)
    PLANTED["split_transactions"] = ("P01", s, e)
    offsets = pd.to_timedelta(np.sort(rng.integers(0, 7200, 40)), unit="s")
    burst = pd.DataFrame(
        {
            "point_id": "P01",
            "txn_id": [f"P01-burst-{i}" for i in range(40)],
            "occurred_at": s + offsets,
            "amount": 500,
            "payment_method": "qris",
            "status": "paid",
            "operator_id": "P01-opB",
            "payer_ref": "h-attendant",
        }
    )
    txns = pd.concat([txns, burst], ignore_index=True)

    # Quiet effects: Eid al-Fitr (Sat 21 March) halves every point; rain cuts all for 3 hours.
    s, e = local_window(19, 0, 24)
    PLANTED["holiday"] = ("*", s, e)
    txns = txns[
        ~((txns["occurred_at"] >= s) & (txns["occurred_at"] < e) & (rng.random(len(txns)) < 0.5))
    ]
    s, e = local_window(25, 13, 16)
    PLANTED["rain"] = ("*", s, e)
    txns = txns[
        ~((txns["occurred_at"] >= s) & (txns["occurred_at"] < e) & (rng.random(len(txns)) < 0.6))
    ]

    # Announced closure: P04 closed all of Sat 28 March.
    s, e = local_window(26, 0, 24)
    PLANTED["closure"] = ("P04", s, e)
    return txns[~in_window(txns, "P04", s, e)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A scored world: engine, models dir, anomalies frame, cases frame."""
    folder = tmp_path_factory.mktemp("detect")
    engine = connect(f"sqlite:///{folder / 'world.db'}")
    pts = make_points(8)
    rng = np.random.default_rng(11)
    txns = _plant(make_transactions(pts, days=DAYS, seed=3), rng)
    load_world(engine, pts, txns)
    _, s, e = PLANTED["closure"]
    add_suppression(engine, point_id="P04", starts_at=s, ends_at=e, reason="market renovation")
    end = START + pd.Timedelta(days=DAYS)
    # load_world wrote the hour aggregates already; backfill trains (no model yet) and scores.
    result = backfill(
        engine, folder / "models", START, end, aggregate=_aggregated_already, hindsight=True
    )
    yield (
        engine,
        folder / "models",
        result.model_version,
        list_anomalies(engine),
        list_cases(engine),
    )
    engine.dispose()


def _flags_in(anomalies: pd.DataFrame, point: str, start, end) -> pd.DataFrame:
    hit = (anomalies["hour_start"] >= start) & (anomalies["hour_start"] < end)
    return anomalies[hit & ((anomalies["point_id"] == point) if point != "*" else True)]


@pytest.mark.parametrize(
    "kind",
    [
        "device_off",
        "under_reporting",
        "cash_skimming",
        "void_abuse",
        "ticket_shaving",
        "split_transactions",
    ],
)
def test_planted_pattern_is_caught_with_its_kind(world, kind):
    _, _, _, anomalies, _ = world
    point, start, end = PLANTED[kind]
    flags = _flags_in(anomalies, point, start, end)
    assert len(flags) >= 1, f"{kind} at {point} not flagged"
    assert kind in set(flags["kind"]), f"{kind} flagged as {sorted(set(flags['kind']))}"
    assert (flags["shortfall_rp"] >= 0).all()
    assert flags["reasons"].str.len().min() > 20


def test_few_flags_outside_planted_cases(world):
    _, _, _, anomalies, _ = world
    true = pd.Series(False, index=anomalies.index)
    for kind, (point, start, end) in PLANTED.items():
        if point != "*" and kind != "closure":
            pad = pd.Timedelta(hours=1)
            # Point in time, the day and multi-day evidence of an incident lasts until the days
            # after it look usual again: the rest of its day and the two days after it are
            # what a live run raises too (and join the incident's case).
            after = pd.Timedelta(days=2)
            true |= (
                (anomalies["point_id"] == point)
                & (anomalies["hour_start"] >= start - pad)
                & (anomalies["hour_start"] < end + after)
            )
    assert (~true).sum() <= 12, anomalies[~true][["point_id", "hour_start", "kind", "reasons"]]
    assert true.sum() / max(len(anomalies), 1) >= 0.85


def test_holiday_moving_every_point_is_not_flagged(world):
    _, _, _, anomalies, _ = world
    _, start, end = PLANTED["holiday"]
    assert _flags_in(anomalies, "*", start, end).empty


def test_regency_wide_rain_dip_is_not_flagged(world):
    _, _, _, anomalies, _ = world
    _, start, end = PLANTED["rain"]
    assert _flags_in(anomalies, "*", start, end).empty


def test_announced_closure_is_silent(world):
    _, _, _, anomalies, cases = world
    point, start, end = PLANTED["closure"]
    assert _flags_in(anomalies, point, start, end).empty
    inside = cases[
        (cases["point_id"] == point) & (cases["start_at"] < end) & (cases["end_at"] > start)
    ]
    assert inside.empty


def test_reasons_quote_the_numbers(world):
    _, _, _, anomalies, _ = world
    point, start, end = PLANTED["cash_skimming"]
    reasons = " ".join(_flags_in(anomalies, point, start, end)["reasons"])
    assert "cash share" in reasons and "%" in reasons
    point, start, end = PLANTED["device_off"]
    reasons = " ".join(_flags_in(anomalies, point, start, end)["reasons"])
    assert "no transactions while open" in reasons and "Wed" in reasons


def test_cash_skimming_names_the_operator(world):
    _, _, _, _, cases = world
    point, start, end = PLANTED["cash_skimming"]
    found = cases[(cases["point_id"] == point) & (cases["kind"] == "cash_skimming")]
    assert not found.empty
    assert set(found["operators"].dropna()) == {"P06-opB"}


def test_consecutive_flagged_hours_form_one_case(world):
    _, _, _, anomalies, cases = world
    point, start, end = PLANTED["device_off"]
    flags = _flags_in(anomalies, point, start, end)
    assert flags["case_id"].nunique() == 1
    case = cases[cases["case_id"] == flags["case_id"].iloc[0]].iloc[0]
    assert case["kind"] == "device_off"
    assert case["shortfall_rp"] > 0


def test_features_cover_silent_open_hours(world):
    engine, *_ = world
    point, start, end = PLANTED["device_off"]
    features = compute_features(engine, start, end)
    rows = features[features["point_id"] == point]
    assert len(rows) == 4 and (rows["txn_count"] == 0).all()
    assert (rows["usual_cnt"] > 5).all()
    # Closed hours are not scored: 8 points x 4 open hours.
    assert len(features) == 8 * 4


def test_cold_start_point_is_compared_with_peers(world, tmp_path):
    """A point registered a few days ago borrows its peers' usual level, and says so."""
    engine, models, *_ = world
    pts = make_points(9).iloc[[8]]
    txns = make_transactions(make_points(9), days=DAYS, seed=9)
    txns = txns[
        (txns["point_id"] == "P08") & (txns["occurred_at"] >= START + pd.Timedelta(days=DAYS - 4))
    ]
    s, e = local_window(DAYS - 1, 9, 13)
    load_world(engine, pts, txns[~in_window(txns, "P08", s, e)])
    features = compute_features(engine, s, e)
    rows = features[features["point_id"] == "P08"]
    assert rows["cold"].all()
    model = load_model(engine, models)
    from pipeline.detection.backfill import flag_hours

    flags = flag_hours(rows, model.detector)
    assert len(flags) >= 2
    assert flags["reasons"].str.contains("new point").all()


def test_open_hours_past_midnight():
    matrix = open_hours_matrix(pd.Series(["18:00-02:00", "00:00-24:00", "06:30-08:00"]))
    assert matrix[0].tolist() == [h >= 18 or h < 2 for h in range(24)]
    assert matrix[1].all()
    assert matrix[2].tolist() == [h in (6, 7) for h in range(24)]


def test_detector_follows_the_estimator_contract():
    detector = LeakageDetector(n_estimators=20, contamination=0.05)
    assert clone(detector).get_params() == detector.get_params()
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        np.abs(rng.normal(scale=0.5, size=(500, len(FEATURES)))), columns=list(FEATURES)
    )
    assert detector.fit(X) is detector
    assert hasattr(detector, "threshold_") and detector.n_features_in_ == len(FEATURES)
    outlier = X.iloc[[0]].copy()
    outlier[list(FEATURES)] = 0.0
    outlier["count_drop"] = 12.0
    outlier["rev_drop"] = 12.0
    assert detector.predict(outlier)[0] == 1
    assert detector.predict(X).mean() < 0.06
    with pytest.raises(ValueError):
        LeakageDetector(contamination=0.7).fit(X)


def test_model_round_trips_through_skops(world, tmp_path):
    engine, _, _, _, _ = world
    rng = np.random.default_rng(1)
    X = pd.DataFrame(np.abs(rng.normal(size=(300, len(FEATURES)))), columns=list(FEATURES))
    detector = LeakageDetector(n_estimators=10).fit(X)
    from pipeline.detection.features import FeatureConfig

    version = save_model(
        engine,
        tmp_path,
        detector,
        FeatureConfig(),
        trained_from=START,
        trained_to=START + pd.Timedelta(days=1),
    )
    assert (tmp_path / f"{version}.skops").exists() and (tmp_path / f"{version}.json").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelVersionDriftWarning)
        loaded = load_model(engine, tmp_path, version)
    np.testing.assert_allclose(loaded.detector.score_samples(X), detector.score_samples(X))
    assert loaded.meta["threshold"] == detector.threshold_
    assert loaded.meta["features"] == list(FEATURES)
    assert "scikit-learn" in loaded.meta["libraries"]


def test_a_model_read_again_is_a_copy_and_a_replaced_file_is_read_anew(world, tmp_path):
    """Hourly runs in one process read a model's file once (it took 0.3 s an hour), but each
    load is its own object, and a file rewritten in place is read and checked again."""
    engine, _, _, _, _ = world
    from pipeline.detection.features import FeatureConfig

    rng = np.random.default_rng(2)
    X = pd.DataFrame(np.abs(rng.normal(size=(200, len(FEATURES)))), columns=list(FEATURES))
    window = {"trained_from": START, "trained_to": START + pd.Timedelta(days=1)}
    first = save_model(
        engine, tmp_path, LeakageDetector(n_estimators=5).fit(X), FeatureConfig(), **window
    )
    other = save_model(
        engine, tmp_path, LeakageDetector(n_estimators=9).fit(X), FeatureConfig(), **window
    )
    once, twice = load_model(engine, tmp_path, first), load_model(engine, tmp_path, first)
    assert once.detector is not twice.detector
    np.testing.assert_array_equal(once.detector.score_samples(X), twice.detector.score_samples(X))
    (tmp_path / f"{first}.skops").write_bytes((tmp_path / f"{other}.skops").read_bytes())
    assert load_model(engine, tmp_path, first).detector.n_estimators == 9


def test_loader_warns_on_library_drift(world, tmp_path):
    engine, _, _, _, _ = world
    X = pd.DataFrame(np.ones((50, len(FEATURES))), columns=list(FEATURES))
    import json

    from sqlalchemy import update

    from pipeline.detection.features import FeatureConfig
    from pipeline.store.schema import detector_models

    detector = LeakageDetector(n_estimators=5).fit(X)
    version = save_model(
        engine,
        tmp_path,
        detector,
        FeatureConfig(),
        trained_from=START,
        trained_to=START + pd.Timedelta(days=1),
    )
    meta = json.loads((tmp_path / f"{version}.json").read_text())
    meta["libraries"]["scikit-learn"] = "0.0.1"
    with engine.begin() as connection:
        connection.execute(
            update(detector_models)
            .where(detector_models.c.version == version)
            .values(meta=json.dumps(meta))
        )
    with pytest.warns(ModelVersionDriftWarning, match="scikit-learn 0.0.1"):
        load_model(engine, tmp_path, version)
