"""Minute and hour aggregates per point: count, gross paid, voids, refunds, cash, operators, largest ticket.

Every aggregate row is a pure function of the stored transactions in its minute/hour, so
recomputing an interval (delete, then insert) is idempotent: a rerun or a late row gives the same
rows as one clean pass. The sums are done in pandas on integer-coded columns and written with one
bulk insert: SQLite's GROUP BY with COUNT(DISTINCT) over a temp B-tree was 10x slower.

Invariant the ingest relies on: every stored transaction lies in a point-hour that has an
``hour_aggregates`` row (ingest aggregates what it stores; ``aggregate_range`` recomputes from
transactions). So a batch only has to re-read stored rows for point-hours that already had one
(``BatchAggregates``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, bindparam, delete, text

from pipeline.core.times import HOUR, ceil_hour, floor_hour
from pipeline.store.bulk import (
    BulkRows,
    GatheredRows,
    copy_columns,
    copy_many,
    format_rows,
    micros_from_db,
    prefetched,
    release_stages,
    uses_arrow,
    utc_text,
)
from pipeline.store.schema import REGISTERED_POINT_IDS, hour_aggregates, minute_aggregates

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
SUM_COLUMNS = (
    "txn_count",
    "gross_paid",
    "void_count",
    "void_amount",
    "refund_count",
    "refund_amount",
    "cash_amount",
)
AGGREGATE_COLUMNS = (*SUM_COLUMNS, "operators", "max_ticket")
STATUS_CODES = {"paid": 0, "void": 1, "refund": 2}
# Reading a long interval back from the database a week at a time bounds memory.
READ_SLICE = timedelta(days=7)
# Dirty point-hours (touched again by a batch) recomputed per round trip: ~5 stored rows an hour
# at the bench's volume, so a round holds ~250k rows in memory.
DIRTY_HOURS_PER_READ = 50_000


def _micros(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000 + when.microsecond


@dataclass
class Encoder:
    """Turns point and operator ids into small integers, the same ones across chunks."""

    points: dict[str, int] = field(default_factory=dict)
    operators: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def _codes(values: np.ndarray, table: dict[str, int]) -> np.ndarray:
        local, uniques = pd.factorize(values, use_na_sentinel=True)
        if not len(uniques):
            return np.full(len(values), -1, dtype=np.int32)
        mapping = np.array([table.setdefault(u, len(table)) for u in uniques], dtype=np.int32)
        return np.where(local >= 0, mapping[np.maximum(local, 0)], -1).astype(np.int32)

    def encode(
        self,
        point_id: np.ndarray,
        occurred_us: np.ndarray,
        amount: np.ndarray,
        status: np.ndarray,
        payment_method: np.ndarray,
        operator_id: np.ndarray,
    ) -> pd.DataFrame:
        """Compact columns for ``summarise``: ~26 bytes a row instead of four Python strings."""
        status_code = np.full(len(status), -1, dtype=np.int8)
        for name, code in STATUS_CODES.items():
            status_code[status == name] = code
        return pd.DataFrame(
            {
                "point": self._codes(point_id, self.points),
                "us": np.asarray(occurred_us, dtype=np.int64),
                "amount": np.asarray(amount, dtype=np.int64),
                "status": status_code,
                "cash": np.asarray(payment_method == "cash", dtype=bool),
                "operator": self._codes(operator_id, self.operators),
            }
        )

    def point_names(self) -> np.ndarray:
        names = np.empty(len(self.points), dtype=object)
        for name, code in self.points.items():
            names[code] = name
        return names


def summarise(rows: pd.DataFrame, unit_us: int) -> pd.DataFrame:
    """Aggregate encoded rows into (point, bucket) rows, in (point, bucket) order; bucket = start
    of the minute/hour in µs.

    One int64 key per row, one sort, then ``reduceat`` over the runs of equal keys: ~2.5x faster
    than a pandas groupby on two columns (1M rows over a year, same run: 2.9 s against 7.5 s
    for minutes, 1.5 s against 3.8 s for hours, machine loaded)."""
    if not len(rows):
        return pd.DataFrame(columns=["point", "bucket", *AGGREGATE_COLUMNS])
    point = rows["point"].to_numpy().astype(np.int64)
    bucket = rows["us"].to_numpy() // unit_us
    low = int(bucket.min())
    span = int(bucket.max()) - low + 1
    key = point * span + (bucket - low)
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    amount = rows["amount"].to_numpy()[order].astype(np.int64)
    status = rows["status"].to_numpy()[order]
    paid, void, refund = status == 0, status == 1, status == 2
    cash = rows["cash"].to_numpy()[order]

    def total(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values.astype(np.int64), starts)

    out = {
        "point": key[starts] // span,
        "bucket": (key[starts] % span + low) * unit_us,
        "txn_count": total(paid),
        "gross_paid": total(np.where(paid, amount, 0)),
        "void_count": total(void),
        "void_amount": total(np.where(void, amount, 0)),
        "refund_count": total(refund),
        "refund_amount": total(np.where(refund, amount, 0)),
        "cash_amount": total(np.where(paid & cash, amount, 0)),
    }
    # Distinct operators per bucket: the (key, operator) pairs, sorted, counted once each.
    operator = rows["operator"].to_numpy()[order]
    known = operator >= 0
    operators = np.zeros(len(starts), dtype=np.int64)
    if known.any():
        pairs = np.lexsort((operator[known], key[known]))
        pair_key, pair_op = key[known][pairs], operator[known][pairs]
        first = np.concatenate(
            ([True], (pair_key[1:] != pair_key[:-1]) | (pair_op[1:] != pair_op[:-1]))
        )
        staff_keys, staff = np.unique(pair_key[first], return_counts=True)
        operators[np.searchsorted(key[starts], staff_keys)] = staff
    out["operators"] = operators
    out["max_ticket"] = np.maximum.reduceat(np.where(paid, amount, 0), starts)
    return pd.DataFrame(out)


def _summarise_by_groupby(rows: pd.DataFrame, unit_us: int) -> pd.DataFrame:
    """The plain pandas form of ``summarise``, kept as its reference in the tests."""
    if not len(rows):
        return pd.DataFrame(columns=["point", "bucket", *AGGREGATE_COLUMNS])
    amount = rows["amount"].to_numpy()
    status = rows["status"].to_numpy()
    paid, void, refund = status == 0, status == 1, status == 2
    work = pd.DataFrame(
        {
            "point": rows["point"].to_numpy(),
            "bucket": rows["us"].to_numpy() // unit_us * unit_us,
            "txn_count": paid.astype(np.int64),
            "gross_paid": np.where(paid, amount, 0),
            "void_count": void.astype(np.int64),
            "void_amount": np.where(void, amount, 0),
            "refund_count": refund.astype(np.int64),
            "refund_amount": np.where(refund, amount, 0),
            "cash_amount": np.where(paid & rows["cash"].to_numpy(), amount, 0),
            "max_ticket": np.where(paid, amount, 0),
        }
    )
    grouped = work.groupby(["point", "bucket"], sort=True)
    out = grouped[list(SUM_COLUMNS)].sum()
    out["max_ticket"] = grouped["max_ticket"].max()
    staff = pd.DataFrame(
        {"point": work["point"], "bucket": work["bucket"], "op": rows["operator"].to_numpy()}
    )
    staff = staff[staff["op"] >= 0].drop_duplicates()
    out["operators"] = staff.groupby(["point", "bucket"]).size().reindex(out.index, fill_value=0)
    return out.reset_index()


def format_summary(
    dialect: str, unit: str, summary: pd.DataFrame, point_names: np.ndarray, *, arrow: bool = False
) -> tuple[str, BulkRows]:
    """(table, rows) to bulk-insert a ``summarise`` result into minute_ or hour_aggregates."""
    table, key = (
        (minute_aggregates, "minute_start") if unit == "minute" else (hour_aggregates, "hour_start")
    )
    columns = ("point_id", key, *AGGREGATE_COLUMNS)
    # Primary-key order keeps the B-tree inserts local: hours are keyed (point_id, hour_start),
    # minutes (minute_start, point_id).
    rank = np.argsort(np.argsort(point_names.astype(str), kind="stable"))
    point_rank, bucket = rank[summary["point"].to_numpy()], summary["bucket"].to_numpy()
    order = np.lexsort((point_rank, bucket) if unit == "minute" else (bucket, point_rank))
    summary = summary.iloc[order]
    names = point_names[summary["point"].to_numpy()]
    values = [
        names if arrow else names.tolist(),
        summary["bucket"].to_numpy(dtype=np.int64).view("datetime64[us]"),
        *(summary[c].to_numpy(dtype=np.int64) for c in AGGREGATE_COLUMNS),
    ]
    columns_ = dict(zip(columns, values, strict=True))
    return table.name, format_rows(dialect, columns_, arrow=arrow)


def write_aggregates(connection: Connection, rows: pd.DataFrame, encoder: Encoder) -> None:
    """Summarise and store ``rows`` a week at a time: no minute or hour spans two weeks, and the
    working columns of a whole year of rows would cost several times the rows themselves. The
    next week is summarised on a worker thread while this one is written; on the Arrow path
    every week of one table goes into one stage, moved by one INSERT ... SELECT."""
    names = encoder.point_names()
    dialect = connection.dialect.name
    arrow = uses_arrow(connection)
    week = rows["us"].to_numpy() // (7 * 24 * HOUR_US)
    numbers = np.unique(week)
    for unit, unit_us in (("minute", MINUTE_US), ("hour", HOUR_US)):

        def summarise_week(part: pd.DataFrame, unit=unit, unit_us=unit_us) -> BulkRows:
            return format_summary(dialect, unit, summarise(part, unit_us), names, arrow=arrow)[1]

        # One week's rows at a time by mask: a groupby would first build indexers over every row.
        weeks = (rows[week == number] for number in numbers)
        table = minute_aggregates if unit == "minute" else hour_aggregates
        copy_many(connection, table.name, prefetched(weeks, summarise_week))


_READ_COLUMNS = "t.point_id, t.occurred_at, t.amount, t.status, t.payment_method, t.operator_id"


def _encode_fetched(result, dialect: str, encoder: Encoder) -> pd.DataFrame:
    fetched = result.fetchall()
    if not fetched:
        return encoder.encode(*(np.array([], dtype=object) for _ in range(6)))
    point_id, occurred_at, amount, status, method, operator = (
        np.array(column, dtype=object) for column in zip(*fetched, strict=True)
    )
    return encoder.encode(
        point_id,
        micros_from_db(occurred_at, dialect),
        amount.astype(np.int64),
        status,
        method,
        operator,
    )


def _time_param(when: datetime, dialect: str):
    return utc_text(np.array([_micros(when)]), dialect)[0] if dialect == "sqlite" else when


def aggregate_in(
    connection: Connection, start: datetime, end: datetime, point_ids: Sequence[str] | None = None
) -> None:
    """Recompute minute and hour aggregates of [start, end) inside the caller's transaction."""
    start, end = floor_hour(start), ceil_hour(end)
    if end <= start:
        return
    dialect = connection.dialect.name
    for table, key in ((minute_aggregates, "minute_start"), (hour_aggregates, "hour_start")):
        wipe = delete(table).where(table.c[key] >= start, table.c[key] < end)
        if point_ids is not None:
            wipe = wipe.where(table.c.point_id.in_(list(point_ids)))
        connection.execute(wipe)
    query = (
        f"SELECT {_READ_COLUMNS} FROM transactions t "
        "WHERE t.occurred_at >= :start AND t.occurred_at < :end AND t.point_id IN "
    )
    query += ":points" if point_ids is not None else f"({REGISTERED_POINT_IDS})"
    statement = text(query)
    if point_ids is not None:
        statement = statement.bindparams(bindparam("points", expanding=True))
    encoder = Encoder()
    slice_start = start
    while slice_start < end:
        slice_end = min(slice_start + READ_SLICE, end)
        params = {
            "start": _time_param(slice_start, dialect),
            "end": _time_param(slice_end, dialect),
        }
        if point_ids is not None:
            params["points"] = list(point_ids)
        rows = _encode_fetched(connection.execute(statement, params), dialect, encoder)
        write_aggregates(connection, rows, encoder)
        slice_start = slice_end


def aggregate_range(
    engine: Engine, start: datetime, end: datetime, point_ids: Iterable[str] | None = None
) -> None:
    """Recompute and replace the minute and hour aggregates of [start, end), whole UTC hours.

    ``point_ids`` limits the work to those points; None means every point.
    """
    with engine.connect() as connection:
        try:
            with connection.begin():
                chosen = None if point_ids is None else sorted(set(point_ids))
                aggregate_in(connection, start, end, chosen)
        finally:
            release_stages(connection)


# (point code, hour index) as one int64: the hour index (hours since 1970) fits 22 bits until 2448.
_HOUR_BITS = 22


def _packed(point: np.ndarray, us: np.ndarray) -> np.ndarray:
    """(point code, time in µs) as one int64 key of the point-hour."""
    return (point.astype(np.int64, copy=False) << _HOUR_BITS) | (us // HOUR_US)


def _hour_start_us(keys: np.ndarray) -> np.ndarray:
    """The hour start in µs of each packed key."""
    return (keys & ((1 << _HOUR_BITS) - 1)) * HOUR_US


def _keys_frame(keys: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"point": keys >> _HOUR_BITS, "hour": _hour_start_us(keys)})


class BatchAggregates:
    """A batch's minute and hour aggregates, summed chunk by chunk as the chunks are stored.

    A point-hour no earlier batch and no earlier chunk of this batch aggregated is summed from
    the chunk's rows alone: nothing else is stored in it (the module's invariant), and a later
    chunk that touches it marks it dirty. Dirty point-hours (late rows, overlapping files, an
    hour split between two chunks) are not summed from the chunk: ``finish`` recomputes them
    from every stored row in them once the batch's rows are all in ``transactions``. Operators
    are a distinct count, so partial sums of one hour from two chunks could not be merged
    exactly; a recompute can. On SQLite's Arrow path the chunks' aggregates are gathered into
    one stage per table and moved by ``finish``, so the batch's rows are never all held in
    memory (their concat cost ~170 MiB at 5M rows, docs/bench.md); elsewhere they are held and
    summed by ``finish`` (see ``_held``).
    """

    def __init__(self, connection: Connection, encoder: Encoder):
        self.connection = connection
        self.encoder = encoder
        self.dialect = connection.dialect.name
        self.arrow = uses_arrow(connection)
        self.gathered = (
            {
                "minute": GatheredRows(connection, minute_aggregates.name),
                "hour": GatheredRows(connection, hour_aggregates.name),
            }
            if (self.arrow and self.dialect == "sqlite")
            else None
        )
        # Hours aggregated before the batch lie in this span: only touched hours inside it are
        # looked up (a new period's feed never is).
        self._earlier_span = _stored_hour_span(connection)
        self._summed = np.empty(0, dtype=np.int64)  # sorted keys this batch summed
        self._dirty: list[np.ndarray] = []
        # Elsewhere the chunks' rows are held and summed once, week by week, in key order:
        # per-chunk writes of a feed sorted by point scatter inserts over the whole year of
        # PostgreSQL's aggregate indexes (5M rows: aggregate stage 38 -> 72 s, docs/bench.md).
        self._held: list[pd.DataFrame] = []

    def add_chunk(self, rows: pd.DataFrame) -> None:
        """Sum a chunk's stored rows (encoded) into the point-hours they are alone in."""
        if not len(rows):
            return
        if self.gathered is None:
            self._held.append(rows)
            return
        self._sum_alone(rows)

    def _sum_alone(self, rows: pd.DataFrame) -> None:
        keys = _packed(rows["point"].to_numpy(), rows["us"].to_numpy())
        touched = _sorted_unique(keys)
        summed = _isin_sorted(touched, self._summed)
        dirty, fresh = touched[summed], touched[~summed]
        if len(fresh) and self._earlier_span is not None:
            first, last = self._earlier_span
            hour_us = _hour_start_us(fresh)
            candidates = fresh[(hour_us >= first) & (hour_us <= last)]
            earlier = np.empty(0, dtype=np.int64)
            if len(candidates):
                found = _already_aggregated(
                    self.connection, _keys_frame(candidates), self.encoder.point_names()
                )
                earlier = _keys_of(found)
            dirty, fresh = _move_earlier(dirty, fresh, earlier)
        if len(dirty):
            self._dirty.append(dirty)
            rows = rows[~np.isin(keys, dirty)]
        self._summed = _insert_sorted(self._summed, fresh)
        if not len(rows):
            return
        if self.gathered is None:
            write_aggregates(self.connection, rows, self.encoder)
            return
        names = self.encoder.point_names()
        for unit, unit_us in (("minute", MINUTE_US), ("hour", HOUR_US)):
            formatted = format_summary(
                self.dialect, unit, summarise(rows, unit_us), names, arrow=self.arrow
            )[1]
            self.gathered[unit].add(formatted)

    def finish(self) -> None:
        """Move the gathered aggregates in, then recompute the dirty point-hours from every
        stored row in them (call once the batch's transactions are all written)."""
        if self._held:
            rows = pd.concat(self._held)
            self._held.clear()  # the parts are copied: free them before summing
            self._sum_alone(rows)
            del rows
        if self.gathered is not None:
            for gathered in self.gathered.values():
                gathered.move_into()
        if not self._dirty:
            return
        dirty = _keys_frame(_sorted_unique(np.concatenate(self._dirty)))
        self._dirty.clear()
        names = self.encoder.point_names()
        # A bounded share of the dirty hours at a time: their stored rows come back as Python
        # objects (a 5M-row feed of new rows over a year already stored: 9.8M rows, 8.1 GiB).
        for first in range(0, len(dirty), DIRTY_HOURS_PER_READ):
            part = dirty.iloc[first : first + DIRTY_HOURS_PER_READ]
            rows = _stored_rows(self.connection, part, names, self.encoder)
            _delete_hours(self.connection, part, names)
            write_aggregates(self.connection, rows, self.encoder)
            del rows


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of int64 keys by a plain sort: NumPy 2.3+'s ``np.unique`` (a hash table) took
    ~1.9 s for 2M distinct keys where sorting takes 0.02 s."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


def _insert_sorted(sorted_keys: np.ndarray, new: np.ndarray) -> np.ndarray:
    """``sorted_keys`` with ``new`` (sorted, none of them in it) merged in: one copy, where
    ``np.union1d`` re-sorted (and hashed) the whole set per chunk (29 s of a 5M-row ingest's
    aggregate stage: the summed set reaches ~2M keys; docs/bench.md, 2026-12-02 session 10)."""
    return np.insert(sorted_keys, np.searchsorted(sorted_keys, new), new)


def _move_earlier(
    dirty: np.ndarray, fresh: np.ndarray, earlier: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(dirty, fresh) with the ``earlier`` keys (found aggregated by an earlier batch; sorted,
    unique, all of them fresh) moved from fresh to dirty: a sorted insert and a binary search,
    where ``np.union1d`` hashed the set (1.6 s at 2M keys: a 5M-row feed of new rows over an
    already aggregated year, docs/bench.md 2026-12-02 session 10)."""
    if not len(earlier):
        return dirty, fresh
    return _insert_sorted(dirty, earlier), fresh[~_isin_sorted(fresh, earlier)]


def _isin_sorted(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """``np.isin`` against keys already sorted and unique: one binary search each."""
    if not len(sorted_keys):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    return sorted_keys[at] == values


def _keys_of(hours: pd.DataFrame) -> np.ndarray:
    """The sorted, distinct keys of (point, hour start in µs) rows."""
    return _sorted_unique(_packed(hours["point"].to_numpy(), hours["hour"].to_numpy()))


def _stored_hour_span(connection: Connection) -> tuple[int, int] | None:
    """(first, last) hour start in µs of the stored hour aggregates, None if there are none:
    two seeks of the hour_start index."""
    first, last = connection.exec_driver_sql(
        "SELECT MIN(hour_start), MAX(hour_start) FROM hour_aggregates"
    ).one()
    if first is None:
        return None
    dialect = connection.dialect.name
    span = micros_from_db([first, last], dialect)
    return int(span[0]), int(span[1])


def _already_aggregated(
    connection: Connection, touched: pd.DataFrame, names: np.ndarray
) -> pd.DataFrame:
    """The touched (point, hour) that have an hour aggregate: the touched hours go into a temp
    table with their codes, and only the matches come back, as integers."""
    dialect = connection.dialect.name
    time_type = "TEXT" if dialect == "sqlite" else "TIMESTAMPTZ"
    connection.exec_driver_sql("DROP TABLE IF EXISTS ingest_touched_hours")
    connection.exec_driver_sql(
        "CREATE TEMP TABLE ingest_touched_hours (point_code BIGINT, hour_us BIGINT, "
        f"point_id TEXT, hour_start {time_type})"
    )
    point, hour = touched["point"].to_numpy(dtype=np.int64), touched["hour"].to_numpy(np.int64)
    copy_columns(
        connection,
        "ingest_touched_hours",
        {
            "point_code": point,
            "hour_us": hour,
            "point_id": names[point].tolist(),
            "hour_start": hour.view("datetime64[us]"),
        },
        keep_slots=3,  # for the gathered transactions and the two gathered aggregates
    )
    if dialect == "postgresql":
        # Autovacuum never analyses temp tables; without statistics the planner guesses.
        connection.exec_driver_sql("ANALYZE ingest_touched_hours")
    found = connection.exec_driver_sql(
        "SELECT d.point_code, d.hour_us FROM ingest_touched_hours d JOIN hour_aggregates h "
        "ON h.point_id = d.point_id AND h.hour_start = d.hour_start"
    ).fetchall()
    connection.exec_driver_sql("DROP TABLE ingest_touched_hours")
    return pd.DataFrame(np.array(found, dtype=np.int64).reshape(-1, 2), columns=["point", "hour"])


def _stored_rows(
    connection: Connection, dirty: pd.DataFrame, names: np.ndarray, encoder: Encoder
) -> pd.DataFrame:
    """Every stored row in the dirty point-hours, via a temp table join on the index."""
    dialect = connection.dialect.name
    time_type = "TEXT" if dialect == "sqlite" else "TIMESTAMPTZ"
    connection.exec_driver_sql("DROP TABLE IF EXISTS ingest_dirty_hours")
    connection.exec_driver_sql(
        f"CREATE TEMP TABLE ingest_dirty_hours (point_id TEXT, hour_start {time_type}, "
        f"hour_end {time_type})"
    )
    hours = dirty["hour"].to_numpy(dtype=np.int64)
    copy_columns(
        connection,
        "ingest_dirty_hours",
        {
            "point_id": names[dirty["point"].to_numpy()].tolist(),
            "hour_start": hours.view("datetime64[us]"),
            "hour_end": (hours + HOUR_US).view("datetime64[us]"),
        },
        keep_slots=2,  # for the minute and hour aggregates written next
    )
    # Not analysed, on purpose: with statistics PostgreSQL joined by merge on point_id with the
    # hour range as a filter (45k dirty hours of a year: 22 s, against 0.2-0.7 s unanalysed).
    result = connection.execute(
        text(
            f"SELECT {_READ_COLUMNS} FROM ingest_dirty_hours d JOIN transactions t "
            "ON t.point_id = d.point_id AND t.occurred_at >= d.hour_start "
            "AND t.occurred_at < d.hour_end"
        )
    )
    fetched = _encode_fetched(result, dialect, encoder)
    connection.exec_driver_sql("DROP TABLE ingest_dirty_hours")
    return fetched


def _delete_hours(connection: Connection, dirty: pd.DataFrame, names: np.ndarray) -> None:
    dialect = connection.dialect.name
    hours = dirty["hour"].to_numpy(dtype=np.int64)
    params = [
        {"point": p, "start": s, "end": e}
        for p, s, e in zip(
            names[dirty["point"].to_numpy()].tolist(),
            utc_text(hours, dialect),
            utc_text(hours + HOUR_US, dialect),
            strict=True,
        )
    ]
    connection.execute(
        text(
            "DELETE FROM minute_aggregates WHERE point_id = :point "
            "AND minute_start >= :start AND minute_start < :end"
        ),
        params,
    )
    connection.execute(
        text("DELETE FROM hour_aggregates WHERE point_id = :point AND hour_start = :start"),
        params,
    )


def hour_runs(hours: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Merge touched hour starts into [start, end) runs of consecutive hours."""
    runs: list[tuple[datetime, datetime]] = []
    for hour in sorted(set(hours)):
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + HOUR)
        else:
            runs.append((hour, hour + HOUR))
    return runs
