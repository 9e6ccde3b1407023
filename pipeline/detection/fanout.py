"""The walk-forward backfill in work units, so that many workers can share a long range.

``backfill.backfill`` walks a range week by week in one process. Here the same walk is cut into
pieces that need not all run in one process:

* ``prepare_range`` aggregates the chunks whose stored aggregates miss transactions (as the
  walk does first);
* ``plan_backfill`` lists the retrain moments whose models the range needs and the work units
  that score it: the weeks, a week being the hours between two retrain moments;
* ``train_for_moment`` fits one moment's model on the weekly retrain's window (nothing when one
  is stored already: the weekly DAG's, or an earlier run's). The moments are independent of
  each other - a model learns from the weeks before its moment, and open cases before the
  window it learns from cannot touch it - so they train in parallel, in any order: that is most
  of a backfill's work (a model reads eight weeks, a week's scoring one);
* ``score_unit`` scores one week with its model and usual levels and replaces that week's flags
  and nothing else, so a rerun of a unit is a replacement;
* ``join_week`` forms the cases around a week once it is in: an incident that crosses a week
  boundary is one case.

The weeks themselves are scored in order, as the live pipeline lived them: a week's usual levels
leave out the hours of cases still open at its start (``features.grid``), which the weeks before
raised. (Splitting a week by point groups, each reading every point's hour aggregates for peers
and usual levels and its own points' transactions, was tried and moved 1 flag of 1,107 on a
60-point simulated regency: not exact, so not done.) Every hour is judged exactly as the
single-process walk judges it, so both give the same flags and cases
(tests/detection/test_fanout.py pins it). ``run_plan`` runs it all here or trains the models in
a pool of processes (``eincome backfill --workers N``); the ``eincome_backfill`` DAG maps the
training over Airflow's workers.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from pipeline.casework.cases import rebuild_cases, replace_point_flags
from pipeline.core.errors import UnusableInputError
from pipeline.detection.backfill import (
    CHUNK,
    BackfillResult,
    _check_range,
    _chunks,
    _known_until,
    _week_features,
    _weeks,
    aggregates_current,
    flag_hours,
    model_at_moment,
    train_model,
)
from pipeline.detection.features import StoredWeeks, data_span
from pipeline.detection.model_store import load_model
from pipeline.detection.rhythm import MIN_HISTORY, first_scored_moment, last_moment, training_window
from pipeline.reference.calendar import Calendar


@dataclass(frozen=True)
class WorkUnit:
    """The hours of every point in [start, end), inside one week."""

    start: datetime
    end: datetime

    @property
    def moment(self) -> datetime:
        """The retrain moment whose model and usual levels judge the unit."""
        return last_moment(self.start)

    def as_dict(self) -> dict:
        """A JSON-able form, for XCom."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, data: dict) -> WorkUnit:
        return cls(datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"]))


@dataclass(frozen=True)
class BackfillPlan:
    start: datetime
    end: datetime
    scored_from: datetime  # hours before it are not scored (too little history)
    moments: tuple[datetime, ...]  # the retrain moments whose models the units need
    units: tuple[WorkUnit, ...]  # the weeks, in order


@dataclass(frozen=True)
class UnitResult:
    unit: WorkUnit
    model_version: str
    hours_scored: int
    flagged: int
    suppressed: int


def prepare_range(
    engine: Engine,
    start: datetime,
    end: datetime,
    *,
    aggregate: Callable[[Engine, datetime, datetime], object] | None = None,
    chunk: timedelta = CHUNK,
) -> int:
    """Aggregate the chunks of [start, end) whose hour aggregates do not account for their
    transactions (``backfill.aggregates_current``); returns how many were aggregated."""
    start, end = _check_range(start, end)
    if aggregate is None:
        from pipeline.intake.aggregate import aggregate_range as aggregate
    done = 0
    for a, b in _chunks(start, end, chunk):
        if not aggregates_current(engine, a, b):
            aggregate(engine, a, b)
            done += 1
    return done


def plan_backfill(
    engine: Engine,
    start: datetime,
    end: datetime,
    *,
    min_history: timedelta = MIN_HISTORY,
) -> BackfillPlan:
    """The work units of a walk-forward backfill of [start, end): every week from the first
    retrain moment with ``min_history`` behind it, and the moments whose models they need."""
    start, end = _check_range(start, end)
    span = data_span(engine)
    if span is None:
        raise UnusableInputError("no hour aggregates to score: ingest feeds first")
    first = first_scored_moment(span[0], end, min_history)
    scored_from = max(start, first) if first is not None else end
    weeks = _weeks(scored_from, end) if scored_from < end else []
    units = tuple(WorkUnit(a, b) for a, b in weeks)
    moments = tuple(sorted({unit.moment for unit in units}))
    return BackfillPlan(start, end, scored_from, moments, units)


def train_for_moment(
    engine: Engine,
    models_dir: Path,
    moment: datetime,
    *,
    calendar: Calendar | None = None,
    stored: StoredWeeks | None = None,
) -> tuple[str, bool]:
    """The model fitted at the retrain ``moment`` on the weeks before it: the stored one, else
    fitted now on the weekly retrain's window (its data read through ``stored`` when given).
    Returns (version, whether it was fitted now)."""
    version = model_at_moment(engine, moment)
    if version is not None:
        return version, False
    span = data_span(engine)
    if span is None:
        raise UnusableInputError("no hour aggregates to train on: ingest feeds first")
    window = training_window(moment, span[0])
    return train_model(engine, models_dir, *window, calendar=calendar, stored=stored), True


def score_unit(
    engine: Engine,
    models_dir: Path,
    unit: WorkUnit,
    *,
    calendar: Calendar | None = None,
    stored: StoredWeeks | None = None,
) -> UnitResult:
    """Score one week with the model of its retrain moment and replace its flags; its cases are
    left to ``join_week``. ``stored``: the data read through it (weeks scored in a row)."""
    version = model_at_moment(engine, unit.moment)
    if version is None:
        raise UnusableInputError(
            f"no model fitted at the retrain moment {unit.moment.isoformat()}: train it first"
            " (train_for_moment) - a later one would judge the week with hindsight"
        )
    model = load_model(engine, models_dir, version)
    features, _ = _week_features(
        engine,
        model,
        unit.start,
        unit.end,
        calendar=calendar,
        span=data_span(engine),
        cache_dir=None,
        stored=stored,
    )
    flags = flag_hours(features, model.detector)
    recorded = replace_point_flags(
        engine, flags, unit.start, unit.end, None, model_version=model.version
    )
    return UnitResult(unit, version, len(features), recorded.anomalies, recorded.suppressed)


def join_week(
    engine: Engine, start: datetime, end: datetime, *, known_until: datetime | None = None
) -> int:
    """The cases around the week [start, end) from its units' flags (and the neighbours' within
    the incident gap; only those before ``known_until`` when given), as the single-process walk
    rebuilds them after each week; returns the open cases there."""
    return rebuild_cases(engine, start, end, known_until=known_until)


def score_weeks(
    engine: Engine, models_dir: Path, plan: BackfillPlan, *, calendar: Calendar | None = None
) -> list[UnitResult]:
    """Every week of the plan in order, each week's cases joined. Needs the plan's models."""
    results: list[UnitResult] = []
    stored = StoredWeeks(engine)  # each week's data read once for the whole walk
    for unit in plan.units:
        results.append(score_unit(engine, models_dir, unit, calendar=calendar, stored=stored))
        join_week(engine, unit.start, unit.end, known_until=_known_until(unit.end, plan.end))
    return results


def summarise(
    plan: BackfillPlan, models: list[tuple[str, bool]], results: list[UnitResult]
) -> BackfillResult:
    """The fanned-out run as the single-process backfill reports itself."""
    versions = [version for version, _ in models]
    return BackfillResult(
        start=plan.start,
        end=plan.end,
        model_version=versions[-1] if versions else "",
        chunks=len(plan.units),
        chunks_skipped=0,
        hours_scored=sum(r.hours_scored for r in results),
        flagged=sum(r.flagged for r in results),
        models=tuple(versions),
        trained=sum(1 for _, fitted in models if fitted),
        scored_from=plan.scored_from,
    )


def run_plan(
    engine: Engine,
    models_dir: Path,
    plan: BackfillPlan,
    *,
    workers: int = 1,
    calendar: Calendar | None = None,
) -> BackfillResult:
    """Train the plan's models - in this process (``workers`` 1) or side by side in a pool of
    ``workers`` processes, each with its own connection - then score its weeks in order and
    join their cases."""
    if workers <= 1:
        stored = StoredWeeks(engine)
        models = [
            train_for_moment(engine, models_dir, m, calendar=calendar, stored=stored)
            for m in plan.moments
        ]
    else:
        url = engine.url.render_as_string(hide_password=False)
        n = len(plan.moments)
        # spawn: a fresh interpreter per worker, no engine or thread state copied by fork.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            models = list(
                pool.map(
                    _train_in_worker, [url] * n, [str(models_dir)] * n, plan.moments, [calendar] * n
                )
            )
    results = score_weeks(engine, models_dir, plan, calendar=calendar)
    return summarise(plan, models, results)


def _worker_engine(url: str) -> Engine:
    from pipeline.store.db import create

    return create(url)  # the parent migrated the schema already


def _train_in_worker(url, models_dir, moment, calendar) -> tuple[str, bool]:
    engine = _worker_engine(url)
    try:
        return train_for_moment(engine, Path(models_dir), moment, calendar=calendar)
    finally:
        engine.dispose()
