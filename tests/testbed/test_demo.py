"""The whole pipeline, as `eincome demo` runs it, on SQLite and on PostgreSQL."""

import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from pipeline.reference.targets import target_trail, year_targets
from pipeline.store.schema import anomalies, cases, ingest_batches, quarantine, transactions
from pipeline.testbed.demo import run_demo
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_pipeline_and_a_rerun_adds_nothing(engine, tmp_path):
    run = run_demo(engine, tmp_path / "models", tmp_path / "sample", points=5, weeks=5, seed=11)
    totals = run.totals()
    assert totals["rows_read"] == totals["accepted"] + totals["quarantined"] + totals["duplicates"]
    assert totals["quarantined"] >= 5  # the simulator's planted bad rows
    assert run.backfill.hours_scored > 0
    origins = set(run.cases["origin"])
    assert {"detector", "reconciliation"} <= origins
    assert (run.cases["shortfall_rp"] >= 0).all()
    assert {user for user, _, _ in run.logins} >= {"demo", "leader"}
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(transactions)).scalar_one()
        quarantined = connection.execute(select(func.count()).select_from(quarantine)).scalar_one()
        case_count = connection.execute(select(func.count()).select_from(cases)).scalar_one()
        flagged = connection.execute(select(func.count()).select_from(anomalies)).scalar_one()
    assert stored == totals["accepted"]
    assert quarantined == totals["quarantined"]
    assert case_count == len(run.cases)
    # Example targets for the leaders' page: every simulated type has one, markets per district.
    targets = year_targets(engine, (run.manifest.end - timedelta(days=1)).year)  # the last day's
    assert {t.revenue_type for t in targets} >= {"parking", "market"}
    assert all(t.district for t in targets if t.revenue_type == "market")
    trail = len(target_trail(engine, limit=1000))
    assert trail == len(targets)

    again = run_demo(engine, tmp_path / "models", tmp_path / "sample", points=5, weeks=5, seed=11)
    assert again.totals()["accepted"] == 0
    assert again.totals()["duplicates"] + again.totals()["quarantined"] == totals["rows_read"]
    with engine.connect() as connection:
        assert (
            connection.execute(select(func.count()).select_from(transactions)).scalar_one()
            == stored
        )
        assert (
            connection.execute(select(func.count()).select_from(cases)).scalar_one() == case_count
        )
        assert (
            connection.execute(select(func.count()).select_from(anomalies)).scalar_one() == flagged
        )
        batches = connection.execute(select(func.count()).select_from(ingest_batches)).scalar_one()
    assert batches == 2 * len(run.batches) + 6  # + the reconciliation feeds, three per run
    assert len(target_trail(engine, limit=1000)) == trail  # the same plan loaded again: no change


def test_demo_command_prints_the_summary_cases_and_the_app_address(tmp_path):
    env = {
        "EINCOME_HOME": str(tmp_path / "var"),
        "EINCOME_MODELS_DIR": str(tmp_path / "models"),
        "PATH": "/usr/bin:/bin",
        "COLUMNS": "160",
        "EINCOME_LANGUAGE": "en",  # the words below; Indonesian, the default, is tested in tests/cli
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "demo", "--no-serve", "--points", "4", "--weeks", "5"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    for expected in (
        "rows read",
        "quarantined",
        "flagged by the detector",
        "reconciliation gaps",
        "review app: http://127.0.0.1:8000/",
        "demo/demo",
    ):
        assert expected in done.stdout, expected
