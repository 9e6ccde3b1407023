"""The hourly detect task re-scores hours that sales reached late, point in time (the model each
week had), through orchestration as the DAG calls it."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from pipeline.casework import audit
from pipeline.casework.cases import list_cases
from pipeline.detection.backfill import backfill
from pipeline.intake.ingest import ingest_frame
from pipeline.orchestration import score_interval
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
SILENT = ("P00", *local_window(23, 11, 15))


def test_hourly_detect_clears_a_device_off_case_whose_sales_synced_late(tmp_path, monkeypatch):
    monkeypatch.setenv("EINCOME_HOME", str(tmp_path))
    monkeypatch.setenv("EINCOME_DB_URL", "")
    monkeypatch.setenv("EINCOME_MODELS_DIR", str(tmp_path / "models"))
    from pipeline.runtime import runtime_from_env

    runtime = runtime_from_env()
    engine = runtime.engine
    pts = make_points(6)
    # A world where the silent afternoon is an incident of its own: flags up to a week apart at one
    # point are one incident, so the silence is put at P00, which has no other flag in that week.
    txns = make_transactions(pts, days=DAYS, seed=5, scale=0.9)
    missing = in_window(txns, *SILENT)
    load_world(engine, pts, txns[~missing])
    backfill(
        engine,
        runtime.models_dir,
        START,
        END - timedelta(hours=1),
        min_history=timedelta(days=13),
        aggregate=lambda *a: None,
    )
    point, start, end = SILENT
    found = list_cases(engine)
    case = found[
        (found["point_id"] == point) & (found["start_at"] < end) & (found["end_at"] > start)
    ]
    assert case["kind"].tolist() == ["device_off"]
    case_id = int(case["case_id"].iloc[0])

    late = txns[missing]
    frame = late.astype(object).assign(
        occurred_at=[t.isoformat() for t in late["occurred_at"]],
        amount=[str(a) for a in late["amount"]],
    )
    ingest_frame(engine, frame, source="api:tapbox", source_ref="synced late")
    summary = score_interval(END - timedelta(hours=1), END)

    assert summary["late_rescored"]["cases_cleared"] == [case_id]
    assert list_cases(engine).query("case_id == @case_id")["status"].tolist() == ["cleared"]
    # The note counts the late sales inside the case's flagged hours (a small point's first silent
    # hour may not have been flagged).
    in_case = late[
        (late["occurred_at"] >= case["start_at"].iloc[0])
        & (late["occurred_at"] < case["end_at"].iloc[0])
    ]
    (event,) = audit.trail(engine, case_id)
    assert 0 < len(in_case) <= len(late)
    assert event.actor == "pipeline" and event.note.startswith(
        f"sales arrived late: {len(in_case)} "
    )
