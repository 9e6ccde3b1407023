"""What a model learns from: the point-in-time features of the weeks before its retrain moment.

A model fitted at a moment M learns from the weeks of its training window (``rhythm``), each week
judged as it was scored: against the usual levels of that week's own retrain moment, learnt
from the weeks before it only (``training_usual_until``). That is what "usual" looked like to
the live pipeline when the week went by, so the model learns the spread of the same numbers it
will be shown, and a walk forward that has just scored a week has its training rows already:
the walk keeps the scored weeks' features (``KeptWeeks``) and fits each model from them, instead
of featuring eight weeks again against usual levels learnt at M from those same weeks (that was
82% of a backfill's CPU, docs/bench.md). The live path (the weekly DAG, ``eincome train``)
computes the same weeks the same way from the store, so it fits the same model.

Weeks that were never scored - before the first retrain moment with ``min_history`` of data
behind it - have no point-in-time usual levels: fewer weeks give an hour of the week too few
samples (the reason scoring waits). They are judged by the usual levels of that first moment,
the earliest there are (in sample for them, as every week was before), so they are featured
once for every model that learns from them, and a young history's first model learns from the
usual levels it always did. Leaving them out instead would leave the first model nothing to
learn from.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from pipeline.core.errors import UnusableInputError
from pipeline.detection.detector import LeakageDetector
from pipeline.detection.features import (
    FEATURES,
    FeatureConfig,
    StoredWeeks,
    compute_features,
    data_span,
)
from pipeline.detection.model_store import save_model
from pipeline.detection.rhythm import (
    MIN_HISTORY,
    RETRAIN_WEEKS,
    checked_range,
    first_scored_moment,
    last_moment,
    weeks_of,
)
from pipeline.reference.calendar import Calendar

MAX_TRAINING_ROWS = 300_000
MAX_TRAINING_WEEKS = RETRAIN_WEEKS
# Kept features are float32: a model's eight weeks of 1,000 points in ~160 MB, and the forest
# fits and scores in float32 anyway (scikit-learn's tree dtype), so nothing it sees changes.
KEPT_DTYPE = np.float32
# The hindsight way features its whole window at once, two weeks at a time (a month for small
# registries): the same features, a quarter of the memory.
TRAINING_PIECE_DAYS = 14

WeekKey = tuple[datetime, datetime, datetime, FeatureConfig]


class KeptWeeks:
    """The features (FEATURES only, float32) of the recent weeks a walk computed, keyed by the
    week, the usual levels it was judged by and the feature config: what the next models learn
    from. Weeks that ended a training window or more before the newest one kept are let go, so
    a year's walk holds about nine weeks."""

    def __init__(self, weeks: int = MAX_TRAINING_WEEKS):
        self.span = timedelta(weeks=weeks)
        self._kept: OrderedDict[WeekKey, np.ndarray] = OrderedDict()

    def get(self, key: WeekKey) -> np.ndarray | None:
        return self._kept.get(key)

    def keep(self, key: WeekKey, features: pd.DataFrame) -> np.ndarray:
        values = features_matrix(features)
        self._kept[key] = values
        newest_end = max(k[1] for k in self._kept)
        for old in [k for k in self._kept if k[1] <= newest_end - self.span]:
            del self._kept[old]
        return values


def features_matrix(features: pd.DataFrame) -> np.ndarray:
    """The rows a model learns from: FEATURES of each point-hour, in the frame's order."""
    return features[list(FEATURES)].to_numpy(dtype=KEPT_DTYPE)


def training_usual_until(week_start: datetime, first_scored: datetime) -> datetime:
    """The usual levels a training week is judged by: its own retrain moment's, as it was scored;
    a week before the first scored moment (too little history) that moment's."""
    return max(last_moment(week_start), first_scored)


def training_sample(n_rows: int) -> np.ndarray | None:
    """Which of ``n_rows`` training rows the model is fitted on (None: all of them): at most
    MAX_TRAINING_ROWS, drawn with a fixed seed and kept in order, so the walk and the live path
    pick the same rows of the same weeks."""
    if n_rows <= MAX_TRAINING_ROWS:
        return None
    return np.sort(np.random.default_rng(0).choice(n_rows, MAX_TRAINING_ROWS, replace=False))


def train_model(
    engine: Engine,
    models_dir: Path,
    start: datetime,
    end: datetime,
    *,
    calendar: Calendar | None = None,
    config: FeatureConfig | None = None,
    detector: LeakageDetector | None = None,
    stored: StoredWeeks | None = None,
    kept: KeptWeeks | None = None,
    min_history: timedelta = MIN_HISTORY,
    hindsight: bool = False,
) -> str:
    """Fit a detector on the point-hours of [start, end) and store it; returns the version.

    Long ranges use their last eight weeks, and at most 300,000 point-hours of them, each week
    featured point in time (``training_usual_until``; weeks before the first retrain moment with
    ``min_history`` behind it by that moment's usual levels). ``kept``: weeks a walk featured
    already, taken from there (and the ones featured here kept in it). ``stored``: the data
    read through it, else straight from the store. ``hindsight``: the old in-sample way, the
    whole window against usual levels learnt at ``end`` from the same weeks (``backfill``'s
    hindsight run).
    """
    start, end = checked_range(start, end)
    config = config or FeatureConfig()
    span = data_span(engine)
    if span is None:
        raise UnusableInputError("no hour aggregates to train on: ingest feeds first")
    # The most recent weeks of the range: the freshest normal.
    train_start = max(start, end - timedelta(weeks=MAX_TRAINING_WEEKS))
    options = {"config": config, "calendar": calendar, "span": span, "stored": stored}
    if hindsight:
        features = compute_features(
            engine,
            train_start,
            end,
            baseline_end=end,
            piece_days=TRAINING_PIECE_DAYS,
            **options,
        )
        values = features_matrix(features)
        del features
    else:
        # A moment at or before the first with enough history: the window is judged at ``end``.
        first = first_scored_moment(span[0], end, min_history) or end
        kept = kept if kept is not None else KeptWeeks()
        parts = []
        for a, b in weeks_of(train_start, end):
            key = (a, b, training_usual_until(a, first), config)
            week = kept.get(key)
            if week is None:
                features = compute_features(engine, a, b, baseline_end=key[2], **options)
                week = kept.keep(key, features)
            parts.append(week)
        values = np.concatenate(parts) if parts else np.empty((0, len(FEATURES)), KEPT_DTYPE)
    if len(values) < 10:
        raise UnusableInputError(
            f"only {len(values)} point-hours between {start.isoformat()} and {end.isoformat()}: "
            "too few to train on"
        )
    rows = training_sample(len(values))
    sample = pd.DataFrame(values if rows is None else values[rows], columns=list(FEATURES))
    detector = detector or LeakageDetector()
    detector.fit(sample)
    return save_model(engine, models_dir, detector, config, trained_from=start, trained_to=end)
