"""Parallel detect runs on PostgreSQL: what `airflow backfill create --max-active-runs 4` does.

Each run scores one hour and rebuilds the open cases within two days of it, so neighbouring
runs rewrite overlapping case and anomaly rows. They used to lock them in different orders
and PostgreSQL killed one as a deadlock; case rebuilds now take turns on an advisory lock.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import text

from pipeline.casework.cases import CASE_REBUILD_LOCK, list_anomalies, record_flags
from pipeline.store import connect
from tests.helpers.detect_fixtures import START, load_world, make_points, make_transactions

pytestmark = pytest.mark.postgres

DAYS = 21
END = START + timedelta(days=DAYS)


def test_case_rebuilds_wait_for_the_advisory_lock(postgres_url):
    """The mechanism, deterministically: a rebuild blocks while another transaction holds the
    lock and goes on when it is released."""
    engine = connect(postgres_url)
    hour = START
    done = threading.Event()
    errors: list[BaseException] = []

    def rebuild():
        try:
            record_flags(engine, pd.DataFrame(), hour, hour + timedelta(hours=1), model_version="m")
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)
        finally:
            done.set()

    holder = engine.connect()
    transaction = holder.begin()
    holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CASE_REBUILD_LOCK})
    worker = threading.Thread(target=rebuild)
    worker.start()
    try:
        assert not done.wait(1.5), "record_flags did not wait for the case-rebuild lock"
    finally:
        transaction.commit()
        holder.close()
    assert done.wait(30)
    worker.join()
    assert errors == []
    engine.dispose()


def _flags(hour, pts) -> pd.DataFrame:
    """Every point flagged in ``hour``: runs of flagged hours across the range, so each hour's
    rebuild relinks the cases of all points around it (what a busy regency's scoring does)."""
    return pd.DataFrame(
        {
            "point_id": list(pts["point_id"]),
            "hour_start": pd.Timestamp(hour),
            "score": 0.8,
            "severity": "high",
            "kind": "device_off",
            "reasons": "planted",
            "shortfall_rp": 50_000,
            "operators": None,
        }
    )


def test_parallel_hourly_runs_do_not_deadlock_and_store_what_sequential_runs_store(postgres_url):
    """Regression: a native backfill of 6 detect hours with 4 runs at a time failed one run with
    psycopg.errors.DeadlockDetected on `UPDATE anomalies SET case_id=...`. The write phase of
    scoring (record_flags) of neighbouring hours, 4 at a time, over and over."""
    engine = connect(postgres_url)
    pts = make_points(12)
    load_world(engine, pts, make_transactions(pts, days=1, seed=3), aggregates=False)
    hours = [START + timedelta(hours=10 + h) for h in range(8)]

    def record(hour):
        record_flags(engine, _flags(hour, pts), hour, hour + timedelta(hours=1), model_version="m")

    for _ in range(6):
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(record, hours))  # re-raises a DeadlockDetected
    window = (hours[0], hours[-1] + timedelta(hours=1))
    parallel = list_anomalies(engine, *window)
    for hour in hours:
        record(hour)
    sequential = list_anomalies(engine, *window)
    columns = ["point_id", "hour_start", "score", "kind"]
    pd.testing.assert_frame_equal(parallel[columns], sequential[columns])
    # One case per point: the 8 flagged hours are one run.
    assert sequential.groupby("point_id")["case_id"].nunique().eq(1).all()
    engine.dispose()
