"""Backtest: what a stored model would have flagged over a past range. Usual levels are point in
time, week by week as live; suppressions apply as they would live; nothing is written."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from pipeline.casework.cases import cases_from_flags, drop_suppressed, registry
from pipeline.detection.backfill import flag_hours
from pipeline.detection.features import compute_features, data_span
from pipeline.detection.model_store import load_model
from pipeline.detection.rhythm import checked_range, last_moment, weeks_of
from pipeline.reference.calendar import Calendar


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
    Usual levels point in time, week by week as live; suppressions apply as they would live;
    nothing is written. Weeks before any data are left out. (A model trained on weeks inside
    the range judges them in sample: ``backtest_overlap`` says how much.)"""
    start, end = checked_range(start, end)
    model = load_model(engine, models_dir, version)
    span = data_span(engine)
    frames = []
    for a, b in weeks_of(start, end):
        usual_until = last_moment(a)
        if span is None or usual_until <= span[0]:
            continue
        features = compute_features(
            engine,
            a,
            b,
            config=model.config,
            calendar=calendar,
            span=span,
            baseline_end=usual_until,
        )
        frames.append(drop_suppressed(engine, flag_hours(features, model.detector), a, b))
    flags = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return flags, cases_from_flags(flags, registry(engine))


def backtest_overlap(
    engine: Engine, models_dir: Path, version: str, start: datetime, end: datetime
) -> timedelta:
    """How much of [start, end) model ``version`` was trained on (zero: fully out of sample)."""
    meta = load_model(engine, models_dir, version).meta
    lo = max(pd.Timestamp(start), pd.Timestamp(meta["trained_from"]))
    hi = min(pd.Timestamp(end), pd.Timestamp(meta["trained_to"]))
    return max(timedelta(0), (hi - lo).to_pytimedelta())
