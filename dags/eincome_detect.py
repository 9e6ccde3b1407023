"""Hourly: hour aggregates, leakage scores and cases for one hour of data.

Runs per hour of data (CronDataIntervalTimetable), so Airflow's own backfill can replay any
short range hour by hour; every step writes with upserts for its hour, so a rerun replaces and
never duplicates. It first waits a few minutes past the hour so the 5-minute ingest has pulled
the hour's last transactions (an hour long past passes at once).

The hour is the run's data interval. A manual run can name it with the ``start`` param (an ISO
time with offset; ``end`` optional, default one hour later); a manual run from the UI's Trigger
button without params (no logical date, so no data interval in Airflow 3) scores the last
complete hour before it was triggered. A fresh deployment's first runs train the first model
once a week of history is in, and until then fail saying so.

After scoring, ``send_alerts`` sends what the alert rules (``eincome alerts rules list``) say
about new cases, points silent as of the hour's end and pipeline failures, each once per
recipient; a send that fails is recorded and retried by the next hour's run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from pipeline.orchestration import default_args

LATE_ROWS_GRACE = timedelta(minutes=10)


@dag(
    dag_id="eincome_detect",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2020, 1, 1, tz="UTC"),  # before any history we may replay
    catchup=False,  # history goes through `airflow backfill create` or eincome_backfill
    max_active_runs=4,
    dagrun_timeout=timedelta(hours=2),
    default_args=default_args(
        retries=2, retry_delay=timedelta(minutes=5), execution_timeout=timedelta(minutes=30)
    ),
    params={
        "start": Param(
            None, type=["null", "string"], description="Manual runs: first hour (ISO, with offset)."
        ),
        "end": Param(
            None,
            type=["null", "string"],
            description="Manual runs: end, exclusive (default start + 1 h).",
        ),
    },
    tags=["eincome", "detect"],
    doc_md=__doc__,
)
def eincome_detect():
    @task
    def hour_to_score(dag_run=None, params=None) -> dict:
        from pipeline.orchestration import interval_summary, run_interval

        return interval_summary(*run_interval(dag_run, params))

    @task.sensor(poke_interval=60, timeout=3600, mode="reschedule")
    def wait_for_late_rows(hour: dict) -> bool:
        from datetime import UTC, datetime

        from pipeline.orchestration import interval_from, late_rows_settled

        return late_rows_settled(interval_from(hour)[1], LATE_ROWS_GRACE, datetime.now(UTC))

    @task
    def hour_aggregates(hour: dict) -> dict:
        from pipeline.orchestration import interval_from, refresh_minutes

        return refresh_minutes(*interval_from(hour))

    @task
    def score_and_cases(hour: dict) -> dict:
        from pipeline.orchestration import interval_from, score_interval

        return score_interval(*interval_from(hour))

    @task
    def send_alerts(hour: dict) -> dict:
        from pipeline.orchestration import interval_from, send_alerts_as_of

        return send_alerts_as_of(interval_from(hour)[1])

    hour = hour_to_score()
    (
        wait_for_late_rows(hour)
        >> hour_aggregates(hour)
        >> score_and_cases(hour)
        >> send_alerts(hour)
    )


eincome_detect()
