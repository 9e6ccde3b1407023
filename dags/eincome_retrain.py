"""Weekly: fit a new detector version on the last weeks of hour aggregates.

Every version is kept in the models folder and the detector_models table; scoring uses the
newest, and an earlier one stays there to compare against or fall back to. The window ends at
the run's data interval end; a manual run without a logical date (the UI's Trigger button)
ends it at the hour it was triggered in, or at the ``end`` param when given.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from pipeline.orchestration import default_args


@dag(
    dag_id="eincome_retrain",
    # Monday 02:00 in Jakarta: after the weekend's markets, before the week's work.
    schedule=CronDataIntervalTimetable("0 2 * * 1", timezone="Asia/Jakarta"),
    start_date=pendulum.datetime(2020, 1, 6, tz="Asia/Jakarta"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(
        retries=1, retry_delay=timedelta(minutes=10), execution_timeout=timedelta(hours=2)
    ),
    params={
        "end": Param(
            None,
            type=["null", "string"],
            description="Manual runs: end of the training window (ISO).",
        ),
    },
    tags=["eincome", "detect", "train"],
    doc_md=__doc__,
)
def eincome_retrain():
    @task
    def train(dag_run=None, params=None) -> str:
        from pipeline.orchestration import retrain, run_end

        return retrain(run_end(dag_run, (params or {}).get("end")))

    train()


eincome_retrain()
