"""Writing a chunk's transactions: a bulk append, or staged and compared when keys are already stored."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from pipeline.store.bulk import (
    BulkRows,
    GatheredRows,
    copy_columns,
    copy_rows,
    format_rows,
    nullable,
    stage_slots_left,
    uses_arrow,
)

CONTENT_FIELDS = ("occurred_at", "amount", "payment_method", "status", "operator_id", "payer_ref")
STAGE_COLUMNS = ("pos", "point_id", "txn_id", *CONTENT_FIELDS)
_TEXT = ("point_id", "txn_id", "payment_method", "status")
_OPTIONAL = ("operator_id", "payer_ref")
# SQLite stage slots every transactions write leaves for the batch's minute and hour
# aggregates: with a slot, ~1.7 aggregate rows per transaction go in as one INSERT ... SELECT.
_AGGREGATE_SLOTS = 2


# --- writing transactions: a bulk append, or staged and compared when keys are already stored ---


class _TransactionWriter:
    """Writes one batch's rows into ``transactions`` on the batch's own connection.

    ``append`` is the fast path: one bulk write (SQLite: executemany; PostgreSQL: COPY) inside a
    savepoint, which fails as a whole if any key is already stored. Then the careful path runs:
    the chunk is loaded into a temp table, compared with the stored rows and only the new ones
    inserted, all as set operations inside the database, never row by row in Python.
    """

    def __init__(self, connection: Connection, batch_id: int):
        self.connection = connection
        self.batch_id = batch_id
        self.dialect = connection.dialect.name
        time_type = "TEXT" if self.dialect == "sqlite" else "TIMESTAMPTZ"
        self.arrow = uses_arrow(connection)
        # SQLite (one writer: the batch holds the write lock) gathers the chunks whose keys
        # cannot be stored yet into one stage, moved by ``flush``; see ``append``.
        self.gathered = (
            GatheredRows(connection, "transactions")
            if (self.arrow and self.dialect == "sqlite")
            else None
        )
        self._gathered_ranges: dict[str, list[tuple[str, str]]] = {}
        # Chunks that will find a stage slot (SQLite has few; see ``store.bulk``).
        self._arrow_chunks_left = (
            1 << 30 if self.gathered else stage_slots_left(connection) - _AGGREGATE_SLOTS
        )
        connection.exec_driver_sql("DROP TABLE IF EXISTS ingest_stage")
        connection.exec_driver_sql(
            "CREATE TEMP TABLE ingest_stage (pos BIGINT NOT NULL, point_id TEXT NOT NULL, "
            f"txn_id TEXT NOT NULL, occurred_at {time_type} NOT NULL, amount BIGINT NOT NULL, "
            "payment_method TEXT NOT NULL, status TEXT NOT NULL, operator_id TEXT, payer_ref TEXT)"
        )
        # On SQLite the batch's transaction is already open (BEGIN IMMEDIATE), so the
        # savepoints of ``append`` nest in it rather than starting (and committing) their own.

    def _columns(self, rows: pd.DataFrame, *, arrow: bool) -> dict[str, list | np.ndarray]:
        if arrow:  # column arrays straight to Arrow: no Python list per column
            text = {c: rows[c].to_numpy(dtype=object) for c in _TEXT}
            optional = {c: rows[c].to_numpy(dtype=object, na_value=None) for c in _OPTIONAL}
        else:
            text = {c: rows[c].tolist() for c in _TEXT}
            optional = {c: nullable(rows[c]) for c in _OPTIONAL}
        return {
            "point_id": text["point_id"],
            "txn_id": text["txn_id"],
            "occurred_at": rows["occurred_at"].to_numpy().astype("datetime64[us]"),
            "amount": rows["amount"].to_numpy(dtype=np.int64),
            "payment_method": text["payment_method"],
            "status": text["status"],
            **optional,
        }

    def format_new(self, rows: pd.DataFrame) -> BulkRows:
        """``rows`` as ``append`` writes them; touches no database, so any thread may call it.

        On SQLite only the first chunks that will find a stage slot are made Arrow tables; the
        rest are formatted as tuples here, on the worker thread, rather than converted from
        Arrow on the writing thread when ``append`` finds no slot left.
        """
        arrow = self.arrow and self._arrow_chunks_left > 0
        self._arrow_chunks_left -= 1
        columns = self._columns(rows, arrow=arrow)
        columns["batch_id"] = np.full(len(rows), self.batch_id, dtype=np.int64)
        return format_rows(self.dialect, columns, arrow=arrow)

    def append(self, formatted: BulkRows, rows: pd.DataFrame) -> bool:
        """Store the rows in one bulk write if none of their keys is stored yet; else write
        nothing and return False.

        SQLite: a chunk none of whose points has a stored or gathered txn_id within the
        chunk's own (smallest, largest) txn_id of that point cannot hold a stored key; it is
        gathered, and the batch's gathered chunks go in with one INSERT ... SELECT (``flush``).
        Any other chunk first flushes what is gathered, then takes the checked path below.
        """
        if self.gathered is not None and not isinstance(formatted.payload, (list, str)):
            ranges = _key_ranges(rows)
            if not self._overlaps_gathered(ranges) and not self._overlaps_stored(ranges):
                self.gathered.add(formatted)
                for point, low, high in ranges:
                    self._gathered_ranges.setdefault(point, []).append((low, high))
                return True
            self.flush()
        savepoint = self.connection.begin_nested()
        try:
            copy_rows(self.connection, "transactions", formatted, keep_slots=_AGGREGATE_SLOTS)
        except IntegrityError:
            savepoint.rollback()
            return False
        savepoint.commit()
        return True

    def flush(self) -> None:
        """Move the gathered chunks into ``transactions`` (SQLite); a no-op elsewhere."""
        if self.gathered is not None:
            self.gathered.move_into()
            self._gathered_ranges.clear()

    def discard(self) -> None:
        """The batch failed: drop what is gathered and not moved."""
        if self.gathered is not None:
            self.gathered.discard()

    def _overlaps_gathered(self, ranges: list[tuple[str, str, str]]) -> bool:
        for point, low, high in ranges:
            for gathered_low, gathered_high in self._gathered_ranges.get(point, ()):
                if low <= gathered_high and gathered_low <= high:
                    return True
        return False

    def _overlaps_stored(self, ranges: list[tuple[str, str, str]]) -> bool:
        """Whether any stored key lies in one of the (point, low, high) txn_id ranges: one
        seek of the primary key per point, the ranges passed as one JSON text."""
        if not ranges:
            return False
        found = self.connection.exec_driver_sql(
            "SELECT 1 FROM json_each(?) AS r WHERE EXISTS (SELECT 1 FROM transactions t "
            "WHERE t.point_id = json_extract(r.value, '$[0]') "
            "AND t.txn_id BETWEEN json_extract(r.value, '$[1]') AND json_extract(r.value, '$[2]')) "
            "LIMIT 1",
            (json.dumps(ranges),),
        ).first()
        return found is not None

    def load(self, rows: pd.DataFrame) -> None:
        """Put ``rows`` in the stage (replacing what was there)."""
        self.connection.exec_driver_sql("DELETE FROM ingest_stage")
        copy_columns(
            self.connection,
            "ingest_stage",
            {"pos": rows["pos"].to_numpy(dtype=np.int64), **self._columns(rows, arrow=self.arrow)},
            keep_slots=_AGGREGATE_SLOTS,
        )

    def classify_against_stored(self) -> tuple[set[int], list[tuple[int, dict]]]:
        """Staged rows whose key is already stored: (identical positions, [(pos, stored row)])."""
        same_op = "IS" if self.dialect == "sqlite" else "IS NOT DISTINCT FROM"
        identical = " AND ".join(
            [
                "t.occurred_at = s.occurred_at",
                "t.amount = s.amount",
                "t.payment_method = s.payment_method",
                "t.status = s.status",
                f"t.operator_id {same_op} s.operator_id",
                f"t.payer_ref {same_op} s.payer_ref",
            ]
        )
        result = self.connection.exec_driver_sql(
            "SELECT s.pos, "
            + ", ".join(f"t.{c}" for c in CONTENT_FIELDS)
            + f", ({identical}) AS same "
            "FROM ingest_stage s JOIN transactions t "
            "ON t.point_id = s.point_id AND t.txn_id = s.txn_id"
        )
        same: set[int] = set()
        conflicts: list[tuple[int, dict]] = []
        for row in result:
            if row.same:
                same.add(int(row.pos))
            else:
                conflicts.append((int(row.pos), {c: getattr(row, c) for c in CONTENT_FIELDS}))
        return same, conflicts

    def insert_unstored(self, *, expected: int) -> int:
        """Insert the staged rows whose key is not stored yet; returns how many.

        One set operation against the primary key, however many rows were already stored
        (deleting them from the stage one by one was quadratic: the stage has no index).
        """
        if not expected:
            return 0
        columns = ", ".join(("point_id", "txn_id", *CONTENT_FIELDS))
        staged = ", ".join(f"s.{c}" for c in ("point_id", "txn_id", *CONTENT_FIELDS))
        # Key order keeps the primary-key index inserts local.
        result = self.connection.exec_driver_sql(
            f"INSERT INTO transactions ({columns}, batch_id) "
            f"SELECT {staged}, {int(self.batch_id)} FROM ingest_stage s "
            "WHERE NOT EXISTS (SELECT 1 FROM transactions t "
            "WHERE t.point_id = s.point_id AND t.txn_id = s.txn_id) "
            "ORDER BY s.point_id, s.txn_id ON CONFLICT (point_id, txn_id) DO NOTHING"
        )
        if result.rowcount != expected:
            # Another ingest stored some of these keys between our check and this insert.
            raise RuntimeError(
                f"{expected - result.rowcount} rows were stored by a concurrent ingest "
                "while this batch ran; run it again to classify them"
            )
        return result.rowcount


def _key_ranges(rows: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(point_id, smallest txn_id, largest txn_id) of each point in ``rows``. Text compares as
    SQLite compares it (code point order is UTF-8 byte order)."""
    if not len(rows):
        return []
    grouped = pd.DataFrame(
        {
            "point_id": rows["point_id"].to_numpy(dtype=object),
            "txn_id": rows["txn_id"].to_numpy(dtype=object),
        }
    ).groupby("point_id", sort=False)["txn_id"]
    low, high = grouped.min(), grouped.max()
    return list(
        zip(low.index.tolist(), low.tolist(), high.reindex(low.index).tolist(), strict=True)
    )
