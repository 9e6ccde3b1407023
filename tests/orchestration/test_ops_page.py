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
