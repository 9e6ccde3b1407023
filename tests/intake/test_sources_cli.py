import json
import os
import time

from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.store import connect
from pipeline.store.failures import recent_failures
from tests.helpers.sources_helpers import feed_rows, load_points, stored_txn_ids, write_csv


def test_pull_stores_what_works_records_what_fails_and_exits_non_zero(tmp_path):
    home = tmp_path / "home"
    (home / "in").mkdir(parents=True)
    engine = connect(f"sqlite:///{home / 'eincome.db'}")
    load_points(engine, tmp_path)
    feed = write_csv(home / "in" / "a.csv", feed_rows(12))
    old = time.time() - 300
    os.utime(feed, (old, old))
    sources = home / "sources.yml"
    sources.write_text(
        "sources:\n"
        "  - {name: kota, kind: landing, path: in, archive: done}\n"
        "  - {name: tapbox, kind: http, url: 'http://127.0.0.1:9/tx', token_env: TAPBOX_TOKEN}\n"
    )
    env = {"EINCOME_HOME": str(home), "EINCOME_DB_URL": "", "EINCOME_SOURCES": str(sources)}

    outcome = CliRunner().invoke(app, ["pull", "--json"], env={**env, "TAPBOX_TOKEN": ""})

    assert outcome.exit_code == 1
    [line] = [json.loads(x) for x in outcome.stdout.splitlines() if x.startswith("{")]
    assert (line["source"], line["rows_read"], line["accepted"]) == ("kota", 12, 12)
    assert "tapbox: gagal" in outcome.stderr and "$TAPBOX_TOKEN is not set" in outcome.stderr
    assert len(stored_txn_ids(engine)) == 12
    [failure] = recent_failures(engine)
    assert failure.where == "pull tapbox" and "$TAPBOX_TOKEN is not set" in failure.error

    # One source by name; nothing new is not an error.
    again = CliRunner().invoke(app, ["pull", "--source", "kota"], env=env)
    assert again.exit_code == 0, again.output
    assert "kota: tidak ada yang baru" in again.stdout


def test_pull_of_an_unknown_source_names_the_known_ones(tmp_path):
    sources = tmp_path / "sources.yml"
    sources.write_text("sources:\n  - {name: kota, kind: landing, path: in, archive: done}\n")
    env = {"EINCOME_HOME": str(tmp_path), "EINCOME_DB_URL": "", "EINCOME_SOURCES": str(sources)}
    outcome = CliRunner().invoke(app, ["pull", "--source", "pasar"], env=env)
    assert outcome.exit_code != 0
    assert "no source named 'pasar' (known: kota)" in str(outcome.exception)


def test_failure_records_are_kept_newest_first_and_long_errors_cut(engine):
    from datetime import UTC, datetime

    from pipeline.store.failures import MAX_ERROR_CHARS, record_failure

    record_failure(
        engine,
        "eincome_detect.score_and_cases",
        "scheduled__1",
        "boom",
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    record_failure(
        engine,
        "pull tapbox",
        None,
        "x" * (MAX_ERROR_CHARS * 2),
        at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    newest, older = recent_failures(engine)
    assert (newest.where, newest.run_id) == ("pull tapbox", None)
    assert len(newest.error) == MAX_ERROR_CHARS and newest.error.endswith("(truncated)")
    assert (older.where, older.run_id, older.error) == (
        "eincome_detect.score_and_cases",
        "scheduled__1",
        "boom",
    )
    assert older.at == datetime(2026, 1, 1, tzinfo=UTC)
