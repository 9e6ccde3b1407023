"""Bulk writes for the hot paths (ingest, aggregation): one round trip per chunk, not per row.

SQLite gets ``executemany`` of pre-formatted tuples inside the caller's transaction; PostgreSQL
gets ``COPY ... FROM STDIN`` of CSV text. Times are passed as text in the exact form each backend stores:
SQLite keeps SQLAlchemy's naive-UTC ``YYYY-MM-DD HH:MM:SS.ffffff`` (so range comparisons with
values SQLAlchemy binds compare like with like); PostgreSQL gets ISO-8601 with ``+00``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

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


@dataclass(frozen=True)
class BulkRows:
    """Rows formatted for one backend's bulk write: tuples for SQLite, CSV text for PostgreSQL.

    Formatting is pure Python/pandas work and writing is mostly the database's, so a caller can
    format the next block on a worker thread while this one is written (see ``prefetched``).
    """

    columns: tuple[str, ...]
    count: int
    payload: list[tuple] | str


def format_rows(dialect: str, columns: Mapping[str, Sequence]) -> BulkRows:
    """Rows given column-wise (name -> equal-length list, None for NULL) in ``dialect``'s bulk form.

    PostgreSQL gets CSV text formatted by pandas in C rather than row by row in Python; an
    unquoted empty field is NULL in COPY's CSV format, so stored text columns must not hold empty
    strings (feeds read an empty field as missing).
    """
    names = tuple(columns)
    count = len(columns[names[0]]) if names else 0
    if dialect == "postgresql":
        import pandas as pd

        frame = pd.DataFrame({name: columns[name] for name in names})
        return BulkRows(names, count, frame.to_csv(index=False, header=False) if count else "")
    records = list(zip(*(_as_list(columns[name]) for name in names), strict=True))
    return BulkRows(names, count, records)


def copy_rows(connection: Connection, table: str, rows: BulkRows) -> None:
    """Append formatted rows to ``table`` (SQLite: executemany; PostgreSQL: COPY) inside the
    caller's transaction. A constraint violation raises SQLAlchemy's ``IntegrityError`` on both."""
    if not rows.count:
        return
    quoted = ", ".join(rows.columns)
    if connection.dialect.name == "postgresql":
        import psycopg

        statement = f"COPY {table} ({quoted}) FROM STDIN (FORMAT csv)"
        cursor = connection.connection.driver_connection.cursor()
        try:
            with cursor.copy(statement) as copy:
                for start in range(0, len(rows.payload), _COPY_BLOCK):
                    copy.write(rows.payload[start : start + _COPY_BLOCK])
        except psycopg.IntegrityError as exc:
            # The same exception SQLite's path raises, so callers handle one type.
            raise IntegrityError(statement, None, exc) from exc
        return
    placeholders = ", ".join("?" for _ in rows.columns)
    connection.exec_driver_sql(
        f"INSERT INTO {table} ({quoted}) VALUES ({placeholders})", rows.payload
    )


def copy_columns(connection: Connection, table: str, columns: Mapping[str, Sequence]) -> None:
    """``format_rows`` then ``copy_rows``, for writers with nothing to overlap."""
    copy_rows(connection, table, format_rows(connection.dialect.name, columns))


_COPY_BLOCK = 8 << 20  # characters per COPY write: bounded buffers, few round trips


def point_time_order(point_ids, times) -> np.ndarray:
    """The row order that keeps inserts into point-first keys and indexes local: by point, then
    time. Points as integer codes: two integer keys sort ~40x faster than two string columns."""
    import pandas as pd

    codes, _ = pd.factorize(point_ids, sort=True)
    return np.lexsort((np.asarray(times), codes))


def nullable(values) -> list:
    """A pandas column as a list with None where a value is missing: pandas keeps a missing
    string as NaN, and the database must get NULL, not the text "nan"."""
    return values.astype(object).where(values.notna(), None).tolist()


def _as_list(values: Sequence) -> list:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


_END = object()


def prefetched(items: Iterable, work: Callable) -> Iterator:
    """``work(item)`` for each item in order; the next one is computed on a worker thread while
    the caller handles the current one. An exception in the worker is raised here, in order.

    The database drivers release the GIL while the database works, so pandas work for block n+1
    and the write of block n overlap on two cores.
    """
    iterator = iter(items)

    def step():
        item = next(iterator, _END)
        return _END if item is _END else work(item)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="eincome-prefetch") as pool:
        pending = pool.submit(step)
        while (result := pending.result()) is not _END:
            pending = pool.submit(step)
            yield result


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
