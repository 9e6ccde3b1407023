"""Hour-by-hour scoring (the hourly detect DAG, ``score_interval``) gives what a bulk backfill of
the same hours gives, with the same model: the same flags and the same cases.

The issue-15 failure: day-level features read the rest of the local day when several hours were
scored at once, so a backfilled afternoon differed from what the hourly runs had raised in it
(6 of 33 flags in the last real-scheduler check). Every feature of hour h now reads only what
was known at the end of h.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from pipeline.casework.cases import list_anomalies, list_cases
from pipeline.detection.backfill import backfill
from pipeline.orchestration import score_interval
from tests.helpers.detect_fixtures import (
    START,
    in_window,
    load_world,
    local_window,
    make_points,
    make_transactions,
)

DAYS = 17
END = START + pd.Timedelta(days=DAYS)
# Rescored one by one: local day 15 09:00 to day 16 08:00 (Jakarta), across midnight, over the
# afternoon P03 went silent and the days P05 recorded only half its sales.
HOURS = pd.date_range(*local_window(15, 9, 24 + 8), freq="h", inclusive="left")


def _world(engine) -> None:
    pts = make_points(6)
    txns = make_transactions(pts, days=DAYS, seed=12, scale=0.9)
    txns = txns[~in_window(txns, "P03", *local_window(15, 10, 14))]
    rng = np.random.default_rng(4)
    dropped = in_window(txns, "P05", *local_window(14, 7, 24 * 2 + 21))
    txns = txns[~(dropped & (rng.random(len(txns)) < 0.5))]
    load_world(engine, pts, txns)


def _flags(engine) -> pd.DataFrame:
    frame = list_anomalies(engine)[
        ["point_id", "hour_start", "kind", "severity", "score", "shortfall_rp", "model_version"]
    ]
    frame["score"] = frame["score"].round(9)
    return frame.sort_values(["point_id", "hour_start"]).reset_index(drop=True)


def _cases(engine) -> pd.DataFrame:
    found = list_cases(engine)[
        ["point_id", "start_at", "end_at", "kind", "severity", "shortfall_rp", "status"]
    ]
    return found.sort_values(["point_id", "start_at"]).reset_index(drop=True)


@pytest.mark.slow
def test_hour_by_hour_rescoring_reproduces_the_bulk_backfill(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EINCOME_HOME", str(tmp_path))
    monkeypatch.setenv("EINCOME_DB_URL", db_url)
    monkeypatch.setenv("EINCOME_MODELS_DIR", str(tmp_path / "models"))
    from pipeline.runtime import runtime_from_env

    runtime = runtime_from_env()
    engine = runtime.engine
    _world(engine)
    walked = backfill(
        engine,
        runtime.models_dir,
        START,
        END,
        min_history=timedelta(days=13),
        aggregate=lambda *a: None,
    )
    assert len(walked.models) == 1
    bulk_flags, bulk_cases = _flags(engine), _cases(engine)
    in_hours = bulk_flags["hour_start"].between(HOURS[0], HOURS[-1])
    # The planted incidents are in the rescored hours, so the comparison has flags to compare.
    assert set(bulk_flags.loc[in_hours, "point_id"]) >= {"P03", "P05"}

    for hour in HOURS:
        score_interval(hour.to_pydatetime(), (hour + pd.Timedelta(hours=1)).to_pydatetime())

    pd.testing.assert_frame_equal(_flags(engine), bulk_flags)
    pd.testing.assert_frame_equal(_cases(engine), bulk_cases)
    runtime.engine.dispose()
