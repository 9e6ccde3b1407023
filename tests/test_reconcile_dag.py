"""The reconciliation DAGs: import cleanly with tags and retries; the task's function works."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from recon_books import Books

from pipeline.reconcile import interval_window, reconcile_interval
from pipeline.store import connect
from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import json, sys
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": {d.dag_id: {"tags": sorted(d.tags), "retries": [t.retries for t in d.tasks],
                        "tasks": [t.task_id for t in d.tasks]} for d in bag.dags.values()},
}))
"""


@pytest.mark.airflow
@pytest.mark.slow
def test_dag_file_imports_with_tags_and_retries(tmp_path):
    if importlib.util.find_spec("airflow") is None:
        service_missing("apache-airflow is not installed (pip install -e '.[airflow]')")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(ROOT / "dags" / "reconcile.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    assert set(found["dags"]) == {"eincome_reconcile_daily", "eincome_reconcile_monthly"}
    for dag in found["dags"].values():
        assert "reconciliation" in dag["tags"] and all(r >= 1 for r in dag["retries"])


def test_scheduled_windows():
    assert interval_window("monthly", date(2026, 4, 20)) == (
        date(2026, 3, 1),
        date(2026, 4, 1),
        ("tax",),
    )
    assert interval_window("daily", date(2026, 3, 10), 8) == (
        date(2026, 3, 2),
        date(2026, 3, 10),
        ("collector", "bank"),
    )


def test_task_function_reconciles_the_interval(tmp_path, monkeypatch):
    engine = connect(f"sqlite:///{tmp_path / 'eincome.db'}")
    books = Books(engine).point("R1", "restaurant_tax")
    books.sales("R1", date(2026, 3, 5), 10_000_000).tax_return(
        "R1", "2026-03", 10_000_000, 1_000_000
    )
    engine.dispose()
    monkeypatch.setenv("EINCOME_HOME", str(tmp_path))
    monkeypatch.setenv("EINCOME_DB_URL", "")
    monkeypatch.delenv("EINCOME_RECON_CONFIG", raising=False)
    summary = reconcile_interval("monthly", date(2026, 4, 20))
    assert summary["gaps"] == {"no_deposit": 1} and summary["cases_created"] == 1
    assert reconcile_interval("monthly", date(2026, 4, 20))["cases_created"] == 0
