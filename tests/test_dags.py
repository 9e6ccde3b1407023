"""The DAGs, run for real: DagBag integrity, then each DAG end to end through dag.test() against
a SQLite Airflow metadata DB in a temp AIRFLOW_HOME, on a temp eincome database.

Airflow reads its configuration when imported, so everything Airflow runs in ONE subprocess
(tests/airflow_runner.py) with its own environment; importing Airflow and starting dag.test()'s
in-process API server is most of the cost, so the whole plan runs once per module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import service_missing
from tests.sources_helpers import feed_rows, load_points, write_csv

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
DAGS = ROOT / "dags"
# The hour the detection DAG is run for, and the day range of the bulk backfill.
DETECT_LOGICAL_DATE = "2026-11-20T05:00:00+00:00"
BACKFILL_CONF = {"start": "2026-11-19", "end": "2026-11-21"}
RETRAIN_LOGICAL_DATE = "2026-11-23T02:00:00+07:00"


def _setup_eincome(base: Path) -> dict[str, str]:
    """A temp eincome home with points, a landing folder holding feed files, and sources.yml
    naming that folder plus one broken source (its folder does not exist)."""
    from pipeline.store import connect

    home = base / "eincome"
    (home / "landing").mkdir(parents=True)
    engine = connect(f"sqlite:///{home / 'eincome.db'}")
    load_points(engine, base)
    engine.dispose()
    old = time.time() - 600
    for day, start in enumerate(range(0, 3000, 1000)):
        path = write_csv(home / "landing" / f"day{day}.csv", feed_rows(1000, start=start))
        os.utime(path, (old, old))
    (home / "sources.yml").write_text(
        "sources:\n"
        "  - {name: kota, kind: landing, path: landing, archive: archive, settle_seconds: 60}\n"
        "  - {name: broken, kind: landing, path: no-such-folder, archive: archive-broken}\n"
    )
    return {
        "EINCOME_HOME": str(home),
        "EINCOME_DB_URL": "",
        "EINCOME_MODELS_DIR": str(base / "models"),
        "EINCOME_SOURCES": str(home / "sources.yml"),
    }


@pytest.fixture(scope="module")
def airflow_run(tmp_path_factory):
    """Run the whole plan once; returns {step name: result}."""
    if importlib.util.find_spec("airflow") is None:
        service_missing("apache-airflow is not installed (pip install -e '.[airflow]')")
    base = tmp_path_factory.mktemp("airflow")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EINCOME_"))},
        "AIRFLOW_HOME": str(base / "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{base / 'airflow-home' / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": str(ROOT),
        **_setup_eincome(base),
    }
    plan = [
        {"step": "migrate"},
        {"step": "integrity"},
        {
            "step": "dag",
            "name": "ingest",
            "dag_id": "eincome_ingest",
            "logical_date": DETECT_LOGICAL_DATE,
        },
        {
            "step": "dag",
            "name": "retrain",
            "dag_id": "eincome_retrain",
            "logical_date": RETRAIN_LOGICAL_DATE,
        },
        {
            "step": "dag",
            "name": "detect",
            "dag_id": "eincome_detect",
            "logical_date": DETECT_LOGICAL_DATE,
        },
        {
            "step": "dag",
            "name": "detect_again",
            "dag_id": "eincome_detect",
            "logical_date": DETECT_LOGICAL_DATE,
        },
        {
            "step": "dag",
            "name": "backfill",
            "dag_id": "eincome_backfill",
            "logical_date": datetime.now(UTC).isoformat(),
            "conf": BACKFILL_CONF,
        },
    ]
    completed = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "airflow_runner.py"), json.dumps(plan)],
        env=env,
        cwd=base,
        capture_output=True,
        text=True,
        timeout=400,
    )
    results = {}
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            results[result["name"]] = result
    log = (completed.stdout + completed.stderr)[-6000:]
    if completed.returncode != 0 or "migrate" not in results:
        pytest.fail(f"the Airflow runner failed (exit {completed.returncode}):\n{log}")
    results["_log"] = log
    results["_base"] = base
    return results


def _step(results, name):
    result = results.get(name)
    if result is None:
        pytest.fail(f"step {name} did not report:\n{results['_log']}")
    if "error" in result:
        pytest.fail(f"step {name} raised:\n{result['error']}")
    return result


def test_every_dag_file_imports_cleanly_with_tags_retries_timeouts_and_failure_records(airflow_run):
    integrity = _step(airflow_run, "integrity")
    assert integrity["import_errors"] == {}
    assert integrity["files"] == sorted(p.name for p in DAGS.glob("*.py"))
    assert set(integrity["dags"]) == {
        "eincome_ingest",
        "eincome_detect",
        "eincome_retrain",
        "eincome_backfill",
    }
    for dag_id, dag in integrity["dags"].items():
        assert "eincome" in dag["tags"], dag_id
        assert dag["catchup"] is False, dag_id
        for task_id, task in dag["tasks"].items():
            where = f"{dag_id}.{task_id}"
            assert task["retries"] >= 1, where
            assert task["execution_timeout"], where
            assert task["on_failure_callback"], where
    # Data-interval schedules: a run means "this interval of data", which makes native backfill work.
    assert integrity["dags"]["eincome_detect"]["timetable"] == "CronDataIntervalTimetable"


def test_ingest_dag_pulls_every_source_and_a_broken_source_fails_alone(airflow_run):
    ingest = _step(airflow_run, "ingest")
    assert ingest["data_interval"] == ["2026-11-20 04:55:00+00:00", "2026-11-20 05:00:00+00:00"]
    tasks = ingest["tasks"]
    assert tasks["list_sources"] == "success"
    assert tasks["pull[0]"] == "success"  # kota
    assert tasks["pull[1]"] == "failed"  # broken: no retry for a config error
    assert tasks["minute_aggregates"] == "success"  # still runs for the sources that worked
    pulled = ingest["returned"]["pull[0]"]
    assert pulled == {
        "source": "kota",
        "batches": 3,
        "rows_read": 3000,
        "accepted": 3000,
        "quarantined": 0,
        "duplicates": 0,
    }
    assert ingest["counts"]["transactions"] == 3000
    assert ingest["counts"]["minute_aggregates"] > 0
    [(where, error)] = ingest["counts"]["failures"]
    assert where == "eincome_ingest.pull[1]"
    assert "landing source broken: folder" in error and "no-such-folder does not exist" in error
    archived = sorted(p.name for p in (airflow_run["_base"] / "eincome" / "archive").rglob("*.csv"))
    assert archived == ["day0.csv", "day1.csv", "day2.csv"]


def test_retrain_dag_fits_a_model_version(airflow_run):
    retrain = _step(airflow_run, "retrain")
    assert retrain["state"] == "success"
    assert retrain["data_interval"] == ["2026-11-15 19:00:00+00:00", "2026-11-22 19:00:00+00:00"]
    assert retrain["returned"]["train"]
    assert retrain["counts"]["detector_models"] >= 1


def test_detect_dag_scores_its_hour_and_a_rerun_replaces_never_duplicates(airflow_run):
    first, again = _step(airflow_run, "detect"), _step(airflow_run, "detect_again")
    for run in (first, again):
        assert run["state"] == "success"
        assert run["data_interval"] == ["2026-11-20 04:00:00+00:00", "2026-11-20 05:00:00+00:00"]
        assert set(run["tasks"].values()) == {"success"}
    assert first["counts"]["hour_aggregates"] > 0
    for table in ("hour_aggregates", "anomalies", "cases"):
        assert again["counts"][table] == first["counts"][table], table


def test_backfill_dag_processes_a_range_given_as_params(airflow_run):
    backfill = _step(airflow_run, "backfill")
    assert backfill["state"] == "success"
    assert backfill["tasks"] == {"backfill": "success"}
    assert backfill["returned"]["backfill"]
