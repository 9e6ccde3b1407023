"""What a model learns from, on SQLite and PostgreSQL: the walk forward's models learn the weeks
before their moment as those weeks were scored (each against its own retrain moment's usual
levels, the cases the weeks before raised kept out), from the features the walk kept; the
weekly retrain, featuring the same weeks from the store, fits the same model; the fanned-out
backfill fits its later models on the way and gives the walk's flags."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete

from pipeline.casework.cases import list_anomalies, list_cases
from pipeline.detection.backfill import backfill, model_at_moment
from pipeline.detection.fanout import plan_backfill, run_plan
from pipeline.detection.features import FEATURES, compute_features, data_span
from pipeline.detection.model_store import load_model
from pipeline.detection.rhythm import training_window
from pipeline.detection.training import (
    MAX_TRAINING_ROWS,
    KeptWeeks,
    train_model,
    training_sample,
    training_usual_until,
)
from pipeline.store.schema import anomalies, cases, detector_models
from tests.helpers.detect_fixtures import (
    START,
    in_window,
    load_world,
    local_window,
    make_points,
    make_transactions,
)

DAYS = 31  # retrain moments on days 14, 21 and 28 (Monday 02:00 Jakarta): three models
END = START + pd.Timedelta(days=DAYS)
MIN_HISTORY = timedelta(days=13)  # as in test_backfill: the first retrain moment is day 14


def _world(engine) -> None:
    """Six parking points; P05 under-reporting half its sales from Tuesday to Thursday of the
    first scored week (a case still open when the next week's usual levels are learnt), P02's
    device off one afternoon of the second."""
    pts = make_points(6)
    txns = make_transactions(pts, days=DAYS, seed=17, scale=0.9)
    rng = np.random.default_rng(3)
    s, e = local_window(15, 7, 24 * 2 + 21)
    txns = txns[~(in_window(txns, "P05", s, e) & (rng.random(len(txns)) < 0.5))]
    txns = txns[~in_window(txns, "P02", *local_window(23, 12, 18))]
    load_world(engine, pts, txns)


def _scores(engine, models_dir, version: str, rows: pd.DataFrame) -> tuple[float, np.ndarray]:
    detector = load_model(engine, models_dir, version).detector
    return detector.threshold_, detector.score_samples(rows[list(FEATURES)])


def _snapshot(engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    flags = list_anomalies(engine)[["point_id", "hour_start", "kind", "severity", "score"]]
    flags["score"] = flags["score"].round(9)
    found = list_cases(engine)[["point_id", "start_at", "end_at", "kind", "status"]]
    return (
        flags.sort_values(["point_id", "hour_start"]).reset_index(drop=True),
        found.sort_values(["point_id", "start_at"]).reset_index(drop=True),
    )


@pytest.mark.slow
def test_models_learn_the_weeks_as_they_were_scored_not_in_sample(engine, tmp_path):
    """The failure this pins: every model featured its eight weeks again against usual levels
    learnt at its own moment from those same weeks (in sample: the leakage it learns from is
    part of "usual"), which was also most of a backfill's time."""
    _world(engine)
    walked = backfill(engine, tmp_path / "walk", START, END, min_history=MIN_HISTORY)
    assert walked.trained == 3
    span = data_span(engine)
    moment = walked.scored_from + timedelta(weeks=2)  # the third model's: day 28 02:00
    window = training_window(moment, span[0])
    version = model_at_moment(engine, moment)
    assert version in walked.models
    # The P05 case of the first scored week is open: the second week's usual levels left it
    # out, so what the third model learnt depends on the flags the walk raised.
    found = list_cases(engine)
    assert (found["point_id"] == "P05").any()
    rows = compute_features(engine, moment, END, baseline_end=moment)

    # The weekly retrain at that moment features the weeks from the store, as they were scored.
    live = train_model(engine, tmp_path / "live", *window, min_history=MIN_HISTORY)
    walk_threshold, walk_scores = _scores(engine, tmp_path / "walk", version, rows)
    live_threshold, live_scores = _scores(engine, tmp_path / "live", live, rows)
    assert live_threshold == walk_threshold
    np.testing.assert_array_equal(live_scores, walk_scores)

    # The in-sample way (the window against usual levels learnt at the moment) is another model.
    in_sample = train_model(engine, tmp_path / "in-sample", *window, hindsight=True)
    threshold, scores = _scores(engine, tmp_path / "in-sample", in_sample, rows)
    assert threshold != walk_threshold and not np.allclose(scores, walk_scores)

    # The fanned-out backfill fits the third model on the way, from the weeks it scored, and
    # gives the walk's flags and cases.
    flags, found = _snapshot(engine)
    with engine.begin() as connection:
        for table in (anomalies, cases, detector_models):
            connection.execute(delete(table))
    plan = plan_backfill(engine, START, END, min_history=MIN_HISTORY)
    assert plan.moments[2] == moment and moment not in plan.upfront_moments
    fanned = run_plan(engine, tmp_path / "fan", plan)
    assert (fanned.trained, fanned.flagged) == (3, walked.flagged)
    fanned_flags, fanned_found = _snapshot(engine)
    pd.testing.assert_frame_equal(fanned_flags, flags)
    pd.testing.assert_frame_equal(fanned_found, found)
    fan_threshold, fan_scores = _scores(engine, tmp_path / "fan", fanned.models[2], rows)
    assert fan_threshold == walk_threshold
    np.testing.assert_array_equal(fan_scores, walk_scores)


def test_weeks_before_the_first_scored_moment_are_judged_by_its_usual_levels():
    first = START + timedelta(days=14, hours=2)
    assert training_usual_until(START + timedelta(days=3), first) == first
    assert training_usual_until(first, first) == first
    later = first + timedelta(weeks=1)
    assert training_usual_until(later + timedelta(hours=5), first) == later


def test_the_training_sample_is_fixed_and_in_order():
    assert training_sample(MAX_TRAINING_ROWS) is None
    rows = training_sample(MAX_TRAINING_ROWS + 1_000)
    assert len(rows) == MAX_TRAINING_ROWS and (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(rows, training_sample(MAX_TRAINING_ROWS + 1_000))


def test_kept_weeks_hold_one_training_window():
    kept = KeptWeeks(weeks=2)
    frame = pd.DataFrame({name: [1.0, 2.0] for name in FEATURES})
    week = timedelta(weeks=1)
    keys = [(START + i * week, START + (i + 1) * week, START, None) for i in range(4)]
    for key in keys:
        kept.keep(key, frame)
    assert kept.get(keys[0]) is None and kept.get(keys[1]) is None
    values = kept.get(keys[3])
    assert values.dtype == np.float32 and values.shape == (2, len(FEATURES))
