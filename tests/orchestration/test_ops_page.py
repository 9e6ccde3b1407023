"""What the ops page shows of the scheduler and of ingests that died, without Airflow running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from pipeline.review.airflow_runs import recent_dag_runs
from pipeline.review.queries import pipeline_health
from pipeline.store.schema import ingest_batches


def test_an_unreadable_metadata_database_is_said_on_the_page_not_raised(postgres_url):
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_airflow_db"
    view = recent_dag_runs(missing)
    assert view.configured and view.runs == {}
    assert view.error.startswith("cannot read the Airflow metadata database:")
    assert "no_such_airflow_db" in view.error


def test_no_metadata_database_configured_shows_nothing():
    assert recent_dag_runs("").configured is False


def test_a_killed_ingest_batch_left_running_is_listed_with_the_failed_ones(engine):
    """Regression: a SIGKILLed ingest left its ingest_batches row `running` forever, invisible
    on the ops page. One started two hours ago is listed; one started a minute ago is not."""
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    with engine.begin() as connection:
        for ref, started in (("killed.csv", now - timedelta(hours=2)), ("busy.csv", now)):
            connection.execute(
                insert(ingest_batches).values(
                    source="landing:kota", source_ref=ref, started_at=started, status="running"
                )
            )
    failed = pipeline_health(engine, now=now + timedelta(minutes=1))["failed"]
    assert [(b.source_ref, b.status) for b in failed] == [("killed.csv", "running")]


def test_the_ops_page_settles_a_batch_whose_ingest_process_is_gone(engine):
    """Regression (issue 14/15): a killed ingest's batch stayed `running` until someone ran
    another ingest. Looking at the ops page marks it failed, and it is listed with the reason."""
    import subprocess
    import sys

    from pipeline.intake import ingest as ingest_module

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = ingest_module._this_owner().split(" ")[0]
    with engine.begin() as connection:
        connection.execute(
            insert(ingest_batches).values(
                source="landing:kota",
                source_ref="killed.csv",
                started_at=datetime.now(UTC) - timedelta(minutes=5),
                status="running",
                owner=f"{host} {dead.pid} 1",
            )
        )
    failed = pipeline_health(engine)["failed"]
    assert [(b.source_ref, b.status) for b in failed] == [("killed.csv", "failed")]
    assert failed[0].message
