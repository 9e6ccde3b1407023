"""Transaction-level signals per point-hour: what hour totals cannot show (tiny tickets, one
payer paying again and again, cash sales missing from the count), plus the per-operator evidence
of ``operator_signals``.

Point in time: every signal of hour h reads its local day only up to the end of h (a payer's
payments that day so far, an operator's day so far), so an hour scored alone and the same hour
in a backfill agree. The day-level sums are running sums over the hours of the day, one pass
over all the transactions (a pass per local hour of the day made features five times slower).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.detection.features.coded_keys import coded, labelled
from pipeline.detection.features.config import FeatureConfig
from pipeline.detection.features.noise_units import binomial_shortfall
from pipeline.detection.features.operator_signals import (
    CASH_REFUND_COLUMNS,
    SHIFT_END_COLUMNS,
    cash_refund_noncash,
    operator_share_signals,
    void_shift_end,
)

KEYS = ["point_id", "hour_start"]
TRANSACTION_SIGNAL_COLUMNS = [
    *KEYS,
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


def transaction_signals(
    txns: pd.DataFrame,
    pts: pd.DataFrame,
    scales: pd.DataFrame,
    op_usual: pd.DataFrame,
    config: FeatureConfig,
) -> pd.DataFrame:
    """Per point-hour, as of its end: tiny tickets, repeated payers, per-operator cash/void
    evidence, operators. ``txns`` must hold each scored hour's local day from its start."""
    if txns.empty:
        return pd.DataFrame(columns=TRANSACTION_SIGNAL_COLUMNS)
    operator_type = txns["operator_id"].dtype
    txns = classify_transactions(txns, pts, scales, config)
    out = txns.groupby(KEYS)["tiny"].sum().rename("tiny_n").to_frame()
    paid = txns["status"] == "paid"
    payers = txns[paid & txns["payer_ref"].notna() & (txns["payer_ref"] != "")]
    if not payers.empty:
        _assign(out, repeated_payer(payers))
    out["cash_count_z"] = cash_count_shortfall(txns, op_usual)
    ops = txns[txns["operator_id"].notna() & (txns["operator_id"] != "")]
    if not ops.empty:
        _assign(out, operator_share_signals(ops, op_usual))
        pairs = ops[[*KEYS, "operator_id"]].drop_duplicates().sort_values([*KEYS, "operator_id"])
        out["operators_active"] = _joined_per_hour(pairs, KEYS, "operator_id")
        out = out.join(void_shift_end(ops)).join(cash_refund_noncash(txns, ops, op_usual))
    # The shift end's operator is picked out of the transactions' rows: their own type.
    out = labelled(out.reset_index(), kept={"shift_end_id": operator_type})
    for column in TRANSACTION_SIGNAL_COLUMNS:
        if column not in out:
            out[column] = np.nan
    return out


def _assign(out: pd.DataFrame, columns: dict[str, pd.Series]) -> None:
    """Add ``columns`` (indexed by point-hour) to ``out``, aligned on the index, in order."""
    for name, values in columns.items():
        out[name] = values


def classify_transactions(
    txns: pd.DataFrame, pts: pd.DataFrame, scales: pd.DataFrame, config: FeatureConfig
) -> pd.DataFrame:
    """The transactions with their UTC hour, local date and 0/1 columns for what each one is:
    paid, void/refund, tiny, an ordinary sale (counted in the cash share), an ordinary cash sale.
    The names (point, operator, payer, status, payment method) are ``coded``: the signals group
    by them and compare them again and again."""
    # Only new columns are set, and the names replaced whole: the caller's frame is untouched.
    txns = txns.copy(deep=False)
    for name in ("point_id", "operator_id", "payer_ref", "status", "payment_method"):
        txns[name] = coded(txns[name])
    txns["hour_start"] = txns["occurred_at"].dt.floor("h")
    # Per point of the registry, by the points' codes: no per-row lookup of a name.
    point_names = txns["point_id"].cat.categories
    point_codes = txns["point_id"].cat.codes.to_numpy()
    registry_at = pd.Index(pts["point_id"]).get_indexer(point_names)
    timezone = pts["timezone"].to_numpy(dtype=object)[registry_at]
    timezone[registry_at < 0] = DEFAULT_TIMEZONE
    txns["local_date"] = _local_dates(txns["occurred_at"], timezone, point_codes)
    paid = txns["status"] == "paid"
    txns["paid"] = paid.astype(np.int64)
    txns["paid_rp"] = txns["amount"].where(paid, 0)
    txns["cash_rp"] = txns["amount"].where(paid & (txns["payment_method"] == "cash"), 0)
    txns["void"] = (~paid).astype(np.int64)
    ticket = scales["point_ticket"].reindex(range(len(pts))).to_numpy(dtype=float)[registry_at]
    ticket[registry_at < 0] = np.nan
    limit = ticket[point_codes] * config.tiny_fraction
    txns["tiny"] = (paid & (txns["amount"] < limit)).astype(np.int64)
    # Cash share counts ordinary sales only: a burst of tiny or repeated QRIS payments is its own
    # signal and must not read as missing cash.
    has_payer = paid & txns["payer_ref"].notna() & (txns["payer_ref"] != "")
    payer_hour_n = txns[has_payer].groupby([*KEYS, "payer_ref"])["paid"].transform("size")
    repeated = pd.Series(False, index=txns.index)
    repeated.loc[payer_hour_n.index] = payer_hour_n >= 4
    ordinary = paid & (txns["tiny"] == 0) & ~repeated
    txns["sales_n"] = ordinary.astype(np.int64)
    txns["cash_n"] = (ordinary & (txns["payment_method"] == "cash")).astype(np.int64)
    return txns


def _local_dates(
    occurred_at: pd.Series, point_timezone: np.ndarray, point_codes: np.ndarray
) -> pd.Series:
    """Each transaction's date in its point's own timezone (``point_timezone`` per point code)."""
    local_dates = pd.Series(
        np.zeros(len(occurred_at), dtype="datetime64[D]"), index=occurred_at.index
    )
    zone_of_point, zones = pd.factorize(point_timezone)
    zone_of_row = zone_of_point[point_codes]
    for zone, tz in enumerate(zones):
        index = np.flatnonzero(zone_of_row == zone)
        local = occurred_at.iloc[index].dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
        local_dates.iloc[index] = local.to_numpy().astype("datetime64[D]")
    return local_dates


def repeated_payer(payers: pd.DataFrame) -> dict[str, pd.Series]:
    """One payer account paying the point again and again within the hour (a regular customer
    paying twice a day is normal, five QRIS payments in an hour are not): per point-hour its
    strongest payer (the last in name order of those tied), the evidence, and how often they
    paid that hour and that day up to the hour's end."""
    day_keys = ["point_id", "local_date", "payer_ref"]
    per_hour = payers.groupby([*KEYS, *day_keys[1:]]).size().rename("hour_n").reset_index()
    per_hour = per_hour.sort_values([*day_keys, "hour_start"], kind="stable")
    per_hour["day_n"] = per_hour.groupby(day_keys, sort=False)["hour_n"].cumsum()
    top = per_hour.sort_values([*KEYS, "hour_n", "payer_ref"], kind="stable")
    top = top.groupby(KEYS).tail(1).set_index(KEYS)
    return {
        "payer_top": ((top["hour_n"] - 3) * 2.0).clip(lower=0),
        "payer_ref_top": top["payer_ref"],
        "payer_hour_n": top["hour_n"],
        "payer_day_n": top["day_n"],
    }


def cash_count_shortfall(txns: pd.DataFrame, op_usual: pd.DataFrame) -> pd.Series:
    """Per point-hour, the cash share of the point's ordinary sales (counts: skimming removes
    whole cash sales) below the point's usual, as a binomial z."""
    point_usual = op_usual.groupby("point_id")[["cash_n", "paid_n"]].sum()
    p_point = (
        point_usual["cash_n"] / point_usual["paid_n"].where(point_usual["paid_n"] > 0)
    ).rename("p")
    counts = txns.groupby(KEYS)[["sales_n", "cash_n"]].sum()
    p_hour = counts.index.get_level_values("point_id").map(p_point).to_numpy(dtype=float)
    # An hour needs eight sales before its cash share says anything (0 cash in 5 sales happens).
    z = binomial_shortfall(counts["cash_n"], counts["sales_n"], p_hour, min_trials=8)
    return pd.Series(z, index=counts.index)


def _joined_per_hour(rows: pd.DataFrame, keys: list[str], column: str) -> pd.Series:
    """``",".join`` of ``column`` per ``keys`` group, for rows already sorted by the keys:
    slices of one list instead of a Python call per group (groupby.agg with a Python function
    cost a minute per year of a thousand points)."""
    first = ~rows.duplicated(keys).to_numpy()
    bounds = [*np.flatnonzero(first).tolist(), len(rows)]
    values = rows[column].tolist()
    joined = [",".join(values[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return pd.Series(joined, index=pd.MultiIndex.from_frame(rows.loc[first, keys]))
