"""The usual level: per point and local hour of the week, learnt from a baseline window.

Robust figures over the baseline's hours (holidays, closures and confirmed leakage already left
out by the caller): a trimmed mean of revenue and sales per slot, ticket and cash share shrunk
towards the point's overall figure, each point's noise scales (over-dispersion of counts and
revenue, ticket and cash-share spread, day-to-day spread) and its usual whole day per weekday.
A slot with too few samples borrows the median slot of the point's peers, scaled to the point's
size (cold start).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from pipeline.detection.features.config import SCALE_DEFAULTS, SHRINK_SALES, FeatureConfig


def usual_window(
    span: tuple[datetime, datetime] | None, as_of: datetime, weeks: int
) -> tuple[datetime, datetime]:
    """The point-in-time baseline: the ``weeks`` before ``as_of`` (the retrain moment the scored
    hours fall after), or from the first data when there is less history. Never anything at or
    after ``as_of``: the hours being scored and the weeks after them are not "usual"."""
    end = pd.Timestamp(as_of).tz_convert("UTC").to_pydatetime()
    begin = end - timedelta(weeks=weeks)
    if span is not None:
        begin = min(max(begin, span[0]), end)
    return begin, end


def baseline_window(
    span: tuple[datetime, datetime] | None, end: datetime, weeks: int
) -> tuple[datetime, datetime]:
    """The hindsight baseline (``backfill(hindsight=True)`` and feature tests only): ``weeks``
    ending at the UTC midnight at or before ``end``, moved forward into later data when it would
    start before the first data. A range scored this way is judged against itself and the weeks
    after it; every live score uses ``usual_window``."""
    length = timedelta(weeks=weeks)
    end = pd.Timestamp(end).tz_convert("UTC").floor("D").to_pydatetime()
    begin = end - length
    if span is not None and begin < span[0]:
        begin = span[0]
        end = max(end, min(span[0] + length, span[1]))
    return begin, end


TRIMMED_FROM = 5  # samples a group needs for a trimmed mean; fewer give their median


def _trimmed_mean(grouped) -> pd.Series:
    """Mean without the group's minimum and maximum (median when fewer than ``TRIMMED_FROM``)."""
    total, low, high, n = grouped.sum(), grouped.min(), grouped.max(), grouped.count()
    trimmed = (total - low - high) / (n - 2).clip(lower=1)
    return trimmed.where(n >= TRIMMED_FROM, grouped.median())


def _leave_one_out_usual(values: pd.Series, group: pd.Series) -> np.ndarray:
    """Per row, ``_trimmed_mean`` of the other rows of its ``group`` (NaN when it has none)."""
    order = np.lexsort((values.to_numpy(), group.to_numpy()))
    x = values.to_numpy(dtype=float)[order]
    g = group.to_numpy()[order]
    start = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    size = np.diff(np.r_[start, len(g)])
    first = np.repeat(start, size)
    n = np.repeat(size, size) - 1  # the others
    rank = np.arange(len(x)) - first

    def other(j):
        """The j-th smallest of the others (j per row, 0 <= j < n; any row where n is 0)."""
        return x[np.minimum(first + j + (j >= rank), len(x) - 1)]

    total = np.add.reduceat(x, start).repeat(size) if len(x) else x
    safe = np.maximum(n, 1)
    low, high = other(np.zeros_like(n)), other(np.maximum(n - 1, 0))
    trimmed = (total - x - low - high) / np.maximum(n - 2, 1)
    middle = (n - 1) // 2
    median = np.where(
        n % 2 == 1, other(middle), (other(middle) + other(np.minimum(middle + 1, safe - 1))) / 2
    )
    out = np.where(n >= TRIMMED_FROM, trimmed, median)
    out = np.where(n >= 1, out, np.nan)
    result = np.empty(len(x))
    result[order] = out
    return result


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
    work = _baseline_hours(history)
    slots, point_ticket, point_cash = _slot_levels(work, pts)
    slots = _cold_start_from_peers(slots, work, config)
    # Per-point fallbacks for slots that never traded.
    slots["usual_ticket"] = slots["usual_ticket"].fillna(slots["pos"].map(point_ticket))
    slots["usual_cash"] = slots["usual_cash"].fillna(slots["pos"].map(point_cash))
    scales = _noise_scales(work, slots, len(pts))
    scales = _point_levels(history, scales, point_ticket)
    scales = _usual_days(work, scales)
    return slots, scales


# The columns of the baseline's hours that ``slot_usuals`` reads.
HISTORY_COLUMNS = (
    "pos",
    "how",
    "local_date",
    "is_open",
    "gross_paid",
    "txn_count",
    "cash_amount",
    "void_count",
    "refund_count",
)


class LearntUsuals:
    """``slot_usuals`` learnt once for the same baseline hours: a walk forward learns the usual
    levels of one window (the model's moment) for each week a model learns from, from the same
    hours each time (six times for a 1,000-point model: a tenth of a backfill). The last hours
    are kept (only the columns read) and each call's compared with them value for value; row
    labels aside, which ``slot_usuals`` does not read (they differ with each week's grid)."""

    def __init__(self) -> None:
        self._last: tuple | None = None

    def slot_usuals(
        self, history: pd.DataFrame, pts: pd.DataFrame, config: FeatureConfig
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``slot_usuals(history, pts, config)``, each call with its own copies."""
        hours = history[list(HISTORY_COLUMNS)].reset_index(drop=True)
        if self._last is not None:
            last_hours, last_pts, last_config, slots, scales = self._last
            if last_config == config and last_pts.equals(pts) and last_hours.equals(hours):
                return slots.copy(), scales.copy()
        slots, scales = slot_usuals(hours, pts, config)
        self._last = (hours, pts.copy(), config, slots, scales)
        return slots.copy(), scales.copy()


def _baseline_hours(history: pd.DataFrame) -> pd.DataFrame:
    """The baseline rows reduced to what the usual levels are learnt from."""
    rev = history["gross_paid"]
    cnt = history["txn_count"]
    return pd.DataFrame(
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


def _slot_levels(
    work: pd.DataFrame, pts: pd.DataFrame
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Each slot's own usual revenue, sales, ticket and cash share, and each point's overall
    ticket and cash share (the priors the slots are shrunk towards)."""
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
    return slots, point_ticket, point_cash


def _cold_start_from_peers(
    slots: pd.DataFrame, work: pd.DataFrame, config: FeatureConfig
) -> pd.DataFrame:
    """Slots with too few samples take the peer slot (median over established points of the
    same type) times the point's own size relative to it."""
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
    return slots


def _noise_scales(work: pd.DataFrame, slots: pd.DataFrame, n_points: int) -> pd.DataFrame:
    """Each point's robust noise scales of sales, revenue, ticket and cash share."""
    merged = work.merge(
        slots[["pos", "how", "usual_rev", "usual_cnt", "usual_ticket", "usual_cash"]],
        on=["pos", "how"],
    )
    scales = pd.DataFrame(index=pd.RangeIndex(n_points, name="pos"))
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
    return scales.fillna({"s_cnt": 1.5, "s_rev": 2.0, "c_ticket": 0.5, "s_cash": 1.5})


def _point_levels(
    history: pd.DataFrame, scales: pd.DataFrame, point_ticket: pd.Series
) -> pd.DataFrame:
    """Each point's usual void+refund share, overall ticket and days of trading history."""
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
    return scales


def _usual_days(work: pd.DataFrame, scales: pd.DataFrame) -> pd.DataFrame:
    """The usual whole day per weekday (complete local days only) and the day-to-day spread."""
    days = work.groupby(["pos", "local_date"]).agg(
        rev=("rev", "sum"), cnt=("cnt", "sum"), hours=("rev", "size")
    )
    days = days[days["hours"] == 24].reset_index()
    days["weekday"] = pd.to_datetime(days["local_date"]).dt.dayofweek
    by_weekday = days.groupby(["pos", "weekday"])
    usual_day = pd.DataFrame(
        {"rev": _trimmed_mean(by_weekday["rev"]), "cnt": _trimmed_mean(by_weekday["cnt"])}
    )
    # A short history (a point-in-time baseline near the start of the data) may have no complete
    # day of some weekday: that weekday's usual day is unknown (NaN), not an error.
    weekdays = set(usual_day.index.get_level_values("weekday")) if len(usual_day) else set()
    for weekday in range(7):
        for measure in ("rev", "cnt"):
            column = (
                usual_day[measure].xs(weekday, level="weekday")
                if weekday in weekdays
                else pd.Series(dtype=float)
            )
            scales[f"day_{measure}_{weekday}"] = column.reindex(scales.index)
    same_weekday = days["pos"] * 7 + days["weekday"]
    fitted = usual_day["rev"].reindex(pd.MultiIndex.from_frame(days[["pos", "weekday"]]))
    # Two spreads. ``phi_day``: a day's error against a usual learnt without it (each day
    # against the other days of its weekday, leave one out), the spread a new day shows against
    # its usual, which every view of a day against its usual divides by. Against a usual that
    # holds the day itself (a median of four at a four-week baseline) the middle days sit on it
    # by construction and the spread read a third to a half too small, so busy points read two
    # ordinary low days as a level shift. ``phi_day_own``: the in-sample residual, kept for
    # the small points' horizons, which add the usual's own error themselves.
    for name, expected in (
        ("phi_day", _leave_one_out_usual(days["rev"], same_weekday)),
        ("phi_day_own", fitted.to_numpy()),
    ):
        ok = expected > 0
        spread = _mad_scale(
            days.loc[ok, "rev"] / expected[ok] - 1, days.loc[ok, "pos"], 0.04, quantile=0.5
        )
        scales[name] = spread.reindex(scales.index).fillna(SCALE_DEFAULTS[name])
    return scales
