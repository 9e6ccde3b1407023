"""`eincome quarantine list|export|release` on a real SQLite database, in Bahasa Indonesia."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.errors import UnusableInputError
from pipeline.intake.ingest import ingest_file
from pipeline.store import connect
from tests.helpers.registry import register

HEADER = "txn_id,point_id,occurred_at,amount,payment_method,status,operator_id\n"
NOW = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def shell(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'eincome.db'}"
    monkeypatch.setenv("EINCOME_DB_URL", url)
    monkeypatch.setenv("EINCOME_HOME", str(tmp_path / "var"))
    monkeypatch.delenv("EINCOME_LANGUAGE", raising=False)
    engine = connect(url)
    register(engine, "P1")
    feed = tmp_path / "week.csv"
    feed.write_text(
        HEADER + "N1,P9,2026-03-01T10:05:00+07:00,2000,qris,paid,op1\n"
        "B1,P1,2026-03-01T10:10:00+07:00,-5,cash,paid,op1\n"
    )
    ingest_file(engine, feed, source="landing:kota", now=NOW)
    yield engine, tmp_path
    engine.dispose()


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_list_export_and_release_from_the_shell(shell):
    engine, tmp_path = shell
    listed = run("quarantine", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert {(r["point_id"], r["state"]) for r in rows} == {("P9", "open"), ("P1", "open")}
    table = run("quarantine", "list", "--point", "P9")
    assert "Baris karantina: 1 (halaman 1 dari 1)" in table.stdout
    refused = run("quarantine", "release")
    assert isinstance(refused.exception, UnusableInputError)
    assert "--all" in str(refused.exception)

    register(engine, "P9")
    released = run("quarantine", "release", "--point", "P9", "--by", "budi")
    assert released.exit_code == 0, released.output
    assert "Pelepasan 1: 1 baris divalidasi ulang; 1 disimpan, 0 sudah tersimpan" in released.stdout
    again = run("quarantine", "release", "--point", "P9", "--by", "budi")
    assert "Tidak ada baris terbuka untuk dilepas" in again.stdout
    out = tmp_path / "q.csv"
    exported = run("quarantine", "export", "--out", str(out))
    assert exported.exit_code == 0 and "2 baris ditulis ke" in exported.stdout
    lines = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert {(r["txn_id"], r["state"]) for r in lines} == {("N1", "released"), ("B1", "open")}
    english = run("--lang", "en", "quarantine", "list", "--state", "released")
    assert "Quarantined rows: 1 (page 1 of 1)" in english.stdout


def test_unusable_options_name_the_value(shell):
    bad_day = run("quarantine", "list", "--from", "2026-02-30")
    assert isinstance(bad_day.exception, UnusableInputError)
    assert "2026-02-30" in str(bad_day.exception)
    bad_state = run("quarantine", "list", "--state", "closed")
    assert isinstance(bad_state.exception, UnusableInputError)
    assert "closed" in str(bad_state.exception)
