"""Bulk writes for the hot paths (ingest, aggregation): one round trip per chunk, not per row.

SQLite gets ``executemany`` of pre-formatted tuples inside the caller's transaction; PostgreSQL
gets ``COPY ... FROM STDIN``. Times are passed as text in the exact form each backend stores:
SQLite keeps SQLAlchemy's naive-UTC ``YYYY-MM-DD HH:MM:SS.ffffff`` (so range comparisons with
values SQLAlchemy binds compare like with like); PostgreSQL gets ISO-8601 with ``+00``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import Connection


def utc_text(micros: np.ndarray, dialect: str) -> list[str]:
    """Microseconds since the epoch (UTC) as the text a ``UTCDateTime`` column holds."""
    # Format each distinct instant once: aggregates repeat the same minute/hour many times.
    unique, inverse = np.unique(np.asarray(micros, dtype=np.int64), return_inverse=True)
    text = np.datetime_as_string(unique.view("datetime64[us]"), unit="us").tolist()
    if dialect == "sqlite":
        text = [t.replace("T", " ") for t in text]
    else:
        text = [t + "+00" for t in text]
    formatted = np.array(text, dtype=object)
    return formatted[inverse.reshape(-1)].tolist()


def copy_rows(
    connection: Connection, table: str, columns: Sequence[str], records: list[tuple]
) -> None:
    """Append ``records`` (tuples in ``columns`` order, None for NULL) to ``table``."""
    if not records:
        return
    names = ", ".join(columns)
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for record in records:
                copy.write_row(record)
        return
    placeholders = ", ".join("?" for _ in columns)
    connection.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", records)


def micros_from_db(values: Sequence, dialect: str) -> np.ndarray:
    """Stored ``UTCDateTime`` values as read by the raw driver -> int64 microseconds UTC."""
    import pandas as pd

    if not len(values):
        return np.zeros(0, dtype=np.int64)
    if dialect == "sqlite":
        parsed = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", utc=True)
    else:
        parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    return parsed.dt.as_unit("us").array.asi8.copy()
