"""Training, scoring and backfilling: the detection stage as tasks over time intervals.

``score_range`` scores one interval (what the hourly DAG calls); ``backfill`` walks a long range in
chunks (aggregate, train where no model fits yet, score), recording how far it got so an
interrupted run continues where it stopped; every chunk is a replacement, so nothing is doubled.
``backtest`` replays a stored model over a past range and touches no live flag or case.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, and_, func, select

from pipeline.casework.cases import cases_from_flags, drop_suppressed, record_flags, registry
from pipeline.core.errors import UnusableInputError
from pipeline.core.times import ceil_hour, floor_hour
from pipeline.detection.detector import LeakageDetector, explain
from pipeline.detection.features import FEATURES, FeatureConfig, compute_features, data_span
from pipeline.detection.model_store import load_model, save_model
from pipeline.reference.calendar import Calendar
from pipeline.store.schema import (
    detector_models,
    hour_aggregates,
    source_watermarks,
    transactions,
    transactions_between,
)
from pipeline.store.upsert import upsert

CHUNK = timedelta(weeks=8)  # = the baseline window: each chunk's aggregates are read once
MAX_TRAINING_ROWS = 300_000
MAX_TRAINING_WEEKS = 8


@dataclass(frozen=True)
class ScoreResult:
    start: datetime
    end: datetime
    model_version: str
    hours_scored: int
    flagged: int  # point-hours recorded as anomalies
    suppressed: int
    cases_open: int


@dataclass(frozen=True)
class BackfillResult:
    start: datetime
    end: datetime
    model_version: str
    chunks: int
    chunks_skipped: int  # already done by an earlier, interrupted run
    hours_scored: int
    flagged: int


def _check_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None:
            raise UnusableInputError(f"{name} {value.isoformat()} has no UTC offset")
    start, end = floor_hour(start), ceil_hour(end)
    if end <= start:
        raise UnusableInputError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    return start, end


def _chunks(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    edges = []
    cursor = start
    while cursor < end:
        edges.append((cursor, min(cursor + size, end)))
        cursor += size
    return edges


def train_model(
    engine: Engine,
    models_dir: Path,
    start: datetime,
    end: datetime,
    *,
    calendar: Calendar | None = None,
    config: FeatureConfig | None = None,
    detector: LeakageDetector | None = None,
) -> str:
    """Fit a detector on the point-hours of [start, end) and store it; returns the version.

    Long ranges use their last eight weeks, and at most 300,000 point-hours of them.
    """
    version, _ = _train(
        engine, models_dir, start, end, calendar=calendar, config=config, detector=detector
    )
    return version


def _train(
    engine: Engine,
    models_dir: Path,
    start: datetime,
    end: datetime,
    *,
    calendar: Calendar | None,
    config: FeatureConfig | None,
    detector: LeakageDetector | None = None,
) -> tuple[str, tuple[datetime, pd.DataFrame]]:
    """train_model, also handing back (features start, features) so a backfill whose range is
    the training window scores them without computing them twice."""
    start, end = _check_range(start, end)
    config = config or FeatureConfig()
    span = data_span(engine)
    if span is None:
        raise UnusableInputError("no hour aggregates to train on: ingest feeds first")
    # The most recent weeks of the range: one read of aggregates, and the freshest normal.
    train_start = max(start, end - timedelta(weeks=MAX_TRAINING_WEEKS))
    features = compute_features(
        engine, train_start, end, config=config, calendar=calendar, span=span
    )
    if len(features) < 10:
        raise UnusableInputError(
            f"only {len(features)} point-hours between {start.isoformat()} and {end.isoformat()}: "
            "too few to train on"
        )
    sample = (
        features.sample(MAX_TRAINING_ROWS, random_state=0)
        if len(features) > MAX_TRAINING_ROWS
        else features
    )
    detector = detector or LeakageDetector()
    detector.fit(sample[list(FEATURES)])
    version = save_model(engine, models_dir, detector, config, trained_from=start, trained_to=end)
    return version, (train_start, features)


def flag_hours(features: pd.DataFrame, detector: LeakageDetector) -> pd.DataFrame:
    """The flagged rows of ``features`` with kind, severity, reasons, shortfall and operators."""
    if features.empty:
        return features.assign(
            score=[], kind=[], severity=[], reasons=[], shortfall_rp=[], operators=[]
        )
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
) -> ScoreResult:
    """Score [start, end) with a stored model (default the newest) and replace its flags/cases.

    The usual levels of the baseline window are cached under ``models_dir/baselines`` so the
    hourly runs of a day do not re-read eight weeks of aggregates.
    """
    start, end = _check_range(start, end)
    model = load_model(engine, models_dir, model_version)
    features = compute_features(
        engine,
        start,
        end,
        config=model.config,
        calendar=calendar,
        span=span,
        cache_dir=Path(models_dir) / "baselines" if cache_baseline else None,
    )
    return _score_features(engine, model, features, start, end)


def _score_features(
    engine: Engine, model, features: pd.DataFrame, start: datetime, end: datetime
) -> ScoreResult:
    flags = flag_hours(features, model.detector)
    recorded = record_flags(engine, flags, start, end, model_version=model.version)
    return ScoreResult(
        start=start,
        end=end,
        model_version=model.version,
        hours_scored=len(features),
        flagged=recorded.anomalies,
        suppressed=recorded.suppressed,
        cases_open=recorded.cases_open,
    )


def backtest(
    engine: Engine,
    models_dir: Path,
    version: str,
    start: datetime,
    end: datetime,
    *,
    calendar: Calendar | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What model ``version`` would have flagged over [start, end): (flagged hours, cases).
    Suppressions apply as they would live; nothing is written."""
    start, end = _check_range(start, end)
    model = load_model(engine, models_dir, version)
    span = data_span(engine)
    frames = []
    for a, b in _chunks(start, end, CHUNK):
        flags = flag_hours(
            compute_features(engine, a, b, config=model.config, calendar=calendar, span=span),
            model.detector,
        )
        frames.append(drop_suppressed(engine, flags, a, b))
    flags = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return flags, cases_from_flags(flags, registry(engine))


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


def _progress_key(start: datetime, end: datetime) -> str:
    return f"backfill:{start.isoformat()}/{end.isoformat()}"


def _read_progress(engine: Engine, key: str) -> dict:
    with engine.connect() as connection:
        row = connection.execute(
            select(source_watermarks.c.cursor).where(source_watermarks.c.source == key)
        ).first()
    return json.loads(row.cursor) if row else {}


def _write_progress(engine: Engine, key: str, state: dict) -> None:
    with engine.begin() as connection:
        upsert(
            connection,
            source_watermarks,
            [
                {
                    "source": key,
                    "cursor": json.dumps(state, sort_keys=True),
                    "updated_at": datetime.now(UTC),
                }
            ],
        )


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
) -> BackfillResult:
    """Aggregate, train where no model fits yet, and score [start, end) chunk by chunk.

    A chunk is aggregated (``aggregate``, default the ingest stage's recomputation) only where
    its stored aggregates do not account for its transactions (``aggregates_current``): feeds
    that went through ingest are aggregated already.
    Progress is recorded after each chunk (in ``source_watermarks`` under ``backfill:<range>``);
    a rerun of the same range continues after the last finished chunk, and rerunning a finished
    range rescores nothing twice: each chunk replaces its own flags and open cases.
    """
    start, end = _check_range(start, end)
    if aggregate is None:
        from pipeline.intake.aggregate import (
            aggregate_range as aggregate,  # the ingest stage's recomputation
        )
    key = _progress_key(start, end)
    state = _read_progress(engine, key)
    chunks = _chunks(start, end, chunk)
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress()
        bar.start()
        task = bar.add_task("backfill", total=2 * len(chunks))
    try:
        done_agg = pd.Timestamp(state["aggregated_to"]) if "aggregated_to" in state else None
        skipped = 0
        for a, b in chunks:
            if done_agg is None or pd.Timestamp(b) > done_agg:
                if not aggregates_current(engine, a, b):
                    aggregate(engine, a, b)
                state["aggregated_to"] = b.isoformat()
                _write_progress(engine, key, state)
            if bar:
                bar.advance(task)
        version = state.get("model") or fitting_model(engine)
        trained = None  # the training window's features, when they are the one chunk's
        if version is None:
            version, (train_start, train_features) = _train(
                engine, models_dir, start, end, calendar=calendar, config=None
            )
            if len(chunks) == 1 and train_start == chunks[0][0]:
                trained = train_features
            # Otherwise they are let go here: eight weeks of a thousand points' features is
            # over a gigabyte, held through the whole scoring loop on top of each chunk's own.
            del train_features
        state["model"] = version
        _write_progress(engine, key, state)
        model = load_model(engine, models_dir, version)
        span = data_span(engine)
        done_score = pd.Timestamp(state["scored_to"]) if "scored_to" in state else None
        hours = flagged = 0
        for a, b in chunks:
            if done_score is not None and pd.Timestamp(b) <= done_score:
                skipped += 1
            else:
                if trained is not None:
                    features, trained = trained, None  # the training window is this chunk
                else:
                    features = compute_features(
                        engine, a, b, config=model.config, calendar=calendar, span=span
                    )
                result = _score_features(engine, model, features, a, b)
                del features  # not alive while the next chunk's are built
                hours += result.hours_scored
                flagged += result.flagged
                state["scored_to"] = b.isoformat()
                _write_progress(engine, key, state)
            if bar:
                bar.advance(task)
    finally:
        if bar:
            bar.stop()
    return BackfillResult(
        start=start,
        end=end,
        model_version=version,
        chunks=len(chunks),
        chunks_skipped=skipped,
        hours_scored=hours,
        flagged=flagged,
    )
