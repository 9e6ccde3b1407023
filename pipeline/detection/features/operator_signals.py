"""Per-operator signals: one operator's cash or void share against that operator's own usual
(in the hour, or over their day), voids crowded into the end of their shift, cash refunds of
sales paid without cash, and the cash of their hours falling short day after day. These name an
operator, which is what an auditor acts on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.detection.features.coded_keys import coded, labelled, positions_in
from pipeline.detection.features.config import CAP, SCALE_DEFAULTS
from pipeline.detection.features.noise_units import (
    binomial_excess,
    binomial_shortfall,
    poisson_shortfall,
)

KEYS = ["point_id", "hour_start"]
SHARE_SUMS = ["paid", "paid_rp", "cash_rp", "void", "cash_n", "sales_n"]
# The operator of a shift: most sales at that local hour over this many days before the hour's day.
SHIFT_CHOICE_DAYS = 3
# Earlier working days an operator's cash shortfall adds up: those within this many days.
SHIFT_LOOKBACK_DAYS = 6
# How far back the transactions and hours of a cash-shortfall computation must reach.
CASH_SHORT_LEAD_DAYS = SHIFT_LOOKBACK_DAYS + SHIFT_CHOICE_DAYS + 1
# How much of the point's day-to-day spread (phi_day) an operator's cash over their days carries
# besides counting noise. Tune seeds 1-5 (walk-forward, retrained): 0.5 took false alarms
# 2.50 -> 2.18 per 1,000 with the same events caught; a whole spread (1.0, tried on the scored
# hours alone) lost the only flags of a creeping under-reporting.
DAY_SPREAD = 0.5
# An operator's last 3 and 5 working days count only while their day so far is this many noise
# units short itself: at one unit, an ordinary slack day after a real loss (a shortfall that had
# ended) carried the loss's days on (a quarter of the dev seeds' false alarms named
# op_cash_short, a third of those within a week after an event at the point).
DAY_SHORT = 1.5
SHIFT_END_MINUTES = 45  # "the end of the shift": the last 45 minutes of an operator's working span
SHIFT_END_COLUMNS = ("shift_end_z", "shift_end_id", "shift_end_k", "shift_end_n", "shift_end_p")
CASH_REFUND_COLUMNS = ("cash_refund_z", "cash_refund_id", "cash_refund_k", "cash_refund_rp")
CASH_SHORT_COLUMNS = (
    "op_short_z",
    "op_short_id",
    "op_short_obs",
    "op_short_exp",
    "op_short_days",
)


def operator_share_signals(ops: pd.DataFrame, op_usual: pd.DataFrame) -> dict[str, pd.Series]:
    """Per point-hour, the operator whose cash share (and the one whose void share) is furthest
    from their own usual, in the hour or over their day up to the hour's end, whichever says
    more."""
    day_keys = ["point_id", "operator_id", "local_date"]
    # A point-hour lies in one local day: grouping by it too only carries it along.
    hour = ops.groupby([*KEYS, *day_keys[1:]])[SHARE_SUMS].sum().reset_index()
    hour = hour.sort_values([*day_keys, "hour_start"], kind="stable").reset_index(drop=True)
    # The operator's day up to the end of each hour they worked: running sums over its hours.
    day = hour[[*KEYS, *day_keys[1:]]].join(hour.groupby(day_keys, sort=False)[SHARE_SUMS].cumsum())
    # The day's rows are the hours' rows, in the same order: one lookup of the usual for both.
    usual = _usual_of(op_usual, hour, ["op_usual_cash", "op_usual_cash_n", "op_usual_void"])
    for frame, min_trials in ((hour, 8), (day, 5)):
        _share_z(frame, usual, min_trials)
    for column in ("cash_z", "void_z", "cash_share", "void_share"):
        hour[f"{column}_day"] = day[column]
    use_day_cash = hour["cash_z_day"] > hour["cash_z"]
    hour["best_cash_z"] = np.where(use_day_cash, hour["cash_z_day"], hour["cash_z"])
    hour["best_cash_share"] = np.where(use_day_cash, hour["cash_share_day"], hour["cash_share"])
    use_day_void = hour["void_z_day"] > hour["void_z"]
    hour["best_void_z"] = np.where(use_day_void, hour["void_z_day"], hour["void_z"])
    hour["best_void_share"] = np.where(use_day_void, hour["void_share_day"], hour["void_share"])
    top_cash = _strongest(hour, "best_cash_z").set_index(KEYS)
    top_void = _strongest(hour, "best_void_z").set_index(KEYS)
    return {
        "op_cash_z": top_cash["best_cash_z"],
        "op_cash_id": top_cash["operator_id"],
        "op_cash_share": top_cash["best_cash_share"],
        "op_cash_usual": top_cash["cash_usual"],
        "op_void_z": top_void["best_void_z"],
        "op_void_id": top_void["operator_id"],
        "op_void_share": top_void["best_void_share"],
        "op_void_usual": top_void["void_usual"],
    }


def _strongest(rows: pd.DataFrame, z: str) -> pd.DataFrame:
    """Per point-hour, the operator row with the strongest ``z`` (of those tied, the last
    operator in name order: the same whichever other hours are in ``rows``)."""
    ordered = rows.sort_values([*KEYS, z, "operator_id"], kind="stable")
    return ordered.groupby(KEYS).tail(1)


def _usual_of(op_usual: pd.DataFrame, rows: pd.DataFrame, columns: list[str]) -> dict:
    """Per row of ``rows`` (point and operator ``coded``), its operator's usual ``columns`` from
    ``op_usual`` (NaN where the baseline has none)."""
    at = positions_in(op_usual, rows, ["point_id", "operator_id"])
    # Position -1 (no usual) picks the NaN put after each column's values.
    return {name: np.append(op_usual[name].to_numpy(), np.nan)[at] for name in columns}


def _share_z(frame: pd.DataFrame, usual: dict, min_trials: int) -> None:
    """Add each row's cash and void share, the operator's usual ones (``usual``, row by row) and
    their one-sided z (cash from sale counts, needing ``min_trials`` sales; voids needing three)
    to ``frame``."""
    p_cash = usual["op_usual_cash"]
    p_void = pd.Series(usual["op_usual_void"]).fillna(0.02).clip(lower=0.01).to_numpy()
    p_count = usual["op_usual_cash_n"]
    share = frame["cash_rp"] / frame["paid_rp"].where(frame["paid_rp"] > 0)
    frame["cash_share"] = share
    frame["cash_usual"] = p_cash
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


def _no_rows(columns) -> pd.DataFrame:
    index = pd.MultiIndex.from_arrays([[], []], names=["point_id", "hour_start"])
    return pd.DataFrame(columns=list(columns), index=index)


def _top_per_hour(rows: pd.DataFrame, z: str, columns: dict[str, str]) -> pd.DataFrame:
    """Per point-hour, the operator row with the strongest ``z``, renamed by ``columns``."""
    top = _strongest(rows, z).set_index(KEYS)
    return top[list(columns)].rename(columns=columns)


def _by_operator_day(ops: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """``ops`` in the order of (point, operator, local date, time), with each row's group (one
    integer per operator-day, increasing in that order)."""
    day_keys = ["point_id", "operator_id", "local_date"]
    ordered = ops.sort_values([*day_keys, "occurred_at"], kind="stable").reset_index(drop=True)
    return ordered, ordered.groupby(day_keys, sort=False).ngroup().to_numpy()


def _last_of_hour(group: np.ndarray, hour_start: pd.Series) -> np.ndarray:
    """For rows sorted by (group, time), whether each row is the last of its group's hour."""
    hour = hour_start.to_numpy(dtype="datetime64[ns]")
    last = np.ones(len(group), dtype=bool)
    last[:-1] = (group[1:] != group[:-1]) | (hour[1:] != hour[:-1])
    return last


def _count_up_to(
    group: np.ndarray,
    times: pd.Series,
    running: np.ndarray,
    query_group: np.ndarray,
    query_times: pd.Series,
) -> np.ndarray:
    """For rows sorted by (group, time) with ``running`` a running count within each group:
    per query, that count at the group's last row at or before the query time (0 if none).
    The times are ranked together so (group, rank) is one sortable integer."""
    both = np.concatenate(
        [times.to_numpy(dtype="datetime64[ns]"), query_times.to_numpy(dtype="datetime64[ns]")]
    )
    ranks = np.unique(both, return_inverse=True)[1].astype(np.int64)
    width = len(both) + 1
    row_key = group.astype(np.int64) * width + ranks[: len(times)]
    query_key = query_group.astype(np.int64) * width + ranks[len(times) :]
    at = np.searchsorted(row_key, query_key, side="right") - 1
    same = (at >= 0) & (group[np.maximum(at, 0)] == query_group)
    return np.where(same, running[np.maximum(at, 0)], 0)


def void_shift_end(ops: pd.DataFrame) -> pd.DataFrame:
    """Voids and refunds an operator crowded into the last ``SHIFT_END_MINUTES`` of that day's
    working span (first to last transaction of theirs that local day), against the share of the
    same operator's paid sales that fell in that window the same day: voids spread like ordinary
    trade land there in that proportion; voiding sales late in the shift (after the payer has
    gone, keeping the cash) crowds them in. Binomial upper tail, one-sided, needs 3 voids in the
    window. The evidence reaches the hours of the window, where the voids are.

    Point in time: hour h reads the operator's day up to its end, so the span ends at their last
    transaction in h and the window is the end of that span; an hour gets the evidence when it
    holds voids inside its own window."""
    ops, group = _by_operator_day(ops)
    void = ops["void"].to_numpy()
    paid = ops["paid"].to_numpy()
    void_so_far = pd.Series(void).groupby(group).cumsum().to_numpy()
    paid_so_far = pd.Series(paid).groupby(group).cumsum().to_numpy()
    span_start = ops["occurred_at"].groupby(group).transform("min")
    # One row per operator-day and hour they worked: the state of their day at its end.
    last = _last_of_hour(group, ops["hour_start"])
    first = np.ones(len(group), dtype=bool)
    first[1:] = last[:-1]
    hours = ops.loc[last, ["point_id", "hour_start", "operator_id"]].reset_index(drop=True)
    span_end = ops["occurred_at"][last].reset_index(drop=True)
    # A window of at most a third of the span, so a two-hour stint is not "all shift end".
    window = ((span_end - span_start[last].reset_index(drop=True)) / 3).clip(
        upper=pd.Timedelta(minutes=SHIFT_END_MINUTES)
    )
    at = group[last]
    void_at_cut = _count_up_to(group, ops["occurred_at"], void_so_far, at, span_end - window)
    paid_at_cut = _count_up_to(group, ops["occurred_at"], paid_so_far, at, span_end - window)
    # Voids before the hour: the running count at the row before the hour's first (same group).
    before = np.flatnonzero(first) - 1
    void_before = np.where(
        (before >= 0) & (group[np.maximum(before, 0)] == at), void_so_far[np.maximum(before, 0)], 0
    )
    hours["void"] = void_so_far[last]
    hours["paid"] = paid_so_far[last]
    hours["tail_void"] = hours["void"] - void_at_cut
    hours["tail_paid"] = hours["paid"] - paid_at_cut
    in_window_here = hours["void"] - np.maximum(void_at_cut, void_before)
    hours = hours[in_window_here.to_numpy() > 0]
    if hours.empty:
        return _no_rows(SHIFT_END_COLUMNS)
    # Share of the day's sales in the window; at least one sale's worth, so a window that holds
    # only the voids is not "0% expected".
    share = (hours["tail_paid"].clip(lower=1) / hours["paid"].clip(lower=1)).clip(upper=1)
    hours = hours.assign(
        shift_end_p=share,
        shift_end_z=np.where(
            hours["tail_void"] >= 3,
            binomial_excess(hours["tail_void"], hours["void"], share),
            0.0,
        ),
    )
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


def cash_refund_noncash(txns: pd.DataFrame, ops: pd.DataFrame, op_usual: pd.DataFrame):
    """Cash refunds of sales that were paid without cash. Feeds carry no link from a refund to
    its sale, so the definition is the simplest one that can be checked: a refund paid out in
    cash whose amount equals a QRIS/card/transfer/e-wallet sale of the same point earlier the
    same local day. Per operator and day up to the hour's end, their count against what that
    operator's usual rate of cash refunds (per paid sale, from the baseline) predicts for the
    day's sales so far: Poisson upper tail, needs 2 such refunds. The evidence reaches the hours
    of those refunds."""
    refunds = ops[(ops["status"] == "refund") & (ops["payment_method"] == "cash")]
    if refunds.empty:
        return _no_rows(CASH_REFUND_COLUMNS)
    noncash = txns[(txns["status"] == "paid") & (txns["payment_method"] != "cash")]
    # The day's first such sale: whether it came before the refund does not depend on what
    # the rest of the day holds, so the whole day's first is the day-so-far one.
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
    hour_keys = [*day_keys, "hour_start"]
    hours = matched.groupby(hour_keys).agg(k=("amount", "size"), rp=("amount", "sum"))
    hours = hours.reset_index()
    hours["cash_refund_k"] = hours.groupby(day_keys, sort=False)["k"].cumsum()
    hours["cash_refund_rp"] = hours.groupby(day_keys, sort=False)["rp"].cumsum()
    # The operator's paid sales that day up to the end of each hour.
    paid = ops.groupby(hour_keys)["paid"].sum().reset_index()
    paid["sales"] = paid.groupby(day_keys, sort=False)["paid"].cumsum()
    sales = (
        paid.set_index(hour_keys)["sales"]
        .reindex(pd.MultiIndex.from_frame(hours[hour_keys]))
        .fillna(0)
        .to_numpy()
    )
    usual = _usual_of(op_usual, hours, ["op_usual_cash_refund"])
    rate = pd.Series(usual["op_usual_cash_refund"]).fillna(0.001).to_numpy()
    expected = np.maximum(rate * sales, 0.05)
    tail = stats.poisson.sf(hours["cash_refund_k"].to_numpy() - 1, expected)
    z = np.clip(np.nan_to_num(stats.norm.isf(np.clip(tail, 1e-300, 1.0)), nan=0.0), 0, CAP)
    hours["cash_refund_z"] = np.where(hours["cash_refund_k"] >= 2, z, 0.0)
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


def operator_cash_shortfall(txns: pd.DataFrame, hours: pd.DataFrame) -> pd.DataFrame:
    """Cash recorded in the hours an operator ran the point vs the cash those hours usually bring
    (usual revenue x peers x usual cash share), over their day so far and over their last three
    and five working days: skimming on one shift shows as that operator's cash falling short day
    after day while the point's other hours look normal.

    Point in time: an hour reads its operator's day up to its own end and their complete working
    days of the ``SHIFT_LOOKBACK_DAYS`` before it, so an hour scored alone and the same hour in
    a backfill get the same figures (``txns`` and ``hours`` must reach that far back)."""
    ops = operator_sales(txns)
    if ops.empty or hours.empty:
        return pd.DataFrame(columns=CASH_SHORT_OUTPUT)
    # The sales and hours are merged and grouped by point and operator several times: on the
    # names' codes (the sales' points coded like the hours', so the two still merge).
    hours = hours.assign(point_id=coded(hours["point_id"]))
    ops = ops.assign(
        point_id=coded(ops["point_id"], hours["point_id"].cat.categories),
        operator_id=coded(ops["operator_id"]),
    )
    work = _hours_by_shift_operator(ops, hours)
    if work.empty:
        return pd.DataFrame(columns=CASH_SHORT_OUTPUT)
    return labelled(_cash_shortfall_of(work, _daily_cash(work)))


CASH_SHORT_OUTPUT = [*KEYS, *CASH_SHORT_COLUMNS]


@dataclass(frozen=True)
class ShiftDays:
    """What ``operator_cash_shortfall`` reads of the complete local days before a point's day
    ``today`` (the per-day shift operators' sales counts and the operators' daily cash): the
    same for every hour of that day, so the hourly runs of a day can share it
    (``shift_cache``). ``counts``: per (point, local hour, operator, local date) the sales, for
    the ``SHIFT_CHOICE_DAYS`` days before ``today``; ``daily``: per (point, operator, local
    date) the cash recorded and expected in the hours of their shifts, for the
    ``SHIFT_LOOKBACK_DAYS`` days before it."""

    counts: pd.DataFrame
    daily: pd.DataFrame


def shift_days(txns: pd.DataFrame, hours: pd.DataFrame, today: pd.Series) -> ShiftDays:
    """The ``ShiftDays`` of the days before each point's ``today`` (a local date per point_id),
    from ``txns`` and ``hours`` reaching ``CASH_SHORT_LEAD_DAYS`` before it, as
    ``operator_cash_shortfall`` figures them."""
    ops = operator_sales(txns)
    counts = _shift_counts(ops, hours)
    work = _with_shift_operator(hours, _shift_operators(counts))
    daily = _daily_cash(work)
    return ShiftDays(
        counts=_days_before(counts, today, SHIFT_CHOICE_DAYS).reset_index(drop=True),
        daily=_days_before(daily, today, SHIFT_LOOKBACK_DAYS).reset_index(drop=True),
    )


def operator_cash_shortfall_after(
    days: ShiftDays, txns: pd.DataFrame, on: pd.DataFrame
) -> pd.DataFrame:
    """``operator_cash_shortfall`` of the hours ``on`` (those from each point's day of
    ``days`` on), from ``days`` (the complete days before it) and ``txns`` reaching back to
    the start of those days: the same figures, without the earlier days' sales."""
    ops = operator_sales(txns)
    fresh = _shift_counts(ops, on)
    counts = pd.concat([days.counts, fresh], ignore_index=True)
    if counts.empty or on.empty:
        return pd.DataFrame(columns=CASH_SHORT_OUTPUT)
    work = _with_shift_operator(on, _shift_operators(counts))
    if work.empty:
        return pd.DataFrame(columns=CASH_SHORT_OUTPUT)
    daily = pd.concat([days.daily, _daily_cash(work)], ignore_index=True)
    daily = daily.sort_values(["point_id", "operator_id", "local_date"]).reset_index(drop=True)
    return _cash_shortfall_of(work, daily)


def _days_before(rows: pd.DataFrame, today: pd.Series, n: int) -> pd.DataFrame:
    """The rows of the ``n`` local days before their point's ``today``."""
    day = rows["point_id"].map(today)
    return rows[(rows["local_date"] < day) & (rows["local_date"] >= day - pd.Timedelta(days=n))]


def _cash_shortfall_of(work: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    out = _shortest_cash_run(_cash_so_far(work), _earlier_days(daily))
    out = out.rename(columns={"operator_id": "op_short_id"})
    return out[CASH_SHORT_OUTPUT]


# What the cash shortfall reads of a transaction: whose paid sale it was, where and when.
OPERATOR_SALE_COLUMNS = ["point_id", "occurred_at", "status", "operator_id"]


def operator_sales(txns: pd.DataFrame) -> pd.DataFrame:
    """The paid sales of ``txns`` recorded by an operator, only the columns the cash shortfall
    reads (``loading.load_operator_sales`` is the same rows read from the store)."""
    paid = (txns["status"] == "paid") & txns["operator_id"].notna() & (txns["operator_id"] != "")
    return txns.loc[paid, OPERATOR_SALE_COLUMNS]


def _hours_by_shift_operator(ops: pd.DataFrame, hours: pd.DataFrame) -> pd.DataFrame:
    """The open hours, each with the operator of its shift: whoever recorded most sales at that
    local hour of the day over the ``SHIFT_CHOICE_DAYS`` days before and the hour itself, so the
    hours of a shift where nothing was recorded still count (and nothing later decides)."""
    return _with_shift_operator(hours, _shift_operators(_shift_counts(ops, hours)))


SHIFT_COUNT_KEYS = ["point_id", "local_hour", "operator_id", "local_date"]


def _shift_counts(ops: pd.DataFrame, hours: pd.DataFrame) -> pd.DataFrame:
    """Per point, local hour of the day, operator and local date: the sales they recorded in
    the hours of ``hours``."""
    ops = ops.drop(columns=["local_date"], errors="ignore")
    ops = ops.assign(hour_start=ops["occurred_at"].dt.floor("h"))
    ops = ops.merge(hours[[*KEYS, "local_hour", "local_date"]], on=KEYS, how="inner")
    return ops.groupby(SHIFT_COUNT_KEYS).size().rename("n").reset_index()


def _shift_operators(daily: pd.DataFrame) -> pd.DataFrame:
    """Per point, local hour and local date, the operator with most sales at that hour over
    that day and the ``SHIFT_CHOICE_DAYS`` before it (of those tied, the last in name order)."""
    keys = ["point_id", "local_hour", "operator_id"]
    # Each day's sales count for that day and the SHIFT_CHOICE_DAYS after it.
    spread = pd.concat(
        daily.assign(local_date=daily["local_date"] + pd.Timedelta(days=lag))
        for lag in range(SHIFT_CHOICE_DAYS + 1)
    )
    shift = spread.groupby([*keys, "local_date"], as_index=False)["n"].sum()
    shift = shift.sort_values(["n", "operator_id"], kind="stable")
    return shift.groupby(["point_id", "local_hour", "local_date"]).tail(1)


def _with_shift_operator(hours: pd.DataFrame, shift: pd.DataFrame) -> pd.DataFrame:
    """The open hours of ``hours`` with their shift's operator and the cash they usually bring."""
    work = hours[hours["is_open"]].merge(
        shift[["point_id", "local_hour", "local_date", "operator_id"]],
        on=["point_id", "local_hour", "local_date"],
        how="inner",
    )
    work["expected_cash"] = work["expected_rev"] * work["usual_cash"].fillna(0)
    return work


def _daily_cash(work: pd.DataFrame) -> pd.DataFrame:
    """Per operator and local day: cash recorded (obs) and usually expected (exp) in their hours."""
    return (
        work.groupby(["point_id", "operator_id", "local_date"])
        .agg(obs=("cash_amount", "sum"), exp=("expected_cash", "sum"))
        .reset_index()
        .sort_values(["point_id", "operator_id", "local_date"])
        .reset_index(drop=True)
    )


def _cash_so_far(work: pd.DataFrame) -> pd.DataFrame:
    """Per hour of ``work``: its operator's cash recorded and expected that day up to its end."""
    work = work.sort_values(["point_id", "operator_id", "hour_start"])
    day = work.groupby(["point_id", "operator_id", "local_date"], sort=False)
    return work[[*KEYS, "operator_id", "local_date", "point_ticket", "s_rev", "phi_day"]].assign(
        obs=day["cash_amount"].cumsum(), exp=day["expected_cash"].cumsum()
    )


def _earlier_days(daily: pd.DataFrame) -> pd.DataFrame:
    """Per operator and day, the sums (and count: ``days_2``, ``days_4``) of their last 2 and
    last 4 working days before it within ``SHIFT_LOOKBACK_DAYS``."""
    out = daily[["point_id", "operator_id", "local_date"]].copy()
    group = daily.groupby(["point_id", "operator_id"], sort=False).ngroup()
    for n in (2, 4):
        obs = np.zeros(len(daily))
        exp = np.zeros(len(daily))
        days = np.zeros(len(daily))
        for lag in range(1, n + 1):
            same = (group.shift(lag) == group) & (
                daily["local_date"].shift(lag)
                >= daily["local_date"] - pd.Timedelta(days=SHIFT_LOOKBACK_DAYS)
            )
            obs += daily["obs"].shift(lag).where(same, 0.0).to_numpy()
            exp += daily["exp"].shift(lag).where(same, 0.0).to_numpy()
            days += same.to_numpy()
        out[f"obs_{n}"], out[f"exp_{n}"], out[f"days_{n}"] = obs, exp, days
    return out


def _shortest_cash_run(so_far: pd.DataFrame, earlier: pd.DataFrame) -> pd.DataFrame:
    """Per hour, the strongest shortfall of the day so far, or of the last 3 or 5 working days
    when the day itself is short, and the figures it quotes."""
    rows = so_far.merge(earlier, on=["point_id", "operator_id", "local_date"], how="left")
    unit = rows["point_ticket"].fillna(1.0).clip(lower=1)
    hourly = rows["s_rev"].fillna(SCALE_DEFAULTS["s_rev"])
    phi = rows["phi_day"].fillna(SCALE_DEFAULTS["phi_day"])

    def shortfall(obs, exp, days):
        """The Poisson shortfall in tickets, its spread widened by the point's day-to-day one:
        a day's cash is not hours drawn alone (the whole day is busy or slack together), and at
        a busy point counting noise alone read an ordinary slack day several units out."""
        mu = exp / unit
        dispersion = np.sqrt(hourly**2 + (DAY_SPREAD * phi) ** 2 * mu / days)
        return poisson_shortfall(obs / unit, mu, dispersion)

    z1 = shortfall(rows["obs"], rows["exp"], 1)
    obs3, exp3 = rows["obs"] + rows["obs_2"].fillna(0), rows["exp"] + rows["exp_2"].fillna(0)
    z3 = shortfall(obs3, exp3, 1 + rows["days_2"].fillna(0))
    obs5, exp5 = rows["obs"] + rows["obs_4"].fillna(0), rows["exp"] + rows["exp_4"].fillna(0)
    z5 = shortfall(obs5, exp5, 1 + rows["days_4"].fillna(0))
    # The longer views count only while the day itself is short.
    down = z1 > DAY_SHORT
    use5 = down & (z5 > np.maximum(z1, z3))
    use3 = down & ~use5 & (z3 > z1)
    rows["op_short_z"] = np.select([use5, use3], [z5, z3], z1)
    rows["op_short_obs"] = np.select([use5, use3], [obs5, obs3], rows["obs"])
    rows["op_short_exp"] = np.select([use5, use3], [exp5, exp3], rows["exp"])
    rows["op_short_days"] = np.select([use5, use3], [5, 3], 1)
    return rows
