"""Writing a chunk's transactions: a bulk append, or staged and compared when keys are already stored."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from pipeline.store.bulk import (
    BulkRows,
    copy_columns,
    copy_rows,
    format_rows,
    nullable,
    utc_text,
)

CONTENT_FIELDS = ("occurred_at", "amount", "payment_method", "status", "operator_id", "payer_ref")
STAGE_COLUMNS = ("pos", "point_id", "txn_id", *CONTENT_FIELDS)


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
        connection.exec_driver_sql("DROP TABLE IF EXISTS ingest_stage")
        connection.exec_driver_sql(
            "CREATE TEMP TABLE ingest_stage (pos BIGINT NOT NULL, point_id TEXT NOT NULL, "
            f"txn_id TEXT NOT NULL, occurred_at {time_type} NOT NULL, amount BIGINT NOT NULL, "
            "payment_method TEXT NOT NULL, status TEXT NOT NULL, operator_id TEXT, payer_ref TEXT)"
        )
        # On SQLite the batch's transaction is already open (BEGIN IMMEDIATE), so the
        # savepoints of ``append`` nest in it rather than starting (and committing) their own.

    def _columns(self, rows: pd.DataFrame) -> dict[str, list]:
        return {
            "point_id": rows["point_id"].tolist(),
            "txn_id": rows["txn_id"].tolist(),
            "occurred_at": utc_text(rows["occurred_at"].to_numpy().astype(np.int64), self.dialect),
            "amount": rows["amount"].tolist(),
            "payment_method": rows["payment_method"].tolist(),
            "status": rows["status"].tolist(),
            "operator_id": nullable(rows["operator_id"]),
            "payer_ref": nullable(rows["payer_ref"]),
        }

    def format_new(self, rows: pd.DataFrame) -> BulkRows:
        """``rows`` as ``append`` writes them; touches no database, so any thread may call it."""
        columns = self._columns(rows)
        columns["batch_id"] = [self.batch_id] * len(rows)
        return format_rows(self.dialect, columns)

    def append(self, formatted: BulkRows) -> bool:
        """Store the rows in one bulk write if none of their keys is stored yet; else write
        nothing and return False."""
        savepoint = self.connection.begin_nested()
        try:
            copy_rows(self.connection, "transactions", formatted)
        except IntegrityError:
            savepoint.rollback()
            return False
        savepoint.commit()
        return True

    def load(self, rows: pd.DataFrame) -> None:
        """Put ``rows`` in the stage (replacing what was there)."""
        self.connection.exec_driver_sql("DELETE FROM ingest_stage")
        copy_columns(
            self.connection, "ingest_stage", {"pos": rows["pos"].tolist(), **self._columns(rows)}
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
