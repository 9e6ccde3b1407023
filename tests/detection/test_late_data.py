"""Late data re-scored, on SQLite and PostgreSQL: a device that was off (no sales in open hours,
flagged) whose sales then arrive late by a second ingest has its hours re-scored on the next
run, its case closed with the late-data reason in the trail; a case an auditor already decided
is never rewritten."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import func, select

from pipeline.casework import audit
from pipeline.casework.cases import list_anomalies, list_cases
from pipeline.casework.users import User
from pipeline.detection.backfill import backfill
from pipeline.detection.late_data import rescore_late_hours
from pipeline.intake.ingest import ingest_frame
from pipeline.store.schema import rescore_requests
from tests.helpers.detect_fixtures import (
    START,
    in_window,
    load_world,
    local_window,
    make_points,
    make_transactions,
)

DAYS = 21
END = START + pd.Timedelta(days=DAYS)
DEVICE_OFF = ("P02", *local_window(15, 10, 14))
AUDITOR = User("ani", "auditor")


def _already_aggregated(engine, start, end) -> None:
    """load_world wrote the hour aggregates."""


def _device_off_world(engine, tmp_path) -> tuple[pd.DataFrame, int]:
    """A scored world whose device-off case is open; returns the sales it missed and the case."""
    pts = make_points(6)
    txns = make_transactions(pts, days=DAYS, seed=5, scale=0.9)
    missing = in_window(txns, *DEVICE_OFF)
    load_world(engine, pts, txns[~missing])
    backfill(engine, tmp_path, START, END, aggregate=_already_aggregated, hindsight=True)
    point, start, end = DEVICE_OFF
    found = list_cases(engine)
    case = found[
        (found["point_id"] == point) & (found["start_at"] < end) & (found["end_at"] > start)
    ]
    assert case["kind"].tolist() == ["device_off"] and case["status"].tolist() == ["open"]
    return txns[missing], int(case["case_id"].iloc[0])


def _ingest_late(engine, late: pd.DataFrame) -> None:
    frame = late.astype(object).assign(
        occurred_at=[t.isoformat() for t in late["occurred_at"]],
        amount=[str(a) for a in late["amount"]],
    )
    result = ingest_frame(engine, frame, source="api:tapbox", source_ref="synced late")
    assert result.accepted == len(late) > 0


def _queued(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(rescore_requests)).scalar_one()


def _open_cases_at(engine, point, start, end) -> pd.DataFrame:
    found = list_cases(engine)
    return found[
        (found["point_id"] == point)
        & (found["start_at"] < end)
        & (found["end_at"] > start)
        & (found["status"] == "open")
    ]


def test_device_off_flag_clears_when_its_sales_arrive_late(engine, tmp_path):
    late, case_id = _device_off_world(engine, tmp_path)
    _ingest_late(engine, late)
    point, start, end = DEVICE_OFF
    assert _queued(engine) == 4  # the four silent hours, already scored

    result = rescore_late_hours(engine, tmp_path, until=END, hindsight=True)

    assert result.cases_cleared == (case_id,) and result.cases_left == ()
    assert _queued(engine) == 0
    assert _open_cases_at(engine, point, start, end).empty
    (case,) = list_cases(engine).query("case_id == @case_id").itertuples()
    assert case.status == "cleared"
    (event,) = audit.trail(engine, case_id)
    first = late["occurred_at"].min().tz_convert("Asia/Jakarta")
    assert event.actor == "pipeline" and event.action == "clear"
    assert event.note.startswith(
        f"sales arrived late: {len(late)} transactions at {first:%Y-%m-%d %H:%M} Asia/Jakarta;"
    )
    assert (event.before["status"], event.after["status"]) == ("open", "cleared")
    # The re-scored hours raise nothing new, and a second run has nothing left to do.
    flags = list_anomalies(engine)
    fresh = flags[
        (flags["point_id"] == point)
        & (flags["hour_start"] >= start)
        & (flags["hour_start"] < end)
        & (flags["status"] == "open")
    ]
    assert fresh.empty
    again = rescore_late_hours(engine, tmp_path, until=END, hindsight=True)
    assert again.point_hours == 0 and again.cases_cleared == ()


def test_decided_case_is_not_rewritten_by_late_data(engine, tmp_path):
    late, case_id = _device_off_world(engine, tmp_path)
    audit.decide(
        engine, case_id, AUDITOR, "confirmed", "attendant pocketed the cash", false_alarm_days=7
    )
    before = list_cases(engine).query("case_id == @case_id").reset_index(drop=True)
    trail_before = audit.trail(engine, case_id)
    _ingest_late(engine, late)

    result = rescore_late_hours(engine, tmp_path, until=END, hindsight=True)

    assert result.cases_cleared == () and result.cases_left == (case_id,)
    after = list_cases(engine).query("case_id == @case_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)
    assert audit.trail(engine, case_id) == trail_before
    assert _queued(engine) == 0


def test_rows_of_hours_not_yet_scored_are_not_queued(engine, tmp_path):
    late, _ = _device_off_world(engine, tmp_path)
    after_end = late.assign(
        txn_id=late["txn_id"] + "-next",
        occurred_at=late["occurred_at"] + pd.Timedelta(days=DAYS + 1),
    )
    assert after_end["occurred_at"].min() > END
    assert after_end["occurred_at"].max() < datetime.now(UTC)
    _ingest_late(engine, after_end)
    assert _queued(engine) == 0
