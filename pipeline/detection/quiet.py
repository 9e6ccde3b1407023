"""Quiet on ordinary local noise (issue 13 part 4): which flagged hours are not flagged at all,
and what kind of evidence each flag carries, for the case rule (``casework.incidents``).

A few hours' dip at one point with normal tickets, payment mix and operators is not a case on
its own; a device that goes silent is. So an hour only down in volume, with nothing behind it,
is dropped (``local_dip``); an hour that is not itself down is not flagged because its day is
(``hour_not_down``); and every flag says whether it rests on a silent device, on a specific
pattern's own signal, or on volume alone (``case_evidence``), which decides whether its
incident is a case at once or only once it is seen on three days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NEAR_SILENT = 0.2  # an hour below this share of its expected revenue is a device mostly off
# An hour within one noise unit of its usual x peers in both revenue and sales is not itself
# down: the day-level views (the day so far, the level shift, an operator's day cash) name the
# point and the day to look at, not this hour.
HOUR_DOWN = 1.0


def local_dip(rows: pd.DataFrame, min_evidence: float) -> pd.Series:
    """Flagged hours that are only an hour's revenue or sales down at one point, with tickets,
    payment mix and operators normal (the kind stayed the generic ``under_reporting``), while
    neither the day, the last days, nor an operator's shift bears it out: a rain shower or a
    quiet afternoon at one point, not a case on its own. An hour far below its expectation
    (under a fifth of it: a device mostly off) is kept."""
    corroborated = rows[["day_drop", "level_shift", "op_cash_short"]].max(axis=1) >= min_evidence
    near_silent = rows["gross_paid"] < NEAR_SILENT * rows["expected_rev"]
    return (rows["kind"] == "under_reporting") & ~corroborated & ~near_silent


# The pattern signals, one per specific kind's own evidence (not the volume ones that every
# kind of loss also moves).
PATTERN_SIGNALS = (
    "cash_drop",
    "op_cash_drop",
    "ticket_drop",
    "ticket_day_drop",
    "void_excess",
    "op_void_excess",
    "void_shift_end",
    "cash_refund_noncash",
    "tiny_excess",
    "burst",
    "payer_repeat",
)
PATTERN_STRENGTH = 1.4  # x min_evidence: the "medium" band of an hour's severity


def hour_not_down(rows: pd.DataFrame, min_evidence: float) -> pd.Series:
    """Hours that carry nothing of their own: revenue and sales within ``HOUR_DOWN`` noise
    units of usual x peers and no pattern signal (``PATTERN_SIGNALS``) at ``min_evidence``,
    so only a day-level volume view (the day so far, the level shift, an operator's day cash)
    is out - and it is out for every hour of that day alike. Such an hour lost nothing an
    auditor could count in it (its shortfall is about nil); flagging it turned one low day into
    a flag for every open hour of it, the largest share of the false alarms on the tune seeds,
    whatever weak pattern named it (a cash share or a ticket a little low: ordinary noise).
    The hours of that day that *are* down, or show a pattern, stay flagged; a silent hour is
    judged as a device off."""
    ordinary = (rows["rev_drop"] < HOUR_DOWN) & (rows["count_drop"] < HOUR_DOWN)
    no_pattern = rows[list(PATTERN_SIGNALS)].max(axis=1) < min_evidence
    return ordinary & no_pattern & (rows["kind"] != "device_off")


def case_evidence(rows: pd.DataFrame, min_evidence: float) -> pd.Series:
    """What kind of evidence each flagged hour carries, for ``casework.incidents.raises_case``:
    ``device`` (silent while open and its peers were not: a device off), ``pattern`` (a
    specific pattern's own signal - voids, splitting, cash share, ticket - at medium strength
    or more), else ``volume`` (revenue or sales down, the hour's or the day's, with tickets,
    payment mix and operators ordinary: what a shower or a quiet day also gives)."""
    pattern = rows[list(PATTERN_SIGNALS)].max(axis=1) >= PATTERN_STRENGTH * min_evidence
    return pd.Series(
        np.where(rows["kind"] == "device_off", "device", np.where(pattern, "pattern", "volume")),
        index=rows.index,
    )
