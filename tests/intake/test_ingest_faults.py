"""Faults: a killed ingest, a terminated PostgreSQL backend, concurrent SQLite writers, a
database error in the CLI. After each, a rerun gives exactly one clean ingest (issue 14)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

import pipeline.intake.ingest as ingest_module
from pipeline.cli import app
from pipeline.intake.ingest import BatchFailedError, ingest_file, recover_abandoned_batches
from pipeline.store.schema import hour_aggregates, ingest_batches, quarantine, transactions
from tests.helpers.registry import register

HEADER = "txn_id,point_id,occurred_at,amount,payment_method,status,operator_id\n"
NOW = datetime(2026, 3, 2, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def write_feed(path: Path, n: int, *, prefix: str = "T", bad_every: int = 0) -> Path:
    with path.open("w") as handle:
        handle.write(HEADER)
        for i in range(n):
            amount = -1 if bad_every and i % bad_every == 0 else 1000 + i
            handle.write(
                f"{prefix}{i},P{i % 5},2026-03-01T{i // 3600 % 10:02d}:{i // 60 % 60:02d}:"
                f"{i % 60:02d}+07:00,{amount},cash,paid,op{i % 3}\n"
            )
    return path


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def batches(engine) -> list:
    with engine.connect() as connection:
        return connection.execute(select(ingest_batches).order_by(ingest_batches.c.batch_id)).all()


_CHILD = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from pipeline.store import connect
from pipeline.intake.ingest import ingest_file
marker = Path(sys.argv[3])
def progress(rows):
    marker.write_text(str(rows))
ingest_file(connect(sys.argv[1]), sys.argv[2], chunk_rows=int(sys.argv[4]),
            now=datetime(2026, 3, 2, tzinfo=UTC), progress=progress)
marker.write_text("done")
"""


def _ingest_in_child(db_url: str, feed: Path, marker: Path, chunk_rows: int):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, db_url, str(feed), str(marker), str(chunk_rows)], env=env
    )


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_rows", [20_000, 100_000])
def test_sigkill_during_a_large_ingest_then_a_rerun_is_exactly_one_clean_ingest(
    engine, db_url, tmp_path, kill_after_rows
):
    # Was: the killed batch stayed "running" forever, invisible on the ops page.
    n = 100_000
    register(engine, *[f"P{i}" for i in range(5)])
    feed = write_feed(tmp_path / "big.csv", n, bad_every=997)
    marker = tmp_path / "progress"
    child = _ingest_in_child(db_url, feed, marker, 20_000)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen = marker.read_text() if marker.exists() else ""
            if seen.isdigit() and int(seen) >= kill_after_rows:
                break
            assert child.poll() is None, "the ingest finished before it could be killed"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    (running,) = batches(engine)
    assert running.status == "running" and running.owner
    assert count(engine, transactions) == 0 and count(engine, quarantine) == 0

    (recovered,) = recover_abandoned_batches(engine)
    assert recovered["batch_id"] == running.batch_id
    assert "abandoned" in recovered["message"]
    assert recover_abandoned_batches(engine) == []  # decided once

    rerun = ingest_file(engine, feed, now=NOW, chunk_rows=20_000)
    bad = len(range(0, n, 997))
    assert (rerun.status, rerun.accepted, rerun.quarantined, rerun.duplicates) == (
        "ok",
        n - bad,
        bad,
        0,
    )
    assert count(engine, transactions) == n - bad and count(engine, quarantine) == bad
    with engine.connect() as connection:
        paid = connection.execute(select(func.sum(hour_aggregates.c.txn_count))).scalar_one()
    assert paid == n - bad
    assert [b.status for b in batches(engine)] == ["failed", "ok"]


@pytest.mark.postgres
def test_a_postgres_backend_terminated_mid_batch_fails_it_cleanly_then_a_rerun_is_clean(
    postgres_url, tmp_path
):
    from pipeline.store import connect

    engine = connect(postgres_url)
    register(engine, *[f"P{i}" for i in range(5)])
    feed = write_feed(tmp_path / "feed.csv", 30_000)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    database = engine.url.database
    terminated = []

    def terminate_the_batch_backend(rows: int) -> None:
        if terminated:
            return
        # Mid-batch, a live batch is never taken for abandoned.
        assert recover_abandoned_batches(engine) == []
        with admin.connect() as connection:
            terminated.extend(
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid() AND state <> 'idle'"
                    ),
                    {"db": database},
                ).scalars()
            )

    try:
        with pytest.raises(BatchFailedError, match="rolled back") as caught:
            ingest_file(
                engine, feed, now=NOW, chunk_rows=5_000, progress=terminate_the_batch_backend
            )
        assert terminated and all(terminated)
        assert "\n" not in str(caught.value)
        (failed,) = batches(engine)
        assert failed.status == "failed"
        assert count(engine, transactions) == 0
        rerun = ingest_file(engine, feed, now=NOW, chunk_rows=5_000)
        assert (rerun.accepted, rerun.duplicates) == (30_000, 0)
        assert count(engine, transactions) == 30_000
    finally:
        admin.dispose()
        engine.dispose()


def test_a_running_batch_is_abandoned_only_when_its_owner_is_provably_gone(engine):
    register(engine, "P1")
    live = ingest_module._this_owner()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = live.split(" ")[0]
    started = datetime.now(UTC) - timedelta(hours=1)
    with engine.begin() as connection:
        for owner in (live, f"{host} {dead.pid} 1", "elsewhere 123 1", None):
            connection.execute(
                ingest_batches.insert().values(
                    source="file",
                    source_ref=str(owner),
                    started_at=started,
                    status="running",
                    owner=owner,
                )
            )
    found = recover_abandoned_batches(engine)
    if engine.dialect.name == "postgresql":
        # No session holds their locks: every batch that recorded an owner is abandoned;
        # the unrecorded one waits for the age threshold.
        assert {f["source_ref"] for f in found} == {live, f"{host} {dead.pid} 1", "elsewhere 123 1"}
    else:
        assert [f["source_ref"] for f in found] == [f"{host} {dead.pid} 1"]
    later = recover_abandoned_batches(engine, now=datetime.now(UTC) + timedelta(hours=7))
    expected = {"None"} if engine.dialect.name == "postgresql" else {"elsewhere 123 1", "None"}
    assert {f["source_ref"] for f in later} == expected
    statuses = {b.source_ref: b.status for b in batches(engine)}
    if engine.dialect.name == "sqlite":
        assert statuses[live] == "running"  # this very process: alive


def test_concurrent_sqlite_writers_wait_instead_of_database_is_locked(sqlite_url, tmp_path):
    # Was: other ingests and backfill failed with "database is locked" during a long ingest.
    from pipeline.store import connect

    engine = connect(sqlite_url)
    register(engine, *[f"P{i}" for i in range(5)])
    feeds = [write_feed(tmp_path / f"f{k}.csv", 30_000, prefix=f"K{k}-") for k in range(3)]
    # Another writer holds the write lock for a while, as a backfill would.
    holder = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE points SET name = name")
    errors, results = [], []

    def run(path):
        try:
            results.append(ingest_file(engine, path, now=NOW, chunk_rows=10_000))
        except Exception as exc:  # noqa: BLE001 - the test reports whatever went wrong
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in feeds]
    for t in threads:
        t.start()
    time.sleep(2.0)
    holder.execute("COMMIT")
    holder.close()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sorted(r.accepted for r in results) == [30_000] * 3
    assert count(engine, transactions) == 90_000
    engine.dispose()


def test_a_database_error_is_one_line_exit_1_and_the_other_files_still_go_in(
    engine, db_url, tmp_path, monkeypatch
):
    # Was: a ~100-line traceback, exit 1, and the later files of the command skipped.
    register(engine, *[f"P{i}" for i in range(5)])
    monkeypatch.setenv("EINCOME_DB_URL", db_url)
    monkeypatch.setenv("EINCOME_HOME", str(tmp_path / "var"))
    first = write_feed(tmp_path / "first.csv", 10, prefix="A")
    second = write_feed(tmp_path / "second.csv", 10, prefix="B")
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    real = ingest_module._store_chunk

    def database_breaks_on_the_first_file(encoder, writer, prepared, counts):
        if not calls:  # the first chunk of the command is first.csv's
            calls.append(1)
            raise OperationalError("INSERT ...", {}, Exception("server closed the connection"))
        return real(encoder, writer, prepared, counts)

    calls: list[int] = []
    monkeypatch.setattr(ingest_module, "_store_chunk", database_breaks_on_the_first_file)
    outcome = CliRunner().invoke(app, ["ingest", "--json", str(first), str(second), str(junk)])
    lines = [json.loads(line) for line in outcome.stdout.splitlines() if line.startswith("{")]
    assert outcome.exit_code == 1
    assert [r["status"] for r in lines] == ["failed", "ok", "rejected"]
    assert "server closed the connection" in lines[0]["message"]
    assert "\n" not in lines[0]["message"] and "INSERT" not in lines[0]["message"]
    assert lines[1]["accepted"] == 10
    assert count(engine, transactions) == 10
