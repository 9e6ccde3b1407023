"""On demand: process months of history in bulk, fanned out over the workers
(`pipeline.detection.fanout`).

For long ranges this is much faster than Airflow's hour-by-hour backfill of eincome_detect.
Three steps: ``plan`` aggregates where needed and lists the retrain moments (Monday 02:00
Jakarta) whose models can be fitted before any week is scored (the first two: their weeks need
featuring); ``train`` is mapped over those moments, so the Celery workers fit them side by side;
``score`` then walks the weeks in order, as the live pipeline lived them (a week's usual levels
leave out the cases the weeks before raised), fits each later moment's model from the weeks it
has just scored (each week featured as it was scored: a fit, nothing featured again), and joins
each week's cases. Every step is a
replacement: a retry or a new run with the same range doubles nothing, and a model already
stored for a moment (the weekly DAG's, or an earlier run's) is used, not fitted again.
Trigger with conf {"start": "2025-01-01", "end": "2026-01-01"} (end exclusive). A date alone is
midnight in Asia/Jakarta (local days, as everywhere in eincome); a time needs its offset, as on
the CLI: {"start": "2025-11-03T00:00+07:00", "end": "2025-11-24T00:00+07:00"}.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, TriggerRule, dag, task

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
        "min_history_weeks": Param(
            4, type="integer", minimum=1, description="Score nothing before this much history."
        ),
    },
    tags=["eincome", "backfill"],
    doc_md=__doc__,
)
def eincome_backfill():
    @task
    def plan(params=None) -> list[str]:
        from pipeline.orchestration import parse_param_time, plan_backfill_moments

        return plan_backfill_moments(
            parse_param_time(params["start"], "start"),
            parse_param_time(params["end"], "end"),
            int(params["min_history_weeks"]),
        )

    @task(map_index_template="{{ moment }}")
    def train(moment: str, params=None) -> dict:
        from pipeline.orchestration import train_backfill_model

        return train_backfill_model(moment, int(params["min_history_weeks"]))

    # NONE_FAILED: a range too short to train on maps no training (skipped), and is still
    # scored (to nothing) and reported. It plans the same weeks again from the params (cheap:
    # the data's span), and finds the models by their moments.
    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def score(params=None) -> dict:
        from pipeline.orchestration import parse_param_time, score_backfill_weeks

        return score_backfill_weeks(
            parse_param_time(params["start"], "start"),
            parse_param_time(params["end"], "end"),
            int(params["min_history_weeks"]),
        )

    train.expand(moment=plan()) >> score()


eincome_backfill()
