"""Runs Airflow work for the DAG tests in a fresh interpreter: Airflow reads its config
(AIRFLOW_HOME, the DAG folder, its metadata DB) when first imported, so the tests start this
with their own environment. Importing Airflow and starting dag.test()'s in-process execution
API takes most of the time, so one process runs a whole plan of steps:

    python tests/airflow_runner.py '[{"step": "migrate"}, {"step": "integrity"},
                                     {"step": "dag", "dag_id": "...", "logical_date": "...", "conf": {}}]'

Each step prints one line ``RESULT <json>`` as soon as it is done.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import traceback
from datetime import datetime, timedelta


def migrate() -> dict:
    from airflow.utils import db

    db.upgradedb()
    return {"ok": True}


@functools.cache
def _dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def integrity() -> dict:
    bag = _dagbag()
    return {
        "files": sorted({os.path.basename(d.fileloc) for d in bag.dags.values()}),
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "dags": {
            dag_id: {
                "file": os.path.basename(dag.fileloc),
                "tags": sorted(dag.tags),
                "timetable": type(dag.timetable).__name__,
                "catchup": dag.catchup,
                "tasks": {
                    t.task_id: {
                        "retries": t.retries,
                        "execution_timeout": t.execution_timeout.total_seconds()
                        if t.execution_timeout
                        else None,
                        "on_failure_callback": bool(t.on_failure_callback),
                    }
                    for t in dag.tasks
                },
            }
            for dag_id, dag in bag.dags.items()
        },
    }


def eincome_counts() -> dict:
    from sqlalchemy import func, select

    from pipeline.runtime import runtime_from_env
    from pipeline.store import schema

    engine = runtime_from_env().engine
    names = (
        "transactions",
        "ingest_batches",
        "minute_aggregates",
        "hour_aggregates",
        "detector_models",
        "anomalies",
        "cases",
        "pipeline_failures",
    )
    with engine.connect() as connection:
        counts = {
            n: connection.execute(select(func.count()).select_from(getattr(schema, n))).scalar_one()
            for n in names
        }
        failures = connection.execute(select(schema.pipeline_failures.c["where", "error"])).all()
    engine.dispose()
    counts["failures"] = [list(f) for f in failures]
    return counts


def run_dag(
    dag_id: str, logical_date: str | None, conf: dict | None, run_after: str | None = None
) -> dict:
    """One dag.test() run. ``logical_date`` None is what the UI's Trigger button makes in
    Airflow 3: a manual run with no logical date and no data interval, at ``run_after``."""
    from airflow.utils.session import create_session

    dag = _dagbag().get_dag(dag_id)
    # dag.test() waits out a retry delay in real time; the retries still happen, just sooner.
    for task in dag.tasks:
        task.retry_delay = timedelta(seconds=1)
        task.max_retry_delay = timedelta(seconds=2)
    run = dag.test(
        logical_date=datetime.fromisoformat(logical_date) if logical_date else None,
        run_after=datetime.fromisoformat(run_after) if run_after else None,
        run_conf=conf,
    )
    with create_session() as session:
        tis = run.get_task_instances(session=session)
        states = {
            (f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id): str(ti.state)
            for ti in tis
        }
        xcoms = {}
        from airflow.models.xcom import XComModel

        for row in session.query(XComModel).filter(
            XComModel.run_id == run.run_id, XComModel.dag_id == dag_id
        ):
            key = f"{row.task_id}[{row.map_index}]" if row.map_index >= 0 else row.task_id
            if row.key == "return_value":
                xcoms[key] = row.value
    return {
        "state": str(run.state),
        "data_interval": [str(run.data_interval_start), str(run.data_interval_end)],
        "tasks": states,
        "returned": xcoms,
        "counts": eincome_counts(),
    }


def backfill_dry_run(dag_id: str, from_date: str, to_date: str) -> dict:
    """What `airflow backfill create --dry-run` would create: the runs' logical dates and intervals."""
    from airflow.models.backfill import ReprocessBehavior, _do_dry_run
    from airflow.utils.session import create_session

    with create_session() as session:
        infos = _do_dry_run(
            dag_id=dag_id,
            from_date=datetime.fromisoformat(from_date),
            to_date=datetime.fromisoformat(to_date),
            reverse=False,
            reprocess_behavior=ReprocessBehavior.FAILED,
            session=session,
        )
        runs = [
            [str(i.logical_date), str(i.data_interval.start), str(i.data_interval.end)]
            for i in infos
        ]
    return {"runs": runs}


def main(plan: list[dict]) -> None:
    for step in plan:
        started = time.monotonic()
        try:
            if step["step"] == "migrate":
                result = migrate()
            elif step["step"] == "integrity":
                result = integrity()
            elif step["step"] == "backfill_dry_run":
                result = backfill_dry_run(step["dag_id"], step["from_date"], step["to_date"])
            else:
                result = run_dag(
                    step["dag_id"],
                    step.get("logical_date"),
                    step.get("conf"),
                    step.get("run_after"),
                )
        except Exception:  # noqa: BLE001 - reported to the test, which fails with it
            result = {"error": traceback.format_exc()}
        result["seconds"] = round(time.monotonic() - started, 1)
        print(
            "RESULT " + json.dumps({"name": step.get("name", step["step"]), **result}, default=str),
            flush=True,
        )


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
