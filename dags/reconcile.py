"""Reconciliation: collector cash daily, tax returns monthly; every gap raised as a case.

Both DAGs run per data interval (CronDataIntervalTimetable) and judge what is overdue as of the
interval's end, never "now", so a rerun or a backfill of a past interval gives the same cases
(a manual run without a logical date judges as of the hour it was triggered in);
raising cases is an upsert that never touches a case an auditor decided.

* ``eincome_reconcile_daily`` (02:00 WIB): collector cash recorded vs handed in, and bank
  credits that match nothing, over the trailing ``LOOKBACK_DAYS`` (late files and Monday
  hand-ins for Friday cash are picked up by the next runs); and, beside it, the daily digest
  e-mailed to each inspector of their open cases (overdue ones marked), in their inbox before
  the working day.
* ``eincome_reconcile_monthly`` (the 20th, 03:00 WIB): device-recorded sales vs declared sales vs
  tax deposited for the month the interval starts in; by the 20th the tax due on the 10th (plus
  the allowed late days) is overdue.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, task

from pipeline.orchestration import default_args

LOOKBACK_DAYS = 8  # a week of collection days plus the weekend roll-over
DEFAULT_ARGS = default_args(
    retries=2, retry_delay=timedelta(minutes=5), execution_timeout=timedelta(minutes=30)
)


@dag(
    dag_id="eincome_reconcile_daily",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="Asia/Jakarta"),
    start_date=pendulum.datetime(2020, 1, 1, tz="Asia/Jakarta"),  # before any history we replay
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=1),
    default_args=DEFAULT_ARGS,
    tags=["eincome", "reconciliation"],
    doc_md=__doc__,
)
def eincome_reconcile_daily():
    @task
    def reconcile_collectors_and_bank(dag_run=None) -> dict:
        from pipeline.orchestration import local_date, reconcile_scheduled, run_end

        return reconcile_scheduled("daily", local_date(run_end(dag_run)), LOOKBACK_DAYS)

    @task
    def digest_of_open_cases(dag_run=None) -> dict:
        from pipeline.orchestration import local_date, run_end, send_digest_of

        return send_digest_of(local_date(run_end(dag_run)))

    # Independent: a reconciliation that fails must not keep inspectors' digests from them.
    reconcile_collectors_and_bank()
    digest_of_open_cases()


@dag(
    dag_id="eincome_reconcile_monthly",
    schedule=CronDataIntervalTimetable("0 3 20 * *", timezone="Asia/Jakarta"),
    start_date=pendulum.datetime(2020, 1, 1, tz="Asia/Jakarta"),  # before any history we replay
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    default_args=DEFAULT_ARGS,
    tags=["eincome", "reconciliation"],
    doc_md=__doc__,
)
def eincome_reconcile_monthly():
    @task
    def reconcile_tax_returns(dag_run=None) -> dict:
        from pipeline.orchestration import local_date, reconcile_scheduled, run_end

        return reconcile_scheduled("monthly", local_date(run_end(dag_run)))

    reconcile_tax_returns()


eincome_reconcile_daily()
eincome_reconcile_monthly()
