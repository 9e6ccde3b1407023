"""Incidents: how the flagged hours of one point group together, and which groups are cases.

An incident is the flagged hours of one point that belong together: consecutive hours, hours
with only closed ones between them (a night), or hours at most ``INCIDENT_GAP`` (a week) apart.
``raises_case`` decides which incidents an auditor gets as a case (issue 13 part 4: quiet on
ordinary local noise); ``casework.cases`` forms and writes them.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.reference.points import open_hours_matrix

MAX_GAP = timedelta(hours=18)  # closed hours (a night) between flags do not split a case
# Flags of one point this close belong to one incident. Measured on the tune seeds (1-5): 48 h
# split a sustained under-reporting into up to six cases (flagged on some days, not others);
# a week made it one and lowered cases per real event from 2.4 to 1.7.
INCIDENT_GAP = timedelta(days=7)
# Local days a volume-only incident (revenue or sales down, nothing else) must be seen on
# before it is a case (``raises_case``): a local dip is hours of one day; three days are the
# "one to three days" in which issue 13 part 2 wants a sustained drop raised.
SUSTAINED_DAYS = 3


def _open_lookup(pts: dict[str, dict]):
    # Each point's open hours worked out when a gap of its flags first asks: a rebuild sees the
    # whole registry but the flags of a few points (1,000 points' matrices were a fifth of an
    # hourly run's case rebuild).
    matrix: dict[str, np.ndarray] = {}

    def closed_between(point_id: str, first: pd.Timestamp, last: pd.Timestamp) -> bool:
        """True when every hour strictly between the two flagged hours is outside open hours."""
        tz = pts[point_id]["timezone"] or DEFAULT_TIMEZONE
        hours = pd.date_range(first + pd.Timedelta(hours=1), last, freq="h", inclusive="left")
        if len(hours) == 0:
            return True
        if point_id not in matrix:
            matrix[point_id] = open_hours_matrix(pd.Series([pts[point_id]["open_hours"]]))[0]
        local = hours.tz_convert(tz).hour
        return not matrix[point_id][local].any()

    return closed_between


def group_runs(flags: pd.DataFrame, pts: dict[str, dict]) -> list[pd.DataFrame]:
    """Split flags (point_id, hour_start, ...) into incidents per point: flagged hours at most
    ``INCIDENT_GAP`` apart (or with only closed hours between them) belong together."""
    if flags.empty:
        return []
    closed_between = _open_lookup(pts)
    runs: list[pd.DataFrame] = []
    for point_id, rows in flags.sort_values(["point_id", "hour_start"]).groupby(
        "point_id", sort=False
    ):
        hours = list(rows["hour_start"])
        cut = [0]
        for i in range(1, len(hours)):
            gap = hours[i] - hours[i - 1]
            together = gap <= INCIDENT_GAP or (
                gap <= MAX_GAP
                and point_id in pts
                and closed_between(point_id, hours[i - 1], hours[i])
            )
            if not together:
                cut.append(i)
        cut.append(len(hours))
        runs.extend(rows.iloc[a:b] for a, b in zip(cut[:-1], cut[1:], strict=True))
    return runs


def raises_case(run: pd.DataFrame) -> bool:
    """Whether an incident is worth a case.

    A lone flagged hour of low evidence (a dip in one hour at one point) never is. Otherwise
    an incident is a case when one of its hours says more than "revenue was down": a device
    that went silent while its peers traded, or a specific pattern's own signal (voids,
    splitting, cash share, ticket) at medium strength (``detector.case_evidence``). An incident
    that only shows volume down - the hour's or the day's revenue and sales, with tickets,
    payment mix and operators ordinary - is a case once it has been seen on
    ``SUSTAINED_DAYS`` local days: a shower or a quiet afternoon at one point is a few hours of
    one day, a sustained under-reporting comes back day after day (issue 13 part 2 asks for it
    within one to three days). Until then its hours stay flags, and the live run opens the
    case when the third day's flag comes (point in time: the rule reads only the flags so far).
    Hours stored before the ``evidence`` column (NULL) count as they did before it."""
    if len(run) == 1 and (run["severity"] == "low").all():
        return False
    evidence = run["evidence"] if "evidence" in run else pd.Series([None] * len(run))
    if evidence.isna().any() or evidence.isin(["device", "pattern"]).any():
        return True
    return _local_days(run) >= SUSTAINED_DAYS


def _local_days(run: pd.DataFrame) -> int:
    """How many distinct local days (Asia/Jakarta: the regency's) the run's hours fall on."""
    hours = pd.to_datetime(run["hour_start"], utc=True)
    return int(hours.dt.tz_convert(DEFAULT_TIMEZONE).dt.normalize().nunique())
