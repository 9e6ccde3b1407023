"""Every 5 minutes: pull every configured source, then close the minute aggregates.

One mapped `pull` task per source (dynamic task mapping), so a broken source fails alone and is
recorded in pipeline_failures while the others are stored and aggregated; the round then fails
(`every_source_pulled`), so Airflow's own alerting sees it. Sources keep their own watermarks,
so a run pulls whatever is new whatever its interval; catch-up runs would add nothing, and the
next round is a failed pull's retry.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, TriggerRule, dag, task

from pipeline.orchestration import default_args

# Emitted when a pull round is stored and aggregated, for DAGs that want to run on fresh
# transactions. eincome_detect does not consume it: it runs per hour of data, on the clock.
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

    # No task retries: a source retries its own requests (max_attempts), and the next round,
    # 5 minutes on, resumes from its watermark. Task retries with backoff held a round on a
    # dead source for 4 minutes and delayed every healthy source's next round.
    @task(map_index_template="{{ name }}", retries=0)
    def pull(name: str) -> dict:
        from pipeline.orchestration import pull_one

        return pull_one(name)

    # ALL_DONE: the pulls that worked are aggregated even when another source failed.
    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[TRANSACTIONS])
    def minute_aggregates(pulled, dag_run=None) -> dict:
        from pipeline.orchestration import refresh_minutes, run_interval

        summary = refresh_minutes(*run_interval(dag_run))
        summary["sources"] = [p for p in pulled if p]
        return summary

    # The leaf decides the run's state: red when any source failed, after the rest is stored.
    @task(trigger_rule=TriggerRule.ALL_DONE)
    def every_source_pulled(names, pulled) -> dict:
        from pipeline.orchestration import check_every_source_pulled

        return check_every_source_pulled(list(names), list(pulled))

    names = list_sources()
    pulled = pull.expand(name=names)
    minute_aggregates(pulled) >> every_source_pulled(names, pulled)


eincome_ingest()
