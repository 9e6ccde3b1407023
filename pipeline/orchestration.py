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

# A fresh deployment's hourly detect trains its first model itself once this much history is in
# (every hour of a week seen once); before that it fails saying so.
FIRST_MODEL_MIN_DAYS = 7
# Libraries whose INFO lines are noise in a task log (Great Expectations logs ~200 per pull).
QUIET_LOGGERS = ("great_expectations",)
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
    """A plain stdlib UTC datetime (Airflow hands tasks pendulum DateTimes)."""
    from pipeline.core.times import to_utc

    return to_utc(value)


def _quiet_library_info(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not any(
        record.name == name or record.name.startswith(name + ".") for name in QUIET_LOGGERS
    )


@contextmanager
def _task_logging():
    """What a task logs is what ops need: no library INFO chatter, no deprecation warnings.

    Loading a model makes skops walk ``sys.modules``, which under Airflow touches every
    deprecated-attribute shim and logged ~1,160 DeprecatedImportWarnings (600 KB, ~9 s) per
    scoring task; they say nothing about eincome and are silenced for the task's call only.
    """
    import warnings

    # A filter on the handlers, not a level on the loggers: Great Expectations sets INFO on
    # some of its module loggers when they are imported, which may be later, inside the call.
    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.addFilter(_quiet_library_info)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            # Airflow's shims warn with DeprecatedImportWarning, a FutureWarning; only those
            # raised from skops' scan are dropped (a pandas FutureWarning still shows).
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.")
            yield
    finally:
        for handler in handlers:
            handler.removeFilter(_quiet_library_info)


def _task_call(function):
    """A task's call, imports included, under ``_task_logging``: importing the detection stage
    (scikit-learn, skops) already makes skops scan ``sys.modules``."""
    import functools

    @functools.wraps(function)
    def call(*args, **kwargs):
        with _task_logging():
            return function(*args, **kwargs)

    return call


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


def run_interval(
    dag_run: Any, requested: dict[str, Any] | None = None
) -> tuple[datetime, datetime]:
    """The hour a detect run works on, as (start, end) in UTC.

    * ``requested`` (the run's ``start``/``end`` params) when given: the hours asked for;
    * else the run's data interval (scheduled runs, `airflow backfill create`, and manual
      runs given a logical date, for which Airflow infers the interval ending at it);
    * else - a manual run from the UI's Trigger button has no logical date and so no data
      interval in Airflow 3 - the last complete hour before the run was triggered.
    """
    from pipeline.core.times import HOUR, floor_hour

    requested = {k: v for k, v in (requested or {}).items() if v}
    if requested:
        start = parse_param_time(requested.get("start") or "", "start")
        end = parse_param_time(requested["end"], "end") if "end" in requested else start + HOUR
        return floor_hour(start), floor_hour(end)
    if dag_run.data_interval_start is not None and dag_run.data_interval_end is not None:
        return _utc(dag_run.data_interval_start), _utc(dag_run.data_interval_end)
    end = floor_hour(dag_run.run_after)
    return end - HOUR, end


def run_end(dag_run: Any, requested: str | None = None) -> datetime:
    """The moment a retrain or reconcile run judges as of, in UTC: the ``requested`` param,
    else the end of the run's data interval, else (a manual run with no logical date) the
    hour the run was triggered in, floored."""
    from pipeline.core.times import floor_hour

    if requested:
        return parse_param_time(requested, "end")
    if dag_run.data_interval_end is not None:
        return _utc(dag_run.data_interval_end)
    return floor_hour(dag_run.run_after)


def local_date(moment: datetime) -> date:
    """The regency's calendar date (Asia/Jakarta) at ``moment``: the day a reconcile run is as of."""
    from zoneinfo import ZoneInfo

    from pipeline.core.times import DEFAULT_TIMEZONE

    return moment.astimezone(ZoneInfo(DEFAULT_TIMEZONE)).date()


def interval_summary(start: datetime, end: datetime) -> dict[str, str]:
    """An interval for XCom (the next tasks read it back with ``interval_from``)."""
    return {"start": _utc(start).isoformat(), "end": _utc(end).isoformat()}


def interval_from(summary: dict[str, str]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(summary["start"]), datetime.fromisoformat(summary["end"])


def late_rows_settled(end: datetime, grace: timedelta, now: datetime) -> bool:
    """Whether an hour ending at ``end`` has had ``grace`` for its last rows to arrive (a past
    hour asked for by hand has, at once)."""
    return _utc(now) >= _utc(end) + grace


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


@_task_call
def source_names() -> list[str]:
    """The names of the configured sources (the ingest DAG maps one pull task over them)."""
    from pipeline.intake.sources import load_sources

    with _no_retry_on_unusable_input():
        return [config.name for config in load_sources(_runtime().settings.sources_file)]


@_task_call
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


@_task_call
def check_every_source_pulled(names: list[str], pulled: list[dict | None]) -> dict[str, Any]:
    """Fail the ingest round, after the healthy sources are stored and aggregated, when any
    source failed: the pulls' own failures are mapped tasks, which a run's state ignores, so
    without this the round was green and Airflow's alerting never heard of a dead source."""
    from pipeline.core.errors import UnusableInputError

    done = {p["source"] for p in pulled if p}
    failed = [name for name in names if name not in done]
    if failed:
        raise _fail_without_retry(
            UnusableInputError(
                f"{len(failed)} of {len(names)} sources failed this round: {', '.join(failed)}"
                " (each is recorded in pipeline_failures as eincome_ingest.pull[<source>];"
                " the next round retries it)"
            )
        )
    return {"sources": sorted(done)}


@_task_call
def refresh_minutes(start: datetime, end: datetime) -> dict[str, Any]:
    """Recompute minute and hour aggregates of ``[start, end)``, idempotently. Ingest already
    re-aggregates the point-hours it touched; this makes the interval's aggregates whole."""
    from pipeline.intake.aggregate import aggregate_range

    with _no_retry_on_unusable_input():
        aggregate_range(_runtime().engine, _utc(start), _utc(end))
    return {"start": start.isoformat(), "end": end.isoformat()}


@_task_call
def score_interval(start: datetime, end: datetime) -> dict[str, Any]:
    """Score the point-hours of ``[start, end)`` and turn flags into cases; a rerun replaces."""
    from pipeline.detection.backfill import score_range
    from pipeline.detection.late_data import rescore_late_hours

    with _no_retry_on_unusable_input():
        runtime = _runtime()
        # Point-in-time: the first model learns only from before the hour it scores.
        trained = _first_model(runtime.engine, runtime.models_dir, _utc(start))
        result = _plain(score_range(runtime.engine, runtime.models_dir, _utc(start), _utc(end)))
        # Hours rows reached after they were scored (a device synced late) are judged again.
        late = rescore_late_hours(runtime.engine, runtime.models_dir, until=_utc(end))
    if trained:
        result["trained_first_model"] = trained
    if late.point_hours:
        result["late_rescored"] = _late_summary(late)
    return result


def _late_summary(late) -> dict[str, Any]:
    return {
        "point_hours": late.point_hours,
        "hours_scored": late.hours_scored,
        "cases_cleared": list(late.cases_cleared),
        "cases_left": list(late.cases_left),
        "ranges": [f"{a.isoformat()}/{b.isoformat()}" for a, b in late.ranges],
        "ranges_skipped": [f"{a.isoformat()}/{b.isoformat()}" for a, b in late.ranges_skipped],
    }


def _first_model(engine, models_dir, end: datetime) -> str | None:
    """A fresh deployment has no model: train one on the history before ``end`` once it covers
    FIRST_MODEL_MIN_DAYS, else fail saying what to do. Returns the version trained, if any."""
    from pipeline.core.errors import UnusableInputError
    from pipeline.detection.backfill import fitting_model
    from pipeline.detection.features import data_span
    from pipeline.detection.training import train_model

    if fitting_model(engine) is not None:
        return None
    span = data_span(engine)
    days = (min(end, span[1]) - span[0]).total_seconds() / 86400 if span else 0.0
    if days < FIRST_MODEL_MIN_DAYS:
        raise UnusableInputError(
            f"no detector model yet, and {days:.1f} days of hour aggregates up to {end.isoformat()}:"
            f" this DAG trains the first model itself once {FIRST_MODEL_MIN_DAYS} days are in;"
            " to start sooner, load history (eincome pull / eincome backfill) and trigger"
            " eincome_retrain"
        )
    start = max(span[0], end - timedelta(weeks=RETRAIN_WEEKS))
    version = str(train_model(engine, models_dir, start, end))
    log.info("no detector model yet: trained %s on %s..%s", version, start, end)
    return version


@_task_call
def retrain(end: datetime, weeks: int = RETRAIN_WEEKS) -> str:
    """Fit a new model version on the ``weeks`` before ``end``; earlier versions are kept.
    A backfill walking forward fits the same window at the same moments (``rhythm``)."""
    from pipeline.detection.features import data_span
    from pipeline.detection.rhythm import training_window
    from pipeline.detection.training import train_model

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


@_task_call
def bulk_backfill(start: datetime, end: datetime) -> dict[str, Any]:
    """Aggregate, train where needed and score a long range in one go (resumable)."""
    from pipeline.detection.backfill import backfill

    with _no_retry_on_unusable_input():
        runtime = _runtime()
        return _plain(backfill(runtime.engine, runtime.models_dir, _utc(start), _utc(end)))


@_task_call
def plan_backfill_moments(start: datetime, end: datetime, min_history_weeks: int = 4) -> list[str]:
    """The fanned-out backfill's first task: aggregate where needed, then the retrain moments
    whose models can be fitted before any week is scored (ISO times; the DAG maps the training
    over them; the scoring fits the later ones from the weeks it scored)."""
    from pipeline.detection.fanout import plan_backfill, prepare_range

    start, end = _utc(start), _utc(end)
    with _no_retry_on_unusable_input():
        engine = _runtime().engine
        prepare_range(engine, start, end)
        plan = plan_backfill(engine, start, end, min_history=timedelta(weeks=min_history_weeks))
    return [moment.isoformat() for moment in plan.upfront_moments]


@_task_call
def train_backfill_model(moment: str, min_history_weeks: int = 4) -> dict[str, Any]:
    """One retrain moment's model for the fanned-out backfill (the stored one when there is)."""
    from pipeline.detection.fanout import train_for_moment

    with _no_retry_on_unusable_input():
        runtime = _runtime()
        version, fitted = train_for_moment(
            runtime.engine,
            runtime.models_dir,
            datetime.fromisoformat(moment),
            min_history=timedelta(weeks=min_history_weeks),
        )
    return {"moment": moment, "version": version, "fitted": fitted}


@_task_call
def score_backfill_weeks(
    start: datetime, end: datetime, min_history_weeks: int = 4
) -> dict[str, Any]:
    """The fanned-out backfill's last task: the weeks of [start, end) in order, each week's
    cases joined, with the models the training tasks left (and the later moments' fitted on the
    way, from the weeks scored before them); a rerun replaces every week's flags, never doubles
    them. (``trained`` counts the models fitted here; the train tasks' are in their results.)"""
    from pipeline.detection.backfill import model_at_moment
    from pipeline.detection.fanout import plan_backfill, score_weeks, summarise

    start, end = _utc(start), _utc(end)
    with _no_retry_on_unusable_input():
        runtime = _runtime()
        plan = plan_backfill(
            runtime.engine, start, end, min_history=timedelta(weeks=min_history_weeks)
        )
        results = score_weeks(runtime.engine, runtime.models_dir, plan)
        fitted = {r.unit.moment for r in results if r.fitted}
        models = [(model_at_moment(runtime.engine, m) or "", m in fitted) for m in plan.moments]
    return _plain(summarise(plan, models, results))


@_task_call
def reconcile_scheduled(schedule: str, as_of: date, lookback_days: int = 8) -> dict[str, Any]:
    """Reconcile the ``schedule``'s window ("daily" or "monthly") as of the local date ``as_of``,
    with the tolerances file named by the settings."""
    from pipeline.reconciliation.reconcile import ReconConfig, reconcile_interval

    with _no_retry_on_unusable_input():
        runtime = _runtime()
        config = ReconConfig.from_file(runtime.settings.recon_config or None)
        return reconcile_interval(runtime.engine, schedule, as_of, config, lookback_days)


@_task_call
def send_alerts_as_of(end: datetime) -> dict[str, Any]:
    """The hourly detect run's last task: what the alert rules say about new cases, points
    silent as of the hour's ``end`` and pipeline failures, each sent once per recipient. A send
    that fails is recorded and retried by the next run; it never fails this task (the cases are
    stored already, and Airflow retrying would resend nothing new)."""
    from datetime import UTC

    from pipeline.alerts import SmtpSettings, send_alerts

    with _no_retry_on_unusable_input():
        runtime = _runtime()
        result = send_alerts(
            runtime.engine,
            SmtpSettings.from_settings(runtime.settings),
            as_of=_utc(end),
            lang=runtime.settings.language,
            review_url=runtime.settings.review_url,
            # The wall clock only stamps the attempts; what is sent is judged as of ``end``.
            now=lambda: datetime.now(UTC),
        )
    return result.as_dict()


@_task_call
def send_digest_of(day: date) -> dict[str, Any]:
    """The daily digest: each inspector's open cases on the local ``day``, once per inspector
    and day (a rerun of the day sends nothing new)."""
    from datetime import UTC

    from pipeline.alerts import SmtpSettings, send_digests

    with _no_retry_on_unusable_input():
        runtime = _runtime()
        result = send_digests(
            runtime.engine,
            SmtpSettings.from_settings(runtime.settings),
            day=day,
            lang=runtime.settings.language,
            review_url=runtime.settings.review_url,
            now=lambda: datetime.now(UTC),
        )
    return result.as_dict()


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
    """A DAG param as an aware UTC datetime. A date alone means midnight in the regency's zone
    (Asia/Jakarta): days in eincome are local days, as in the review app and the reports. A
    time without an offset is refused, as the CLI refuses it: a guess would shift by 7 hours."""
    from zoneinfo import ZoneInfo

    from pipeline.core.errors import UnusableInputError
    from pipeline.core.times import DEFAULT_TIMEZONE

    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _fail_without_retry(
            UnusableInputError(
                f"param {name}={value!r} is not an ISO date or date-time"
                " (e.g. 2025-11-03 or 2025-11-03T00:00+07:00)"
            )
        ) from None
    if parsed.tzinfo is None:
        if len(text) > 10:
            raise _fail_without_retry(
                UnusableInputError(
                    f"param {name}={value!r} has no UTC offset: write e.g. {text}+07:00"
                )
            )
        parsed = parsed.replace(tzinfo=ZoneInfo(DEFAULT_TIMEZONE))
    return _utc(parsed)
