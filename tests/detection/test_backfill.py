"""Backfill end to end on SQLite and PostgreSQL: real aggregation of raw transactions, an
interruption midway, a resumed run, and a from-scratch rerun that must give the same result."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import delete, func, select

import pipeline.detection.backfill as backfill_module
from pipeline.casework.cases import list_anomalies, list_cases
from pipeline.detection.backfill import aggregates_current, backfill
from pipeline.intake.aggregate import aggregate_range
from pipeline.store.schema import hour_aggregates, source_watermarks
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


def _snapshot(engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    flags = list_anomalies(engine)[["point_id", "hour_start", "kind", "severity", "shortfall_rp"]]
    found = list_cases(engine)[["point_id", "start_at", "end_at", "kind", "shortfall_rp", "status"]]
    return (
        flags.sort_values(["point_id", "hour_start"]).reset_index(drop=True),
        found.sort_values(["point_id", "start_at"]).reset_index(drop=True),
    )


@pytest.mark.slow
def test_backfill_resumes_after_interruption_and_is_idempotent(engine, tmp_path, monkeypatch):
    pts = make_points(6)
    txns = make_transactions(pts, days=DAYS, seed=8, scale=0.9)
    silent = ("P04", *local_window(16, 11, 15))
    txns = txns[~in_window(txns, *silent)]
    load_world(engine, pts, txns, aggregates=False)  # raw transactions only: backfill aggregates
    models = tmp_path / "models"

    real = backfill_module._score_features
    calls = {"n": 0}

    def fail_on_second_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker lost (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(backfill_module, "_score_features", fail_on_second_chunk)
    with pytest.raises(RuntimeError, match="injected"):
        backfill(engine, models, START, END, chunk=timedelta(days=7))
    with engine.connect() as connection:
        assert (
            connection.execute(select(func.count()).select_from(hour_aggregates)).scalar_one() > 0
        )
        (cursor,) = connection.execute(select(source_watermarks.c.cursor)).one()
    assert '"scored_to"' in cursor  # the first chunk is recorded as done

    monkeypatch.setattr(backfill_module, "_score_features", real)
    resumed = backfill(engine, models, START, END, chunk=timedelta(days=7))
    assert resumed.chunks == 3 and resumed.chunks_skipped == 1
    flags, found = _snapshot(engine)
    point, start, end = silent
    hit = found[
        (found["point_id"] == point) & (found["start_at"] < end) & (found["end_at"] > start)
    ]
    assert hit["kind"].tolist() == ["device_off"]

    # Finished: running it again does nothing; from scratch (progress forgotten) gives the same.
    again = backfill(engine, models, START, END, chunk=timedelta(days=7))
    assert again.chunks_skipped == 3 and again.hours_scored == 0
    with engine.begin() as connection:
        connection.execute(delete(source_watermarks))
    fresh = backfill(engine, models, START, END, chunk=timedelta(days=7))
    assert fresh.chunks_skipped == 0 and fresh.model_version == resumed.model_version
    flags2, found2 = _snapshot(engine)
    pd.testing.assert_frame_equal(flags, flags2)
    pd.testing.assert_frame_equal(found, found2)


def test_backfill_aggregates_only_chunks_whose_aggregates_miss_transactions(engine, tmp_path):
    pts = make_points(5)
    txns = make_transactions(pts, days=14, seed=3, scale=0.5)
    load_world(engine, pts, txns)  # transactions with their hour aggregates, as ingest leaves them
    end = START + pd.Timedelta(days=14)
    middle = START + pd.Timedelta(days=7)
    assert aggregates_current(engine, START, end)
    # One point-hour's aggregate lost in the second week: only that week is recomputed.
    with engine.begin() as connection:
        lost = connection.execute(
            select(hour_aggregates.c.point_id, hour_aggregates.c.hour_start)
            .where(hour_aggregates.c.hour_start >= middle)
            .limit(1)
        ).one()
        connection.execute(
            delete(hour_aggregates).where(
                (hour_aggregates.c.point_id == lost.point_id)
                & (hour_aggregates.c.hour_start == lost.hour_start)
            )
        )
    assert aggregates_current(engine, START, middle)
    assert not aggregates_current(engine, middle, end)
    recomputed = []

    def aggregate(engine, start, end):
        recomputed.append((start, end))
        aggregate_range(engine, start, end)

    backfill(engine, tmp_path / "models", START, end, chunk=timedelta(days=7), aggregate=aggregate)
    assert recomputed == [(middle, end)]
    assert aggregates_current(engine, START, end)
