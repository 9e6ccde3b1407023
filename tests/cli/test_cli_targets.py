"""`eincome targets load|list`: a good file loads and is said in Bahasa Indonesia; a bad one is one
line naming each bad row's line and value, exit 2, and nothing stored."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from tests.helpers import REPO_ROOT

REGISTRY = (
    "point_id,name,revenue_type,district,open_hours,timezone\n"
    "PKR-1,Parkir Pasar Baru,parking,Kota,06:00-22:00,Asia/Jakarta\n"
    "PSR-1,Pasar Baru,market,Utara,05:00-17:00,Asia/Jakarta\n"
)
TARGETS = (
    "year,revenue_type,district,target_rp\n"
    "2026,parking,,1.200.000.000\n2026,market,Utara,900000000\n"
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EINCOME_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EINCOME_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("EINCOME_DB_URL", "")
    monkeypatch.delenv("EINCOME_LANGUAGE", raising=False)
    registry = tmp_path / "points.csv"
    registry.write_text(REGISTRY)
    assert CliRunner().invoke(app, ["points", "load", str(registry)]).exit_code == 0
    return tmp_path


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_targets_load_and_list(home):
    path = home / "targets.csv"
    path.write_text(TARGETS)
    said = _run("targets", "load", str(path))
    assert said.exit_code == 0, said.output
    assert said.stdout == f"2 target untuk 2026 dimuat dari {path} (2 berubah)\n"
    again = _run("--lang", "en", "targets", "load", str(path))
    assert again.stdout == f"2 targets for 2026 loaded from {path} (0 changed)\n"
    listed = _run("targets", "list", "--year", "2026")
    assert listed.stdout == (
        "year,revenue_type,district,target_rp\n"
        "2026,market,Utara,900000000\n2026,parking,,1200000000\n"
    )
    # What `list` prints, `load` reads back unchanged.
    path.write_text(listed.stdout)
    assert "(0 berubah)" in _run("targets", "load", str(path)).stdout


def test_bad_rows_exit_2_naming_line_and_value_and_nothing_is_loaded(home):
    path = home / "targets.csv"
    path.write_text(TARGETS + "2026,casino,,5\n2026,hotel_tax,,lima juta\n")
    env = {
        "EINCOME_HOME": str(home / "home"),
        "EINCOME_MODELS_DIR": str(home / "models"),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "targets", "load", str(path)],
        cwd=REPO_ROOT, env={**env, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    line = " ".join(done.stderr.split())  # the console may wrap the one line
    assert f"galat: targets {path}:" in line
    assert "baris 4: revenue_type 'casino' bukan salah satu dari parking" in line
    assert "baris 5: target_rp 'lima juta' bukan rupiah bulat di atas nol" in line
    assert "Traceback" not in done.stderr
    assert _run("targets", "list").stdout == "year,revenue_type,district,target_rp\n"
