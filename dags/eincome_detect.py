"""Hourly: hour aggregates, leakage scores and cases for the run's data interval.

Runs per hour of data (CronDataIntervalTimetable), so Airflow's own backfill can replay any
short range hour by hour; every step writes with upserts for its interval, so a rerun replaces
and never duplicates. It first waits a few minutes past the hour so the 5-minute ingest has
pulled the hour's last transactions.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import CronDataIntervalTimetable, dag, task

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
    tags=["eincome", "detect"],
    doc_md=__doc__,
)
def eincome_detect():
    wait = TimeDeltaSensor(
        task_id="wait_for_late_rows",
        delta=LATE_ROWS_GRACE,
        mode="reschedule",
        poke_interval=60,
        timeout=3600,
    )

    @task
    def hour_aggregates(data_interval_start=None, data_interval_end=None) -> dict:
        from pipeline.orchestration import refresh_minutes

        return refresh_minutes(data_interval_start, data_interval_end)

    @task
    def score_and_cases(data_interval_start=None, data_interval_end=None) -> dict:
        from pipeline.orchestration import score_interval

        return score_interval(data_interval_start, data_interval_end)

    wait >> hour_aggregates() >> score_and_cases()


eincome_detect()
