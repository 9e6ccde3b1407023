"""Point-hour features for leakage detection, relative to each point's own seasonality and peers.

For every point and every hour it should be trading (its registry open hours, in its own timezone)
or did trade, the features say how far the hour sits from the point's *usual* for that hour of the
week (robust medians over a baseline window that leaves out holidays, closures and confirmed
leakage), after taking out what the point's peers (same revenue type, same district when there are
enough of them) did in the same hour: a holiday or a regency-wide rain dip moves every peer
together and so cancels out. Every feature is one-sided ("how much worse than usual", in
noise-scaled units) because only losses matter: a busy day is not leakage.

Hours with no transactions do not exist in ``hour_aggregates``; the full point x hour grid is
built here so a silent device shows up as an hour with zero sales where sales were usual.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer
from scipy import special, stats
from sqlalchemy import Engine, String, and_, case, func, select, type_coerce

from pipeline.intake.aggregate import AGGREGATE_COLUMNS as AGG_COLUMNS
from pipeline.reference.calendar import Calendar
from pipeline.reference.points import open_hours_matrix
from pipeline.reference.suppressions import suppression_windows
from pipeline.store.schema import (
    cases,
    hour_aggregates,
    points,
    suppressions,
    transactions,
    transactions_between,
)

# The model's inputs: each is "how many noise units worse than usual", >= 0.
FEATURES = (
    "rev_drop",  # revenue below usual x peers
    "count_drop",  # fewer transactions than usual x peers
    "ticket_drop",  # average ticket below usual (counts may be normal)
    "cash_drop",  # cash share below usual
    "void_excess",  # void+refund share above usual
    "op_cash_drop",  # one operator's cash share below that operator's own usual (hour or day)
    "op_void_excess",  # one operator's void share above that operator's own usual (hour or day)
    "op_cash_short",  # cash recorded in one operator's hours short of what they usually bring
    "void_shift_end",  # one operator's voids/refunds crowded into the end of their day's shift
    "cash_refund_noncash",  # cash refunds of amounts that were paid by QRIS/card that day
    "tiny_excess",  # more tiny tickets than plausible
    "burst",  # many more transactions than usual while the ticket falls
    "payer_repeat",  # one payer paying the point again and again
    "day_drop",  # the day's (3, 7 days') revenue below usual x peers (slow under-reporting)
    "ticket_day_drop",  # the day's (3, 7 days') average ticket below usual (ticket shaving)
    "silence",  # a run of open hours without a single sale where sales were expected
)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CAP = 30.0
SCALE_DEFAULTS = {
    "s_cnt": 1.5,
    "s_rev": 2.0,
    "c_ticket": 0.5,
    "s_cash": 1.5,
    "usual_void": 0.02,
    "history_days": 0,
    "phi_day": 0.15,
}
SLOT_COLUMNS = (
    "pos",
    "how",
    "usual_rev",
    "usual_cnt",
    "usual_ticket",
    "usual_cash",
    "samples",
    "cold",
)
SHRINK_SALES = 30.0  # pseudo-sales of the point's overall ticket/cash share added to each slot


@dataclass(frozen=True)
class FeatureConfig:
    """Knobs of the feature computation (kept with each model)."""

    baseline_weeks: int = 8
    min_slot_samples: int = 3  # fewer samples of an hour-of-week: fall back to peers (cold start)
    min_peers: int = 4  # points needed in type+district to use it as the peer group
    tiny_fraction: float = 0.25  # a ticket under this share of the point's usual ticket is "tiny"
    holiday_damping: float = 0.6  # volume evidence is multiplied by this on holidays/events
    cold_days: int = 14  # fewer days of history: the point is "new" and says so


# ----------------------------------------------------------------------------------------------
# Loading


def _utc(values) -> pd.Series:
    """Times read with type_coerce(…, String): SQLite gives naive UTC strings, PostgreSQL aware datetimes."""
    return pd.to_datetime(pd.Series(values), utc=True, format="mixed")


def _read_frame(engine: Engine, query, columns: list[str]) -> pd.DataFrame:
    """The rows of ``query`` as a frame, fetched in one call and built column by column: pandas
    inferring each column from row tuples (PostgreSQL's datetime objects especially) and a
    fetch per row took longer than the query."""
    with engine.connect() as connection:
        rows = connection.execute(query).fetchall()
    if not rows:
        return pd.DataFrame([], columns=columns)
    return pd.DataFrame(
        dict(zip(columns, map(list, zip(*rows, strict=True)), strict=True)), columns=columns
    )


def load_points(engine: Engine) -> pd.DataFrame:
    """The registry as a frame with each point's open local hours and its peer group."""
    with engine.connect() as connection:
        rows = [r._asdict() for r in connection.execute(select(points).order_by(points.c.point_id))]
    frame = pd.DataFrame(rows, columns=[c.name for c in points.columns])
    frame["timezone"] = frame["timezone"].fillna("Asia/Jakarta").replace("", "Asia/Jakarta")
    return frame.reset_index(drop=True)


def load_hour_aggregates(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """hour_aggregates rows in [start, end)."""
    columns = [
        hour_aggregates.c.point_id,
        type_coerce(hour_aggregates.c.hour_start, String).label("hour_start"),
    ]
    columns += [hour_aggregates.c[name] for name in AGG_COLUMNS]
    query = select(*columns).where(
        and_(hour_aggregates.c.hour_start >= start, hour_aggregates.c.hour_start < end)
    )
    frame = _read_frame(engine, query, ["point_id", "hour_start", *AGG_COLUMNS])
    frame["hour_start"] = _utc(frame["hour_start"])
    return frame


def load_transactions(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """The transactions of [start, end), only the columns detection reads."""
    t = transactions.c
    query = select(
        t.point_id,
        type_coerce(t.occurred_at, String).label("occurred_at"),
        t.amount,
        t.payment_method,
        t.status,
        t.operator_id,
        t.payer_ref,
    ).where(transactions_between(start, end))
    frame = _read_frame(
        engine,
        query,
        [
            "point_id",
            "occurred_at",
            "amount",
            "payment_method",
            "status",
            "operator_id",
            "payer_ref",
        ],
    )
    frame["occurred_at"] = _utc(frame["occurred_at"])
    frame["amount"] = frame["amount"].astype("int64")
    return frame


def operator_usuals(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Each (point, operator)'s cash share (of amounts and of sales) and void+refund share over
    [start, end), in SQL; operator None collects sales without an operator."""
    t = transactions.c
    paid = t.status == "paid"
    query = (
        select(
            t.point_id,
            t.operator_id,
            func.sum(case((paid, 1), else_=0)).label("paid_n"),
            func.sum(case((paid, t.amount), else_=0)).label("paid_rp"),
            func.sum(case((and_(paid, t.payment_method == "cash"), t.amount), else_=0)).label(
                "cash_rp"
            ),
            func.sum(case((paid, 0), else_=1)).label("void_n"),
            func.sum(case((and_(paid, t.payment_method == "cash"), 1), else_=0)).label("cash_n"),
            func.sum(
                case((and_(t.status == "refund", t.payment_method == "cash"), 1), else_=0)
            ).label("cash_refund_n"),
        )
        .where(transactions_between(start, end))
        .group_by(t.point_id, t.operator_id)
    )
    frame = _read_frame(
        engine,
        query,
        [
            "point_id",
            "operator_id",
            "paid_n",
            "paid_rp",
            "cash_rp",
            "void_n",
            "cash_n",
            "cash_refund_n",
        ],
    )
    for column in ("paid_n", "paid_rp", "cash_rp", "void_n", "cash_n", "cash_refund_n"):
        frame[column] = pd.to_numeric(frame[column]).astype("float64")
    frame["op_usual_cash"] = frame["cash_rp"] / frame["paid_rp"].where(frame["paid_rp"] > 0)
    frame["op_usual_void"] = frame["void_n"] / (frame["paid_n"] + frame["void_n"]).where(
        lambda s: s > 0
    )
    frame["op_usual_cash_n"] = frame["cash_n"] / frame["paid_n"].where(frame["paid_n"] > 0)
    # Cash refunds per paid sale, shrunk towards one in a thousand: most operators have none.
    frame["op_usual_cash_refund"] = (frame["cash_refund_n"] + 0.5) / (frame["paid_n"] + 500.0)
    return frame[["point_id", "operator_id", *OP_USUAL_VALUES]]


OP_USUAL_VALUES = (
    "paid_n",
    "cash_n",
    "op_usual_cash",
    "op_usual_cash_n",
    "op_usual_void",
    "op_usual_cash_refund",
)


def confirmed_windows(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Confirmed leakage cases overlapping [start, end): kept out of the usual level."""
    query = select(cases.c.point_id, cases.c.start_at, cases.c.end_at).where(
        and_(cases.c.status == "confirmed", cases.c.start_at < end, cases.c.end_at > start)
    )
    with engine.connect() as connection:
        rows = [r._asdict() for r in connection.execute(query)]
    frame = pd.DataFrame(rows, columns=["point_id", "start_at", "end_at"])
    for column in ("start_at", "end_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def data_span(engine: Engine) -> tuple[datetime, datetime] | None:
    """First hour and end of the last hour with aggregates, or None when there are none."""
    # Two scalar subqueries, not min() and max() in one select: SQLite answers a lone min or max
    # from the hour_start index but scans the whole table for the pair.
    hour_start = hour_aggregates.c.hour_start
    with engine.connect() as connection:
        first, last = connection.execute(
            select(
                type_coerce(select(func.min(hour_start)).scalar_subquery(), String),
                type_coerce(select(func.max(hour_start)).scalar_subquery(), String),
            )
        ).one()
    if first is None:
        return None
    first, last = _utc([first, last])
    return first.to_pydatetime(), (last + pd.Timedelta(hours=1)).to_pydatetime()


def baseline_window(
    span: tuple[datetime, datetime] | None, end: datetime, weeks: int
) -> tuple[datetime, datetime]:
    """The window the usual level is learnt from: ``weeks`` ending at the UTC midnight at or before
    ``end`` (so every hourly run of a day shares one baseline, and today never judges itself),
    moved forward into later data when it would start before the first data, so the early history
    of a backfill still has a baseline."""
    length = timedelta(weeks=weeks)
    end = pd.Timestamp(end).tz_convert("UTC").floor("D").to_pydatetime()
    begin = end - length
    if span is not None and begin < span[0]:
        begin = span[0]
        end = max(end, min(span[0] + length, span[1]))
    return begin, end


# ----------------------------------------------------------------------------------------------
# The grid


def _floor_hour(moment: datetime) -> pd.Timestamp:
    return pd.Timestamp(moment).tz_convert("UTC").floor("h")


def build_grid(
    aggregates: pd.DataFrame, pts: pd.DataFrame, start: datetime, end: datetime
) -> pd.DataFrame:
    """Every point x every UTC hour of [start, end), with aggregates (zero where none), the point's
    local hour-of-week, local date and whether the registry says it is open."""
    hours = pd.date_range(_floor_hour(start), _floor_hour(end), freq="h", inclusive="left")
    n_points, n_hours = len(pts), len(hours)
    open_matrix = open_hours_matrix(pts["open_hours"])
    is_open = np.zeros((n_points, n_hours), dtype=bool)
    how = np.zeros((n_points, n_hours), dtype=np.int16)
    local_date = np.zeros((n_points, n_hours), dtype="datetime64[D]")
    for tz, index in pts.groupby("timezone").indices.items():
        local = hours.tz_convert(tz)
        local_hour = local.hour.to_numpy()
        is_open[index] = open_matrix[index][:, local_hour]
        how[index] = local.dayofweek.to_numpy() * 24 + local_hour
        local_date[index] = local.tz_localize(None).normalize().to_numpy().astype("datetime64[D]")
    grid = pd.DataFrame(
        {
            "pos": np.repeat(np.arange(n_points, dtype=np.int32), n_hours),
            "hour_start": np.tile(hours.to_numpy(), n_points),
            "is_open": is_open.ravel(),
            "how": how.ravel(),
            "local_date": local_date.ravel(),
        }
    )
    grid["hour_start"] = (
        grid["hour_start"].dt.tz_localize("UTC")
        if grid["hour_start"].dt.tz is None
        else grid["hour_start"]
    )
    values = {name: np.zeros(n_points * n_hours, dtype=np.float64) for name in AGG_COLUMNS}
    if not aggregates.empty and n_hours:
        position = pd.Series(np.arange(n_points), index=pts["point_id"])
        point_pos = aggregates["point_id"].map(position)
        hour_pos = (aggregates["hour_start"] - hours[0]) // pd.Timedelta(hours=1)
        keep = point_pos.notna() & (hour_pos >= 0) & (hour_pos < n_hours)
        flat = (
            point_pos[keep].astype(np.int64) * n_hours + hour_pos[keep].astype(np.int64)
        ).to_numpy()
        for name in AGG_COLUMNS:
            values[name][flat] = aggregates.loc[keep, name].to_numpy(dtype=np.float64)
    for name in AGG_COLUMNS:
        grid[name] = values[name]
    return grid


def _window_mask(
    grid: pd.DataFrame, pts: pd.DataFrame, windows: pd.DataFrame, begin: str, finish: str
) -> np.ndarray:
    """Rows of ``grid`` whose hour overlaps one of ``windows`` (point_id, begin, finish) of their point."""
    mask = np.zeros(len(grid), dtype=bool)
    if windows.empty:
        return mask
    position = dict(zip(pts["point_id"], range(len(pts)), strict=True))
    hour_end = grid["hour_start"] + pd.Timedelta(hours=1)
    for window in windows.itertuples(index=False):
        pos = position.get(window.point_id)
        if pos is None:
            continue
        mask |= (
            (grid["pos"].to_numpy() == pos)
            & (grid["hour_start"] < getattr(window, finish)).to_numpy()
            & (hour_end > getattr(window, begin)).to_numpy()
        )
    return mask


# ----------------------------------------------------------------------------------------------
# Usual levels


def binomial_excess(successes, trials, rate) -> np.ndarray:
    """How surprising ``successes`` out of ``trials`` is at ``rate``, as a one-sided z (>= 0):
    the binomial upper tail turned into normal units (the normal approximation overstates rare
    counts such as three voids in twenty sales)."""
    k = np.asarray(successes, dtype=float)
    n = np.maximum(np.asarray(trials, dtype=float), k)
    p = np.clip(np.asarray(rate, dtype=float) * 1.25, 0.01, 0.9)
    tail = stats.binom.sf(k - 1, n, p)
    return np.clip(np.nan_to_num(stats.norm.isf(np.clip(tail, 1e-300, 1.0)), nan=0.0), 0, CAP)


def poisson_shortfall(observed, expected, dispersion) -> np.ndarray:
    """One-sided z of seeing ``observed`` or less where ``expected`` was usual: the Poisson lower
    tail (variance inflated by ``dispersion``^2), continuous in ``observed`` through the
    regularised gamma function, turned into normal units (>= 0)."""
    d2 = np.asarray(dispersion, dtype=float) ** 2
    k = np.asarray(observed, dtype=float) / d2
    mu = np.asarray(expected, dtype=float) / d2
    with np.errstate(invalid="ignore", divide="ignore"):
        tail = special.gammaincc(k + 1, np.maximum(mu, 0))
        z = stats.norm.isf(np.clip(tail, 1e-300, 1.0))
    return np.clip(np.where(mu > 0, np.nan_to_num(z, nan=0.0), 0.0), 0, CAP)


def poisson_surplus(observed, expected, dispersion) -> np.ndarray:
    """One-sided z of seeing ``observed`` or more where ``expected`` was usual (>= 0)."""
    d2 = np.asarray(dispersion, dtype=float) ** 2
    k = np.asarray(observed, dtype=float) / d2
    mu = np.asarray(expected, dtype=float) / d2
    with np.errstate(invalid="ignore", divide="ignore"):
        tail = special.gammainc(np.maximum(k, 1e-9), np.maximum(mu, 0))
        z = stats.norm.isf(np.clip(tail, 1e-300, 1.0))
    return np.clip(np.where((mu > 0) & (k > 0), np.nan_to_num(z, nan=0.0), 0.0), 0, CAP)


def _silence(frame: pd.DataFrame, expected_open: pd.Series) -> np.ndarray:
    """For each open hour without a single transaction, how unlikely its whole silent run is:
    consecutive silent open hours of one point pool their expected sales (a device switched off
    for five busy hours is far less likely than one quiet hour)."""
    silent = (frame["txn_count"] == 0) & (frame["void_count"] + frame["refund_count"] == 0)
    rows = frame.loc[frame["is_open"], ["pos", "hour_start", "expected_cnt", "s_cnt"]].copy()
    rows["silent"] = silent[frame["is_open"]] & expected_open[frame["is_open"]]
    rows = rows.sort_values(["pos", "hour_start"])
    boundary = (rows["silent"] != rows["silent"].shift()) | (rows["pos"] != rows["pos"].shift())
    rows["run"] = boundary.cumsum()
    pooled = rows.groupby("run")["expected_cnt"].transform("sum")
    z = poisson_shortfall(np.zeros(len(rows)), pooled, rows["s_cnt"])
    out = pd.Series(0.0, index=frame.index)
    out.loc[rows.index] = np.where(rows["silent"], z, 0.0)
    return out.to_numpy()


def binomial_shortfall(
    successes, trials, rate, *, slack: float = 0.03, min_trials: int = 5
) -> np.ndarray:
    """How surprising so few ``successes`` out of ``trials`` are at ``rate`` (less ``slack``, for
    day-to-day drift of a payment mix), as a one-sided z (>= 0); needs ``min_trials``."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    p = np.clip(np.asarray(rate, dtype=float) - slack, 0.01, 0.99)
    with np.errstate(invalid="ignore"):
        tail = stats.binom.cdf(k, n, p)
        z = stats.norm.isf(np.clip(tail, 1e-300, 1.0))
    ok = (n >= min_trials) & np.isfinite(p)
    return np.clip(np.where(ok, np.nan_to_num(z, nan=0.0), 0.0), 0, CAP)


def _trimmed_mean(grouped) -> pd.Series:
    """Mean without the group's minimum and maximum (median when fewer than five samples)."""
    total, low, high, n = grouped.sum(), grouped.min(), grouped.max(), grouped.count()
    trimmed = (total - low - high) / (n - 2).clip(lower=1)
    return trimmed.where(n >= 5, grouped.median())


def _mad_scale(
    values: pd.Series, by: pd.Series, floor: float, *, quantile: float = 0.75
) -> pd.Series:
    """A robust standard deviation per group, floored: the ``quantile`` of |value| divided by the
    same quantile of |N(0, 1)|. The upper quartile still sees part of a skewed tail (hourly
    tickets and cash shares are skewed) yet ignores up to a quarter of contaminated hours (the
    baseline may hold leakage itself)."""
    normal = {0.5: 0.6745, 0.75: 1.1503, 0.9: 1.6449}[quantile]
    return (values.abs().groupby(by).quantile(quantile) / normal).clip(lower=floor)


def slot_usuals(
    history: pd.DataFrame, pts: pd.DataFrame, config: FeatureConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Usual level per (point, hour-of-week) and per-point noise scales, from baseline rows.

    Slots with fewer than ``min_slot_samples`` samples borrow the median slot of the point's peers
    scaled to the point's own size (cold start).
    """
    rev = history["gross_paid"]
    cnt = history["txn_count"]
    work = pd.DataFrame(
        {
            "pos": history["pos"],
            "how": history["how"],
            "local_date": history["local_date"],
            "is_open": history["is_open"],
            "rev": rev,
            "cnt": cnt,
            "cash": history["cash_amount"],
            "ticket": rev / cnt.where(cnt > 0),
            "cash_share": history["cash_amount"] / rev.where(rev > 0),
        }
    )
    grouped = work.groupby(["pos", "how"])
    # A trimmed mean (without the lowest and highest week) rather than a median: for a small
    # point's skewed hourly counts the median sits well below the mean, and summing medians
    # would make every ordinary day look busy.
    slots = pd.DataFrame(
        {"usual_rev": _trimmed_mean(grouped["rev"]), "usual_cnt": _trimmed_mean(grouped["cnt"])}
    )
    slots["samples"] = grouped["rev"].size()
    # Ticket and cash share of a slot: its pooled sums shrunk towards the point's overall figure,
    # because a median of hourly shares from a handful of sales is mostly noise.
    sums = grouped[["rev", "cnt", "cash"]].sum()
    point_sums = work.groupby("pos")[["rev", "cnt", "cash"]].sum()
    point_ticket = point_sums["rev"] / point_sums["cnt"].where(point_sums["cnt"] > 0)
    point_cash = point_sums["cash"] / point_sums["rev"].where(point_sums["rev"] > 0)
    pos_index = sums.index.get_level_values("pos")
    prior_ticket = point_ticket.reindex(pos_index).to_numpy()
    prior_cash = point_cash.reindex(pos_index).to_numpy()
    prior_rev = SHRINK_SALES * prior_ticket
    slots["usual_ticket"] = (sums["rev"] + SHRINK_SALES * prior_ticket) / (
        sums["cnt"] + SHRINK_SALES
    )
    slots["usual_cash"] = (sums["cash"] + prior_rev * prior_cash) / (sums["rev"] + prior_rev)
    slots = slots.reset_index()
    slots["revenue_type"] = pts["revenue_type"].to_numpy()[slots["pos"].to_numpy()]

    # Peer slot (median over established points of the same type) and each point's size vs it.
    established = slots[slots["samples"] >= config.min_slot_samples]
    peer_slot = established.groupby(["revenue_type", "how"])[
        ["usual_rev", "usual_cnt", "usual_cash"]
    ].median()
    peer_slot.columns = ["peer_rev", "peer_cnt", "peer_cash"]
    slots = slots.merge(peer_slot, left_on=["revenue_type", "how"], right_index=True, how="left")
    work = work.merge(slots[["pos", "how", "peer_rev", "peer_cnt"]], on=["pos", "how"], how="left")
    size_rev = (
        (work["rev"] / work["peer_rev"].where(work["peer_rev"] > 0)).groupby(work["pos"]).median()
    )
    size_cnt = (
        (work["cnt"] / work["peer_cnt"].where(work["peer_cnt"] > 0)).groupby(work["pos"]).median()
    )
    cold = slots["samples"] < config.min_slot_samples
    k_rev = slots["pos"].map(size_rev).fillna(1.0)
    k_cnt = slots["pos"].map(size_cnt).fillna(1.0)
    slots["cold"] = cold & slots["peer_rev"].notna()
    slots.loc[slots["cold"], "usual_rev"] = (k_rev * slots["peer_rev"])[slots["cold"]]
    slots.loc[slots["cold"], "usual_cnt"] = (k_cnt * slots["peer_cnt"])[slots["cold"]]
    slots.loc[slots["cold"], "usual_ticket"] = (
        slots["usual_rev"] / slots["usual_cnt"].where(slots["usual_cnt"] > 0)
    )[slots["cold"]]
    slots["usual_cash"] = slots["usual_cash"].fillna(slots["peer_cash"])

    # Per-point fallbacks for slots that never traded, and robust noise scales.
    slots["usual_ticket"] = slots["usual_ticket"].fillna(slots["pos"].map(point_ticket))
    slots["usual_cash"] = slots["usual_cash"].fillna(slots["pos"].map(point_cash))

    merged = work.merge(
        slots[["pos", "how", "usual_rev", "usual_cnt", "usual_ticket", "usual_cash"]],
        on=["pos", "how"],
    )
    scales = pd.DataFrame(index=pd.RangeIndex(len(pts), name="pos"))
    # Residuals on variance-stabilised scales: a Poisson count has 2(sqrt(x) - sqrt(mu)) ~ N(0, 1);
    # revenue is counted in units of the usual ticket. The robust spread of these residuals over the
    # baseline is each point's over-dispersion (1 = pure Poisson noise).
    live = merged[merged["usual_cnt"] >= 1]
    unit = live["usual_ticket"].clip(lower=1)
    scales["s_cnt"] = _mad_scale(
        2 * (np.sqrt(live["cnt"]) - np.sqrt(live["usual_cnt"])), live["pos"], 1.0
    )
    scales["s_rev"] = _mad_scale(
        2 * (np.sqrt(live["rev"] / unit) - np.sqrt(live["usual_rev"] / unit)), live["pos"], 1.0
    )
    traded = merged[(merged["cnt"] >= 3) & merged["usual_ticket"].notna()]
    scales["c_ticket"] = _mad_scale(
        (traded["ticket"] / traded["usual_ticket"] - 1) * np.sqrt(traded["cnt"]),
        traded["pos"],
        0.05,
    )
    p = traded["usual_cash"].clip(0.02, 0.98)
    scales["s_cash"] = _mad_scale(
        (traded["cash_share"] - traded["usual_cash"]) / np.sqrt(p * (1 - p) / traded["cnt"]),
        traded["pos"],
        1.0,
    )
    scales = scales.fillna({"s_cnt": 1.5, "s_rev": 2.0, "c_ticket": 0.5, "s_cash": 1.5})
    void_n = history["void_count"] + history["refund_count"]
    totals = pd.DataFrame(
        {"pos": history["pos"], "void_n": void_n, "all_n": history["txn_count"] + void_n}
    )
    sums = totals.groupby("pos")[["void_n", "all_n"]].sum()
    scales["usual_void"] = (sums["void_n"] / sums["all_n"].where(sums["all_n"] > 0)).reindex(
        scales.index
    )
    scales["usual_void"] = scales["usual_void"].fillna(0.02)
    scales["point_ticket"] = point_ticket.reindex(scales.index)
    active_days = history.loc[history["txn_count"] > 0].groupby("pos")["local_date"].nunique()
    scales["history_days"] = active_days.reindex(scales.index).fillna(0).astype(int)
    # The usual whole day per weekday (complete local days only) and the day-to-day spread.
    days = work.groupby(["pos", "local_date"]).agg(
        rev=("rev", "sum"), cnt=("cnt", "sum"), hours=("rev", "size")
    )
    days = days[days["hours"] == 24].reset_index()
    days["weekday"] = pd.to_datetime(days["local_date"]).dt.dayofweek
    by_weekday = days.groupby(["pos", "weekday"])
    usual_day = pd.DataFrame(
        {"rev": _trimmed_mean(by_weekday["rev"]), "cnt": _trimmed_mean(by_weekday["cnt"])}
    )
    for weekday in range(7):
        for measure in ("rev", "cnt"):
            column = (
                usual_day[measure].xs(weekday, level="weekday")
                if len(usual_day)
                else pd.Series(dtype=float)
            )
            scales[f"day_{measure}_{weekday}"] = column.reindex(scales.index)
    expected = (
        usual_day["rev"].reindex(pd.MultiIndex.from_frame(days[["pos", "weekday"]])).to_numpy()
    )
    ok = expected > 0
    phi_day = _mad_scale(
        days.loc[ok, "rev"] / expected[ok] - 1, days.loc[ok, "pos"], 0.04, quantile=0.5
    )
    scales["phi_day"] = phi_day.reindex(scales.index).fillna(0.15)
    return slots, scales


# ----------------------------------------------------------------------------------------------
# Peers


def _peer_median(
    frame: pd.DataFrame, values: pd.Series, valid: pd.Series, min_count: int
) -> pd.Series:
    """Median of ``values`` over the row's peers in the same hour (district group, else type group,
    else all points); NaN when too few peers had a usual level."""
    result = pd.Series(np.nan, index=frame.index)
    masked = values.where(valid)
    # Grouped by one integer per (group, hour): the same groups as grouping by the text and
    # time columns, several times faster to hash.
    hour, hours = pd.factorize(frame["hour_start"])
    for key in ("peer_group", "revenue_type", None):
        if key is None:
            group = hour
        else:
            codes = pd.factorize(frame[key])[0].astype(np.int64)
            group = np.where(codes >= 0, codes * len(hours) + hour, -1)
        by = pd.Series(group, index=frame.index)
        grouped = masked.groupby(by.where(by >= 0) if (group < 0).any() else by)
        median = grouped.transform("median")
        count = grouped.transform("count")
        result = result.fillna(median.where(count >= min_count))
    return result


# ----------------------------------------------------------------------------------------------
# Transaction-level signals


def _transaction_signals(
    txns: pd.DataFrame,
    pts: pd.DataFrame,
    scales: pd.DataFrame,
    op_usual: pd.DataFrame,
    config: FeatureConfig,
) -> pd.DataFrame:
    """Per point-hour: tiny tickets, repeated payers, per-operator cash/void evidence, operators."""
    columns = [
        "point_id",
        "hour_start",
        "tiny_n",
        "payer_top",
        "payer_ref_top",
        "op_cash_z",
        "op_cash_id",
        "op_cash_share",
        "op_cash_usual",
        "op_void_z",
        "op_void_id",
        "op_void_share",
        "op_void_usual",
        "operators_active",
        "cash_count_z",
        "payer_hour_n",
        "payer_day_n",
        *SHIFT_END_COLUMNS,
        *CASH_REFUND_COLUMNS,
    ]
    if txns.empty:
        return pd.DataFrame(columns=columns)
    txns = txns.copy()
    txns["hour_start"] = txns["occurred_at"].dt.floor("h")
    tz_of = dict(zip(pts["point_id"], pts["timezone"], strict=True))
    txns["tz"] = txns["point_id"].map(tz_of).fillna("Asia/Jakarta")
    txns["local_date"] = pd.NaT
    local_dates = pd.Series(np.zeros(len(txns), dtype="datetime64[D]"), index=txns.index)
    for tz, index in txns.groupby("tz").indices.items():
        local = (
            txns["occurred_at"].iloc[index].dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
        )
        local_dates.iloc[index] = local.to_numpy().astype("datetime64[D]")
    txns["local_date"] = local_dates
    paid = txns["status"] == "paid"
    txns["paid"] = paid.astype(np.int64)
    txns["paid_rp"] = txns["amount"].where(paid, 0)
    txns["cash_rp"] = txns["amount"].where(paid & (txns["payment_method"] == "cash"), 0)
    txns["void"] = (~paid).astype(np.int64)
    ticket_of = dict(
        zip(pts["point_id"], scales["point_ticket"].reindex(range(len(pts))), strict=True)
    )
    limit = txns["point_id"].map(ticket_of) * config.tiny_fraction
    txns["tiny"] = (paid & (txns["amount"] < limit)).astype(np.int64)
    # Cash share counts ordinary sales only: a burst of tiny or repeated QRIS payments is its own
    # signal and must not read as missing cash.
    has_payer = paid & txns["payer_ref"].notna() & (txns["payer_ref"] != "")
    payer_hour_n = (
        txns[has_payer].groupby(["point_id", "hour_start", "payer_ref"])["paid"].transform("size")
    )
    repeated = pd.Series(False, index=txns.index)
    repeated.loc[payer_hour_n.index] = payer_hour_n >= 4
    ordinary = paid & (txns["tiny"] == 0) & ~repeated
    txns["sales_n"] = ordinary.astype(np.int64)
    txns["cash_n"] = (ordinary & (txns["payment_method"] == "cash")).astype(np.int64)
    keys = ["point_id", "hour_start"]
    out = txns.groupby(keys)["tiny"].sum().rename("tiny_n").to_frame()

    # Repeated payer: one payer account paying the point again and again within the hour (a
    # regular customer paying twice a day is normal, five QRIS payments in an hour are not).
    payers = txns[paid & txns["payer_ref"].notna() & (txns["payer_ref"] != "")]
    if not payers.empty:
        per_hour = payers.groupby([*keys, "payer_ref"]).size().rename("hour_n").reset_index()
        per_day = payers.groupby(["point_id", "local_date", "payer_ref"]).size().rename("day_n")
        top = per_hour.sort_values("hour_n").groupby(keys).tail(1)
        top = top.merge(
            payers[[*keys, "local_date"]].drop_duplicates(keys), on=keys, how="left"
        ).merge(per_day.reset_index(), on=["point_id", "local_date", "payer_ref"], how="left")
        top = top.set_index(keys)
        out["payer_top"] = ((top["hour_n"] - 3) * 2.0).clip(lower=0)
        out["payer_ref_top"] = top["payer_ref"]
        out["payer_hour_n"] = top["hour_n"]
        out["payer_day_n"] = top["day_n"]

    # Cash share of the point's sales (counts: skimming removes whole cash sales) vs its usual.
    point_usual = op_usual.groupby("point_id")[["cash_n", "paid_n"]].sum()
    p_point = (
        point_usual["cash_n"] / point_usual["paid_n"].where(point_usual["paid_n"] > 0)
    ).rename("p")
    counts = txns.groupby(keys)[["sales_n", "cash_n"]].sum()
    p_hour = counts.index.get_level_values("point_id").map(p_point).to_numpy(dtype=float)
    # An hour needs eight sales before its cash share says anything (0 cash in 5 sales happens).
    out["cash_count_z"] = binomial_shortfall(
        counts["cash_n"], counts["sales_n"], p_hour, min_trials=8
    )

    # Per operator, hour and day, against that operator's own usual.
    ops = txns[txns["operator_id"].notna() & (txns["operator_id"] != "")]
    if not ops.empty:
        usual = op_usual.set_index(["point_id", "operator_id"])
        sums = ["paid", "paid_rp", "cash_rp", "void", "cash_n", "sales_n"]
        hour = ops.groupby([*keys, "operator_id"])[sums].sum().reset_index()
        day = ops.groupby(["point_id", "local_date", "operator_id"])[sums].sum().reset_index()
        for frame, min_trials in ((hour, 8), (day, 5)):
            joined = usual.reindex(pd.MultiIndex.from_frame(frame[["point_id", "operator_id"]]))
            p_cash = joined["op_usual_cash"].to_numpy()
            p_void = joined["op_usual_void"].fillna(0.02).clip(lower=0.01).to_numpy()
            share = frame["cash_rp"] / frame["paid_rp"].where(frame["paid_rp"] > 0)
            frame["cash_share"] = share
            frame["cash_usual"] = p_cash
            p_count = joined["op_usual_cash_n"].to_numpy()
            frame["cash_z"] = binomial_shortfall(
                frame["cash_n"], frame["sales_n"], p_count, min_trials=min_trials
            )
            total = frame["paid"] + frame["void"]
            vshare = frame["void"] / total.where(total > 0)
            frame["void_share"] = vshare
            frame["void_usual"] = p_void
            frame["void_z"] = np.where(
                frame["void"] >= 3, binomial_excess(frame["void"], total, p_void), 0.0
            )
        # The day-level evidence of an operator reaches the hours that operator worked that day.
        hour = hour.merge(
            ops[["point_id", "hour_start", "operator_id", "local_date"]].drop_duplicates(),
            on=["point_id", "hour_start", "operator_id"],
            how="left",
        ).merge(
            day[
                [
                    "point_id",
                    "local_date",
                    "operator_id",
                    "cash_z",
                    "void_z",
                    "cash_share",
                    "void_share",
                ]
            ],
            on=["point_id", "local_date", "operator_id"],
            how="left",
            suffixes=("", "_day"),
        )
        use_day_cash = hour["cash_z_day"] > hour["cash_z"]
        hour["best_cash_z"] = np.where(use_day_cash, hour["cash_z_day"], hour["cash_z"])
        hour["best_cash_share"] = np.where(use_day_cash, hour["cash_share_day"], hour["cash_share"])
        use_day_void = hour["void_z_day"] > hour["void_z"]
        hour["best_void_z"] = np.where(use_day_void, hour["void_z_day"], hour["void_z"])
        hour["best_void_share"] = np.where(use_day_void, hour["void_share_day"], hour["void_share"])
        top_cash = hour.sort_values("best_cash_z").groupby(keys).tail(1).set_index(keys)
        top_void = hour.sort_values("best_void_z").groupby(keys).tail(1).set_index(keys)
        out["op_cash_z"] = top_cash["best_cash_z"]
        out["op_cash_id"] = top_cash["operator_id"]
        out["op_cash_share"] = top_cash["best_cash_share"]
        out["op_cash_usual"] = top_cash["cash_usual"]
        out["op_void_z"] = top_void["best_void_z"]
        out["op_void_id"] = top_void["operator_id"]
        out["op_void_share"] = top_void["best_void_share"]
        out["op_void_usual"] = top_void["void_usual"]
        pairs = ops[[*keys, "operator_id"]].drop_duplicates().sort_values([*keys, "operator_id"])
        out["operators_active"] = _joined_per_hour(pairs, keys, "operator_id")
        out = out.join(_void_shift_end(ops)).join(_cash_refund_noncash(txns, ops, op_usual))
    out = out.reset_index()
    for column in columns:
        if column not in out:
            out[column] = np.nan
    return out


def _joined_per_hour(rows: pd.DataFrame, keys: list[str], column: str) -> pd.Series:
    """``",".join`` of ``column`` per ``keys`` group, for rows already sorted by the keys:
    slices of one list instead of a Python call per group (groupby.agg with a Python function
    cost a minute per year of a thousand points)."""
    first = ~rows.duplicated(keys).to_numpy()
    bounds = [*np.flatnonzero(first).tolist(), len(rows)]
    values = rows[column].tolist()
    joined = [",".join(values[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return pd.Series(joined, index=pd.MultiIndex.from_frame(rows.loc[first, keys]))


SHIFT_END_MINUTES = 45  # "the end of the shift": the last 45 minutes of an operator's working span
SHIFT_END_COLUMNS = ("shift_end_z", "shift_end_id", "shift_end_k", "shift_end_n", "shift_end_p")
CASH_REFUND_COLUMNS = ("cash_refund_z", "cash_refund_id", "cash_refund_k", "cash_refund_rp")


def _no_rows(columns) -> pd.DataFrame:
    index = pd.MultiIndex.from_arrays([[], []], names=["point_id", "hour_start"])
    return pd.DataFrame(columns=list(columns), index=index)


def _top_per_hour(rows: pd.DataFrame, z: str, columns: dict[str, str]) -> pd.DataFrame:
    """Per point-hour, the operator row with the strongest ``z``, renamed by ``columns``."""
    keys = ["point_id", "hour_start"]
    top = rows.sort_values(z).groupby(keys).tail(1).set_index(keys)
    return top[list(columns)].rename(columns=columns)


def _void_shift_end(ops: pd.DataFrame) -> pd.DataFrame:
    """Voids and refunds an operator crowded into the last ``SHIFT_END_MINUTES`` of that day's
    working span (first to last transaction of theirs that local day), against the share of the
    same operator's paid sales that fell in that window the same day: voids spread like ordinary
    trade land there in that proportion; voiding sales late in the shift (after the payer has
    gone, keeping the cash) crowds them in. Binomial upper tail, one-sided, needs 3 voids in the
    window. The evidence reaches the hours of the window, where the voids are."""
    day_keys = ["point_id", "operator_id", "local_date"]
    # The keys hashed once, then both spans grouped by the integer day.
    worked = ops.groupby(day_keys, sort=False).ngroup()
    span_end = ops["occurred_at"].groupby(worked).transform("max")
    span_start = ops["occurred_at"].groupby(worked).transform("min")
    # A window of at most a third of the span, so a two-hour stint is not "all shift end".
    window = ((span_end - span_start) / 3).clip(upper=pd.Timedelta(minutes=SHIFT_END_MINUTES))
    tail = ops["occurred_at"] > span_end - window
    parts = ops.assign(
        tail_void=(tail & (ops["void"] == 1)).astype(np.int64),
        tail_paid=(tail & (ops["paid"] == 1)).astype(np.int64),
    )
    day = parts.groupby(day_keys)[["void", "paid", "tail_void", "tail_paid"]].sum()
    # Share of the day's sales in the window; at least one sale's worth, so a window that holds
    # only the voids is not "0% expected".
    share = (day["tail_paid"].clip(lower=1) / day["paid"].clip(lower=1)).clip(upper=1)
    day["shift_end_p"] = share
    day["shift_end_z"] = np.where(
        day["tail_void"] >= 3,
        binomial_excess(day["tail_void"], day["void"], share),
        0.0,
    )
    day = day.reset_index()
    hours = parts.loc[tail & (parts["void"] == 1), ["point_id", "hour_start", *day_keys[1:]]]
    hours = hours.drop_duplicates().merge(day, on=day_keys)
    if hours.empty:
        return _no_rows(SHIFT_END_COLUMNS)
    return _top_per_hour(
        hours,
        "shift_end_z",
        {
            "shift_end_z": "shift_end_z",
            "operator_id": "shift_end_id",
            "tail_void": "shift_end_k",
            "void": "shift_end_n",
            "shift_end_p": "shift_end_p",
        },
    )


def _cash_refund_noncash(txns: pd.DataFrame, ops: pd.DataFrame, op_usual: pd.DataFrame):
    """Cash refunds of sales that were paid without cash. Feeds carry no link from a refund to
    its sale, so the definition is the simplest one that can be checked: a refund paid out in
    cash whose amount equals a QRIS/card/transfer/e-wallet sale of the same point earlier the
    same local day. Per operator and day, their count against what that operator's usual rate
    of cash refunds (per paid sale, from the baseline) predicts for the day's sales: Poisson
    upper tail, needs 2 such refunds. The evidence reaches the hours of those refunds."""
    refunds = ops[(ops["status"] == "refund") & (ops["payment_method"] == "cash")]
    if refunds.empty:
        return _no_rows(CASH_REFUND_COLUMNS)
    noncash = txns[(txns["status"] == "paid") & (txns["payment_method"] != "cash")]
    first_sale = (
        noncash.groupby(["point_id", "local_date", "amount"])["occurred_at"]
        .min()
        .rename("first_noncash")
        .reset_index()
    )
    refunds = refunds.merge(first_sale, on=["point_id", "local_date", "amount"], how="left")
    matched = refunds[refunds["first_noncash"] <= refunds["occurred_at"]]
    if matched.empty:
        return _no_rows(CASH_REFUND_COLUMNS)
    day_keys = ["point_id", "operator_id", "local_date"]
    day = matched.groupby(day_keys).agg(
        cash_refund_k=("amount", "size"), cash_refund_rp=("amount", "sum")
    )
    sales = ops.groupby(day_keys)["paid"].sum().reindex(day.index).fillna(0)
    rate = (
        op_usual.set_index(["point_id", "operator_id"])["op_usual_cash_refund"]
        .reindex(
            pd.MultiIndex.from_arrays(
                [day.index.get_level_values(0), day.index.get_level_values(1)]
            )
        )
        .fillna(0.001)
        .to_numpy()
    )
    expected = np.maximum(rate * sales.to_numpy(), 0.05)
    tail = stats.poisson.sf(day["cash_refund_k"].to_numpy() - 1, expected)
    z = np.clip(np.nan_to_num(stats.norm.isf(np.clip(tail, 1e-300, 1.0)), nan=0.0), 0, CAP)
    day["cash_refund_z"] = np.where(day["cash_refund_k"] >= 2, z, 0.0)
    day = day.reset_index()
    hours = (
        matched[["point_id", "hour_start", *day_keys[1:]]].drop_duplicates().merge(day, on=day_keys)
    )
    return _top_per_hour(
        hours,
        "cash_refund_z",
        {
            "cash_refund_z": "cash_refund_z",
            "operator_id": "cash_refund_id",
            "cash_refund_k": "cash_refund_k",
            "cash_refund_rp": "cash_refund_rp",
        },
    )


# ----------------------------------------------------------------------------------------------
# The features


def _relative_z(observed, expected, sd_rel):
    """(observed - expected) / (expected x sd_rel), 0 where nothing was expected."""
    expected = np.asarray(expected, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.asarray(observed, dtype=float) - expected) / (
            expected * np.asarray(sd_rel, dtype=float)
        )
    return np.where(expected > 0, z, 0.0)


def compute_features(
    engine: Engine,
    start: datetime,
    end: datetime,
    *,
    config: FeatureConfig | None = None,
    calendar: Calendar | None = None,
    span: tuple[datetime, datetime] | None = None,
    cache_dir: Path | None = None,
) -> pd.DataFrame:
    """Features of every point-hour in [start, end) that was open or traded.

    Columns: point_id, hour_start (UTC), the FEATURES, and the numbers the reasons quote (usual
    and recorded revenue, counts, ticket, cash share, void share, peer ratio, operators, ...).
    With ``cache_dir`` the usual levels of a baseline window are kept on disk (numpy .npz, no
    pickle), keyed by the window and a fingerprint of its data, so the hourly runs of a day read
    only the last few days of aggregates.
    """
    config = config or FeatureConfig()
    calendar = calendar or Calendar()
    start_ts, end_ts = _floor_hour(start), _floor_hour(end)
    if end_ts <= start_ts:
        return pd.DataFrame(columns=["point_id", "hour_start", *FEATURES])
    pts = load_points(engine)
    if pts.empty:
        return pd.DataFrame(columns=["point_id", "hour_start", *FEATURES])
    # Peer groups: type + district when it has enough points, else the type regency-wide.
    district_size = pts.groupby(["revenue_type", "district"])["point_id"].transform("size")
    pts["peer_group"] = np.where(
        district_size >= config.min_peers,
        pts["revenue_type"] + "|" + pts["district"],
        pts["revenue_type"],
    )
    span = span if span is not None else data_span(engine)
    base_begin, base_end = baseline_window(span, end_ts.to_pydatetime(), config.baseline_weeks)
    cache_path = (
        _baseline_path(engine, Path(cache_dir), base_begin, base_end, config) if cache_dir else None
    )
    baseline = _read_baseline(cache_path, pts) if cache_path is not None else None
    # A week before the range so the day-level rolling windows are complete.
    range_begin = start_ts - pd.Timedelta(days=max(HORIZONS))
    if baseline is None:
        load_begin = min(_floor_hour(base_begin), range_begin)
        load_end = max(_floor_hour(base_end), end_ts)
    else:
        load_begin, load_end = range_begin, end_ts
    grid = _context_grid(engine, pts, load_begin, load_end, calendar)
    if baseline is None:
        in_base = (grid["hour_start"] >= base_begin) & (grid["hour_start"] < base_end)
        # A point's hours before its first recorded sale are not "usual zero": it was not there yet.
        active = grid["txn_count"] + grid["void_count"] + grid["refund_count"] > 0
        first_seen = grid.loc[active].groupby("pos")["hour_start"].min()
        started = grid["hour_start"] >= grid["pos"].map(first_seen)
        history = grid[in_base & started & ~grid["suppressed"] & grid["holiday"].isna()]
        slots, scales = slot_usuals(history, pts, config)
        del history
        op_usual = operator_usuals(engine, base_begin, base_end)
        if cache_path is not None:
            _write_baseline(cache_path, pts, slots, scales, op_usual)
    else:
        slots, scales, op_usual = baseline

    # Rows the features are needed for: the range plus the week before it (for the day horizons).
    frame = grid[(grid["hour_start"] >= range_begin) & (grid["hour_start"] < end_ts)]
    frame = frame.merge(
        slots[list(SLOT_COLUMNS)],
        on=["pos", "how"],
        how="left",
    )
    frame = frame.join(scales, on="pos")
    frame = frame.fillna(SCALE_DEFAULTS)
    for column in ("usual_rev", "usual_cnt"):
        frame[column] = frame[column].fillna(0.0)
    frame["cold"] = frame["cold"].fillna(False).astype(bool) | (
        frame["history_days"] < config.cold_days
    )
    frame["point_id"] = pts["point_id"].to_numpy()[frame["pos"].to_numpy()]
    frame["timezone"] = pts["timezone"].to_numpy()[frame["pos"].to_numpy()]

    rev, cnt = frame["gross_paid"], frame["txn_count"]
    expected_open = frame["is_open"] & (frame["usual_cnt"] > 0)
    ratio_rev = (rev / frame["usual_rev"]).where(expected_open & (frame["usual_cnt"] >= 2))
    ratio_cnt = (cnt / frame["usual_cnt"]).where(expected_open & (frame["usual_cnt"] >= 2))
    valid = ratio_rev.notna()
    frame["peer_rev"] = _peer_median(frame, ratio_rev, valid, 3).fillna(1.0).clip(0, 2.0)
    frame["peer_cnt"] = _peer_median(frame, ratio_cnt, valid, 3).fillna(1.0).clip(0, 2.0)
    frame["expected_rev"] = (frame["usual_rev"] * frame["peer_rev"]).where(expected_open, 0.0)
    frame["expected_cnt"] = (frame["usual_cnt"] * frame["peer_cnt"]).where(expected_open, 0.0)
    unit = frame["usual_ticket"].fillna(frame["point_ticket"]).fillna(1.0).clip(lower=1)
    damp = np.where(frame["holiday"].notna(), config.holiday_damping, 1.0)
    # Revenue is counted in units of the usual ticket so both use the same (Poisson) yardstick.
    frame["rev_drop"] = (
        poisson_shortfall(rev / unit, frame["expected_rev"] / unit, frame["s_rev"]) * damp
    )
    frame["count_drop"] = poisson_shortfall(cnt, frame["expected_cnt"], frame["s_cnt"]) * damp
    z_surge = poisson_surplus(cnt, frame["expected_cnt"], frame["s_cnt"])
    frame["silence"] = _silence(frame, expected_open) * damp

    # Average ticket, relative to usual and to peers' ticket movement.
    ticket = rev / cnt.where(cnt > 0)
    ratio_ticket = ticket / frame["usual_ticket"]
    frame["ticket"] = ticket
    frame["peer_ticket"] = _peer_median(
        frame, ratio_ticket, ratio_ticket.notna() & (cnt >= 3), 3
    ).fillna(1.0)
    sd_ticket = np.sqrt(frame["c_ticket"] ** 2 / cnt.clip(lower=1) + 0.03**2)
    z_ticket = (ratio_ticket / frame["peer_ticket"] - 1) / sd_ticket
    frame["ticket_drop"] = np.clip(-z_ticket.where(cnt >= 3), 0, CAP).fillna(0) * damp
    frame["burst"] = np.minimum(z_surge, frame["ticket_drop"] / damp)

    # Cash share, against usual and peers' movement, in units of (over-dispersed) binomial noise.
    cash_share = frame["cash_amount"] / rev.where(rev > 0)
    frame["cash_share"] = cash_share
    diff_cash = cash_share - frame["usual_cash"]
    frame["peer_cash"] = _peer_median(frame, diff_cash, diff_cash.notna() & (cnt >= 3), 3).fillna(
        0.0
    )
    p = frame["usual_cash"].clip(0.02, 0.98)
    sd_cash = np.sqrt((frame["s_cash"] ** 2) * p * (1 - p) / cnt.clip(lower=1) + 0.02**2)
    z_cash = (diff_cash - frame["peer_cash"]) / sd_cash
    frame["cash_drop"] = np.clip(-z_cash.where(cnt >= 3), 0, CAP).fillna(0)

    # Voids and refunds.
    void_n = frame["void_count"] + frame["refund_count"]
    all_n = cnt + void_n
    frame["void_share"] = void_n / all_n.where(all_n > 0)
    frame["void_excess"] = np.where(
        void_n >= 3, binomial_excess(void_n, all_n, frame["usual_void"]), 0.0
    )

    # Day horizon: the local day's revenue so far vs usual x peers, and the last three days.
    frame = _day_features(frame, slots, scales)
    damp = np.where(frame["holiday"].notna(), config.holiday_damping, 1.0)
    frame["day_drop"] = frame["day_drop"] * damp
    frame["ticket_day_drop"] = frame["ticket_day_drop"] * damp

    # Transaction-level signals for the range only.
    scored = frame[(frame["hour_start"] >= start_ts) & (frame["is_open"] | (all_n > 0))].copy()
    parts = []
    # A week of transactions at a time bounds memory on long ranges; each slice also reads the
    # day before it so day-level operator and payer signals see whole local days.
    hours = frame[
        [
            "point_id",
            "hour_start",
            "local_date",
            "is_open",
            "cash_amount",
            "expected_rev",
            "usual_cash",
            "point_ticket",
            "s_rev",
        ]
    ].assign(local_hour=frame["how"] % 24)
    # Small registries read a month of transactions at once (fewer passes), big ones a week.
    slice_days = 28 if len(pts) <= 100 else 7
    lead = pd.Timedelta(days=3)
    carried = None  # the last three days of the previous slice: read once, used twice
    for a, b in _slices(start_ts, end_ts, pd.Timedelta(days=slice_days)):
        if carried is None:
            txns = load_transactions(engine, (a - lead).to_pydatetime(), b.to_pydatetime())
        else:
            fresh = load_transactions(engine, a.to_pydatetime(), b.to_pydatetime())
            txns = pd.concat([carried, fresh], ignore_index=True)
        carried = txns[txns["occurred_at"] >= b - lead]
        part = _transaction_signals(txns, pts, scales, op_usual, config)
        if not part.empty:
            shift = _operator_cash_shortfall(
                txns,
                hours[(hours["hour_start"] >= a - lead) & (hours["hour_start"] < b)],
            )
            part = part.merge(shift, on=["point_id", "hour_start"], how="outer")
            part = part[(part["hour_start"] >= a) & (part["hour_start"] < b)]
        parts.append(part)
    signals = (
        pd.concat(parts, ignore_index=True)
        if parts
        else _transaction_signals(pd.DataFrame(), pts, scales, op_usual, config)
    )
    for column in ("op_short_z", "op_short_id", "op_short_obs", "op_short_exp", "op_short_days"):
        if column not in signals:
            signals[column] = np.nan
    # An empty signal frame (no transactions in the range) has untyped columns.
    signals["hour_start"] = pd.to_datetime(signals["hour_start"], utc=True)
    signals["point_id"] = signals["point_id"].astype(scored["point_id"].dtype)
    scored = scored.merge(signals, on=["point_id", "hour_start"], how="left")
    tiny = scored["tiny_n"].fillna(0)
    expected_tiny = 0.05 * scored["txn_count"] + 1
    scored["tiny_excess"] = np.clip((tiny - expected_tiny) / np.sqrt(expected_tiny), 0, CAP)
    scored["payer_repeat"] = scored["payer_top"].fillna(0).astype(float).clip(0, CAP)
    scored["op_cash_drop"] = scored["op_cash_z"].fillna(0).astype(float)
    scored["op_cash_short"] = scored["op_short_z"].fillna(0).astype(float) * damp_of(scored)
    # Sale counts from the transactions beat amount shares for cash (skimming drops whole sales).
    scored["cash_drop"] = scored["cash_count_z"].fillna(0).astype(float)
    scored["op_void_excess"] = scored["op_void_z"].fillna(0).astype(float)
    scored["void_shift_end"] = scored["shift_end_z"].fillna(0).astype(float)
    scored["cash_refund_noncash"] = scored["cash_refund_z"].fillna(0).astype(float)
    for name in FEATURES:
        scored[name] = scored[name].astype(float).fillna(0.0)
    scored["local_time"] = _local_labels(scored)
    scored = (
        scored.drop(columns=["pos"]).sort_values(["point_id", "hour_start"]).reset_index(drop=True)
    )
    return scored


def damp_of(frame: pd.DataFrame) -> np.ndarray:
    return np.where(frame["holiday"].notna(), FeatureConfig().holiday_damping, 1.0)


def _operator_cash_shortfall(txns: pd.DataFrame, hours: pd.DataFrame) -> pd.DataFrame:
    """Cash recorded in the hours an operator ran the point vs the cash those hours usually bring
    (usual revenue x peers x usual cash share), per local day and over the operator's last three
    working days: skimming on one shift shows as that operator's cash falling short day after
    day while the point's other hours look normal."""
    columns = [
        "point_id",
        "hour_start",
        "op_short_z",
        "op_short_id",
        "op_short_obs",
        "op_short_exp",
        "op_short_days",
    ]
    ops = txns[
        (txns["status"] == "paid") & txns["operator_id"].notna() & (txns["operator_id"] != "")
    ]
    if ops.empty or hours.empty:
        return pd.DataFrame(columns=columns)
    keys = ["point_id", "hour_start"]
    ops = ops.assign(hour_start=ops["occurred_at"].dt.floor("h"))
    # Each hour goes to the operator of its shift: whoever usually records most sales at that
    # local hour of the day, so the hours of a shift where nothing was recorded still count.
    ops = ops.merge(hours[[*keys, "local_hour"]], on=keys, how="inner")
    shift = ops.groupby(["point_id", "local_hour", "operator_id"]).size().rename("n").reset_index()
    shift = shift.sort_values("n").groupby(["point_id", "local_hour"]).tail(1)
    work = hours[hours["is_open"]].merge(
        shift[["point_id", "local_hour", "operator_id"]], on=["point_id", "local_hour"], how="inner"
    )
    work["expected_cash"] = work["expected_rev"] * work["usual_cash"].fillna(0)
    daily = (
        work.groupby(["point_id", "operator_id", "local_date"])
        .agg(
            obs=("cash_amount", "sum"),
            exp=("expected_cash", "sum"),
            unit=("point_ticket", "first"),
            s=("s_rev", "first"),
        )
        .reset_index()
        .sort_values(["point_id", "operator_id", "local_date"])
    )
    unit = daily["unit"].fillna(1.0).clip(lower=1)
    z1 = poisson_shortfall(daily["obs"] / unit, daily["exp"] / unit, daily["s"].fillna(2.0))
    rolled = _rolling_sum(daily, ["point_id", "operator_id"], ["obs", "exp"], 3)
    z3 = poisson_shortfall(rolled["obs"] / unit, rolled["exp"] / unit, daily["s"].fillna(2.0))
    rolled5 = _rolling_sum(daily, ["point_id", "operator_id"], ["obs", "exp"], 5)
    z5 = poisson_shortfall(rolled5["obs"] / unit, rolled5["exp"] / unit, daily["s"].fillna(2.0))
    # The longer views count only while the day itself is short.
    down = z1 > 1.0
    use5 = down & (z5 > np.maximum(z1, z3))
    use3 = down & ~use5 & (z3 > z1)
    daily["op_short_z"] = np.select([use5, use3], [z5, z3], z1)
    daily["op_short_obs"] = np.select([use5, use3], [rolled5["obs"], rolled["obs"]], daily["obs"])
    daily["op_short_exp"] = np.select([use5, use3], [rolled5["exp"], rolled["exp"]], daily["exp"])
    daily["op_short_days"] = np.select([use5, use3], [5, 3], 1)
    out = work[[*keys, "operator_id", "local_date"]].merge(
        daily.drop(columns=["obs", "exp", "unit", "s"]),
        on=["point_id", "operator_id", "local_date"],
        how="left",
    )
    out = out.rename(columns={"operator_id": "op_short_id"})
    return out[columns]


class _GroupWindows(BaseIndexer):
    """The last ``window_size`` rows of each row's group, for rows sorted by group: the bounds
    ``groupby(...).rolling(n)`` builds, computed with numpy instead of a Python loop per group."""

    def get_window_bounds(self, num_values, min_periods, center, closed, step):
        end = np.arange(1, num_values + 1, dtype=np.int64)
        first = np.maximum.accumulate(np.where(self.group_starts, np.arange(num_values), 0))
        start = np.maximum(end - self.window_size, first).astype(np.int64)
        return start, end


def _rolling_sum(frame: pd.DataFrame, by: list[str], columns: list[str], rows: int) -> pd.DataFrame:
    """``frame.groupby(by)[columns].rolling(rows, min_periods=1).sum()`` in ``frame``'s order and
    index, for a ``frame`` sorted by ``by``: the same windows fed to the same summation, so the
    same numbers, without the per-group cost of a grouped rolling window (thousands of
    point-operator groups per chunk)."""
    keys = frame[by]
    group_starts = (keys != keys.shift()).any(axis=1).to_numpy()
    windows = _GroupWindows(window_size=rows, group_starts=group_starts)
    return frame[columns].rolling(windows, min_periods=1).sum()


def _slices(begin: pd.Timestamp, end: pd.Timestamp, size: pd.Timedelta):
    cursor = begin
    while cursor < end:
        yield cursor, min(cursor + size, end)
        cursor += size


def _context_grid(
    engine: Engine, pts: pd.DataFrame, begin: pd.Timestamp, end: pd.Timestamp, calendar: Calendar
) -> pd.DataFrame:
    """The grid over [begin, end) with peer groups, special days and suppressed/confirmed hours."""
    aggregates = load_hour_aggregates(engine, begin.to_pydatetime(), end.to_pydatetime())
    grid = build_grid(aggregates, pts, begin, end)
    del aggregates
    grid["revenue_type"] = pts["revenue_type"].to_numpy()[grid["pos"].to_numpy()]
    grid["peer_group"] = pts["peer_group"].to_numpy()[grid["pos"].to_numpy()]
    special = calendar.special_days(range(begin.year - 1, end.year + 2))
    if special:
        names = pd.Series(list(special.values()), index=pd.to_datetime(list(special.keys())))
        names.index = names.index.to_numpy().astype("datetime64[D]")
        grid["holiday"] = grid["local_date"].map(names)
    else:
        grid["holiday"] = np.nan
    # Closures/maintenance (kind-less suppressions) and confirmed leakage are not "usual".
    suppressed = suppression_windows(engine, begin.to_pydatetime(), end.to_pydatetime())
    suppressed = suppressed[suppressed["kind"].isna()]
    excluded = _window_mask(grid, pts, suppressed, "starts_at", "ends_at")
    confirmed = confirmed_windows(engine, begin.to_pydatetime(), end.to_pydatetime())
    grid["suppressed"] = excluded | _window_mask(grid, pts, confirmed, "start_at", "end_at")
    return grid


def _baseline_path(
    engine: Engine, cache_dir: Path, begin: datetime, end: datetime, config: FeatureConfig
) -> Path:
    """Cache file of one baseline window; its name changes when the window's data changes."""
    h = hour_aggregates.c
    with engine.connect() as connection:
        # A count is answered from the hour_start index alone; summing amounts would read every
        # row of eight weeks, which is what the cache is there to avoid.
        count = connection.execute(
            select(func.count())
            .select_from(hour_aggregates)
            .where(and_(h.hour_start >= begin, h.hour_start < end))
        ).scalar_one()
        windows = connection.execute(
            select(func.count()).select_from(suppressions).where(suppressions.c.kind.is_(None))
        ).scalar_one()
        confirmed = connection.execute(
            select(func.count()).select_from(cases).where(cases.c.status == "confirmed")
        ).scalar_one()
        registry = connection.execute(
            select(func.count(), type_coerce(func.max(points.c.updated_at), String))
        ).one()
    key = json.dumps(
        [
            begin.isoformat(),
            end.isoformat(),
            int(count),
            windows,
            confirmed,
            list(registry),
            sorted(asdict(config).items()),
        ],
        default=str,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / f"baseline-{begin:%Y%m%dT%H}-{end:%Y%m%dT%H}-{digest}.npz"


def _write_baseline(
    path: Path,
    pts: pd.DataFrame,
    slots: pd.DataFrame,
    scales: pd.DataFrame,
    op_usual: pd.DataFrame,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = pts["point_id"].to_numpy().astype(str)
    arrays = {f"slot_{c}": slots[c].to_numpy() for c in SLOT_COLUMNS}
    arrays["slot_point_id"] = ids[slots["pos"].to_numpy()]
    arrays.update({f"scale_{c}": scales[c].to_numpy() for c in scales.columns})
    arrays["scale_point_id"] = ids[scales.index.to_numpy()]
    # The operators' usual shares (an SQL pass over eight weeks of transactions) go with them;
    # sales without an operator have operator_id None, kept as a mask (no pickled objects).
    operator = op_usual["operator_id"]
    arrays["op_point_id"] = op_usual["point_id"].to_numpy().astype(str)
    arrays["op_operator_id"] = operator.fillna("").to_numpy().astype(str)
    arrays["op_operator_missing"] = operator.isna().to_numpy()
    arrays.update({f"op_{c}": op_usual[c].to_numpy(dtype=np.float64) for c in OP_USUAL_VALUES})
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _read_baseline(
    path: Path, pts: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        if "op_point_id" not in data.files:
            return None  # written before operator usuals were cached: rebuild
        operator = pd.Series(data["op_operator_id"], dtype="str")
        op_usual = pd.DataFrame(
            {
                "point_id": pd.Series(data["op_point_id"], dtype="str"),
                "operator_id": operator.mask(data["op_operator_missing"]),
                **{c: data[f"op_{c}"] for c in OP_USUAL_VALUES},
            }
        )
        position = pd.Series(np.arange(len(pts)), index=pts["point_id"].to_numpy())
        slots = pd.DataFrame({c: data[f"slot_{c}"] for c in SLOT_COLUMNS if c != "pos"})
        slots["pos"] = position.reindex(data["slot_point_id"]).to_numpy()
        scale_names = [
            k[len("scale_") :]
            for k in data.files
            if k.startswith("scale_") and k != "scale_point_id"
        ]
        scales = pd.DataFrame({c: data[f"scale_{c}"] for c in scale_names})
        scales["pos"] = position.reindex(data["scale_point_id"]).to_numpy()
    slots = slots.dropna(subset=["pos"]).astype({"pos": np.int64})
    scales = scales.dropna(subset=["pos"]).astype({"pos": np.int64}).set_index("pos")
    return slots, scales.reindex(pd.RangeIndex(len(pts), name="pos")), op_usual


HORIZONS = (1, 3, 7)  # days: a sudden drop, and slower level shifts


def _day_features(frame: pd.DataFrame, slots: pd.DataFrame, scales: pd.DataFrame) -> pd.DataFrame:
    """Day horizons: the local day's revenue and average ticket, and the last 3 and 7 days',
    against usual x peers (one-sided z). The longer views only count while the day itself is
    down, so a flag does not outlive the drop."""
    expected = frame["is_open"] & (frame["usual_cnt"] > 0)
    cnt = frame["txn_count"].where(expected, 0)
    day = (
        pd.DataFrame(
            {
                "pos": frame["pos"],
                "local_date": frame["local_date"],
                "rev": frame["gross_paid"].where(expected, 0),
                "usual": frame["usual_rev"].where(expected, 0),
                "usual_cnt": frame["usual_cnt"].where(expected, 0),
                "cnt": cnt,
                # What these sales would have come to at the usual ticket of each hour.
                "at_usual_ticket": (cnt * frame["usual_ticket"]).fillna(0),
                "peer_group": frame["peer_group"],
                "revenue_type": frame["revenue_type"],
            }
        )
        .groupby(["pos", "local_date", "peer_group", "revenue_type"], as_index=False)[
            ["rev", "usual", "usual_cnt", "cnt", "at_usual_ticket"]
        ]
        .sum()
        .sort_values(["pos", "local_date"])
        .reset_index(drop=True)
    )
    day["hour_start"] = day["local_date"]  # peers compared on the same local date
    # The usual day (per weekday), times the share of it that the hours in view usually make.
    hours_in_view = frame.groupby(["pos", "local_date"])["usual_rev"].sum()
    slot_day = (
        slots.assign(weekday=slots["how"] // 24).groupby(["pos", "weekday"])["usual_rev"].sum()
    )
    weekday = pd.to_datetime(day["local_date"]).dt.dayofweek.to_numpy()
    in_view = hours_in_view.reindex(pd.MultiIndex.from_frame(day[["pos", "local_date"]])).to_numpy()
    whole = slot_day.reindex(pd.MultiIndex.from_arrays([day["pos"], weekday])).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.clip(np.nan_to_num(in_view / whole, nan=1.0), 0, 1)
    pos = day["pos"].to_numpy()
    for measure, column in (("rev", "usual"), ("cnt", "usual_cnt")):
        table = scales[[f"day_{measure}_{w}" for w in range(7)]].to_numpy()
        whole_day = table[pos, weekday]
        # Without enough complete days (a new point) the summed hourly usuals stand in.
        day[column] = np.where(np.isfinite(whole_day), whole_day * share, day[column])
    phi = day["pos"].map(scales["phi_day"]).fillna(0.15)
    c_ticket = day["pos"].map(scales["c_ticket"]).fillna(0.5)
    sums = ["rev", "usual", "usual_cnt", "cnt", "at_usual_ticket"]
    z_rev, z_ticket = {}, {}
    for h in HORIZONS:
        rolled = _rolling_sum(day, ["pos"], sums, h)
        ratio = (rolled["rev"] / rolled["usual"]).where(rolled["usual"] > 0)
        peer = _peer_median(day, ratio, ratio.notna(), 3).fillna(1.0).clip(lower=0.05)
        sd = np.sqrt(phi**2 / h + 1.5 / rolled["usual_cnt"].clip(lower=1))
        z_rev[h] = ((ratio / peer - 1) / sd).fillna(0)
        ticket = (rolled["rev"] / rolled["at_usual_ticket"]).where(
            (rolled["cnt"] >= 3) & (rolled["at_usual_ticket"] > 0)
        )
        peer_t = _peer_median(day, ticket, ticket.notna(), 3).fillna(1.0).clip(lower=0.05)
        sd_t = np.sqrt(c_ticket**2 / rolled["cnt"].clip(lower=1) + 0.03**2)
        z_ticket[h] = ((ticket / peer_t - 1) / sd_t).fillna(0)
        if h == 1:
            day["day_ratio"], day["day_peer"], day["day_ticket_ratio"] = ratio, peer, ticket
    down = -z_rev[1] > 1.0
    longer = np.maximum(-z_rev[3], -z_rev[7])
    day["day_drop"] = np.clip(np.maximum(-z_rev[1], np.where(down, longer, 0.0)), 0, CAP)
    shaved = -z_ticket[1] > 1.0
    longer_t = np.maximum(-z_ticket[3], -z_ticket[7])
    day["ticket_day_drop"] = np.clip(
        np.maximum(-z_ticket[1], np.where(shaved, longer_t, 0.0)), 0, CAP
    )
    day = day.rename(columns={"rev": "day_rev", "usual": "day_usual"})
    keep = [
        "pos",
        "local_date",
        "day_rev",
        "day_usual",
        "day_ratio",
        "day_peer",
        "day_ticket_ratio",
        "day_drop",
        "ticket_day_drop",
    ]
    frame = frame.merge(day[keep], on=["pos", "local_date"], how="left")
    for column in ("day_drop", "ticket_day_drop"):
        frame[column] = frame[column].where(expected, 0).fillna(0)
    return frame


HOUR_OF_WEEK_LABELS = np.array(
    [f"{WEEKDAYS[d]} {h:02d}:00" for d in range(7) for h in range(24)], dtype=object
)


def _local_labels(frame: pd.DataFrame) -> pd.Series:
    """ "Tue 10:00" in the point's own timezone."""
    labels = pd.Series("", index=frame.index, dtype="object")
    for tz, index in frame.groupby("timezone").indices.items():
        local = frame["hour_start"].iloc[index].dt.tz_convert(tz)
        slot = local.dt.dayofweek.to_numpy() * 24 + local.dt.hour.to_numpy()
        labels.iloc[index] = HOUR_OF_WEEK_LABELS[slot]
    return labels
