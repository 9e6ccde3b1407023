"""``compute_features``: the steps of the feature computation, in order.

Load the registry and peer groups; find the baseline window (from the cache when it is there);
build the grid over the baseline and the range; learn the usual levels; put them on the hours in
view; add the hour and day features; add the transaction-level signals a slice of transactions
at a time; turn the signals into the model's features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from pipeline.detection.features.baseline import (
    HISTORY_COLUMNS,
    baseline_window,
    slot_usuals,
    usual_window,
)
from pipeline.detection.features.baseline_cache import baseline_path, read_baseline, write_baseline
from pipeline.detection.features.baseline_shift import tail_drops
from pipeline.detection.features.config import (
    CAP,
    FEATURES,
    SCALE_DEFAULTS,
    SLOT_COLUMNS,
    FeatureConfig,
)
from pipeline.detection.features.day_signals import DAY_LEAD, day_signals
from pipeline.detection.features.grid import (
    context_grid,
    hour_floor_utc,
    local_labels,
    window_mask,
)
from pipeline.detection.features.hour_signals import damp_of, pattern_signals, volume_signals
from pipeline.detection.features.loading import (
    StoredWeeks,
    confirmed_windows,
    data_span,
    load_operator_sales,
    load_points,
    load_transactions,
    operator_usuals,
)
from pipeline.detection.features.operator_signals import (
    CASH_SHORT_COLUMNS,
    CASH_SHORT_LEAD_DAYS,
    operator_cash_shortfall,
    operator_cash_shortfall_after,
    operator_sales,
    shift_days,
)
from pipeline.detection.features.peers import peer_groups, peer_keys
from pipeline.detection.features.shift_cache import (
    points_today,
    read_shift_days,
    shift_days_path,
    write_shift_days,
)
from pipeline.detection.features.transaction_signals import transaction_signals
from pipeline.reference.calendar import Calendar

# What the operators' cash shortfall reads of each hour in view.
SHORTFALL_HOUR_COLUMNS = [
    "point_id",
    "hour_start",
    "local_date",
    "is_open",
    "cash_amount",
    "expected_rev",
    "usual_cash",
    "point_ticket",
    "s_rev",
    "phi_day",
]
# Each slice also reads this much before it: the operators' earlier working days (and one more
# day, so the first of them is complete in every timezone).
TRANSACTION_LEAD = pd.Timedelta(days=CASH_SHORT_LEAD_DAYS + 1)
# Of that lead, the last day is read whole (the signals of an operator's or payer's day read the
# hour's local day from its start); the days before it only as the operators' sales.
WHOLE_LEAD = pd.Timedelta(days=1)


@dataclass(frozen=True)
class _Readers:
    """Where a run's transactions come from: whole, and as the operators' sales only."""

    transactions: Callable[[datetime, datetime], pd.DataFrame]
    operator_sales: Callable[[datetime, datetime], pd.DataFrame]


@dataclass(frozen=True)
class _Baseline:
    """The usual levels a run judges its hours against."""

    slots: pd.DataFrame  # per (point, hour-of-week)
    scales: pd.DataFrame  # per point
    op_usual: pd.DataFrame  # per (point, operator)


# long: the run's steps in order (registry, usual levels, grid, then one go or pieces); the
# pieces' branch shares every name the one-go path sets up.
def compute_features(
    engine: Engine,
    start: datetime,
    end: datetime,
    *,
    config: FeatureConfig | None = None,
    calendar: Calendar | None = None,
    span: tuple[datetime, datetime] | None = None,
    cache_dir: Path | None = None,
    baseline_end: datetime | None = None,
    stored: StoredWeeks | None = None,
    piece_days: int | None = None,
) -> pd.DataFrame:
    """Features of every point-hour in [start, end) that was open or traded.

    ``baseline_end``: the usual levels are learnt from the weeks before it (point in time: every
    score passes the retrain moment its hours fall after); without it, the hindsight window of
    ``baseline_window`` (feature tests, ``backfill(hindsight=True)``).

    Columns: point_id, hour_start (UTC), the FEATURES, and the numbers the reasons quote (usual
    and recorded revenue, counts, ticket, cash share, void share, peer ratio, operators, ...).
    With ``cache_dir`` the usual levels of a baseline window are kept on disk (numpy .npz, no
    pickle), keyed by the window and a fingerprint of its data, so the hourly runs of a day read
    only the last few days of aggregates. ``stored``: hour aggregates and transactions read
    through it (a walk over many weeks reads each week once), else straight from the store.
    ``piece_days``: a longer range is computed about that many days at a time (whole
    transaction slices of 7 or 28 days; at least one), to bound memory.
    """
    config = config or FeatureConfig()
    calendar = calendar or Calendar()
    start_ts, end_ts = hour_floor_utc(start), hour_floor_utc(end)
    if end_ts <= start_ts:
        return pd.DataFrame(columns=["point_id", "hour_start", *FEATURES])
    pts = load_points(engine)
    if pts.empty:
        return pd.DataFrame(columns=["point_id", "hour_start", *FEATURES])
    pts["peer_group"] = peer_groups(pts, config.min_peers)
    span = span if span is not None else data_span(engine)
    window = (
        usual_window(span, baseline_end, config.baseline_weeks)
        if baseline_end is not None
        else baseline_window(span, end_ts.to_pydatetime(), config.baseline_weeks)
    )
    cache_path = baseline_path(engine, Path(cache_dir), *window, config) if cache_dir else None
    cached = read_baseline(cache_path, pts) if cache_path is not None else None
    # Days before the range so that every scored hour's complete days (the day horizons and the
    # level-shift CUSUM) are in view.
    range_begin = start_ts - DAY_LEAD
    if cached is None:
        load_begin = min(hour_floor_utc(window[0]), range_begin)
        load_end = max(hour_floor_utc(window[1]), end_ts)
    else:
        load_begin, load_end = range_begin, end_ts
    grid = context_grid(
        engine,
        pts,
        load_begin,
        load_end,
        calendar,
        undecided_until=start_ts,
        opened_before=window[1],
        stored=stored,
    )
    if cached is None:
        baseline = _learn_baseline(engine, grid, pts, window, config, cache_path, stored)
    else:
        baseline = _Baseline(*cached)
    if stored is not None:  # the operators' sales from the weeks it holds anyway
        read = _Readers(stored.transactions, lambda a, b: operator_sales(stored.transactions(a, b)))
    else:
        read = _Readers(partial(load_transactions, engine), partial(load_operator_sales, engine))
    # Pieces of whole transaction slices: the same slices as in one go.
    slice_days = _slice_days(pts)
    piece = pd.Timedelta(days=max((piece_days or 0) // slice_days, 1) * slice_days)
    if piece_days is None or end_ts - start_ts <= piece:
        return _finish(
            _features_of(grid, pts, baseline, config, read, start_ts, end_ts, cache_path)
        )
    # In pieces, each with the days before it in view: the features of an hour read only its
    # own days and the ones before (the hourly runs and a backfill agree on them), so the same
    # numbers, with one piece's day tables in memory at a time (a model's eight weeks of 1,000
    # points took several GB at once).
    del grid
    parts = []
    for a, b in _slices(start_ts, end_ts, piece):
        piece_grid = context_grid(
            engine,
            pts,
            a - DAY_LEAD,
            b,
            calendar,
            undecided_until=start_ts,  # the range's, as the whole range's grid has them
            opened_before=window[1],
            stored=stored,
        )
        parts.append(_features_of(piece_grid, pts, baseline, config, read, a, b))
        del piece_grid
    return _finish(pd.concat(parts, ignore_index=True))


def _features_of(
    grid: pd.DataFrame,
    pts: pd.DataFrame,
    baseline: _Baseline,
    config: FeatureConfig,
    read: _Readers,
    start: pd.Timestamp,
    end: pd.Timestamp,
    cache_path: Path | None = None,
) -> pd.DataFrame:
    """The features of [start, end) (not yet ``_finish``-ed) from a grid holding its hours and
    the ``DAY_LEAD`` before them (the operators' complete days kept beside the baseline at
    ``cache_path``, when given and [start, end) is one transaction slice)."""
    # Rows the features are needed for: the range plus the days before it (the day horizons).
    frame = _with_usual_levels(grid, pts, baseline, start - DAY_LEAD, end, config)
    # The days before the range need only the volume side (expected revenue and sales, silence:
    # the day horizons and the operators' cash read them); the ticket, cash-share and void
    # features only on the scored hours (an hourly run's lead is 15 of its 16 days).
    frame = volume_signals(frame, damp_of(frame, config), keys=peer_keys(frame))
    frame = day_signals(frame, baseline.slots, baseline.scales, config, scored_from=start)
    scored = pattern_signals(_scored_hours(frame, start), config)
    slices = list(_slices(start, end, pd.Timedelta(days=_slice_days(pts))))
    if cache_path is not None and len(slices) == 1:
        signals = _transaction_signals_cached(
            read, frame, pts, baseline, config, start, end, cache_path
        )
    else:
        signals = _transaction_signals_by_slice(read, frame, pts, baseline, config, start, end)
    scored = scored.merge(signals, on=["point_id", "hour_start"], how="left")
    return _transaction_features(scored, config)


def _learn_baseline(
    engine: Engine,
    grid: pd.DataFrame,
    pts: pd.DataFrame,
    window: tuple[datetime, datetime],
    config: FeatureConfig,
    cache_path: Path | None,
    stored: StoredWeeks | None = None,
) -> _Baseline:
    """Usual levels from the grid's baseline hours and the operators' usual shares from SQL
    (through ``stored`` when given: once per window); kept at ``cache_path`` when there is one."""
    base_begin, base_end = window
    in_base = (grid["hour_start"] >= base_begin) & (grid["hour_start"] < base_end)
    # A point's hours before its first recorded sale are not "usual zero": it was not there yet.
    active = grid["txn_count"] + grid["void_count"] + grid["refund_count"] > 0
    first_seen = grid["hour_start"][active].groupby(grid["pos"][active]).min()
    started = grid["hour_start"] >= grid["pos"].map(first_seen)
    usual = in_base & started & ~grid["suppressed"] & grid["holiday"].isna()
    tail = _in_tail_drop(grid, usual)
    if tail.any():  # an auditor's dismissal puts a tail's hours back: their decision wins
        dismissed = confirmed_windows(engine, base_begin, base_end, status="false_alarm")
        tail = tail & ~window_mask(grid, pts, dismissed, "start_at", "end_at")
    usual &= ~tail
    # Only the columns the usual levels read: copying every column of the grid's baseline
    # hours, twice, was most of this step's own time.
    history = grid.loc[usual, list(HISTORY_COLUMNS)]
    if stored is not None:  # a walk: learnt once per window
        slots, scales = stored.learnt.slot_usuals(history, pts, config)
        op_usual = stored.operator_usuals(base_begin, base_end)
    else:
        slots, scales = slot_usuals(history, pts, config)
        op_usual = operator_usuals(engine, base_begin, base_end)
    del history
    if cache_path is not None:
        write_baseline(cache_path, pts, slots, scales, op_usual)
    return _Baseline(slots, scales, op_usual)


def _in_tail_drop(grid: pd.DataFrame, usual: pd.Series) -> np.ndarray:
    """The grid's rows on a point's baseline days from a drop still under way at the
    baseline's end (``baseline_shift``): not usual either (unless an auditor dismissed a case
    over them: the caller)."""
    hours = grid.loc[usual, ["pos", "local_date", "txn_count", "revenue_type"]]
    days = hours.groupby(["pos", "local_date"], as_index=False).agg(
        cnt=("txn_count", "sum"),
        hours=("txn_count", "size"),
        revenue_type=("revenue_type", "first"),
    )
    tail_from = tail_drops(days[days["hours"] == 24])
    if tail_from.empty:
        return np.zeros(len(grid), dtype=bool)
    since = grid["pos"].map(tail_from)
    return (since.notna() & (grid["local_date"] >= since)).to_numpy()


def _with_usual_levels(
    grid: pd.DataFrame,
    pts: pd.DataFrame,
    baseline: _Baseline,
    begin: pd.Timestamp,
    end: pd.Timestamp,
    config: FeatureConfig,
) -> pd.DataFrame:
    """The grid's hours in [begin, end) with their slot's usual levels and the point's scales."""
    frame = grid[(grid["hour_start"] >= begin) & (grid["hour_start"] < end)]
    frame = frame.merge(
        baseline.slots[list(SLOT_COLUMNS)],
        on=["pos", "how"],
        how="left",
    )
    frame = frame.join(baseline.scales, on="pos")
    frame = frame.fillna(SCALE_DEFAULTS)
    for column in ("usual_rev", "usual_cnt"):
        frame[column] = frame[column].fillna(0.0)
    frame["cold"] = frame["cold"].fillna(False).astype(bool) | (
        frame["history_days"] < config.cold_days
    )
    frame["point_id"] = pts["point_id"].to_numpy()[frame["pos"].to_numpy()]
    frame["timezone"] = pts["timezone"].to_numpy()[frame["pos"].to_numpy()]
    return frame


def _scored_hours(frame: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    """The hours of the range that get a row: open, or with any transaction."""
    all_n = frame["txn_count"] + frame["void_count"] + frame["refund_count"]
    return frame[(frame["hour_start"] >= start) & (frame["is_open"] | (all_n > 0))].copy()


def _transaction_signals_by_slice(
    read: _Readers,
    frame: pd.DataFrame,
    pts: pd.DataFrame,
    baseline: _Baseline,
    config: FeatureConfig,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> pd.DataFrame:
    """The transaction-level signals of [start, end), a slice of transactions at a time: that
    bounds memory on long ranges; each slice also reads the days before it (the operators'
    earlier working days, only their sales but for the last day: ``WHOLE_LEAD``)."""
    hours = frame[SHORTFALL_HOUR_COLUMNS].assign(local_hour=frame["how"] % 24)
    slice_days = _slice_days(pts)
    lead = TRANSACTION_LEAD
    parts = []
    carried = None  # the previous slice's last days (its operators' sales, its last whole day)
    for a, b in _slices(start, end, pd.Timedelta(days=slice_days)):
        if carried is None:
            earlier_sales = read.operator_sales(
                (a - lead).to_pydatetime(), (a - WHOLE_LEAD).to_pydatetime()
            )
            txns = read.transactions((a - WHOLE_LEAD).to_pydatetime(), b.to_pydatetime())
        else:
            earlier_sales, last_day = carried
            fresh = read.transactions(a.to_pydatetime(), b.to_pydatetime())
            txns = pd.concat([last_day, fresh], ignore_index=True)
        sales = pd.concat([earlier_sales, operator_sales(txns)], ignore_index=True)
        carried = (
            sales[(sales["occurred_at"] >= b - lead) & (sales["occurred_at"] < b - WHOLE_LEAD)],
            txns[txns["occurred_at"] >= b - WHOLE_LEAD],
        )
        part = _signals_so_far(txns, pts, baseline, config, a, b)
        if not part.empty:
            shift = operator_cash_shortfall(
                sales, hours[(hours["hour_start"] >= a - lead) & (hours["hour_start"] < b)]
            )
            part = part.merge(shift, on=["point_id", "hour_start"], how="outer")
            part = part[(part["hour_start"] >= a) & (part["hour_start"] < b)]
        parts.append(part)
    return _typed_signals(
        pd.concat(parts, ignore_index=True) if parts else None, frame, pts, baseline, config
    )


def _typed_signals(
    signals: pd.DataFrame | None,
    frame: pd.DataFrame,
    pts: pd.DataFrame,
    baseline: _Baseline,
    config: FeatureConfig,
) -> pd.DataFrame:
    """The slices' signals with every column, typed (an empty frame when there are none)."""
    if signals is None:
        signals = transaction_signals(
            pd.DataFrame(), pts, baseline.scales, baseline.op_usual, config
        )
    for column in CASH_SHORT_COLUMNS:
        if column not in signals:
            signals[column] = np.nan
    # An empty signal frame (no transactions in the range) has untyped columns.
    signals["hour_start"] = pd.to_datetime(signals["hour_start"], utc=True)
    signals["point_id"] = signals["point_id"].astype(frame["point_id"].dtype)
    return signals


def _transaction_signals_cached(
    read: _Readers,
    frame: pd.DataFrame,
    pts: pd.DataFrame,
    baseline: _Baseline,
    config: FeatureConfig,
    start: pd.Timestamp,
    end: pd.Timestamp,
    cache_path: Path,
) -> pd.DataFrame:
    """``_transaction_signals_by_slice`` of one slice, the operators' complete days before it
    from the shift cache beside the baseline at ``cache_path`` (figured from the store and kept
    there when it has none for those days and their data): the hourly runs of a day read only
    the last day of transactions."""
    hours = frame[SHORTFALL_HOUR_COLUMNS].assign(local_hour=frame["how"] % 24)
    today, row_today = points_today(frame, start)
    path = shift_days_path(cache_path, frame, today, row_today)
    txns = read.transactions((start - WHOLE_LEAD).to_pydatetime(), end.to_pydatetime())
    on_today = hours[(frame["local_date"].to_numpy() >= row_today) & (frame["hour_start"] < end)]
    days = read_shift_days(path, on_today)
    if days is None:
        hours = hours[
            (hours["hour_start"] >= start - TRANSACTION_LEAD) & (hours["hour_start"] < end)
        ]
        earlier_sales = read.operator_sales(
            (start - TRANSACTION_LEAD).to_pydatetime(), (start - WHOLE_LEAD).to_pydatetime()
        )
        sales = pd.concat([earlier_sales, operator_sales(txns)], ignore_index=True)
        days = shift_days(sales, hours, today)
        write_shift_days(path, days)
    part = _signals_so_far(txns, pts, baseline, config, start, end)
    if not part.empty:
        shift = operator_cash_shortfall_after(days, txns, on_today)
        part = part.merge(shift, on=["point_id", "hour_start"], how="outer")
        part = part[(part["hour_start"] >= start) & (part["hour_start"] < end)]
    return _typed_signals(part, frame, pts, baseline, config)


def _slice_days(pts: pd.DataFrame) -> int:
    # Small registries read a month of transactions at once (fewer passes), big ones a week.
    return 28 if len(pts) <= 100 else 7


def _signals_so_far(
    txns: pd.DataFrame,
    pts: pd.DataFrame,
    baseline: _Baseline,
    config: FeatureConfig,
    begin: pd.Timestamp,
    end: pd.Timestamp,
) -> pd.DataFrame:
    """``transaction_signals`` of the hours in [begin, end), each as of its own end (the
    signals that read an operator's or payer's day read it up to the hour, so an hour scored
    alone and the same hour in a backfill agree)."""
    if txns.empty:
        return transaction_signals(pd.DataFrame(), pts, baseline.scales, baseline.op_usual, config)
    hour_start = txns["occurred_at"].dt.floor("h")
    # The day signals read only the hour's own local day: the lead days are not needed here.
    in_days = txns[hour_start >= begin - pd.Timedelta(days=1)]
    signals = transaction_signals(in_days, pts, baseline.scales, baseline.op_usual, config)
    scored = (signals["hour_start"] >= begin) & (signals["hour_start"] < end)
    return signals[scored].reset_index(drop=True)


def _slices(begin: pd.Timestamp, end: pd.Timestamp, size: pd.Timedelta):
    cursor = begin
    while cursor < end:
        yield cursor, min(cursor + size, end)
        cursor += size


def _transaction_features(scored: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    """The model's transaction-level features from the merged signals (0 where none)."""
    tiny = scored["tiny_n"].fillna(0)
    expected_tiny = 0.05 * scored["txn_count"] + 1
    scored["tiny_excess"] = np.clip((tiny - expected_tiny) / np.sqrt(expected_tiny), 0, CAP)
    scored["payer_repeat"] = scored["payer_top"].fillna(0).astype(float).clip(0, CAP)
    scored["op_cash_drop"] = scored["op_cash_z"].fillna(0).astype(float)
    scored["op_cash_short"] = scored["op_short_z"].fillna(0).astype(float) * damp_of(scored, config)
    # Sale counts from the transactions beat amount shares for cash (skimming drops whole sales).
    scored["cash_drop"] = scored["cash_count_z"].fillna(0).astype(float)
    scored["op_void_excess"] = scored["op_void_z"].fillna(0).astype(float)
    scored["void_shift_end"] = scored["shift_end_z"].fillna(0).astype(float)
    scored["cash_refund_noncash"] = scored["cash_refund_z"].fillna(0).astype(float)
    return scored


def _finish(scored: pd.DataFrame) -> pd.DataFrame:
    """Every feature a float, the local hour-of-week label, one row per point-hour in order."""
    for name in FEATURES:
        scored[name] = scored[name].astype(float).fillna(0.0)
    scored["local_time"] = local_labels(scored)
    return (
        scored.drop(columns=["pos"]).sort_values(["point_id", "hour_start"]).reset_index(drop=True)
    )
