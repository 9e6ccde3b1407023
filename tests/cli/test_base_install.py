"""A base install (no extras): the everyday commands work, the others name their extra.

The extras' packages are hidden from a real `eincome` process by an import hook, as if
`pip install eincome` had been run without `[web,airflow,postgres,alerts]` (issue 14). Was: every
command crashed with ModuleNotFoundError: argon2 (the CLI imported the web app at start).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WITHOUT_EXTRAS = """
import sys
HIDDEN = ("argon2", "fastapi", "uvicorn", "multipart", "python_multipart", "itsdangerous",
          "openpyxl", "airflow", "psycopg", "apprise")
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hide())
from pipeline.cli import main
sys.argv = ["eincome", *sys.argv[1:]]
main()
"""


def eincome(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EINCOME_HOME": str(tmp_path / "var")}
    env.pop("EINCOME_DB_URL", None)
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_a_base_install_runs_the_everyday_commands_and_names_the_extra_for_the_rest(tmp_path):
    (tmp_path / "points.csv").write_text(
        "point_id,name,revenue_type,district,open_hours,timezone\n"
        "P1,Parkir,parking,Kota,06:00-22:00,Asia/Jakarta\n"
    )
    (tmp_path / "feed.csv").write_text(
        "txn_id,point_id,occurred_at,amount,payment_method,status\n"
        "T1,P1,2026-03-01T10:00:00+07:00,1000,cash,paid\n"
    )
    for args in (
        ["points", "load", "points.csv"],
        ["ingest", "feed.csv"],
        ["anomalies"],
        ["cases"],
        ["alerts", "rules", "list"],
        ["alerts", "send"],  # e-mail is the standard library's: no extra needed
    ):
        done = eincome(tmp_path, *args)
        assert done.returncode == 0, (args, done.stderr[-2000:])
        assert "Traceback" not in done.stderr
    done = eincome(tmp_path, "serve")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    # Indonesian by default: a plain install carries Babel and the catalog.
    assert "memerlukan tambahan 'web'" in done.stderr, done.stderr
    assert "pip install 'eincome[web]'" in done.stderr
