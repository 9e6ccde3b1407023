"""The walk-forward backfill in work units, so that many workers can share a long range.

``backfill.backfill`` walks a range week by week in one process. Here the same walk is cut into
pieces that need not all run in one process:

* ``prepare_range`` aggregates the chunks whose stored aggregates miss transactions (as the
  walk does first);
* ``plan_backfill`` lists the retrain moments whose models the range needs and the work units
  that score it: (point group, week), a week being the hours between two retrain moments;
* ``train_for_moment`` fits one moment's model on the weekly retrain's window (nothing when one
  is stored already: the weekly DAG's, or an earlier run's). The moments are independent of
  each other - a model learns from the weeks before its moment, and open cases before the
  window it learns from cannot touch it - so they train in parallel, in any order: that is most
  of a backfill's work (a model reads eight weeks, a week's scoring one);
* ``score_unit`` scores one unit with its week's model and usual levels and replaces that unit's
  flags (its points, its week) and nothing else, so a rerun of a unit is a replacement;
* ``join_week`` forms the cases around a week once all its units are in: an incident that
  crosses a week or point-group boundary is one case.

The weeks themselves are scored in order, as the live pipeline lived them: a week's usual levels
leave out the hours of cases still open at its start (``features.grid``), which the weeks before
raised. The point groups of one week are independent (peers and usual levels still come from
every point), so a week's units can share workers. Every hour is judged exactly as the
single-process walk judges it, so both give the same flags and cases
(tests/detection/test_fanout.py pins it). ``run_plan`` runs it all here or in a pool of
processes (``eincome backfill --workers N``); the ``eincome_backfill`` DAG maps the training
over Airflow's workers.
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
    _week_features,
    _weeks,
    aggregates_current,
    flag_hours,
    model_at_moment,
    train_model,
)
from pipeline.detection.features import data_span
from pipeline.detection.model_store import load_model
from pipeline.detection.rhythm import MIN_HISTORY, first_scored_moment, last_moment, training_window
from pipeline.reference.calendar import Calendar
from pipeline.reference.points import known_points


@dataclass(frozen=True)
class WorkUnit:
    """The hours of ``point_ids`` (None: every point) in [start, end), inside one week."""

    start: datetime
    end: datetime
    group: int  # the point group's number, for names in logs and Airflow's map index
    point_ids: tuple[str, ...] | None = None

    @property
    def moment(self) -> datetime:
        """The retrain moment whose model and usual levels judge the unit."""
        return last_moment(self.start)

    @property
    def name(self) -> str:
        return f"{self.start:%Y-%m-%dT%H:%M}Z/g{self.group}"

    def as_dict(self) -> dict:
        """A JSON-able form, for XCom."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "group": self.group,
            "point_ids": list(self.point_ids) if self.point_ids is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict) -> WorkUnit:
        ids = data.get("point_ids")
        return cls(
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            group=int(data["group"]),
            point_ids=tuple(ids) if ids is not None else None,
        )


@dataclass(frozen=True)
class BackfillPlan:
    start: datetime
    end: datetime
    scored_from: datetime  # hours before it are not scored (too little history)
    moments: tuple[datetime, ...]  # the retrain moments whose models the units need
    units: tuple[WorkUnit, ...]  # week by week, the point groups of a week together

    def weeks(self) -> list[tuple[datetime, datetime, list[WorkUnit]]]:
        """The units week by week, in order: (week start, week end, its units)."""
        found: dict[tuple[datetime, datetime], list[WorkUnit]] = {}
        for unit in self.units:
            found.setdefault((unit.start, unit.end), []).append(unit)
        return [(a, b, units) for (a, b), units in sorted(found.items())]

    def as_dict(self) -> dict:
        """A JSON-able form, for XCom; ``moments`` is the list the DAG maps training over."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "scored_from": self.scored_from.isoformat(),
            "moments": [m.isoformat() for m in self.moments],
            "units": [u.as_dict() for u in self.units],
        }

    @classmethod
    def from_dict(cls, data: dict) -> BackfillPlan:
        return cls(
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            scored_from=datetime.fromisoformat(data["scored_from"]),
            moments=tuple(datetime.fromisoformat(m) for m in data["moments"]),
            units=tuple(WorkUnit.from_dict(u) for u in data["units"]),
        )


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


def point_groups(point_ids: list[str], groups: int) -> list[tuple[str, ...]]:
    """``point_ids`` (sorted) in ``groups`` runs of nearly equal size, none empty."""
    ids = sorted(point_ids)
    groups = max(1, min(groups, len(ids)))
    size, extra = divmod(len(ids), groups)
    found, cursor = [], 0
    for g in range(groups):
        step = size + (1 if g < extra else 0)
        found.append(tuple(ids[cursor : cursor + step]))
        cursor += step
    return found


def plan_backfill(
    engine: Engine,
    start: datetime,
    end: datetime,
    *,
    groups: int = 1,
    min_history: timedelta = MIN_HISTORY,
) -> BackfillPlan:
    """The work units of a walk-forward backfill of [start, end): every week from the first
    retrain moment with ``min_history`` behind it, times ``groups`` point groups (1: every point
    in one unit). More groups give more units to share out, but each unit still reads every
    point's hour aggregates (peers and usual levels need them): worth it when there are more
    workers than weeks."""
    start, end = _check_range(start, end)
    if groups < 1:
        raise UnusableInputError(f"point groups {groups} must be 1 or more")
    span = data_span(engine)
    if span is None:
        raise UnusableInputError("no hour aggregates to score: ingest feeds first")
    first = first_scored_moment(span[0], end, min_history)
    scored_from = max(start, first) if first is not None else end
    weeks = _weeks(scored_from, end) if scored_from < end else []
    members: list[tuple[str, ...] | None] = [None]
    if groups > 1:
        members = list(point_groups(list(known_points(engine)), groups))
    units = tuple(
        WorkUnit(a, b, g, ids) for a, b in weeks for g, ids in enumerate(members, start=1)
    )
    moments = tuple(sorted({last_moment(a) for a, _ in weeks}))
    return BackfillPlan(start, end, scored_from, moments, units)


def train_for_moment(
    engine: Engine, models_dir: Path, moment: datetime, *, calendar: Calendar | None = None
) -> tuple[str, bool]:
    """The model fitted at the retrain ``moment`` on the weeks before it: the stored one, else
    fitted now on the weekly retrain's window. Returns (version, whether it was fitted now)."""
    version = model_at_moment(engine, moment)
    if version is not None:
        return version, False
    span = data_span(engine)
    if span is None:
        raise UnusableInputError("no hour aggregates to train on: ingest feeds first")
    window = training_window(moment, span[0])
    return train_model(engine, models_dir, *window, calendar=calendar), True


def score_unit(
    engine: Engine, models_dir: Path, unit: WorkUnit, *, calendar: Calendar | None = None
) -> UnitResult:
    """Score one unit with the model of its retrain moment and replace its flags (its points,
    its period); cases are left to ``join_cases``."""
    version = model_at_moment(engine, unit.moment)
    if version is None:
        raise UnusableInputError(
            f"no model fitted at the retrain moment {unit.moment.isoformat()}: train it first"
            " (train_for_moment) - a later one would judge the week with hindsight"
        )
    model = load_model(engine, models_dir, version)
    ids = list(unit.point_ids) if unit.point_ids is not None else None
    features, _ = _week_features(
        engine,
        model,
        unit.start,
        unit.end,
        calendar=calendar,
        span=data_span(engine),
        cache_dir=None,
        point_ids=ids,
    )
    flags = flag_hours(features, model.detector)
    recorded = replace_point_flags(
        engine, flags, unit.start, unit.end, ids, model_version=model.version
    )
    return UnitResult(unit, version, len(features), recorded.anomalies, recorded.suppressed)


def join_week(engine: Engine, start: datetime, end: datetime) -> int:
    """The cases around the week [start, end) from its units' flags (and the neighbours' within
    the incident gap), as the single-process walk rebuilds them after each week; returns the
    open cases there."""
    return rebuild_cases(engine, start, end)


def score_weeks(
    engine: Engine,
    models_dir: Path,
    plan: BackfillPlan,
    *,
    calendar: Calendar | None = None,
    score: Callable[[list[WorkUnit]], list[UnitResult]] | None = None,
) -> list[UnitResult]:
    """Every week of the plan in order: its units (through ``score``, default ``score_unit``
    one by one here; a pool's map for ``run_plan``), then its cases. Needs the plan's models."""
    if score is None:

        def score(units: list[WorkUnit]) -> list[UnitResult]:
            return [score_unit(engine, models_dir, u, calendar=calendar) for u in units]

    results: list[UnitResult] = []
    for start, end, units in plan.weeks():
        results.extend(score(units))
        join_week(engine, start, end)
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
        chunks=len(plan.weeks()),
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
    """Train the plan's models, then score its weeks in order and join their cases: in this
    process (``workers`` 1) or with a pool of ``workers`` processes, each with its own
    connection, training the moments side by side and then a week's point groups."""
    if workers <= 1:
        models = [train_for_moment(engine, models_dir, m, calendar=calendar) for m in plan.moments]
        results = score_weeks(engine, models_dir, plan, calendar=calendar)
        return summarise(plan, models, results)
    url = engine.url.render_as_string(hide_password=False)
    # spawn: a fresh interpreter per worker, no engine or thread state copied by fork.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        models = list(pool.map(_train_in_worker, *_args(url, models_dir, plan.moments, calendar)))
        results = score_weeks(
            engine,
            models_dir,
            plan,
            score=lambda units: list(
                pool.map(_score_in_worker, *_args(url, models_dir, units, calendar))
            ),
        )
    return summarise(plan, models, results)


def _args(url: str, models_dir: Path, items, calendar) -> tuple[list, ...]:
    items = list(items)
    n = len(items)
    return [url] * n, [str(models_dir)] * n, items, [calendar] * n


def _worker_engine(url: str) -> Engine:
    from pipeline.store.db import create

    return create(url)  # the parent migrated the schema already


def _train_in_worker(url, models_dir, moment, calendar) -> tuple[str, bool]:
    engine = _worker_engine(url)
    try:
        return train_for_moment(engine, Path(models_dir), moment, calendar=calendar)
    finally:
        engine.dispose()


def _score_in_worker(url, models_dir, unit, calendar) -> UnitResult:
    engine = _worker_engine(url)
    try:
        return score_unit(engine, Path(models_dir), unit, calendar=calendar)
    finally:
        engine.dispose()
