"""Scoring and backfilling: the detection stage as tasks over time intervals (the models'
training is ``training``).

Every score is point in time (``rhythm``): the hours after a retrain moment are judged by the
model fitted at that moment and by usual levels learnt from the weeks before it, never from the
hours themselves or later ones. ``score_range`` scores one interval (what the hourly DAG calls)
with the newest model trained on data before it; ``backfill`` walks a long range forward week by
week, fitting the model of each retrain moment where the weekly DAG has not, from the features
of the weeks it scored before that moment (recording how far it got, so an interrupted run
continues where it stopped; every week is a replacement, so nothing is doubled) and so gives
the flags the hourly runs would have given. ``hindsight=True`` keeps the
old in-sample way (one model and usual levels from the whole range) for a first look at a
history shorter than the minimum, and for comparison; it says so in its result.
"""

# long: the live path (score_range), the walk forward and the hindsight path share the week
# split, the model in force and the progress record; kept together they read as one rule.

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, and_, func, select

from pipeline.casework.cases import record_flags
from pipeline.core.errors import UnusableInputError
from pipeline.detection.detector import FLAG_COLUMNS, LeakageDetector, explain
from pipeline.detection.features import (
    FEATURES,
    StoredWeeks,
    compute_features,
    data_span,
)
from pipeline.detection.model_store import load_model
from pipeline.detection.rhythm import (
    MIN_HISTORY,
    checked_range,
    first_scored_moment,
    last_moment,
    training_window,
    weeks_of,
)
from pipeline.detection.training import KeptWeeks, train_model
from pipeline.intake.sources.watermarks import get_watermark, set_watermark
from pipeline.reference.calendar import Calendar
from pipeline.store.schema import (
    detector_models,
    hour_aggregates,
    transactions,
    transactions_between,
)

CHUNK = timedelta(weeks=8)  # aggregation (and hindsight scoring) chunk


@dataclass(frozen=True)
class ScoreResult:
    start: datetime
    end: datetime
    model_version: str  # the last piece's model (a range over a retrain moment has two)
    hours_scored: int
    flagged: int  # point-hours recorded as anomalies
    suppressed: int
    cases_open: int
    usual_until: datetime | None = None  # the usual levels were learnt from data before this


@dataclass(frozen=True)
class BackfillResult:
    start: datetime
    end: datetime
    model_version: str
    chunks: int
    chunks_skipped: int  # already done by an earlier, interrupted run
    hours_scored: int
    flagged: int
    models: tuple[str, ...] = ()  # every model that scored a week, in order
    trained: int = 0  # models fitted by this run (the others were the weekly DAG's or earlier)
    scored_from: datetime | None = None  # hours before it were not scored (too little history)
    hindsight: bool = False  # the in-sample way: for comparison, not what live runs raise


def _chunks(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    edges = []
    cursor = start
    while cursor < end:
        edges.append((cursor, min(cursor + size, end)))
        cursor += size
    return edges


def flag_hours(features: pd.DataFrame, detector: LeakageDetector) -> pd.DataFrame:
    """The flagged rows of ``features`` with kind, severity, reasons, shortfall and operators."""
    if features.empty:
        return features.assign(score=[], **{column: [] for column in FLAG_COLUMNS})
    scores = detector.flag_scores(features[list(FEATURES)])
    return explain(features, scores, scores >= detector.threshold_, detector)


def score_range(
    engine: Engine,
    models_dir: Path,
    start: datetime,
    end: datetime,
    *,
    calendar: Calendar | None = None,
    model_version: str | None = None,
    span: tuple[datetime, datetime] | None = None,
    cache_baseline: bool = True,
    hindsight: bool = False,
    before_recording: Callable[[pd.DataFrame], object] | None = None,
) -> ScoreResult:
    """Score [start, end) point in time and replace its flags/cases.

    Each week of the range (split at the retrain moments) is judged by the usual levels of the
    weeks before its retrain moment and by ``model_version``, default the newest model trained
    on data before it (the one the live pipeline had then); with no such model the range is
    refused. The usual levels are cached under ``models_dir/baselines``, so the hourly runs of a
    week read eight weeks of aggregates once. ``hindsight``: the old in-sample way (one model,
    default the newest; usual levels of the weeks around the range). ``before_recording`` is
    shown the range's new flags (before suppressions) ahead of their recording: the re-scoring
    of late data (``late_data``) closes there the cases they no longer hold up.
    """
    start, end = checked_range(start, end)
    cache_dir = Path(models_dir) / "baselines" if cache_baseline else None
    if hindsight:
        model = load_model(engine, models_dir, model_version)
        features = _model_features(
            engine, model, start, end, calendar=calendar, span=span, cache_dir=cache_dir
        )
        if before_recording is not None:
            before_recording(flag_hours(features, model.detector))
        return _score_features(engine, model, features, start, end)
    span = span if span is not None else data_span(engine)
    weeks, results = [], []
    for a, b in weeks_of(start, end):
        version = model_version or model_in_force(engine, a)
        if version is None:
            raise UnusableInputError(
                f"no model was trained on data before {a.isoformat()}: scoring it with a later "
                "one would judge it with hindsight; run `eincome backfill` over the history, "
                "`eincome train --end` a moment before it, or name a model with --model"
            )
        model = load_model(engine, models_dir, version)
        features, usual_until = _week_features(
            engine, model, a, b, calendar=calendar, span=span, cache_dir=cache_dir
        )
        if before_recording is None:  # one week's features in memory at a time
            results.append(_scored_week(engine, model, features, usual_until, a, b))
        else:
            weeks.append((model, features, usual_until, a, b))
    if before_recording is not None:
        before_recording(pd.concat([flag_hours(w[1], w[0].detector) for w in weeks]))
        results = [_scored_week(engine, *week) for week in weeks]
    return _combined(results, start, end)


def _score_week(
    engine: Engine,
    model,
    start: datetime,
    end: datetime,
    *,
    calendar: Calendar | None,
    span: tuple[datetime, datetime] | None,
    cache_dir: Path | None,
    known_until: datetime | None = None,
    stored: StoredWeeks | None = None,
    kept: KeptWeeks | None = None,
) -> ScoreResult:
    """Score [start, end), inside one week, against the usual levels of its retrain moment
    (its cases formed from the flags before ``known_until``, when given; its features kept in
    ``kept`` for the next models)."""
    features, usual_until = _week_features(
        engine,
        model,
        start,
        end,
        calendar=calendar,
        span=span,
        cache_dir=cache_dir,
        stored=stored,
        kept=kept,
    )
    return _scored_week(engine, model, features, usual_until, start, end, known_until)


def _scored_week(
    engine: Engine, model, features, usual_until, start, end, known_until=None
) -> ScoreResult:
    result = _score_features(engine, model, features, start, end, known_until=known_until)
    return ScoreResult(**{**result.__dict__, "usual_until": usual_until})


def _week_features(
    engine: Engine,
    model,
    start: datetime,
    end: datetime,
    *,
    calendar: Calendar | None,
    span: tuple[datetime, datetime] | None,
    cache_dir: Path | None,
    stored: StoredWeeks | None = None,
    kept: KeptWeeks | None = None,
) -> tuple[pd.DataFrame, datetime]:
    """Features of [start, end), inside one week, judged by its retrain moment's usual levels
    (and kept in ``kept``, a walk's store of what the next models learn from)."""
    usual_until = last_moment(start)
    features = _model_features(
        engine,
        model,
        start,
        end,
        calendar=calendar,
        span=span,
        cache_dir=cache_dir,
        baseline_end=usual_until,
        stored=stored,
    )
    if kept is not None:
        kept.keep((start, end, usual_until, model.config), features)
    return features, usual_until


def _model_features(engine: Engine, model, start: datetime, end: datetime, **options):
    """``compute_features`` with the model's own feature config: the one call every score makes
    (``baseline_end`` given: point in time; left out: the hindsight way)."""
    return compute_features(engine, start, end, config=model.config, **options)


def _combined(results: list[ScoreResult], start: datetime, end: datetime) -> ScoreResult:
    return ScoreResult(
        start=start,
        end=end,
        model_version=results[-1].model_version,
        hours_scored=sum(r.hours_scored for r in results),
        flagged=sum(r.flagged for r in results),
        suppressed=sum(r.suppressed for r in results),
        cases_open=results[-1].cases_open,
        usual_until=results[-1].usual_until,
    )


def _fitting_rows(engine: Engine) -> list:
    """Stored models whose feature list matches this code, newest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                detector_models.c.version,
                detector_models.c.created_at,
                detector_models.c.meta,
            ).order_by(detector_models.c.created_at.desc(), detector_models.c.version.desc())
        ).all()
    fitting = []
    for row in rows:
        meta = json.loads(row.meta)
        if meta.get("features") == list(FEATURES):
            fitting.append((row.version, pd.Timestamp(meta["trained_to"]).tz_convert("UTC")))
    return fitting


def model_in_force(engine: Engine, at: datetime) -> str | None:
    """The model the live pipeline had at ``at``: of those trained on data ending at or before
    it (and matching this code's features), the one with the latest training end; the newest
    stored of those on a tie."""
    best = None
    for version, trained_to in _fitting_rows(engine):
        if trained_to <= pd.Timestamp(at) and (best is None or trained_to > best[1]):
            best = (version, trained_to)
    return best[0] if best else None


def model_at_moment(engine: Engine, moment: datetime) -> str | None:
    """A stored model fitted at the retrain ``moment`` (its training ends there), if any."""
    for version, trained_to in _fitting_rows(engine):
        if trained_to == pd.Timestamp(moment):
            return version
    return None


def _score_features(
    engine: Engine,
    model,
    features: pd.DataFrame,
    start: datetime,
    end: datetime,
    *,
    known_until: datetime | None = None,
) -> ScoreResult:
    flags = flag_hours(features, model.detector)
    recorded = record_flags(
        engine, flags, start, end, model_version=model.version, known_until=known_until
    )
    return ScoreResult(
        start=start,
        end=end,
        model_version=model.version,
        hours_scored=len(features),
        flagged=recorded.anomalies,
        suppressed=recorded.suppressed,
        cases_open=recorded.cases_open,
    )


def fitting_model(engine: Engine) -> str | None:
    """The newest stored model whose feature list matches this code, if any."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(detector_models.c.version, detector_models.c.meta).order_by(
                detector_models.c.created_at.desc()
            )
        ).all()
    for row in rows:
        if json.loads(row.meta).get("features") == list(FEATURES):
            return row.version
    return None


def aggregates_current(engine: Engine, start: datetime, end: datetime) -> bool:
    """Whether the hour aggregates of [start, end) account for every stored transaction in it:
    the same number of transactions and the same total amount. Ingest keeps them so; a range
    loaded some other way, or half aggregated, fails the check. Two sums instead of recomputing
    minute and hour aggregates of a year, which was a large share of a backfill's time."""
    t, h = transactions.c, hour_aggregates.c
    with engine.connect() as connection:
        stored = connection.execute(
            select(func.count(), func.coalesce(func.sum(t.amount), 0)).where(
                transactions_between(start, end)
            )
        ).one()
        aggregated = connection.execute(
            select(
                func.coalesce(func.sum(h.txn_count + h.void_count + h.refund_count), 0),
                func.coalesce(func.sum(h.gross_paid + h.void_amount + h.refund_amount), 0),
            ).where(and_(h.hour_start >= start, h.hour_start < end))
        ).one()
    return (int(stored[0]), int(stored[1])) == (int(aggregated[0]), int(aggregated[1]))


def _progress_key(start: datetime, end: datetime, hindsight: bool) -> str:
    # The walk-forward keeps its own record: a hindsight run's chunks are not its weeks.
    return f"backfill{':hindsight' if hindsight else ''}:{start.isoformat()}/{end.isoformat()}"


def _read_progress(engine: Engine, key: str) -> dict:
    # A resumable run's progress is a cursor like a pull source's, kept by the same owner.
    cursor = get_watermark(engine, key)
    return json.loads(cursor) if cursor else {}


def _write_progress(engine: Engine, key: str, state: dict) -> None:
    set_watermark(engine, key, json.dumps(state, sort_keys=True))


def backfill(
    engine: Engine,
    models_dir: Path,
    start: datetime,
    end: datetime,
    *,
    progress: bool = False,
    calendar: Calendar | None = None,
    chunk: timedelta = CHUNK,
    aggregate: Callable[[Engine, datetime, datetime], object] | None = None,
    hindsight: bool = False,
    min_history: timedelta = MIN_HISTORY,
) -> BackfillResult:
    """Aggregate where needed, then score [start, end) walking forward as the live pipeline did.

    A chunk is aggregated (``aggregate``, default the ingest stage's recomputation) only where
    its stored aggregates do not account for its transactions (``aggregates_current``): feeds
    that went through ingest are aggregated already. Then week by week (the retrain rhythm):
    the week's model is the one fitted at its retrain moment on the weeks before (the weekly
    DAG's when it exists, else fitted now on the same window), its usual levels are those of
    the weeks before that moment, and the week's flags and open cases are replaced. Nothing is
    scored before the first retrain moment with ``min_history`` of data behind it: the result's
    ``scored_from`` says where scoring began.
    Progress is recorded after each step (in ``source_watermarks`` under ``backfill:<range>``);
    a rerun of the same range continues after the last finished week.
    ``hindsight``: the old in-sample way, for comparison and for histories shorter than
    ``min_history``: one model fitted on the range's last eight weeks (unless one fits already),
    usual levels from the weeks around each chunk.
    """
    start, end = checked_range(start, end)
    if aggregate is None:
        from pipeline.intake.aggregate import (
            aggregate_range as aggregate,  # the ingest stage's recomputation
        )
    key = _progress_key(start, end, hindsight)
    state = _read_progress(engine, key)
    chunks = _chunks(start, end, chunk)
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress()
        bar.start()
    try:
        task = bar.add_task("aggregate", total=len(chunks)) if bar else None
        done_agg = pd.Timestamp(state["aggregated_to"]) if "aggregated_to" in state else None
        for a, b in chunks:
            if done_agg is None or pd.Timestamp(b) > done_agg:
                if not aggregates_current(engine, a, b):
                    aggregate(engine, a, b)
                state["aggregated_to"] = b.isoformat()
                _write_progress(engine, key, state)
            if bar:
                bar.advance(task)
        if hindsight:
            return _backfill_in_hindsight(
                engine, models_dir, start, end, chunks, state, key, calendar, bar
            )
        return _walk_forward(engine, models_dir, start, end, state, key, calendar, bar, min_history)
    finally:
        if bar:
            bar.stop()


def _walk_forward(
    engine: Engine,
    models_dir: Path,
    start: datetime,
    end: datetime,
    state: dict,
    key: str,
    calendar: Calendar | None,
    bar,
    min_history: timedelta,
) -> BackfillResult:
    """The weeks of [start, end) scored as the live pipeline would have scored them."""
    span = data_span(engine)
    if span is None:
        raise UnusableInputError("no hour aggregates to score: ingest feeds first")
    scored_from, weeks = scored_weeks(span, start, end, min_history)
    task = bar.add_task("score (walk-forward)", total=len(weeks)) if bar else None
    done = pd.Timestamp(state["scored_to"]) if "scored_to" in state else None
    models: list[str] = list(state.get("models", []))
    trained = skipped = hours = flagged = 0
    loaded: dict[str, object] = {}
    # Every week's data is read once for the whole walk (stored data does not change during it:
    # the walk writes flags and cases only), and every week is featured once: the models learn
    # from the features of the weeks the walk scored before their moments (``training``).
    stored = StoredWeeks(engine)
    kept = KeptWeeks()
    for a, b in weeks:
        if done is not None and pd.Timestamp(b) <= done:
            skipped += 1
        else:
            version, fitted = model_for_moment(
                engine,
                models_dir,
                last_moment(a),
                span=span,
                calendar=calendar,
                stored=stored,
                kept=kept,
                min_history=min_history,
            )
            trained += fitted
            if version not in loaded:
                loaded = {version: load_model(engine, models_dir, version)}  # one at a time
            result = _score_week(
                engine,
                loaded[version],
                a,
                b,
                calendar=calendar,
                span=span,
                cache_dir=None,
                known_until=_known_until(b, end),
                stored=stored,
                kept=kept,
            )
            hours += result.hours_scored
            flagged += result.flagged
            if version not in models:
                models.append(version)
            state.update(scored_to=b.isoformat(), models=models)
            _write_progress(engine, key, state)
        if bar:
            bar.advance(task)
    return BackfillResult(
        start=start,
        end=end,
        model_version=models[-1] if models else "",
        chunks=len(weeks),
        chunks_skipped=skipped,
        hours_scored=hours,
        flagged=flagged,
        models=tuple(models),
        trained=trained,
        scored_from=scored_from,
    )


def scored_weeks(
    span: tuple[datetime, datetime], start: datetime, end: datetime, min_history: timedelta
) -> tuple[datetime, list[tuple[datetime, datetime]]]:
    """Where a walk-forward of [start, end) starts scoring (the first retrain moment with
    ``min_history`` of the data's ``span`` behind it; ``end`` when there is none) and the weeks
    it scores from there."""
    first = first_scored_moment(span[0], end, min_history)
    scored_from = max(start, first) if first is not None else end
    return scored_from, weeks_of(scored_from, end) if scored_from < end else []


def model_for_moment(
    engine: Engine,
    models_dir: Path,
    moment: datetime,
    *,
    span: tuple[datetime, datetime] | None = None,
    calendar: Calendar | None = None,
    stored: StoredWeeks | None = None,
    kept: KeptWeeks | None = None,
    min_history: timedelta = MIN_HISTORY,
) -> tuple[str, bool]:
    """The model fitted at the retrain ``moment``: the stored one (the weekly DAG's, or an
    earlier run's), else fitted now on the weekly retrain's window (``training.train_model``).
    ``span``: the data's, read from the store only when a model is fitted and it is not given.
    Returns (version, whether it was fitted now)."""
    version = model_at_moment(engine, moment)
    if version is not None:
        return version, False
    span = span if span is not None else data_span(engine)
    if span is None:
        raise UnusableInputError("no hour aggregates to train on: ingest feeds first")
    window = training_window(moment, span[0])
    version = train_model(
        engine,
        models_dir,
        *window,
        calendar=calendar,
        stored=stored,
        kept=kept,
        min_history=min_history,
    )
    return version, True


def _known_until(week_end: datetime, end: datetime) -> datetime | None:
    """What a walk-forward week's cases are formed from: the flags before its end, as the live
    runs had them then (not the later weeks' flags a previous pass or hourly runs left in the
    table, which the following weeks replace); the range's last week regroups with every flag,
    later ones included, as the live runs have them now."""
    return week_end if week_end < end else None


def _backfill_in_hindsight(
    engine: Engine,
    models_dir: Path,
    start: datetime,
    end: datetime,
    chunks: list[tuple[datetime, datetime]],
    state: dict,
    key: str,
    calendar: Calendar | None,
    bar,
) -> BackfillResult:
    """The old in-sample backfill: one model for the range, usual levels around each chunk."""
    task = bar.add_task("score (hindsight)", total=len(chunks)) if bar else None
    version = state.get("model") or fitting_model(engine)
    trained = 0
    if version is None:
        version = train_model(engine, models_dir, start, end, calendar=calendar, hindsight=True)
        trained = 1
    state["model"] = version
    _write_progress(engine, key, state)
    model = load_model(engine, models_dir, version)
    span = data_span(engine)
    done = pd.Timestamp(state["scored_to"]) if "scored_to" in state else None
    skipped = hours = flagged = 0
    for a, b in chunks:
        if done is not None and pd.Timestamp(b) <= done:
            skipped += 1
        else:
            features = _model_features(engine, model, a, b, calendar=calendar, span=span)
            result = _score_features(engine, model, features, a, b)
            del features  # not alive while the next chunk's are built
            hours += result.hours_scored
            flagged += result.flagged
            state["scored_to"] = b.isoformat()
            _write_progress(engine, key, state)
        if bar:
            bar.advance(task)
    return BackfillResult(
        start=start,
        end=end,
        model_version=version,
        chunks=len(chunks),
        chunks_skipped=skipped,
        hours_scored=hours,
        flagged=flagged,
        models=(version,),
        trained=trained,
        scored_from=start,
        hindsight=True,
    )
