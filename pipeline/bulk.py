"""Bulk writes for the hot paths (ingest, aggregation): one round trip per chunk, not per row.

SQLite gets ``executemany`` of pre-formatted tuples inside the caller's transaction; PostgreSQL
gets ``COPY ... FROM STDIN`` of CSV text. Times are passed as text in the exact form each backend stores:
SQLite keeps SQLAlchemy's naive-UTC ``YYYY-MM-DD HH:MM:SS.ffffff`` (so range comparisons with
values SQLAlchemy binds compare like with like); PostgreSQL gets ISO-8601 with ``+00``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError


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


def copy_columns(connection: Connection, table: str, columns: Mapping[str, Sequence]) -> None:
    """Append rows given column-wise to ``table``: name -> equal-length list (None for NULL).
    A constraint violation raises SQLAlchemy's ``IntegrityError`` on both backends.

    SQLite: one ``executemany`` of tuples. PostgreSQL: the whole block as CSV text through
    ``COPY``, formatted by pandas in C rather than row by row in Python; an unquoted empty field
    is NULL in COPY's CSV format, so stored text columns must not hold empty strings (feeds read
    an empty field as missing).
    """
    names = list(columns)
    if not names or not len(columns[names[0]]):
        return
    quoted = ", ".join(names)
    if connection.dialect.name == "postgresql":
        import pandas as pd

        payload = pd.DataFrame({name: columns[name] for name in names}).to_csv(
            index=False, header=False
        )
        import psycopg

        statement = f"COPY {table} ({quoted}) FROM STDIN (FORMAT csv)"
        cursor = connection.connection.driver_connection.cursor()
        try:
            with cursor.copy(statement) as copy:
                for start in range(0, len(payload), _COPY_BLOCK):
                    copy.write(payload[start : start + _COPY_BLOCK])
        except psycopg.IntegrityError as exc:
            # The same exception SQLite's path raises, so callers handle one type.
            raise IntegrityError(statement, None, exc) from exc
        return
    placeholders = ", ".join("?" for _ in names)
    records = list(zip(*(_as_list(columns[name]) for name in names), strict=True))
    connection.exec_driver_sql(f"INSERT INTO {table} ({quoted}) VALUES ({placeholders})", records)


_COPY_BLOCK = 8 << 20  # characters per COPY write: bounded buffers, few round trips


def _as_list(values: Sequence) -> list:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


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
