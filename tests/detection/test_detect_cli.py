"""The detection commands: in-process through the typer app, and the console entry's one-line
error with exit code 2 through a real subprocess (temp SQLite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.errors import UnusableInputError


@pytest.fixture
def env(tmp_path, monkeypatch):
    values = {
        "EINCOME_HOME": str(tmp_path / "home"),
        "EINCOME_MODELS_DIR": str(tmp_path / "models"),
        "EINCOME_DB_URL": "",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    registry = tmp_path / "points.csv"
    registry.write_text(
        "point_id,name,revenue_type,district,open_hours,timezone\n"
        "PKR-1,Pasar Baru,parking,Kota,06:00-22:00,Asia/Jakarta\n"
    )
    assert CliRunner().invoke(app, ["points", "load", str(registry)]).exit_code == 0
    return values


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_suppress_load_list_and_empty_listings(env, tmp_path):
    closures = tmp_path / "closures.csv"
    closures.write_text(
        "point_id,starts_at,ends_at,reason\n"
        "PKR-1,2025-12-10T00:00:00+07:00,2025-12-12T00:00:00+07:00,road works\n"
    )
    first = _run("suppress", "load", str(closures))
    assert first.exit_code == 0 and first.stdout.startswith("1 jendela peredaman")
    again = _run("--lang", "en", "suppress", "load", str(closures))
    assert again.stdout.startswith("0 suppression window(s) added")
    listed = json.loads(_run("suppress", "list", "--format", "json").stdout)
    assert [(r["point_id"], r["reason"], r["kind"]) for r in listed] == [
        ("PKR-1", "road works", None)
    ]
    assert listed[0]["starts_at"] == "2025-12-09T17:00:00+00:00"
    header = _run("anomalies", "--format", "csv").stdout.splitlines()[0]
    assert header.startswith("point_id,hour_start,score,severity,reasons,status")
    assert json.loads(_run("cases", "--format", "json").stdout) == []


def test_bad_input_names_the_value(env, tmp_path):
    closures = tmp_path / "closures.csv"
    closures.write_text(
        "point_id,starts_at,ends_at,reason\nPKR-1,yesterday,2025-12-12T00:00+07:00,x\n"
    )
    result = _run("suppress", "load", str(closures))
    assert isinstance(result.exception, UnusableInputError)
    assert "line 2" in str(result.exception) and "yesterday" in str(result.exception)
    result = _run("score", "--start", "2025-12-01T00:00", "--end", "2025-12-02T00:00+07:00")
    assert "tidak memiliki selisih UTC" in str(result.exception)
    assert "ingest feeds first" in str(_run("--lang", "en", "train").exception)


@pytest.mark.slow
def test_console_entry_exits_2_with_one_line(env):
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "train"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("galat: belum ada agregat per jam: muat umpan dulu")
    assert result.stderr.count("\n") == 1
