"""The commands speak Bahasa Indonesia by default and English with --lang en or
EINCOME_LANGUAGE=en: summaries, errors and the reasons they print; JSON keys stay English."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.phrases import dumps, english, phrase
from pipeline.store import connect
from pipeline.store.schema import anomalies

REGISTRY = (
    "point_id,name,revenue_type,district,open_hours,timezone\n"
    "PKR-1,Pasar Baru,parking,Kota,06:00-22:00,Asia/Jakarta\n"
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EINCOME_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EINCOME_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("EINCOME_DB_URL", "")
    monkeypatch.delenv("EINCOME_LANGUAGE", raising=False)
    registry = tmp_path / "points.csv"
    registry.write_text(REGISTRY)
    return registry


def _run(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def test_a_summary_in_both_languages(home):
    said = _run("points", "load", str(home))
    assert said.exit_code == 0 and said.stdout == f"1 titik dimuat dari {home}\n"
    said = _run("--lang", "en", "points", "load", str(home))
    assert said.stdout == f"1 points loaded from {home}\n"
    said = _run("points", "load", str(home), env={"EINCOME_LANGUAGE": "en"})
    assert said.stdout == f"1 points loaded from {home}\n"
    # --lang wins over the setting
    said = _run("--lang", "id", "points", "load", str(home), env={"EINCOME_LANGUAGE": "en"})
    assert said.stdout.startswith("1 titik dimuat")


def test_an_error_in_both_languages(home):
    bad = _run("score", "--start", "kemarin", "--end", "2025-12-02T00:00+07:00")
    assert "--start 'kemarin' bukan waktu ISO-8601" in str(bad.exception)
    bad = _run("--lang", "en", "score", "--start", "kemarin", "--end", "2025-12-02T00:00+07:00")
    assert "--start 'kemarin' is not an ISO-8601 time" in str(bad.exception)
    assert "--lang 'fr': perintah berbahasa id atau en" in str(
        _run("--lang", "fr", "cases").exception
    )
    refused = _run("cases", env={"EINCOME_LANGUAGE": "fr"})
    assert "EINCOME_LANGUAGE='fr' is not one of id, en" in str(refused.exception)


def test_reasons_are_printed_in_the_language_and_json_keys_stay_english(home):
    assert _run("points", "load", str(home)).exit_code == 0
    parts = [
        phrase(
            "revenue %(drop_pct)s below the usual for %(at_slot)s"
            " (%(recorded_rp)s vs %(expected_rp)s)",
            drop_pct=0.58,
            at_slot="Tue 10:00",
            recorded_rp=2_000_000,
            expected_rp=4_800_000,
        )
    ]
    engine = connect(f"sqlite:///{home.parent / 'home' / 'eincome.db'}")
    with engine.begin() as connection:
        connection.execute(
            anomalies.insert().values(
                point_id="PKR-1",
                hour_start=datetime(2025, 12, 2, 3, tzinfo=UTC),
                score=0.8,
                severity="high",
                kind="under_reporting",
                reasons=english(parts),
                reason_parts=dumps(parts),
                shortfall_rp=2_800_000,
                model_version="m1",
                scored_at=datetime(2025, 12, 2, 4, tzinfo=UTC),
            )
        )
    engine.dispose()
    [row] = json.loads(_run("anomalies", "--format", "json").stdout)
    assert {"point_id", "hour_start", "reasons", "status", "shortfall_rp"} <= set(row)
    assert "reason_parts" not in row
    assert row["reasons"] == (
        "pendapatan 58% di bawah biasanya untuk Sel 10.00 (Rp 2.000.000 vs Rp 4.800.000)"
    )
    as_csv = _run("--lang", "en", "anomalies", "--format", "csv").stdout
    assert "revenue 58% below the usual for Tue 10.00 (Rp 2.000.000 vs Rp 4.800.000)" in as_csv
