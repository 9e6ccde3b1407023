"""The walk-forward backfill in work units, so that many workers can share a long range.

``backfill.backfill`` walks a range week by week in one process. Here the same walk is cut into
pieces that need not all run in one process:

* ``prepare_range`` aggregates the chunks whose stored aggregates miss transactions (as the
  walk does first);
* ``plan_backfill`` lists the retrain moments whose models the range needs and the work units
  that score it: the weeks, a week being the hours between two retrain moments;
* ``train_for_moment`` fits one moment's model on the weekly retrain's window (nothing when one
  is stored already: the weekly DAG's, or an earlier run's), each week of it featured as it was
  scored (``training``). A week's features leave out the cases open at its start, which the
  weeks before raised, so a moment's model depends on the flags of the range's weeks before it:
  only the plan's first two moments (``BackfillPlan.upfront_moments``), whose windows hold no
  week featured after a week of the range was scored, can be fitted before any scoring, in
  parallel, in any order; ``score_weeks`` fits the others as it reaches them, from the features
  of the weeks it has just scored (a fit, nothing featured again: cheap);
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
(tests/detection/test_fanout.py pins it). ``run_plan`` runs it all here, or fits the upfront
models in a pool of processes (``eincome backfill --workers N``) first; the ``eincome_backfill``
DAG maps those over Airflow's workers.
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
    _chunks,
    _known_until,
    _week_features,
    aggregates_current,
    flag_hours,
    model_at_moment,
    model_for_moment,
    scored_weeks,
)
from pipeline.detection.features import StoredWeeks, data_span
from pipeline.detection.model_store import load_model
from pipeline.detection.rhythm import (
    MIN_HISTORY,
    checked_range,
    last_moment,
)
from pipeline.detection.training import KeptWeeks
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
    min_history: timedelta = MIN_HISTORY

    @property
    def upfront_moments(self) -> tuple[datetime, ...]:
        """The moments whose models can be fitted before any week is scored: those whose
        windows hold, of the range's weeks, only the first (its usual levels leave out cases
        raised before the range); a later model learns from weeks whose usual levels left out
        the cases the range's earlier weeks raised."""
        if len(self.units) < 2:
            return self.moments
        return tuple(m for m in self.moments if m <= self.units[1].start)


@dataclass(frozen=True)
class UnitResult:
    unit: WorkUnit
    model_version: str
    hours_scored: int
    flagged: int
    suppressed: int
    fitted: bool = False  # its model was fitted for it, on the way (``score_weeks``)


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
    start, end = checked_range(start, end)
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
    start, end = checked_range(start, end)
    span = data_span(engine)
    if span is None:
        raise UnusableInputError("no hour aggregates to score: ingest feeds first")
    scored_from, weeks = scored_weeks(span, start, end, min_history)
    units = tuple(WorkUnit(a, b) for a, b in weeks)
    moments = tuple(sorted({unit.moment for unit in units}))
    return BackfillPlan(start, end, scored_from, moments, units, min_history)


def train_for_moment(
    engine: Engine,
    models_dir: Path,
    moment: datetime,
    *,
    calendar: Calendar | None = None,
    stored: StoredWeeks | None = None,
    kept: KeptWeeks | None = None,
    min_history: timedelta = MIN_HISTORY,
) -> tuple[str, bool]:
    """The model fitted at the retrain ``moment`` on the weeks before it: the stored one, else
    fitted now on the weekly retrain's window (``training.train_model``: the weeks' features
    from ``kept`` where a walk has them, their data read through ``stored`` when given).
    Returns (version, whether it was fitted now). Fitted before the weeks of the range before
    ``moment`` were scored, it is the walk's only for the plan's ``upfront_moments``."""
    return model_for_moment(
        engine,
        models_dir,
        moment,
        calendar=calendar,
        stored=stored,
        kept=kept,
        min_history=min_history,
    )


def score_unit(
    engine: Engine,
    models_dir: Path,
    unit: WorkUnit,
    *,
    calendar: Calendar | None = None,
    stored: StoredWeeks | None = None,
    kept: KeptWeeks | None = None,
) -> UnitResult:
    """Score one week with the model of its retrain moment and replace its flags; its cases are
    left to ``join_week``. ``stored``: the data read through it (weeks scored in a row);
    ``kept``: where its features are kept for the next models."""
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
        kept=kept,
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
    """Every week of the plan in order, each week's cases joined; a week whose moment has no
    model yet gets it fitted first, from the weeks scored before it (``train_for_moment``)."""
    results: list[UnitResult] = []
    stored = StoredWeeks(engine)  # each week's data read once for the whole walk
    kept = KeptWeeks()  # and each week featured once
    for unit in plan.units:
        _, fitted = train_for_moment(
            engine,
            models_dir,
            unit.moment,
            calendar=calendar,
            stored=stored,
            kept=kept,
            min_history=plan.min_history,
        )
        result = score_unit(engine, models_dir, unit, calendar=calendar, stored=stored, kept=kept)
        results.append(UnitResult(**{**result.__dict__, "fitted": fitted}))
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
    """Score the plan's weeks in order and join their cases, fitting each moment's model as it
    is reached (in this process, ``workers`` 1); with more ``workers``, the plan's upfront
    models are fitted first side by side in a pool of processes, each with its own connection
    (they are the ones whose weeks need featuring: the later ones learn from scored weeks)."""
    models: list[tuple[str, bool]] = []
    if workers > 1 and plan.upfront_moments:
        url = engine.url.render_as_string(hide_password=False)
        moments = plan.upfront_moments
        n = len(moments)
        # spawn: a fresh interpreter per worker, no engine or thread state copied by fork.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            models = list(
                pool.map(
                    _train_in_worker,
                    [url] * n,
                    [str(models_dir)] * n,
                    moments,
                    [calendar] * n,
                    [plan.min_history] * n,
                )
            )
    results = score_weeks(engine, models_dir, plan, calendar=calendar)
    found = {version for version, _ in models}
    for result in results:
        if result.model_version not in found:
            found.add(result.model_version)
            models.append((result.model_version, result.fitted))
    return summarise(plan, models, results)


def _worker_engine(url: str) -> Engine:
    from pipeline.store.db import create

    return create(url)  # the parent migrated the schema already


def _train_in_worker(url, models_dir, moment, calendar, min_history) -> tuple[str, bool]:
    engine = _worker_engine(url)
    try:
        return train_for_moment(
            engine, Path(models_dir), moment, calendar=calendar, min_history=min_history
        )
    finally:
        engine.dispose()
