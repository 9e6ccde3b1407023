"""Every 5 minutes: pull every configured source, then close the minute aggregates.

One mapped `pull` task per source (dynamic task mapping), so a broken source fails alone and is
recorded in pipeline_failures while the others are stored. Sources keep their own watermarks,
so a run pulls whatever is new whatever its interval; catch-up runs would add nothing.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, TriggerRule, dag, task

from pipeline.orchestration import default_args

# Emitted when a pull round is stored and aggregated; the detection DAG's upstream.
TRANSACTIONS = Asset(name="eincome_transactions", uri="eincome://db/transactions")


@dag(
    dag_id="eincome_ingest",
    schedule=CronDataIntervalTimetable("*/5 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2020, 1, 1, tz="UTC"),  # before any history we may replay
    catchup=False,
    max_active_runs=1,  # two rounds at once would race on the same source watermarks
    dagrun_timeout=timedelta(minutes=30),
    default_args=default_args(
        retries=2, retry_delay=timedelta(minutes=1), execution_timeout=timedelta(minutes=15)
    ),
    tags=["eincome", "ingest"],
    doc_md=__doc__,
)
def eincome_ingest():
    @task
    def list_sources() -> list[str]:
        from pipeline.orchestration import source_names

        return source_names()

    @task(map_index_template="{{ name }}")
    def pull(name: str) -> dict:
        from pipeline.orchestration import pull_one

        return pull_one(name)

    # ALL_DONE: the pulls that worked are aggregated even when another source failed.
    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[TRANSACTIONS])
    def minute_aggregates(pulled, data_interval_start=None, data_interval_end=None) -> dict:
        from pipeline.orchestration import refresh_minutes

        summary = refresh_minutes(data_interval_start, data_interval_end)
        summary["sources"] = [p for p in pulled if p]
        return summary

    minute_aggregates(pull.expand(name=list_sources()))


eincome_ingest()
