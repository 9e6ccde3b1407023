"""Reading what detection needs from the store: the registry, hour aggregates, transactions,
operators' usual shares, confirmed cases and the span of the data."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, String, and_, case, func, select, type_coerce

from pipeline.casework.incidents import raises_case
from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.detection.features.baseline import LearntUsuals
from pipeline.intake.aggregate import AGGREGATE_COLUMNS as AGG_COLUMNS
from pipeline.reference.points import known_points
from pipeline.store.schema import (
    anomalies,
    cases,
    hour_aggregates,
    points,
    transactions,
    transactions_between,
)

OP_USUAL_VALUES = (
    "paid_n",
    "cash_n",
    "op_usual_cash",
    "op_usual_cash_n",
    "op_usual_void",
    "op_usual_cash_refund",
)


def utc_times(values) -> pd.Series:
    """Times read with type_coerce(…, String) as an aware UTC Series: SQLite gives naive UTC
    strings, PostgreSQL aware datetimes (vectorised; ``core.times.to_utc`` is its scalar twin).
    ISO 8601 with or without fractions and offsets covers both, at 2.4x the speed of inferring
    each value's format ("mixed"), with the same values and unit."""
    return pd.to_datetime(pd.Series(values), utc=True, format="ISO8601")


def _read_frame(engine: Engine, query, columns: list[str]) -> pd.DataFrame:
    """The rows of ``query`` as a frame, fetched in one call from the driver's own cursor and
    built from its tuples. SQLAlchemy still compiles the query and binds its parameters (the
    times as each database stores them); its result rows are skipped because the columns read
    here have no result processing (text, integers, times read as text), and making a Row of
    each tuple took as long as the fetch itself (hourly run at 1,000 points: 1.2 s -> 0.6 s for
    eleven days of transactions). ``from_records`` infers each column from the tuples as the
    column lists did, at a third of the time."""
    with engine.connect() as connection:
        result = connection.execute(query)
        try:
            rows = result.cursor.fetchall()
        finally:
            result.close()
    if not rows:
        return pd.DataFrame([], columns=columns)
    return pd.DataFrame.from_records(rows, columns=columns)


def load_points(engine: Engine) -> pd.DataFrame:
    """The registry as a frame, in point_id order, each point with its timezone."""
    registry = known_points(engine)
    rows = [registry[point_id] for point_id in sorted(registry)]
    frame = pd.DataFrame(rows, columns=[c.name for c in points.columns])
    frame["timezone"] = frame["timezone"].fillna(DEFAULT_TIMEZONE).replace("", DEFAULT_TIMEZONE)
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
    frame["hour_start"] = utc_times(frame["hour_start"])
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
    frame["occurred_at"] = utc_times(frame["occurred_at"])
    frame["amount"] = frame["amount"].astype("int64")
    return frame


def load_operator_sales(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """``operator_signals.operator_sales`` of the transactions of [start, end), read as such: the
    operators' earlier working days (ten of them before an hourly run's hour) need only who sold
    what where and when, not the amounts, payment methods and payers of every row."""
    t = transactions.c
    query = select(
        t.point_id, type_coerce(t.occurred_at, String).label("occurred_at"), t.status, t.operator_id
    ).where(
        and_(
            transactions_between(start, end),
            t.status == "paid",
            t.operator_id.is_not(None),
            t.operator_id != "",
        )
    )
    frame = _read_frame(engine, query, ["point_id", "occurred_at", "status", "operator_id"])
    frame["occurred_at"] = utc_times(frame["occurred_at"])
    return frame


class StoredWeeks:
    """Hour aggregates and transactions read from the store a whole UTC week at a time and kept
    in memory (the ``keep`` weeks used last), so that a walk over a long range reads each week
    once: the walk forward of a backfill asked for each week about ten times (the eight weeks
    each model learns from, the eight weeks of each scored week's usual levels, the week itself)
    and re-reading it was a large part of its time. Serves what ``load_hour_aggregates`` and
    ``load_transactions`` return for the same range, transactions in the same order as one
    SQLite query (by point, time, then as stored). The weeks are a snapshot: rows stored after
    a week was read are not seen, so use one for one pass over data nobody is writing. What a
    walk learns from one window again and again is kept beside them: the operators' usual
    shares (``operator_usuals``) and the slot usuals (``learnt``)."""

    WEEK = pd.Timedelta(weeks=1)
    ORIGIN = pd.Timestamp("1970-01-05", tz="UTC")  # a Monday
    USUAL_WINDOWS_KEPT = 2  # a walk moves from one model's window to the next
    SHARE_PIECES_KEPT = 24  # weeks of the operators' share sums: two windows of twelve weeks

    def __init__(self, engine: Engine, keep: int = 12):
        self.engine = engine
        self.keep = keep
        self._weeks: dict[str, OrderedDict[int, pd.DataFrame]] = {
            "hour_start": OrderedDict(),
            "occurred_at": OrderedDict(),
        }
        self._usual_shares: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
        self._share_pieces: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
        self.learnt = LearntUsuals()

    def hour_aggregates(self, start: datetime, end: datetime) -> pd.DataFrame:
        """``load_hour_aggregates(engine, start, end)``, from memory where it can."""
        return self._served(load_hour_aggregates, "hour_start", start, end)

    def transactions(self, start: datetime, end: datetime) -> pd.DataFrame:
        """``load_transactions(engine, start, end)``, from memory where it can."""
        return self._served(load_transactions, "occurred_at", start, end)

    def operator_usuals(self, start: datetime, end: datetime) -> pd.DataFrame:
        """``operator_usuals(engine, start, end)``, once per window: each week a model learns
        from has its usual levels from the same window (the model's moment). A window's sums
        are added up from those of its weeks counted back from its end (``usual_pieces``),
        each summed in SQL once: the next moment's window shares all but one of them, and
        summing eight weeks of 1,000 points' transactions again every week was a tenth of a
        year's backfill. The last few windows are kept; each call gets its own copy."""
        window = (pd.Timestamp(start), pd.Timestamp(end))
        if window not in self._usual_shares:
            pieces = usual_pieces(*window)
            if not pieces:  # an empty window: the store's own empty frame
                sums = operator_share_sums(self.engine, start, end)
            else:
                sums = summed_share_sums([self._share_sums(a, b) for a, b in pieces])
            self._usual_shares[window] = usual_shares(sums)
            while len(self._usual_shares) > self.USUAL_WINDOWS_KEPT:
                self._usual_shares.popitem(last=False)
        self._usual_shares.move_to_end(window)
        return self._usual_shares[window].copy()

    def _share_sums(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        piece = (start, end)
        if piece not in self._share_pieces:
            self._share_pieces[piece] = operator_share_sums(
                self.engine, start.to_pydatetime(), end.to_pydatetime()
            )
            while len(self._share_pieces) > self.SHARE_PIECES_KEPT:
                self._share_pieces.popitem(last=False)
        self._share_pieces.move_to_end(piece)
        return self._share_pieces[piece]

    def _served(
        self, load: Callable, time_column: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        begin, finish = pd.Timestamp(start), pd.Timestamp(end)
        first = (begin - self.ORIGIN) // self.WEEK
        last = -((self.ORIGIN - finish) // self.WEEK)  # ceiling: the week holding end's hour
        parts = []
        for week in range(first, max(last, first + 1)):
            frame = self._week(load, time_column, week)
            times = frame[time_column]
            parts.append(frame[(times >= begin) & (times < finish)])
        kept = [part for part in parts if len(part)]
        if not kept:  # the store's own empty frame (its columns' types differ)
            return load(self.engine, start, end)
        if len(kept) == 1:
            return kept[0].reset_index(drop=True)
        joined = pd.concat(kept, ignore_index=True)
        if time_column == "occurred_at":
            # One query reads the (point_id, occurred_at) index: by point, then time, ties in
            # stored order, which a stable sort of the weeks (in time order) gives back.
            order = np.lexsort(
                (joined["occurred_at"].array.asi8, pd.factorize(joined["point_id"], sort=True)[0])
            )
            joined = joined.take(order).reset_index(drop=True)
        return joined

    def _week(self, load: Callable, time_column: str, week: int) -> pd.DataFrame:
        weeks = self._weeks[time_column]
        if week in weeks:
            weeks.move_to_end(week)
            return weeks[week]
        begin = self.ORIGIN + week * self.WEEK
        frame = load(self.engine, begin.to_pydatetime(), (begin + self.WEEK).to_pydatetime())
        weeks[week] = frame
        while len(weeks) > self.keep:
            weeks.popitem(last=False)
        return frame


# What the operators' usual shares are made of: sums over a window's transactions (whole
# numbers), so the sums of a window's pieces add up to the window's own.
SHARE_SUMS = ("paid_n", "paid_rp", "cash_rp", "void_n", "cash_n", "cash_refund_n")


def usual_pieces(start: pd.Timestamp, end: pd.Timestamp) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """[start, end) cut into weeks counted back from ``end`` (the first one shorter when the
    window is not whole weeks), in time order: windows ending at consecutive retrain moments
    share all their weeks but the newest."""
    pieces, finish = [], end
    while finish > start:
        begin = max(start, finish - StoredWeeks.WEEK)
        pieces.append((begin, finish))
        finish = begin
    return pieces[::-1]


def operator_usuals(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Each (point, operator)'s cash share (of amounts and of sales) and void+refund share over
    [start, end), in SQL; operator None collects sales without an operator."""
    return usual_shares(operator_share_sums(engine, start, end))


def operator_share_sums(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Each (point, operator)'s ``SHARE_SUMS`` over [start, end), in SQL (grouped by point and
    operator, in that order: operator None first, as SQLite gives them)."""
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
    frame = _read_frame(engine, query, ["point_id", "operator_id", *SHARE_SUMS])
    for column in SHARE_SUMS:
        frame[column] = pd.to_numeric(frame[column])
    return frame


def summed_share_sums(pieces: list[pd.DataFrame]) -> pd.DataFrame:
    """``operator_share_sums`` of a window from those of the pieces it is cut into (one query
    over the whole window gives the same rows, in the same order)."""
    found = [piece for piece in pieces if len(piece)]
    if len(found) <= 1:
        return found[0] if found else pieces[0]
    joined = pd.concat(found, ignore_index=True)
    has_operator = joined["operator_id"].notna()
    keys = pd.DataFrame(
        {
            "point_id": joined["point_id"],
            "has_operator": has_operator,  # False first: operator None sorts first
            "operator": joined["operator_id"].where(has_operator, ""),
        }
    )
    sums = joined[list(SHARE_SUMS)].groupby([keys[c] for c in keys], sort=True).sum()
    index = sums.index
    operator = np.where(
        index.get_level_values("has_operator"), index.get_level_values("operator"), None
    )
    frame = pd.DataFrame(
        {"point_id": index.get_level_values("point_id").to_numpy(), "operator_id": operator}
    )
    for column in SHARE_SUMS:
        frame[column] = sums[column].to_numpy()
    return frame


def usual_shares(sums: pd.DataFrame) -> pd.DataFrame:
    """The operators' usual shares (``OP_USUAL_VALUES``) from their ``SHARE_SUMS``."""
    frame = sums.copy()
    for column in SHARE_SUMS:
        frame[column] = frame[column].astype("float64")
    frame["op_usual_cash"] = frame["cash_rp"] / frame["paid_rp"].where(frame["paid_rp"] > 0)
    frame["op_usual_void"] = frame["void_n"] / (frame["paid_n"] + frame["void_n"]).where(
        lambda s: s > 0
    )
    frame["op_usual_cash_n"] = frame["cash_n"] / frame["paid_n"].where(frame["paid_n"] > 0)
    # Cash refunds per paid sale, shrunk towards one in a thousand: most operators have none.
    frame["op_usual_cash_refund"] = (frame["cash_refund_n"] + 0.5) / (frame["paid_n"] + 500.0)
    return frame[["point_id", "operator_id", *OP_USUAL_VALUES]]


def confirmed_windows(
    engine: Engine, start: datetime, end: datetime, status: str = "confirmed"
) -> pd.DataFrame:
    """Confirmed leakage cases overlapping [start, end): kept out of the usual level. With
    ``status`` "false_alarm": the cases an auditor dismissed, whose hours are usual whatever
    they look like (``baseline_shift``)."""
    query = select(cases.c.point_id, cases.c.start_at, cases.c.end_at).where(
        and_(cases.c.status == status, cases.c.start_at < end, cases.c.end_at > start)
    )
    with engine.connect() as connection:
        rows = [r._asdict() for r in connection.execute(query)]
    frame = pd.DataFrame(rows, columns=["point_id", "start_at", "end_at"])
    for column in ("start_at", "end_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


# Case statuses still waiting for an auditor's decision (casework.audit.DECIDABLE).
UNDECIDED = ("open", "field_check")


def unusual_case_windows(
    engine: Engine,
    start: datetime,
    end: datetime,
    *,
    undecided_until: datetime | None = None,
    opened_before: datetime | None = None,
) -> pd.DataFrame:
    """Cases whose hours are kept out of the usual level, overlapping [start, end): confirmed
    leakage, and detector cases no auditor has decided yet (an open case of a drop that goes on
    must not teach the baseline that the drop is usual; once dismissed as a false alarm its hours
    count again). ``undecided_until`` clips the undecided ones to end there: a hindsight run's
    baseline overlaps the range it scores, whose own open cases it is about to rebuild.

    ``opened_before`` (the baseline's end, the retrain moment): an undecided case counts only if
    its flags before that moment already made it a case (``casework.incidents.raises_case``). A
    volume-only drop becomes a case on its third day, reaching back to its first: one that
    became a case after the retrain moment was, at that moment, flags only, and the usual levels
    of the week are those known then - whether the week is scored at once (a backfill) or day
    by day (the live run, which sees the case open mid-week)."""
    c = cases.c
    query = select(c.case_id, c.status, c.origin, c.point_id, c.start_at, c.end_at).where(
        and_(
            (c.status == "confirmed") | ((c.origin == "detector") & c.status.in_(UNDECIDED)),
            c.start_at < end,
            c.end_at > start,
        )
    )
    with engine.connect() as connection:
        rows = [r._asdict() for r in connection.execute(query)]
        frame = pd.DataFrame(
            rows, columns=["case_id", "status", "origin", "point_id", "start_at", "end_at"]
        )
        if opened_before is not None and not frame.empty:
            frame = _as_known_at(connection, frame, opened_before)
    frame = frame[["point_id", "start_at", "end_at"]].reset_index(drop=True)
    for column in ("start_at", "end_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    if undecided_until is not None and not frame.empty:
        confirmed = _confirmed_keys(engine, start, end)
        keys = list(zip(frame["point_id"], frame["start_at"], strict=True))
        undecided = ~pd.Series([k in confirmed for k in keys], index=frame.index)
        limit = pd.Timestamp(undecided_until)
        frame.loc[undecided, "end_at"] = frame.loc[undecided, "end_at"].clip(upper=limit)
        frame = frame[frame["end_at"] > frame["start_at"]]
    return frame.sort_values(["point_id", "start_at", "end_at"], ignore_index=True)


def _as_known_at(connection, found: pd.DataFrame, moment: datetime) -> pd.DataFrame:
    """The rows of ``found`` (cases) that were cases at ``moment``, as they stood then: confirmed
    ones whole; a detector case waiting for a decision only if its flags before ``moment`` raise
    a case (``casework.incidents.raises_case``), and ending with the last of those flags. A case
    that grew over the moment later (a drop going on into the week) left the usual levels learnt
    at the moment as they were: the hourly runs of the week (a cached baseline), a backfill that
    scores the week at once and a model fitted later from the week's features (``training``)
    then all see the same numbers."""
    undecided = found["status"].isin(UNDECIDED) & (found["origin"] == "detector")
    ids = [int(i) for i in found.loc[undecided, "case_id"]]
    if not ids:
        return found
    a = anomalies.c
    flag_rows = connection.execute(
        select(a.case_id, a.hour_start, a.severity, a.evidence).where(
            and_(a.case_id.in_(ids), a.hour_start < moment)
        )
    ).all()
    flags = pd.DataFrame(flag_rows, columns=["case_id", "hour_start", "severity", "evidence"])
    raised, known_end = {}, {}
    for case_id, run in flags.groupby("case_id"):
        raised[int(case_id)] = raises_case(run.reset_index(drop=True))
        last_flag = pd.to_datetime(run["hour_start"], utc=True).max()
        known_end[int(case_id)] = last_flag + pd.Timedelta(hours=1)
    keep = ~undecided | found["case_id"].map(lambda i: raised.get(int(i), False))
    found = found[keep].copy()
    ends = pd.to_datetime(found["end_at"], utc=True)
    last = pd.to_datetime(found["case_id"].map(lambda i: known_end.get(int(i))), utc=True)
    clip = undecided[keep] & last.notna() & (last < ends)
    found["end_at"] = ends.where(~clip, last)
    return found


def _confirmed_keys(engine: Engine, start: datetime, end: datetime) -> set:
    found = confirmed_windows(engine, start, end)
    return set(zip(found["point_id"], found["start_at"], strict=True))


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
    first, last = utc_times([first, last])
    return first.to_pydatetime(), (last + pd.Timedelta(hours=1)).to_pydatetime()
