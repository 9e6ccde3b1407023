"""The reconciliation DAGs' task function and windows (the DAGs themselves run in test_dags.py)."""

from __future__ import annotations

from datetime import date

from pipeline.orchestration import reconcile_scheduled
from pipeline.reconciliation.reconcile import interval_window
from pipeline.store import connect
from tests.helpers import REPO_ROOT
from tests.helpers.recon_books import Books

ROOT = REPO_ROOT


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


def test_the_dag_task_reconciles_its_interval_through_orchestration(tmp_path, monkeypatch):
    engine = connect(f"sqlite:///{tmp_path / 'eincome.db'}")
    books = Books(engine).point("R1", "restaurant_tax")
    books.sales("R1", date(2026, 3, 5), 10_000_000).tax_return(
        "R1", "2026-03", 10_000_000, 1_000_000
    )
    engine.dispose()
    monkeypatch.setenv("EINCOME_HOME", str(tmp_path))
    monkeypatch.setenv("EINCOME_DB_URL", "")
    monkeypatch.delenv("EINCOME_RECON_CONFIG", raising=False)
    summary = reconcile_scheduled("monthly", date(2026, 4, 20))
    assert summary["gaps"] == {"no_deposit": 1} and summary["cases_created"] == 1
    assert reconcile_scheduled("monthly", date(2026, 4, 20))["cases_created"] == 0


def test_unusable_tolerances_fail_the_task_without_retry(tmp_path, monkeypatch):
    """The reconcile DAGs go through orchestration, so a bad config file is not retried."""
    from airflow.sdk.exceptions import AirflowFailException

    bad = tmp_path / "recon.json"
    bad.write_text("{not json")
    monkeypatch.setenv("EINCOME_HOME", str(tmp_path))
    monkeypatch.setenv("EINCOME_DB_URL", "")
    monkeypatch.setenv("EINCOME_RECON_CONFIG", str(bad))
    import pytest

    with pytest.raises(AirflowFailException, match="recon"):
        reconcile_scheduled("monthly", date(2026, 4, 20))
