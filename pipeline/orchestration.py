"""What the Airflow DAG tasks call: one function per task, plus the failure callback.

This is entry-point code, like ``pipeline/cli``: it builds the runtime from the environment
(``Settings.from_env()``) inside each task and hands typed arguments to the pipeline. DAG files
import this module at parse time, so it imports nothing heavy at top level (no pandas, no
SQLAlchemy engine, no Airflow) - the DAG processor parses every file every few seconds.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

from pipeline.detection.rhythm import RETRAIN_WEEKS

log = logging.getLogger(__name__)


def default_args(
    *,
    retries: int = 2,
    retry_delay: timedelta = timedelta(minutes=2),
    execution_timeout: timedelta = timedelta(minutes=20),
) -> dict[str, Any]:
    """Task defaults for every eincome DAG: retries with backoff, a timeout, failures recorded."""
    return {
        "owner": "eincome",
        "retries": retries,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": execution_timeout,
        "on_failure_callback": record_task_failure,
    }


def _utc(value: datetime) -> datetime:
    """A plain stdlib UTC datetime. Airflow hands tasks pendulum DateTimes (a datetime subclass
    with its own timezone type); the pipeline is written and tested against stdlib ones."""
    from datetime import UTC

    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def _runtime():
    from pipeline.runtime import runtime_from_env

    return runtime_from_env()


def record_task_failure(context: dict) -> None:
    """on_failure_callback: record the failed task in ``pipeline_failures`` for ops to see.

    Never raises: a broken failure record must not hide the original failure in the logs.
    """
    try:
        ti = context["ti"]
        where = f"{ti.dag_id}.{ti.task_id}"
        map_index = getattr(ti, "map_index", -1)
        if map_index is not None and map_index >= 0:
            # The mapped pull's name (map_index_template) tells ops which source it was.
            where += f"[{getattr(ti, 'rendered_map_index', None) or map_index}]"
        error = context.get("exception")
        text = (
            f"{type(error).__name__}: {error}"
            if error is not None
            else "failed (no exception given)"
        )
        from pipeline.store.failures import record_failure

        record_failure(_runtime().engine, where, getattr(ti, "run_id", None), text)
    except Exception:  # noqa: BLE001 - see docstring
        log.exception("could not record the task failure in pipeline_failures")


def _fail_without_retry(exc: Exception):
    """Unusable input (bad config, refused token, rejected file) does not get better by retrying."""
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(str(exc))


@contextmanager
def _no_retry_on_unusable_input():
    from pipeline.core.errors import UnusableInputError

    try:
        yield
    except UnusableInputError as exc:
        raise _fail_without_retry(exc) from None


def airflow_secrets(ref) -> str:
    """Resolve a source's secret: its environment variable, or its Airflow connection."""
    import os

    from pipeline.core.errors import UnusableInputError
    from pipeline.intake.sources import env_secrets

    if ref.env:
        return env_secrets(os.environ)(ref)
    from airflow.sdk import Connection

    try:
        connection = Connection.get(ref.connection)
    except Exception as exc:  # noqa: BLE001 - Airflow raises its own not-found types across versions
        raise UnusableInputError(
            f"Airflow connection {ref.connection!r} cannot be read: {exc}"
        ) from None
    return connection.extra_dejson.get("sqlalchemy_url") or connection.get_uri()


def source_names() -> list[str]:
    """The names of the configured sources (the ingest DAG maps one pull task over them)."""
    from pipeline.intake.sources import load_sources

    with _no_retry_on_unusable_input():
        return [config.name for config in load_sources(_runtime().settings.sources_file)]


def pull_one(name: str) -> dict[str, Any]:
    """Pull one source; returns its counts (small, for XCom)."""
    from pipeline.intake.sources import find_source, load_sources, pull_source

    with _no_retry_on_unusable_input():
        runtime = _runtime()
        config = find_source(load_sources(runtime.settings.sources_file), name)
        results = pull_source(runtime.engine, config, secrets=airflow_secrets)
    return {
        "source": name,
        "batches": len(results),
        "rows_read": sum(r.rows_read for r in results),
        "accepted": sum(r.accepted for r in results),
        "quarantined": sum(r.quarantined for r in results),
        "duplicates": sum(r.duplicates for r in results),
    }


def refresh_minutes(start: datetime, end: datetime) -> dict[str, Any]:
    """Recompute minute and hour aggregates of ``[start, end)``, idempotently. Ingest already
    re-aggregates the point-hours it touched; this makes the interval's aggregates whole."""
    from pipeline.intake.aggregate import aggregate_range

    with _no_retry_on_unusable_input():
        aggregate_range(_runtime().engine, _utc(start), _utc(end))
    return {"start": start.isoformat(), "end": end.isoformat()}


def score_interval(start: datetime, end: datetime) -> dict[str, Any]:
    """Score the point-hours of ``[start, end)`` and turn flags into cases; a rerun replaces."""
    from pipeline.detection.backfill import score_range

    with _no_retry_on_unusable_input():
        runtime = _runtime()
        return _plain(score_range(runtime.engine, runtime.models_dir, _utc(start), _utc(end)))


def retrain(end: datetime, weeks: int = RETRAIN_WEEKS) -> str:
    """Fit a new model version on the ``weeks`` before ``end``; earlier versions are kept.
    A backfill walking forward fits the same window at the same moments (``rhythm``)."""
    from pipeline.detection.backfill import train_model
    from pipeline.detection.features import data_span
    from pipeline.detection.rhythm import training_window

    end = _utc(end)
    with _no_retry_on_unusable_input():
        runtime = _runtime()
        # A young deployment has less history than the window: train on what there is
        # (train_model does not accept a window starting before the first aggregates).
        span = data_span(runtime.engine)
        start = end - timedelta(weeks=weeks)
        if span is not None:
            start, end = training_window(end, span[0], weeks)
        return str(train_model(runtime.engine, runtime.models_dir, start, end))


def bulk_backfill(start: datetime, end: datetime) -> dict[str, Any]:
    """Aggregate, train where needed and score a long range in one go (resumable)."""
    from pipeline.detection.backfill import backfill

    with _no_retry_on_unusable_input():
        runtime = _runtime()
        return _plain(backfill(runtime.engine, runtime.models_dir, _utc(start), _utc(end)))


def reconcile_scheduled(schedule: str, as_of: date, lookback_days: int = 8) -> dict[str, Any]:
    """Reconcile the ``schedule``'s window ("daily" or "monthly") as of the local date ``as_of``,
    with the tolerances file named by the settings."""
    from pipeline.reconciliation.reconcile import ReconConfig, reconcile_interval

    with _no_retry_on_unusable_input():
        runtime = _runtime()
        config = ReconConfig.from_file(runtime.settings.recon_config or None)
        return reconcile_interval(runtime.engine, schedule, as_of, config, lookback_days)


def _plain(result: Any) -> dict[str, Any]:
    """A small JSON-able summary of a pipeline result, for XCom and the task log."""
    import dataclasses

    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        data = dataclasses.asdict(result)
    elif isinstance(result, dict):
        data = dict(result)
    else:
        return {"result": str(result)}
    return {
        k: v if isinstance(v, int | float | str | bool | type(None)) else str(v)
        for k, v in data.items()
    }


def parse_param_time(value: str, name: str) -> datetime:
    """A DAG param as an aware datetime; a date alone means midnight UTC."""
    from datetime import UTC

    from pipeline.core.errors import UnusableInputError

    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise _fail_without_retry(
            UnusableInputError(f"param {name}={value!r} is not an ISO date/time")
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
