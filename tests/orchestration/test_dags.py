"""The DAGs, run for real: DagBag integrity, then each DAG end to end through dag.test() against
a SQLite Airflow metadata DB in a temp AIRFLOW_HOME, on a temp eincome database.

Airflow reads its configuration when imported, so everything Airflow runs in ONE subprocess
(tests/helpers/airflow_runner.py) with its own environment; importing Airflow and starting dag.test()'s
in-process API server is most of the cost, so the whole plan runs once per module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT
from tests.helpers.services import service_missing

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

ROOT = REPO_ROOT
DAGS = ROOT / "dags"
# The simulated regency: small enough to run in seconds, long enough to train on (3 weeks,
# starting Monday 2025-11-03 Jakarta time, ending Monday 2025-11-24).
SIM = {"points": 6, "weeks": 3, "seed": 7, "split": "week"}
INGEST_LOGICAL_DATE = "2025-11-24T01:00:00+00:00"
RETRAIN_LOGICAL_DATE = "2025-11-24T02:00:00+07:00"  # Monday 02:00 in Jakarta, the schedule's time
RETRAIN_WEEK_BEFORE = "2025-11-17T02:00:00+07:00"
# Reconciliation runs, named by when they run (dag.test takes that as the interval's end): the
# daily run of 25 Nov checks collectors 17..24 Nov; the monthly run of 20 Dec checks November.
RECONCILE_DAILY_LOGICAL_DATE = "2025-11-25T02:00:00+07:00"
RECONCILE_MONTHLY_LOGICAL_DATE = "2025-12-20T03:00:00+07:00"
DETECT_LOGICAL_DATE = "2025-11-20T06:00:00+00:00"  # the hour 05:00-06:00 UTC, midday in Jakarta
# Local (WIB) days, as the CLI's `--start 2025-11-03T00:00+07:00`.
# One week of history before scoring (production waits four): the world has three weeks, so the
# week from the retrain moment of Monday 17 Nov is scored, with that moment's model.
BACKFILL_CONF = {"start": "2025-11-03", "end": "2025-11-24", "min_history_weeks": 1}
# A manual run from the UI's Trigger button: no logical date, so no data interval (Airflow 3).
MANUAL_RUN_AFTER = "2025-11-20T06:31:00+00:00"
EARLY_DETECT_LOGICAL_DATE = "2025-11-05T06:00:00+00:00"  # two days of history, no model yet


API_TOKEN = "tok-from-an-airflow-connection"


def _vendor_api(point_id: str):
    """A tapping-box API on 127.0.0.1 with 12 transactions of one point, in pages of 5, that
    wants the bearer token the DAG must read from an Airflow connection."""
    from pytest_httpserver import HTTPServer
    from werkzeug import Response

    rows = [
        {
            "id": f"API-{i:04d}",
            "point_id": point_id,
            "occurred_at": f"2025-11-20T0{i % 10}:{i:02d}:00+00:00",
            "amount": 10_000 + i,
            "payment_method": "qris",
            "status": "paid",
        }
        for i in range(12)
    ]

    def handler(request):
        if request.headers.get("Authorization") != f"Bearer {API_TOKEN}":
            return Response("unauthorised", status=401)
        since = int(request.args.get("since", 0))
        page = rows[since : since + int(request.args["limit"])]
        body = {"items": page, "next_cursor": str(since + len(page))}
        return Response(json.dumps(body), content_type="application/json")

    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/tx").respond_with_handler(handler)
    server.start()
    return server


def _setup_eincome(base: Path, api_url: str) -> tuple[dict[str, str], object]:
    """A temp eincome home: the simulator's points loaded, its weekly feed files waiting in a
    landing folder, and sources.yml naming that folder, one broken source (no such folder) and
    an HTTP API whose token is in an Airflow connection."""
    from pipeline.reference.points import load_registry
    from pipeline.store import connect
    from pipeline.testbed.simulator import simulate

    manifest = simulate(base / "sim", **SIM)
    home = base / "eincome"
    (home / "landing").mkdir(parents=True)
    engine = connect(f"sqlite:///{home / 'eincome.db'}")
    load_registry(engine, manifest.points_csv)
    engine.dispose()
    settled = time.time() - 600
    for feed in manifest.feeds:
        target = home / "landing" / feed.name
        shutil.copy(feed, target)
        os.utime(target, (settled, settled))
    (home / "sources.yml").write_text(
        "sources:\n"
        "  - {name: kota, kind: landing, path: landing, archive: archive, settle_seconds: 60}\n"
        "  - {name: broken, kind: landing, path: no-such-folder, archive: archive-broken}\n"
        f"  - {{name: tapbox, kind: http, url: '{api_url}', token_connection: tapbox_api,"
        " page_size: 5, fields: {txn_id: id}}\n"
    )
    env = {
        "EINCOME_HOME": str(home),
        "EINCOME_DB_URL": "",
        "EINCOME_MODELS_DIR": str(base / "models"),
        "EINCOME_SOURCES": str(home / "sources.yml"),
    }
    return env, manifest


@pytest.fixture(scope="module")
def airflow_run(tmp_path_factory, request):
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
    }
    server = _vendor_api("PSR-0001")
    request.addfinalizer(server.stop)
    eincome_env, manifest = _setup_eincome(base, server.url_for("/tx"))
    env.update(eincome_env)
    # An Airflow connection given the Airflow way; its password is the token.
    env["AIRFLOW_CONN_TAPBOX_API"] = json.dumps({"conn_type": "http", "password": API_TOKEN})
    plan = [
        {"step": "migrate"},
        {"step": "integrity"},
        {
            "step": "dag",
            "name": "ingest",
            "dag_id": "eincome_ingest",
            "logical_date": INGEST_LOGICAL_DATE,
        },
        {
            "step": "dag",
            "name": "detect_before_any_model",
            "dag_id": "eincome_detect",
            "logical_date": EARLY_DETECT_LOGICAL_DATE,
        },
        {
            "step": "dag",
            "name": "retrain_week_before",
            "dag_id": "eincome_retrain",
            "logical_date": RETRAIN_WEEK_BEFORE,
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
            "name": "detect_manual",
            "dag_id": "eincome_detect",
            "logical_date": None,
            "run_after": MANUAL_RUN_AFTER,
        },
        {
            "step": "dag",
            "name": "detect_manual_hour_param",
            "dag_id": "eincome_detect",
            "logical_date": None,
            "run_after": "2025-11-30T00:00:00+00:00",
            "conf": {"start": "2025-11-20T12:00:00+07:00"},
        },
        {
            "step": "dag",
            "name": "retrain_manual",
            "dag_id": "eincome_retrain",
            "logical_date": None,
            "run_after": "2025-11-24T03:15:00+07:00",
        },
        {
            "step": "dag",
            "name": "reconcile_daily_manual",
            "dag_id": "eincome_reconcile_daily",
            "logical_date": None,
            "run_after": "2025-11-25T02:30:00+07:00",
        },
        {
            "step": "backfill_dry_run",
            "dag_id": "eincome_detect",
            "from_date": "2025-11-17T00:00:00+00:00",
            "to_date": "2025-11-17T03:00:00+00:00",
        },
        {
            "step": "dag",
            "name": "reconcile_daily",
            "dag_id": "eincome_reconcile_daily",
            "logical_date": RECONCILE_DAILY_LOGICAL_DATE,
        },
        {
            "step": "dag",
            "name": "reconcile_monthly",
            "dag_id": "eincome_reconcile_monthly",
            "logical_date": RECONCILE_MONTHLY_LOGICAL_DATE,
        },
        {
            "step": "dag",
            "name": "reconcile_monthly_again",
            "dag_id": "eincome_reconcile_monthly",
            "logical_date": RECONCILE_MONTHLY_LOGICAL_DATE,
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
        [sys.executable, str(ROOT / "tests" / "helpers" / "airflow_runner.py"), json.dumps(plan)],
        env=env,
        cwd=base,
        capture_output=True,
        text=True,
        timeout=600,
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
    # What each step logged: its lines up to its RESULT line (stderr and stdout interleave
    # only roughly, so this reads the stdout stream, where dag.test prints the task logs).
    results["_segments"] = {}
    segment: list[str] = []
    for line in (completed.stdout).splitlines():
        if line.startswith("RESULT "):
            results["_segments"][json.loads(line[len("RESULT ") :])["name"]] = "\n".join(segment)
            segment = []
        else:
            segment.append(line)
    # Step timings, shown with `pytest -s` (what the budget goes on).
    print({name: r.get("seconds") for name, r in results.items() if isinstance(r, dict)})
    results["_base"] = base
    results["_manifest"] = manifest
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
        "eincome_reconcile_daily",
        "eincome_reconcile_monthly",
    }
    for dag_id, dag in integrity["dags"].items():
        assert "eincome" in dag["tags"], dag_id
        assert dag["catchup"] is False, dag_id
        for task_id, task in dag["tasks"].items():
            where = f"{dag_id}.{task_id}"
            if where != "eincome_ingest.pull":  # retried by the next round, see below
                assert task["retries"] >= 1, where
            assert task["execution_timeout"], where
            assert task["on_failure_callback"], where
    # Data-interval schedules: a run means "this interval of data", which makes native backfill work.
    assert integrity["dags"]["eincome_detect"]["timetable"] == "CronDataIntervalTimetable"


def test_ingest_dag_pulls_every_source_and_a_broken_source_fails_alone(airflow_run):
    ingest = _step(airflow_run, "ingest")
    assert ingest["state"] == "failed"  # the round is red: a source failed (see the next test)
    manifest = airflow_run["_manifest"]
    assert ingest["data_interval"] == ["2025-11-24 00:55:00+00:00", "2025-11-24 01:00:00+00:00"]
    tasks = ingest["tasks"]
    assert tasks["list_sources"] == "success"
    assert tasks["pull[0]"] == "success"  # kota: the landing folder
    assert tasks["pull[1]"] == "failed"  # broken: a config error fails at once, no retries
    assert tasks["pull[2]"] == "success"  # tapbox: token read from the Airflow connection
    assert tasks["minute_aggregates"] == "success"  # still runs for the sources that worked
    assert tasks["every_source_pulled"] == "failed"
    pulled = ingest["returned"]["pull[0]"]
    assert pulled["batches"] == len(manifest.feeds) == 3
    assert pulled["rows_read"] == manifest.rows
    assert pulled["accepted"] + pulled["quarantined"] + pulled["duplicates"] == manifest.rows
    assert pulled["quarantined"] >= 5  # the simulator's invalid rows
    api = ingest["returned"]["pull[2]"]
    assert (api["batches"], api["rows_read"], api["accepted"]) == (3, 12, 12)
    assert ingest["counts"]["transactions"] == pulled["accepted"] + api["accepted"]
    assert ingest["counts"]["minute_aggregates"] > 0
    failures = dict(ingest["counts"]["failures"])
    assert set(failures) == {"eincome_ingest.pull[broken]", "eincome_ingest.every_source_pulled"}
    error = failures["eincome_ingest.pull[broken]"]  # the source by name, for ops
    assert "landing source broken: folder" in error and "no-such-folder does not exist" in error
    assert (
        "1 of 3 sources failed this round: broken" in failures["eincome_ingest.every_source_pulled"]
    )
    archived = sorted(p.name for p in (airflow_run["_base"] / "eincome" / "archive").rglob("*.csv"))
    assert archived == sorted(f.name for f in manifest.feeds)


def test_a_failing_source_makes_the_ingest_run_fail_after_the_healthy_ones_are_stored(airflow_run):
    """Regression: the ALL_DONE aggregate was the only leaf, so a dead source or a rejected file
    left the run green and Airflow's alerting never saw it."""
    ingest = _step(airflow_run, "ingest")
    assert ingest["state"] == "failed"
    assert ingest["tasks"]["every_source_pulled"] == "failed"
    assert ingest["returned"]["pull[0]"]["accepted"] > 0  # stored before the run failed
    assert ingest["counts"]["transactions"] > 0


def test_a_pull_is_not_retried_by_airflow_so_a_dead_source_cannot_hold_the_round(airflow_run):
    """Regression: 2 task retries with backoff held one round on a dead source for 4 minutes
    (longer than the 5-minute schedule); the source's own attempts and the next round retry."""
    tasks = _step(airflow_run, "integrity")["dags"]["eincome_ingest"]["tasks"]
    assert tasks["pull"]["retries"] == 0
    assert tasks["pull"]["execution_timeout"] <= 15 * 60


def test_retrain_dag_fits_a_new_version_each_week_and_keeps_the_old_ones(airflow_run):
    earlier, retrain = _step(airflow_run, "retrain_week_before"), _step(airflow_run, "retrain")
    assert earlier["state"] == retrain["state"] == "success"
    assert retrain["data_interval"] == ["2025-11-16 19:00:00+00:00", "2025-11-23 19:00:00+00:00"]
    first, second = earlier["returned"]["train"], retrain["returned"]["train"]
    assert first and second and first != second
    assert earlier["counts"]["detector_models"] == 1
    assert retrain["counts"]["detector_models"] == 2  # the earlier version is still there
    models = sorted(p.name for p in (airflow_run["_base"] / "models").rglob("*") if p.is_file())
    assert any(first in name for name in models) and any(second in name for name in models)


def test_detect_dag_scores_its_hour_and_a_rerun_replaces_never_duplicates(airflow_run):
    first, again = _step(airflow_run, "detect"), _step(airflow_run, "detect_again")
    for run in (first, again):
        assert run["state"] == "success"
        assert run["data_interval"] == ["2025-11-20 05:00:00+00:00", "2025-11-20 06:00:00+00:00"]
        assert set(run["tasks"].values()) == {"success"}
        assert run["returned"]["send_alerts"]["failed"] == 0  # no address set: nothing to send
    assert first["counts"]["hour_aggregates"] > 0
    for table in ("hour_aggregates", "anomalies", "cases"):
        assert again["counts"][table] == first["counts"][table], table


def test_backfill_dag_processes_a_range_given_as_params(airflow_run):
    backfill = _step(airflow_run, "backfill")
    assert backfill["state"] == "success"
    # Fanned out: the plan, one training task per retrain moment, then the weeks scored.
    tasks = backfill["tasks"]
    trains = sorted(t for t in tasks if t.startswith("train["))
    assert tasks["plan"] == tasks["score"] == "success" and trains
    assert all(tasks[t] == "success" for t in trains)
    by_moment = {backfill["returned"][t]["moment"]: backfill["returned"][t] for t in trains}
    assert len(by_moment) == len(trains)  # one training task per retrain moment
    # The weekly DAG fitted the last moment's model already: used, not fitted again.
    trained = by_moment["2025-11-16T19:00:00+00:00"]
    assert trained["fitted"] is False and max(by_moment) == "2025-11-16T19:00:00+00:00"
    returned = backfill["returned"]["score"]
    assert int(returned["hours_scored"]) > 0 and returned["model_version"] == trained["version"]
    # Dates are local (WIB) days, the range the CLI takes as --start 2025-11-03T00:00+07:00.
    assert (returned["start"], returned["end"]) == (
        "2025-11-02 17:00:00+00:00",
        "2025-11-23 17:00:00+00:00",
    )


def test_detect_before_any_model_fails_saying_what_to_do(airflow_run):
    """Regression: a fresh deployment's hourly detect failed with a bare missing-model error."""
    early = _step(airflow_run, "detect_before_any_model")
    assert early["state"] == "failed"
    assert early["tasks"]["score_and_cases"] == "failed"
    [error] = [e for w, e in early["counts"]["failures"] if w == "eincome_detect.score_and_cases"]
    assert "no detector model yet" in error and "eincome_retrain" in error
    assert early["counts"]["detector_models"] == 0


def test_manual_runs_without_a_logical_date_work_on_the_last_complete_hour(airflow_run):
    """Regression: the UI's Trigger button makes runs with no logical date in Airflow 3, and
    detect, retrain and reconcile crashed on the missing data interval (NoneType.timestamp)."""
    manual = _step(airflow_run, "detect_manual")
    assert manual["state"] == "success", manual["tasks"]
    assert manual["data_interval"] == ["None", "None"]
    scored = manual["returned"]["score_and_cases"]
    # Triggered at 06:31 UTC: the hour 05:00-06:00, the same as the scheduled run of that hour.
    assert (scored["start"], scored["end"]) == (
        "2025-11-20 05:00:00+00:00",
        "2025-11-20 06:00:00+00:00",
    )
    scheduled = _step(airflow_run, "detect")
    for table in ("hour_aggregates", "anomalies", "cases"):
        assert manual["counts"][table] == scheduled["counts"][table], table
    retrain = _step(airflow_run, "retrain_manual")
    assert retrain["state"] == "success" and retrain["returned"]["train"]
    reconcile = _step(airflow_run, "reconcile_daily_manual")
    assert reconcile["state"] == "success"
    summary = reconcile["returned"]["reconcile_collectors_and_bank"]
    assert summary["window"] == ["2025-11-17", "2025-11-25"]


def test_a_manual_detect_run_scores_the_hour_named_in_its_params(airflow_run):
    """Regression: a manual run with --logical-date 06:00 scored 07:00-08:00; the hour is now
    named by the `start` param (with its offset), whenever the run was triggered."""
    run = _step(airflow_run, "detect_manual_hour_param")
    assert run["state"] == "success"
    scored = run["returned"]["score_and_cases"]
    assert (scored["start"], scored["end"]) == (
        "2025-11-20 05:00:00+00:00",
        "2025-11-20 06:00:00+00:00",
    )


def test_task_logs_carry_no_deprecation_warnings_or_library_info_lines(airflow_run):
    """Regression: every model-loading task logged ~1,160 DeprecationWarnings (skops walking
    sys.modules through Airflow's shims) and every pull ~213 Great Expectations INFO lines."""
    segments = airflow_run["_segments"]
    noise = {
        name: (
            segments[name].count("DeprecationWarning"),
            segments[name].count("great_expectations"),
        )
        for name in ("ingest", "detect", "retrain")
    }
    lines = [
        line
        for name in noise
        for line in segments[name].splitlines()
        if "DeprecationWarning" in line or "great_expectations" in line
    ]
    assert noise == {name: (0, 0) for name in noise}, lines[:5]


def test_native_backfill_of_the_detection_dag_makes_one_run_per_hour(airflow_run):
    """`airflow backfill create --dag-id eincome_detect --from-date .. --to-date ..` (both ends
    inclusive) would create one run per hour, each for exactly its hour of data."""
    runs = _step(airflow_run, "backfill_dry_run")["runs"]
    assert runs == [
        [
            f"2025-11-17 0{h}:00:00+00:00",
            f"2025-11-17 0{h}:00:00+00:00",
            f"2025-11-17 0{h + 1}:00:00+00:00",
        ]
        for h in range(4)
    ]


def test_reconcile_dags_judge_their_interval_and_a_rerun_raises_nothing_new(airflow_run):
    daily = _step(airflow_run, "reconcile_daily")
    assert daily["state"] == "success"
    assert daily["tasks"] == {
        "reconcile_collectors_and_bank": "success",
        "digest_of_open_cases": "success",
    }
    assert daily["returned"]["digest_of_open_cases"]["failed"] == 0
    summary = daily["returned"]["reconcile_collectors_and_bank"]
    assert summary["window"] == ["2025-11-17", "2025-11-25"]
    first = _step(airflow_run, "reconcile_monthly")
    again = _step(airflow_run, "reconcile_monthly_again")
    for run in (first, again):
        assert run["state"] == "success"
        assert run["tasks"] == {"reconcile_tax_returns": "success"}
        summary = run["returned"]["reconcile_tax_returns"]
        assert summary["window"] == ["2025-11-01", "2025-12-01"]
        assert summary["as_of"] == "2025-12-20"
    assert again["returned"]["reconcile_tax_returns"]["cases_created"] == 0
    assert again["counts"]["cases"] == first["counts"]["cases"]


def test_ops_page_shows_the_last_runs_of_each_dag_from_the_metadata_database(airflow_run):
    """The ops page reads Airflow's dag_run table (EINCOME_AIRFLOW_DB_URL): here the SQLite
    metadata database the plan's dag.test() runs wrote."""
    from pipeline.review.airflow_runs import recent_dag_runs

    url = f"sqlite:///{airflow_run['_base'] / 'airflow-home' / 'airflow.db'}"
    view = recent_dag_runs(url, per_dag=3)
    assert view.configured and view.error is None
    assert set(view.runs) >= {"eincome_ingest", "eincome_detect", "eincome_retrain"}
    assert [r.state for r in view.runs["eincome_ingest"]] == ["failed"]  # the red round
    assert len(view.runs["eincome_detect"]) == 3  # the newest three of six
    manual = [r for r in view.runs["eincome_detect"] if r.interval_start is None]
    assert manual and all(r.run_type == "manual" for r in manual)
    page = _ops_page(url)
    assert (
        'id="dag-runs"' in page and "eincome_ingest" in page and "(manual, tidak ada)" in page
    )  # Indonesian by default


def _ops_page(airflow_db_url: str) -> str:
    """/ops as the ops user sees it, on a fresh eincome database."""
    import re
    import tempfile

    from fastapi.testclient import TestClient

    from pipeline.casework.users import ensure_demo_users
    from pipeline.core.settings import Settings
    from pipeline.review import create_app
    from pipeline.store import connect

    with tempfile.TemporaryDirectory() as folder:
        engine = connect(f"sqlite:///{folder}/eincome.db")
        ensure_demo_users(engine)
        app = create_app(engine, Settings(secret_key="k", airflow_db_url=airflow_db_url))
        client = TestClient(app, follow_redirects=False)
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
        signed_in = client.post(
            "/login", data={"username": "ops", "password": "ops", "csrf_token": token}
        )
        assert signed_in.status_code == 303
        page = client.get("/ops")
        engine.dispose()
    assert page.status_code == 200
    return page.text
