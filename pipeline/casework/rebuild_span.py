"""Which flags a case rebuild regroups: the span around a scored range, for all points and for each.

A rebuild of [start, end) must see every incident a flag in it may belong to, whole: whether an
incident is a case depends on all its flags (``incidents.raises_case``: on how many days a
volume-only drop was seen), so a day scored alone and the same day in a backfill form the same
cases. The span is [start - MARGIN, end + MARGIN) widened to every open case it touches and to
every free flag at most ``INCIDENT_GAP`` from its edge, again and again until nothing is added.

Incidents are of one point, so the closure is worked out per point: a point is regrouped within
its own span, widened by its own cases and flags only. The span of all points (the same rule over
every point's cases and flags) is kept for the open-case count a rebuild reports, and bounds the
per-point spans: at 1,000 points some point always has a flag near the global span's edge, so the
global span of a walk's week reached back to the walk's first flag, and regrouping and rewriting
every case in it every week made a year's backfill quadratic (docs/bench.md, 2026-12-04). A case
of a point outside that point's own span is made of the same flags as when it was last formed, so
regrouping it again would write the same fields under the same id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Connection, and_, func, or_, select

from pipeline.casework.incidents import INCIDENT_GAP
from pipeline.store.schema import anomalies, cases

CASE_COLUMNS = ["case_id", "point_id", "start_at", "end_at"]
_GAP_NS = INCIDENT_GAP // timedelta(microseconds=1) * 1000
_HOUR_NS = 3_600 * 10**9


@dataclass(frozen=True)
class RebuildSpan:
    begin: datetime  # the span of all points: where the open cases a rebuild reports are counted
    finish: datetime
    points: pd.DataFrame  # point_id, begin, finish: each point to regroup and its own span
    old: pd.DataFrame  # the regrouped points' open cases in their spans (CASE_COLUMNS)

    def free_flags(self):
        """The SQL condition for the flags in the points' own spans (points sharing a span in
        one term, so a week's rebuild is a handful of terms, not one per point)."""
        terms = [
            and_(
                anomalies.c.point_id.in_(sorted(group["point_id"])),
                anomalies.c.hour_start >= begin.to_pydatetime(),
                anomalies.c.hour_start < finish.to_pydatetime(),
            )
            for (begin, finish), group in self.points.groupby(["begin", "finish"], sort=True)
        ]
        return and_(anomalies.c.case_id.is_(None), or_(*terms))


def rebuild_span(
    connection: Connection, begin: datetime, finish: datetime, keep_ids: list[int], known
) -> RebuildSpan:
    """The spans a rebuild of [begin, finish) (the range with its MARGIN) regroups: open
    detector cases other than ``keep_ids`` and free flags matching ``known`` widen them."""
    all_begin, all_finish, old = _global_span(connection, begin, finish, keep_ids, known)
    rows = connection.execute(
        select(anomalies.c.point_id, anomalies.c.hour_start).where(
            anomalies.c.case_id.is_(None),
            known,
            anomalies.c.hour_start >= all_begin,
            anomalies.c.hour_start < all_finish,
        )
    )
    hours = pd.DataFrame([tuple(r) for r in rows], columns=["point_id", "hour_start"])
    hours["hour_start"] = pd.to_datetime(hours["hour_start"], utc=True)
    points = point_spans(hours, old, begin, finish)
    mine = old.merge(points, on="point_id")
    mine = mine[(mine["start_at"] < mine["finish"]) & (mine["end_at"] > mine["begin"])]
    return RebuildSpan(all_begin, all_finish, points, mine[CASE_COLUMNS].reset_index(drop=True))


def point_spans(
    hours: pd.DataFrame, old: pd.DataFrame, begin: datetime, finish: datetime
) -> pd.DataFrame:
    """Each point's own span: [begin, finish) widened by the point's ``old`` cases
    (CASE_COLUMNS) and free flag ``hours`` (point_id, hour_start) as ``_global_span`` widens it
    by every point's; only points with a case or a flag in theirs (point_id, begin, finish)."""
    flag_ns = _by_point(hours, ["hour_start"])
    case_ns = _by_point(old, ["start_at", "end_at"])
    none = np.empty(0, dtype=np.int64)
    rows = []
    for point in sorted(set(flag_ns) | set(case_ns)):
        (flagged,) = flag_ns.get(point, (none,))
        starts, ends = case_ns.get(point, (none, none))
        low, high = _ns(begin), _ns(finish)
        while True:
            touched = (starts < high) & (ends > low)
            if touched.any():
                low, high = min(low, starts[touched].min()), max(high, ends[touched].max())
            before = flagged[(flagged >= low - _GAP_NS) & (flagged < low)]
            after = flagged[(flagged >= high) & (flagged < high + _GAP_NS)]
            if not len(before) and not len(after):
                break
            if len(before):
                low = before.min()
            if len(after):
                high = after.max() + _HOUR_NS
        if touched.any() or ((flagged >= low) & (flagged < high)).any():
            rows.append((point, pd.Timestamp(low, tz=UTC), pd.Timestamp(high, tz=UTC)))
    return pd.DataFrame(rows, columns=["point_id", "begin", "finish"])


def _ns(moment) -> int:
    return pd.Timestamp(moment).as_unit("ns").value


def _by_point(frame: pd.DataFrame, columns: list[str]) -> dict[str, tuple[np.ndarray, ...]]:
    """Each point's times in ``columns`` as nanoseconds since the epoch (UTC)."""
    # Converted once and cut by point: a DatetimeIndex per point and column was most of the
    # per-point closure's time at 1,000 points.
    values = [pd.DatetimeIndex(frame[c]).as_unit("ns").asi8 for c in columns]
    groups = frame.groupby("point_id", sort=False).indices
    return {point: tuple(v[rows] for v in values) for point, rows in groups.items()}


def _global_span(
    connection: Connection, begin: datetime, finish: datetime, keep_ids: list[int], known
) -> tuple[datetime, datetime, pd.DataFrame]:
    """The span of all points and the open cases in it: [begin, finish) widened to every open
    case it touches and to every free flag of any point at most ``INCIDENT_GAP`` from the span,
    again and again."""
    while True:
        query = select(*(cases.c[c] for c in CASE_COLUMNS)).where(
            and_(cases.c.origin == "detector", cases.c.start_at < finish, cases.c.end_at > begin)
        )
        if keep_ids:
            query = query.where(cases.c.case_id.not_in(keep_ids))
        old = pd.DataFrame([tuple(r) for r in connection.execute(query)], columns=CASE_COLUMNS)
        for column in ("start_at", "end_at"):
            old[column] = pd.to_datetime(old[column], utc=True)
        if not old.empty:
            begin = min(begin, old["start_at"].min().to_pydatetime())
            finish = max(finish, old["end_at"].max().to_pydatetime())
        free = and_(anomalies.c.case_id.is_(None), known)
        edges = connection.execute(
            select(
                select(func.min(anomalies.c.hour_start))
                .where(
                    free,
                    anomalies.c.hour_start >= begin - INCIDENT_GAP,
                    anomalies.c.hour_start < begin,
                )
                .scalar_subquery(),
                select(func.max(anomalies.c.hour_start))
                .where(
                    free,
                    anomalies.c.hour_start >= finish,
                    anomalies.c.hour_start < finish + INCIDENT_GAP,
                )
                .scalar_subquery(),
            )
        ).one()
        if edges[0] is None and edges[1] is None:
            return begin, finish, old
        if edges[0] is not None:
            begin = _as_utc(edges[0])
        if edges[1] is not None:
            finish = _as_utc(edges[1]) + timedelta(hours=1)


def _as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives it back naive)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
