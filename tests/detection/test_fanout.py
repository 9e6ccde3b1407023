"""The fanned-out backfill against the single-process one, on SQLite and PostgreSQL: the models
of every retrain moment trained in any order (in a pool of processes too), then week by week
the units, one of them twice, each week's cases joined, give the walk-forward backfill's flags
and cases exactly - with an incident that crosses a retrain moment (a week boundary)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, func, select

from pipeline.casework.cases import list_anomalies, list_cases
from pipeline.core.errors import UnusableInputError
from pipeline.detection.backfill import backfill
from pipeline.detection.fanout import (
    WorkUnit,
    join_week,
    plan_backfill,
    run_plan,
    score_unit,
    train_for_moment,
)
from pipeline.detection.rhythm import last_moment
from pipeline.store.schema import anomalies, cases, detector_models
from tests.helpers.detect_fixtures import (
    START,
    in_window,
    load_world,
    local_window,
    make_points,
    make_transactions,
)

DAYS = 28
END = START + pd.Timedelta(days=DAYS)
MIN_HISTORY = timedelta(days=13)  # as in test_backfill: the first retrain moment is day 14
RETRAIN = last_moment(START + timedelta(days=21, hours=3))  # Monday day 21, 02:00 Jakarta


def _world(engine) -> None:
    """Eight parking points; P03's device off from Sunday afternoon to Monday late morning
    (over the retrain moment, the night closed between), and P06 under-reporting half its sales
    from Friday to Tuesday."""
    pts = make_points(8)
    txns = make_transactions(pts, days=DAYS, seed=21, scale=0.9)
    txns = txns[~in_window(txns, "P03", *local_window(20, 13, 24 + 11))]
    rng = np.random.default_rng(5)
    s, e = local_window(18, 7, 24 * 4 + 21)
    txns = txns[~(in_window(txns, "P06", s, e) & (rng.random(len(txns)) < 0.5))]
    load_world(engine, pts, txns)


def _snapshot(engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    flags = list_anomalies(engine)
    found = list_cases(engine)
    # Which case each flag belongs to, by the case's point and start (ids differ by run).
    starts = dict(zip(found["case_id"], found["start_at"], strict=True))
    flags["case_start"] = flags["case_id"].map(starts)
    flags["score"] = flags["score"].round(9)
    flag_columns = ["point_id", "hour_start", "kind", "severity", "score", "shortfall_rp"]
    flag_columns += ["reasons", "operators", "case_start", "status"]
    case_columns = ["point_id", "start_at", "end_at", "kind", "severity", "score", "reasons"]
    case_columns += ["shortfall_rp", "operators", "status", "details"]
    found["score"] = found["score"].round(9)
    return (
        flags[flag_columns].sort_values(["point_id", "hour_start"]).reset_index(drop=True),
        found[case_columns].sort_values(["point_id", "start_at"]).reset_index(drop=True),
    )


def _count_in(flags: pd.DataFrame, unit: WorkUnit) -> int:
    return int(((flags["hour_start"] >= unit.start) & (flags["hour_start"] < unit.end)).sum())


def _forget_detection(engine) -> None:
    """No flags, no cases, no models: the next run starts from the stored data alone."""
    with engine.begin() as connection:
        connection.execute(delete(anomalies))
        connection.execute(delete(cases))
        connection.execute(delete(detector_models))


@pytest.mark.slow
def test_fanned_out_units_give_the_single_process_backfills_flags_and_cases(engine, tmp_path):
    _world(engine)
    walked = backfill(engine, tmp_path / "walk", START, END, min_history=MIN_HISTORY)
    single_flags, single_cases = _snapshot(engine)
    # The planted incidents are there, and one case runs over the week boundary.
    assert {"P03", "P06"} <= set(single_cases["point_id"])
    across = single_cases[(single_cases["start_at"] < RETRAIN) & (single_cases["end_at"] > RETRAIN)]
    assert not across.empty

    _forget_detection(engine)
    plan = plan_backfill(engine, START, END, min_history=MIN_HISTORY)
    assert plan.scored_from == walked.scored_from
    assert len(plan.moments) == 2 and len(plan.units) == 2
    models = tmp_path / "units"
    trained = [
        train_for_moment(engine, models, m, min_history=MIN_HISTORY)
        for m in reversed(plan.upfront_moments)
    ]
    assert plan.upfront_moments == plan.moments  # two weeks: both models fit before scoring
    assert all(fitted for _, fitted in trained)
    for unit in plan.units:
        score_unit(engine, models, unit)
        with engine.connect() as connection:
            linked = connection.execute(
                select(func.count())
                .select_from(anomalies)
                .where(anomalies.c.case_id.is_not(None), anomalies.c.hour_start >= unit.start)
            ).scalar_one()
        assert linked == 0  # the unit wrote flags only; its cases wait for the join
        again = score_unit(engine, models, unit)  # a retried unit replaces its own flags
        assert again.flagged == _count_in(single_flags, unit) > 0
        join_week(engine, unit.start, unit.end)
    fanned_flags, fanned_cases = _snapshot(engine)
    pd.testing.assert_frame_equal(fanned_flags, single_flags)
    pd.testing.assert_frame_equal(fanned_cases, single_cases)

    # The same with the models fitted by a pool of two processes (``eincome backfill --workers``).
    _forget_detection(engine)
    pooled = run_plan(
        engine,
        tmp_path / "pool",
        plan_backfill(engine, START, END, min_history=MIN_HISTORY),
        workers=2,
    )
    assert (pooled.hours_scored, pooled.flagged) == (walked.hours_scored, walked.flagged)
    assert pooled.trained == 2
    pooled_flags, pooled_cases = _snapshot(engine)
    pd.testing.assert_frame_equal(pooled_flags, single_flags)
    pd.testing.assert_frame_equal(pooled_cases, single_cases)


def test_a_unit_whose_model_is_missing_is_refused_not_judged_with_a_later_one(engine, tmp_path):
    _world(engine)
    plan = plan_backfill(engine, START, END, min_history=MIN_HISTORY)
    train_for_moment(engine, tmp_path, plan.moments[-1])  # only the second week's model
    with pytest.raises(UnusableInputError, match="no model fitted at the retrain moment"):
        score_unit(engine, tmp_path, plan.units[0])


def test_a_work_unit_survives_xcom():
    unit = WorkUnit(START + timedelta(days=14, hours=2), START + timedelta(days=21, hours=2))
    assert WorkUnit.from_dict(unit.as_dict()) == unit
    assert unit.moment == unit.start
