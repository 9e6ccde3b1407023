"""Bulk writes for the hot paths (ingest, aggregation): one round trip per chunk, not per row.

The fast path is Arrow + ADBC (``format_rows`` builds a ``pyarrow.Table`` from the columns, no
Python objects per row): the rows are bulk-ingested by ADBC into a *stage* outside the caller's
transaction - on PostgreSQL an UNLOGGED table filled by COPY in binary (adbc-driver-postgresql),
on SQLite a scratch database file (adbc-driver-sqlite, journal off) - and then moved into the
target with one ``INSERT ... SELECT`` on the caller's SQLAlchemy connection, inside its
transaction. So the batch stays one transaction (a crash leaves only a scratch stage, never half
a batch), SQLAlchemy stays the schema and query layer, and the ADBC connection is made from the
same engine's URL. Why staged and not ADBC into the target directly: ADBC cannot join the
SQLAlchemy connection's transaction (its own session on PostgreSQL, its own connection to the
file on SQLite, where there is one writer at a time).

SQLite can attach only ``SQLITE_MAX_ATTACHED`` (10) databases to a connection, and an attached
stage that was read stays attached (locked) until the transaction ends: a transaction gets
``SQLITE_STAGE_SLOTS`` staged writes, then falls back to the classic path.

The classic path (no ADBC, another database, or the slots used up): SQLite gets ``executemany``
of tuples inside the caller's transaction; PostgreSQL gets ``COPY ... FROM STDIN`` of CSV text.
Times are given as ``datetime64[us]`` arrays (naive UTC) and stored in the exact form each
backend stores: SQLite keeps SQLAlchemy's naive-UTC ``YYYY-MM-DD HH:MM:SS.ffffff`` text (so range
comparisons with values SQLAlchemy binds compare like with like); PostgreSQL gets TIMESTAMPTZ.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

SQLITE_STAGE_SLOTS = 7  # of SQLite's 10 attachable databases; the rest left for callers
_STAGE_PREFIX = "eincome_stage_"
# Stage names carry the host and process, so a sweep drops only stages of processes it can see.
_HOST = uuid.uuid5(uuid.NAMESPACE_DNS, socket.gethostname()).hex[:6]


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


_DAY_US = 86_400_000_000
_FIRST_DAY, _LAST_DAY = -719_162, 2_932_896  # 0001-01-01 and 9999-12-31, days since 1970


def sqlite_time_text(micros: np.ndarray):
    """``utc_text(micros, "sqlite")`` as a pyarrow string array, built as bytes by numpy: the
    date of each distinct day formatted once, the time of day from integer digits (a million
    times: ~0.2 s, where formatting each as a Python string took several)."""
    import pyarrow as pa

    micros = np.asarray(micros, dtype=np.int64)
    if len(micros) == 0:
        return pa.array([], pa.string())
    days, of_day = np.divmod(micros, _DAY_US)
    first, last = int(days.min()), int(days.max())
    if first < _FIRST_DAY or last > _LAST_DAY or last - first > 400_000:
        # Years outside 1-9999 (not ten characters) or more than a millennium apart: the
        # exact, slow way.
        return pa.array(utc_text(micros, "sqlite"), pa.string())
    dates = np.datetime_as_string(np.arange(first, last + 1).astype("datetime64[D]"))
    out = np.empty((len(micros), 26), dtype=np.uint8)
    out[:, :10] = np.frombuffer(dates.astype("S10").tobytes(), np.uint8).reshape(-1, 10)[
        days - first
    ]
    out[:, 10], out[:, 13], out[:, 16], out[:, 19] = ord(" "), ord(":"), ord(":"), ord(".")
    seconds, fraction = np.divmod(of_day, 1_000_000)
    hours, rest = np.divmod(seconds, 3600)
    minutes, secs = np.divmod(rest, 60)
    for start, value, width in ((11, hours, 2), (14, minutes, 2), (17, secs, 2), (20, fraction, 6)):
        for place in range(width - 1, -1, -1):
            value, digit = np.divmod(value, 10)
            out[:, start + place] = digit + 48
    offsets = np.arange(0, 26 * (len(micros) + 1), 26, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(
        len(micros), pa.py_buffer(offsets), pa.py_buffer(out)
    ).cast(pa.string())


def adbc_available() -> bool:
    """Whether pyarrow and the ADBC drivers are importable (they are core dependencies; a
    trimmed install without them still ingests, on the classic path)."""
    try:
        import adbc_driver_postgresql.dbapi  # noqa: F401
        import adbc_driver_sqlite.dbapi  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


# The Arrow + ADBC path is taken when its packages are there; tests switch it off to pin the
# classic path (a trimmed install's).
ARROW_WRITES = adbc_available()


def uses_arrow(connection: Connection) -> bool:
    """Whether bulk writes on ``connection`` take the Arrow + ADBC path."""
    if not ARROW_WRITES or connection.dialect.name not in ("sqlite", "postgresql"):
        return False
    if connection.dialect.name == "sqlite":
        return _sqlite_file(connection) is not None
    return True


@dataclass(frozen=True)
class BulkRows:
    """Rows formatted for one backend's bulk write: a ``pyarrow.Table`` on the ADBC path, else
    tuples for SQLite and CSV text for PostgreSQL.

    Formatting is pure Python/pandas work and writing is mostly the database's, so a caller can
    format the next block on a worker thread while this one is written (see ``prefetched``).
    """

    columns: tuple[str, ...]
    count: int
    payload: list[tuple] | str | object  # object: a pyarrow.Table


def format_rows(dialect: str, columns: Mapping[str, Sequence], *, arrow: bool = False) -> BulkRows:
    """Rows given column-wise (name -> equal-length list or array, None for NULL; times as
    ``datetime64[us]`` naive UTC) in ``dialect``'s bulk form; ``arrow``: as a pyarrow Table for
    the ADBC path (see ``uses_arrow``).

    PostgreSQL's classic form is CSV text formatted by pandas in C rather than row by row in
    Python; an unquoted empty field is NULL in COPY's CSV format, so stored text columns must
    not hold empty strings (feeds read an empty field as missing).
    """
    names = tuple(columns)
    count = len(columns[names[0]]) if names else 0
    if arrow:
        return BulkRows(names, count, _arrow_table(dialect, columns))
    columns = {
        name: utc_text(values.astype("datetime64[us]").view(np.int64), dialect)
        if _is_time(values)
        else values
        for name, values in columns.items()
    }
    if dialect == "postgresql":
        import pandas as pd

        frame = pd.DataFrame({name: columns[name] for name in names})
        return BulkRows(names, count, frame.to_csv(index=False, header=False) if count else "")
    records = list(zip(*(_as_list(columns[name]) for name in names), strict=True))
    return BulkRows(names, count, records)


def copy_rows(connection: Connection, table: str, rows: BulkRows, *, keep_slots: int = 0) -> None:
    """Append formatted rows to ``table`` inside the caller's transaction (Arrow: staged by
    ADBC, then INSERT ... SELECT; classic: SQLite executemany, PostgreSQL COPY csv). A constraint
    violation raises SQLAlchemy's ``IntegrityError`` on every path. ``keep_slots``: SQLite stage
    slots to leave for later writes of the transaction (else this write goes the classic way)."""
    if not rows.count:
        return
    if not isinstance(rows.payload, (list, str)):
        if _stage_and_insert(connection, table, rows.columns, [rows.payload], keep_slots):
            return
        rows = _classic(connection.dialect.name, rows)
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


def copy_many(connection: Connection, table: str, parts: Iterable[BulkRows]) -> None:
    """Append several formatted parts (all of one form) to ``table``: on the Arrow path one
    stage takes them all and one INSERT ... SELECT moves them, so memory holds one part."""
    iterator = iter(parts)
    first = next((part for part in iterator if part.count), None)
    if first is None:
        return
    if isinstance(first.payload, (list, str)):
        copy_rows(connection, table, first)
        for part in iterator:
            copy_rows(connection, table, part)
        return
    tables = (part.payload for part in _chain(first, iterator) if part.count)
    if not _stage_and_insert(connection, table, first.columns, tables, 0):
        for part in _chain(first, iterator):
            copy_rows(connection, table, _classic(connection.dialect.name, part))


def _chain(first, rest: Iterator) -> Iterator:
    yield first
    yield from rest


def copy_columns(
    connection: Connection, table: str, columns: Mapping[str, Sequence], *, keep_slots: int = 0
) -> None:
    """``format_rows`` then ``copy_rows``, for writers with nothing to overlap."""
    arrow = uses_arrow(connection) and stage_slots_left(connection) > keep_slots
    copy_rows(
        connection,
        table,
        format_rows(connection.dialect.name, columns, arrow=arrow),
        keep_slots=keep_slots,
    )


def stage_slots_left(connection: Connection) -> int:
    """How many more staged (Arrow) writes this transaction can make: unlimited (a large
    number) on PostgreSQL, what is left of ``SQLITE_STAGE_SLOTS`` on SQLite."""
    if connection.dialect.name != "sqlite":
        return 1 << 30
    return SQLITE_STAGE_SLOTS - len(connection.info.get("eincome_stages", []))


# --- the Arrow + ADBC path ----------------------------------------------------------------


def _is_time(values) -> bool:
    return isinstance(values, np.ndarray) and values.dtype.kind == "M"


def _arrow_table(dialect: str, columns: Mapping[str, Sequence]):
    import pyarrow as pa

    arrays = {}
    for name, values in columns.items():
        if _is_time(values):
            micros = values.astype("datetime64[us]").view(np.int64)
            if dialect == "sqlite":
                arrays[name] = sqlite_time_text(micros)
            else:
                arrays[name] = pa.array(micros, pa.timestamp("us", tz="UTC"))
        elif isinstance(values, np.ndarray) and values.dtype.kind in "iub":
            arrays[name] = pa.array(values.astype(np.int64))
        elif isinstance(values, (pa.Array, pa.ChunkedArray)):
            arrays[name] = values
        else:
            array = pa.array(_as_list(values), from_pandas=True)
            if pa.types.is_null(array.type):
                array = array.cast(pa.string())  # an all-NULL text column
            arrays[name] = array
    return pa.table(arrays)


def _classic(dialect: str, rows: BulkRows) -> BulkRows:
    """An Arrow BulkRows in the classic form (no stage slot left on this transaction)."""
    table = rows.payload
    columns = {}
    for name in rows.columns:
        column = table.column(name)
        columns[name] = column.to_pylist()
    return format_rows(dialect, columns)


def adbc_uri(connection: Connection) -> str:
    """The libpq URI of the SQLAlchemy connection's PostgreSQL database (password kept)."""
    url = connection.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _sqlite_file(connection: Connection) -> str | None:
    database = connection.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


_PG_TYPES = {"int64": "BIGINT", "string": "TEXT", "large_string": "TEXT", "bool": "BOOLEAN"}


def _pg_type(arrow_type) -> str:
    if str(arrow_type).startswith("timestamp"):
        return "TIMESTAMPTZ"
    return _PG_TYPES[str(arrow_type)]


def _stage_and_insert(
    connection: Connection, table: str, columns: Sequence[str], tables: Iterable, keep_slots: int
) -> bool:
    """Stage the Arrow ``tables`` by ADBC and move them into ``table`` in the caller's
    transaction; False when no stage can be used here (the caller then writes the classic
    way; ``tables`` is then untouched)."""
    names = ", ".join(columns)
    stage = None
    if connection.dialect.name == "postgresql":
        stage = source = _pg_stage(connection, tables)
    else:
        source = _sqlite_stage(connection, tables, keep_slots)
        if source is None:
            return False
    savepoint = connection.begin_nested()
    try:
        connection.exec_driver_sql(f"INSERT INTO {table} ({names}) SELECT {names} FROM {source}")
    except IntegrityError:
        savepoint.rollback()
        if stage:
            # On ADBC's session, not in the caller's transaction: the caller may roll back
            # further (a failed append's own savepoint), which would undo a DROP made here. The
            # savepoint's rollback released this session's lock on the stage.
            _drop_pg_stage(connection, stage)
        raise
    savepoint.commit()
    if stage:
        # Dropped in the caller's transaction: gone on commit; after a crash it is left over
        # for ``drop_stale_stages``.
        connection.exec_driver_sql(f"DROP TABLE {stage}")
    return True


def _pg_stage(connection: Connection, tables: Iterable) -> str:
    """An UNLOGGED table filled by ADBC's binary COPY, committed on ADBC's own session."""
    import adbc_driver_postgresql.dbapi as adbc_pg

    stage = f"{_STAGE_PREFIX}{_HOST}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    with adbc_pg.connect(adbc_uri(connection)) as adbc, adbc.cursor() as cursor:
        for number, table in enumerate(tables):
            if not number:
                fields = ", ".join(f"{f.name} {_pg_type(f.type)}" for f in table.schema)
                cursor.execute(f"CREATE UNLOGGED TABLE {stage} ({fields})")
            cursor.adbc_ingest(stage, table, mode="append")
        adbc.commit()
    return stage


def _drop_pg_stage(connection: Connection, stage: str) -> None:
    import adbc_driver_postgresql.dbapi as adbc_pg

    with adbc_pg.connect(adbc_uri(connection)) as adbc, adbc.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {stage}")
        adbc.commit()


def _sqlite_stage(connection: Connection, tables: Iterable, keep_slots: int) -> str | None:
    """A scratch SQLite file filled by ADBC and attached to ``connection``; None when this
    transaction has no stage slot to spare. Detached and deleted by ``release_stages``."""
    attached = connection.info.setdefault("eincome_stages", [])
    if len(attached) + keep_slots >= SQLITE_STAGE_SLOTS:
        return None
    path = _scratch_file(connection)
    try:
        adbc, cursor = _open_scratch(path)
        try:
            for table in tables:
                cursor.adbc_ingest("rows", table, mode="create_append")
            cursor.execute("COMMIT")
        finally:
            cursor.close()
            adbc.close()
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    return _attach_stage(connection, path)


def _scratch_file(connection: Connection) -> str:
    """A new, empty scratch file beside ``connection``'s database (same disk, same rights)."""
    folder = Path(_sqlite_file(connection)).parent
    handle, path = tempfile.mkstemp(prefix=".eincome-stage-", suffix=".db", dir=folder)
    os.close(handle)
    return path


def _open_scratch(path: str):
    """An ADBC connection and cursor on the scratch file ``path``, inside a transaction."""
    import adbc_driver_sqlite.dbapi as adbc_sqlite

    adbc = adbc_sqlite.connect(path, autocommit=True)
    try:
        cursor = adbc.cursor()
        cursor.execute("PRAGMA journal_mode=OFF")  # a scratch file: nothing to recover
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("BEGIN")
    except BaseException:
        adbc.close()
        raise
    return adbc, cursor


def _attach_stage(connection: Connection, path: str) -> str:
    """Attach the filled scratch file to ``connection`` as its next stage slot; its table."""
    attached = connection.info.setdefault("eincome_stages", [])
    alias = f"eincome_stage{len(attached)}"
    connection.exec_driver_sql(f"ATTACH DATABASE ? AS {alias}", (path,))
    attached.append((alias, path))
    return f"{alias}.rows"


class GatheredRows:
    """SQLite: many blocks of new rows for one table gathered in ONE scratch stage file by ADBC,
    moved into the table by one ``INSERT ... SELECT`` when ``move_into`` is called: a batch's
    every chunk takes one stage slot, not one each (a transaction has only
    ``SQLITE_STAGE_SLOTS``). The stage is outside the batch's transaction until it is moved;
    a crash before that leaves only the scratch file, deleted by ``discard``/``release_stages``.
    """

    def __init__(self, connection: Connection, table: str):
        self.connection = connection
        self.table = table
        self.count = 0
        self.columns: tuple[str, ...] = ()
        self._adbc = self._cursor = self._path = None

    def add(self, rows: BulkRows) -> None:
        """Append an Arrow ``BulkRows`` to the stage (no database lock of the batch's is taken)."""
        if not rows.count:
            return
        if self._adbc is None:
            self._path = _scratch_file(self.connection)
            self._adbc, self._cursor = _open_scratch(self._path)
            self.columns = rows.columns
            # Whatever happens to the batch, ``release_stages`` deletes the file.
            self.connection.info.setdefault("eincome_gathered", []).append(self)
        self._cursor.adbc_ingest("rows", rows.payload, mode="create_append")
        self.count += rows.count

    def move_into(self) -> int:
        """Move the gathered rows into the table inside the caller's transaction (one stage
        slot); returns how many. A key already stored raises ``IntegrityError``."""
        if self._adbc is None:
            return 0
        self._cursor.execute("COMMIT")
        attached = self.connection.info.setdefault("eincome_stages", [])
        if len(attached) >= SQLITE_STAGE_SLOTS:  # many resends in one batch: no slot left
            self._cursor.execute("SELECT * FROM rows")
            table = self._cursor.fetch_arrow_table()
            self.discard()
            rows = BulkRows(tuple(table.column_names), table.num_rows, table)
            copy_rows(self.connection, self.table, _classic(self.connection.dialect.name, rows))
            return rows.count
        self._close()
        source = _attach_stage(self.connection, self._path)
        names = ", ".join(self.columns)
        self.connection.exec_driver_sql(
            f"INSERT INTO {self.table} ({names}) SELECT {names} FROM {source}"
        )
        moved, self.count, self._path = self.count, 0, None
        return moved

    def discard(self) -> None:
        """Drop rows not moved (the batch failed): the scratch file goes."""
        self._close()
        if self._path is not None:
            Path(self._path).unlink(missing_ok=True)
            self._path = None
        self.count = 0

    def _close(self) -> None:
        if self._adbc is not None:
            self._cursor.close()
            self._adbc.close()
            self._adbc = self._cursor = None


def release_stages(connection: Connection) -> None:
    """SQLite: detach and delete the stages this connection attached; call it outside a
    transaction (after the batch committed or rolled back)."""
    for gathered in connection.info.pop("eincome_gathered", []):
        gathered.discard()
    attached = connection.info.pop("eincome_stages", [])
    for alias, path in attached:
        try:
            connection.exec_driver_sql(f"DETACH DATABASE {alias}")
        finally:
            Path(path).unlink(missing_ok=True)
    if attached:
        connection.commit()


def drop_stale_stages(connection: Connection) -> list[str]:
    """PostgreSQL: drop the stage tables of processes that are gone (a killed batch's stages
    were dropped in its transaction, which never committed); returns their names."""
    if connection.dialect.name != "postgresql":
        return []
    names = connection.exec_driver_sql(
        "SELECT tablename FROM pg_tables WHERE tablename LIKE 'eincome\\_stage\\_%%'"
    ).scalars()
    dropped = []
    for name in names.all():
        host, _, rest = name[len(_STAGE_PREFIX) :].partition("_")
        pid = rest.split("_")[0]
        if host == _HOST and pid.isdigit() and not _alive(int(pid)):
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
            dropped.append(name)
    connection.commit()
    return dropped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
