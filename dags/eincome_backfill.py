"""On demand: process months of history in bulk with `pipeline.detection.backfill` (one run, two params).

For long ranges this is much faster than Airflow's hour-by-hour backfill of eincome_detect:
one task aggregates, trains where no model fits yet and scores the whole range, resumably
(a retry or a new run with the same range continues where it stopped, nothing doubled).
Trigger with conf {"start": "2025-01-01", "end": "2026-01-01"} (end exclusive). A date alone is
midnight in Asia/Jakarta (local days, as everywhere in eincome); a time needs its offset, as on
the CLI: {"start": "2025-11-03T00:00+07:00", "end": "2025-11-24T00:00+07:00"}.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from pipeline.orchestration import default_args


@dag(
    dag_id="eincome_backfill",
    schedule=None,
    start_date=pendulum.datetime(2020, 1, 1, tz="UTC"),  # before any history we may replay
    catchup=False,
    max_active_runs=1,  # two bulk runs would fight over the same aggregates
    default_args=default_args(
        retries=1, retry_delay=timedelta(minutes=5), execution_timeout=timedelta(hours=12)
    ),
    params={
        "start": Param(
            type="string",
            description="First day (Asia/Jakarta) or ISO time with offset, inclusive.",
        ),
        "end": Param(
            type="string", description="Last day (Asia/Jakarta) or ISO time with offset, exclusive."
        ),
    },
    tags=["eincome", "backfill"],
    doc_md=__doc__,
)
def eincome_backfill():
    @task
    def backfill(params=None) -> dict:
        from pipeline.orchestration import bulk_backfill, parse_param_time

        return bulk_backfill(
            parse_param_time(params["start"], "start"), parse_param_time(params["end"], "end")
        )

    backfill()


eincome_backfill()
