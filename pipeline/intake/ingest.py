"""Ingest: a feed file (or a pull source's frame) in, validated, deduplicated, stored, aggregated.

One batch = one unit of input. Its lineage row in ``ingest_batches`` is committed first (status
"running", with the process that owns it); all of its data - transactions, quarantine rows,
re-aggregated hours and the final counts - is written in ONE database transaction, so a crash
at any point leaves no half batch: the data rolls back and the batch row says "failed". A
process killed outright cannot say so: its batch stays "running" until the next ingest (or the
ops page) calls ``recover_abandoned_batches``, which marks it failed once its owner is provably
gone. For every batch that finishes, ``accepted + quarantined + duplicates == rows_read``, and
for a file, header + blank + record lines == ``lines_read``, its physical line count.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from pipeline.core.errors import UnusableInputError
from pipeline.intake.aggregate import Encoder, reaggregate_batch
from pipeline.intake.feeds import FeedChunk, FeedReader, frame_chunk, read_feed
from pipeline.intake.validate import DEFAULT_EARLIEST, validate_chunk
from pipeline.store.bulk import (
    BulkRows,
    copy_columns,
    copy_rows,
    format_rows,
    nullable,
    point_time_order,
    prefetched,
    utc_text,
)
from pipeline.store.schema import ingest_batches, points, quarantine

DEFAULT_CHUNK_ROWS = 200_000
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=10)
# How long a batch waits for another SQLite writer (a long ingest) before giving up.
SQLITE_LOCK_WAIT = timedelta(minutes=15)
# A running batch whose owner cannot be checked (another host, an older version) is taken for
# abandoned after this long; the largest feeds ingest in minutes.
STALE_AFTER = timedelta(hours=6)
_LOCK_CLASS = 0x45494E43  # "EINC": PostgreSQL advisory locks of running batches
CONTENT_FIELDS = ("occurred_at", "amount", "payment_method", "status", "operator_id", "payer_ref")
STAGE_COLUMNS = ("pos", "point_id", "txn_id", *CONTENT_FIELDS)


@dataclass
class BatchResult:
    """What happened to one unit of input; the same figures are in its ``ingest_batches`` row."""

    batch_id: int
    source: str
    source_ref: str
    status: str  # ok | partial | failed | rejected
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    lines_read: int | None = None
    message: str | None = None
    # Wall seconds per stage (read, validate, store, aggregate): where the time went.
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def file(self) -> str:
        return self.source_ref

    def as_dict(self) -> dict:
        return {"file": self.source_ref, **asdict(self)}


ProgressCallback = Callable[[int], None]


class BatchFailedError(Exception):
    """A batch failed for a reason that is not its input (the database went away, a disk
    filled): everything it wrote is rolled back, its row says "failed", rerunning is safe.
    ``batch_id`` names the batch (None if it could not even be recorded)."""

    def __init__(self, message: str, batch_id: int | None = None):
        super().__init__(message)
        self.batch_id = batch_id


def _one_line(exc: BaseException) -> str:
    """A database error as one readable line, without the SQL and parameters."""
    inner = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else None
    text_ = str(inner if inner is not None else exc).strip()
    return f"{type(inner or exc).__name__}: {text_.splitlines()[0] if text_ else ''}"[:500]


def ingest_file(
    engine: Engine,
    path: Path | str,
    *,
    source: str = "file",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    earliest: datetime = DEFAULT_EARLIEST,
    now: datetime | None = None,
    progress: bool | ProgressCallback = False,
) -> BatchResult:
    """Ingest one feed file as one batch.

    A file that is not a feed at all is recorded as a "rejected" batch and UnusableInputError
    is raised (its ``batch_id`` attribute names the batch). A truncated gzip is a "partial"
    batch: the rows before the cut are stored, and ``message`` says what is missing. A
    failure that is not the input's raises BatchFailedError. ``progress``: True shows a bar on
    the terminal; a callable is called with the number of rows read after each chunk.
    """
    path = Path(path)
    reporter, finish = _progress(progress, path)
    reader = read_feed(path, chunk_rows=chunk_rows)
    try:
        return _run_batch(
            engine,
            source,
            str(path),
            _file_sha256(path),
            reader,
            now=now,
            future_tolerance=future_tolerance,
            earliest=earliest,
            on_chunk=reporter,
        )
    finally:
        finish()


def ingest_frame(
    engine: Engine,
    frame: pd.DataFrame,
    *,
    source: str,
    source_ref: str,
    now: datetime | None = None,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    earliest: datetime = DEFAULT_EARLIEST,
) -> BatchResult:
    """Ingest rows already in feed-format columns (one API page, one SQL slice) as one batch.

    Build ``frame`` with ``dtype=object`` from the source's own values (see ``frame_chunk``).
    """
    text_ = frame.to_csv(index=False).encode("utf-8", errors="backslashreplace")

    def chunks() -> Iterator[FeedChunk]:
        yield frame_chunk(frame, source_ref=source_ref)

    return _run_batch(
        engine,
        source,
        source_ref,
        hashlib.sha256(text_).hexdigest(),
        chunks(),
        now=now,
        future_tolerance=future_tolerance,
        earliest=earliest,
    )


# --- the batch ----------------------------------------------------------------------------


def _file_sha256(path: Path) -> str | None:
    try:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None  # read_feed reports the unreadable file with its reason


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _this_owner() -> str:
    return f"{socket.gethostname()} {os.getpid()} {_process_start(os.getpid())}".strip()


def _wait_for_writers(connection: Connection, wait: timedelta = SQLITE_LOCK_WAIT) -> None:
    """SQLite: wait this long for another writer's lock instead of "database is locked"."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait.total_seconds() * 1000)}")


def _open_batch(connection: Connection, source: str, source_ref: str, sha256: str | None) -> int:
    """Record the batch as running, owned by this process, and commit. On PostgreSQL the
    connection also takes a session lock on the batch, held until the batch ends: if the
    process dies, the server ends its session and frees the lock, and
    ``recover_abandoned_batches`` can tell."""
    batch_id = connection.execute(
        insert(ingest_batches)
        .values(
            source=source,
            source_ref=source_ref,
            sha256=sha256,
            started_at=datetime.now(UTC),
            status="running",
            owner=_this_owner(),
        )
        .returning(ingest_batches.c.batch_id)
    ).scalar_one()
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_lock(:c, :b)"), {"c": _LOCK_CLASS, "b": batch_id}
        )
    connection.commit()
    return batch_id


def _release_batch_lock(connection: Connection, batch_id: int) -> None:
    if connection.dialect.name != "postgresql":
        return
    try:
        connection.rollback()
        connection.execute(
            text("SELECT pg_advisory_unlock(:c, :b)"), {"c": _LOCK_CLASS, "b": batch_id}
        )
        connection.commit()
    except SQLAlchemyError:
        pass  # the session is gone (terminated backend): the server freed its locks


def _close_batch(engine: Engine, batch_id: int | None, status: str, message: str) -> None:
    if batch_id is None:
        return
    try:
        with engine.begin() as connection:
            _wait_for_writers(connection)
            connection.execute(
                update(ingest_batches)
                .where(ingest_batches.c.batch_id == batch_id)
                .values(status=status, message=message[:4000], finished_at=datetime.now(UTC))
            )
    except SQLAlchemyError:
        # The database itself is failing: the error being raised says why; the batch stays
        # "running" until recover_abandoned_batches sees its owner gone.
        pass


def _owner_gone(owner: str) -> str | None:
    """Why the process named by ``owner`` is certainly gone, or None if it may be running."""
    host, _, rest = owner.partition(" ")
    pid_text, _, started = rest.partition(" ")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"its process (pid {pid} on {host}) is gone"
    except PermissionError:
        pass  # alive, another user's
    if started and _process_start(pid) not in ("", started):
        return f"its process (pid {pid} on {host}) is gone; the pid now belongs to another"
    return None


def recover_abandoned_batches(
    engine: Engine, *, now: datetime | None = None, stale_after: timedelta = STALE_AFTER
) -> list[dict]:
    """Mark failed every batch left "running" by a process that is gone; returns them
    (batch_id, source_ref, message) for the ops page.

    Decided safely, never by age alone when the owner can be checked: on PostgreSQL a batch is
    abandoned when its session lock is free (the server ends a killed process's session); on
    SQLite when its process (same host) no longer exists or its pid belongs to another
    process. A batch whose owner cannot be checked (another host, recorded by an older
    version) is abandoned after ``stale_after``. Nothing of an abandoned batch is stored: its
    data was one transaction that never committed.
    """
    now = now or datetime.now(UTC)
    found = []
    with engine.connect() as connection:
        _wait_for_writers(connection)
        running = connection.execute(
            select(
                ingest_batches.c.batch_id,
                ingest_batches.c.source_ref,
                ingest_batches.c.owner,
                ingest_batches.c.started_at,
            ).where(ingest_batches.c.status == "running")
        ).all()
        connection.commit()
        for batch in running:
            why = None
            if batch.owner and connection.dialect.name == "postgresql":
                free = connection.execute(
                    text("SELECT pg_try_advisory_lock(:c, :b)"),
                    {"c": _LOCK_CLASS, "b": batch.batch_id},
                ).scalar_one()
                if free:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:c, :b)"),
                        {"c": _LOCK_CLASS, "b": batch.batch_id},
                    )
                    why = f"its database session ended ({batch.owner})"
                connection.commit()
            elif batch.owner:
                why = _owner_gone(batch.owner)
            if why is None and batch.started_at < now - stale_after:
                if not batch.owner or not batch.owner.startswith(socket.gethostname() + " "):
                    why = f"it was still running after {stale_after} and its owner ({batch.owner or 'unrecorded'}) cannot be checked from here"
            if why is None:
                continue
            message = f"abandoned: {why}; nothing of it was stored; ingest the input again"
            with connection.begin():
                done = connection.execute(
                    update(ingest_batches)
                    .where(
                        ingest_batches.c.batch_id == batch.batch_id,
                        ingest_batches.c.status == "running",
                    )
                    .values(status="failed", message=message, finished_at=now)
                ).rowcount
            if done:
                found.append(
                    {"batch_id": batch.batch_id, "source_ref": batch.source_ref, "message": message}
                )
    return found


class _StageTimer:
    """Accumulates wall seconds per stage; ``lap`` charges the time since the last lap."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


@dataclass
class _Counts:
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    lines_read: int | None = None


def _run_batch(
    engine: Engine,
    source: str,
    source_ref: str,
    sha256: str | None,
    chunks: Iterable[FeedChunk],
    *,
    now: datetime | None,
    future_tolerance: timedelta,
    earliest: datetime,
    on_chunk: ProgressCallback | None = None,
) -> BatchResult:
    now = now or datetime.now(UTC)
    counts = _Counts()
    timer = _StageTimer()
    try:
        recover_abandoned_batches(engine)
        connection = engine.connect()
    except SQLAlchemyError as exc:
        raise BatchFailedError(f"{source_ref}: cannot start the batch: {_one_line(exc)}") from None
    batch_id = None
    try:
        _wait_for_writers(connection)
        batch_id = _open_batch(connection, source, source_ref, sha256)
        status, message = _store_batch(
            connection, batch_id, chunks, counts, timer, now, future_tolerance, earliest, on_chunk
        )
    except UnusableInputError as exc:
        _close_batch(engine, batch_id, "rejected", str(exc))
        exc.batch_id = batch_id
        raise
    except (SQLAlchemyError, OSError) as exc:
        message = f"{source_ref}: batch {batch_id} failed and was rolled back: {_one_line(exc)}"
        if batch_id is not None:
            _close_batch(engine, batch_id, "failed", message)
        raise BatchFailedError(message, batch_id) from exc
    except BaseException as exc:
        if batch_id is not None:
            _close_batch(engine, batch_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if batch_id is not None:
            _release_batch_lock(connection, batch_id)
        _wait_for_writers(connection, timedelta(seconds=30))  # the pool's usual wait again
        connection.close()
    timer.lap("store")  # the commit
    return BatchResult(
        batch_id=batch_id,
        source=source,
        source_ref=source_ref,
        status=status,
        message=message,
        seconds={k: round(v, 3) for k, v in timer.seconds.items()},
        **asdict(counts),
    )


def _store_batch(
    connection: Connection,
    batch_id: int,
    chunks: Iterable[FeedChunk],
    counts: _Counts,
    timer: _StageTimer,
    now: datetime,
    future_tolerance: timedelta,
    earliest: datetime,
    on_chunk: ProgressCallback | None,
) -> tuple[str, str | None]:
    """Everything of the batch in one transaction; returns its final (status, message)."""
    if connection.dialect.name == "sqlite":
        # The default 2 MB page cache thrashes once the transactions indexes outgrow it; the
        # stage belongs in memory, it never outlives the batch (set outside a transaction).
        connection.exec_driver_sql("PRAGMA cache_size=-262144")
        connection.exec_driver_sql("PRAGMA temp_store=MEMORY")
        connection.commit()  # ends SQLAlchemy's autobegun transaction; SQLite had none
    with connection.begin():
        if connection.dialect.name == "sqlite":
            # Take the write lock now, waiting for other writers (busy_timeout): a deferred
            # transaction that reads first and writes later fails at once with "database is
            # locked" when another writer committed in between.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        known = set(connection.execute(select(points.c.point_id)).scalars())
        writer = _TransactionWriter(connection, batch_id)
        encoder = Encoder()
        stored_rows: list[pd.DataFrame] = []  # encoded, for the aggregates
        record_lines = 0

        def prepare(timed: tuple[FeedChunk, float]) -> _PreparedChunk:
            chunk, read_seconds = timed
            prepared = _prepare_chunk(batch_id, chunk, known, now, future_tolerance, earliest)
            prepared.seconds["read"] = read_seconds
            started = time.perf_counter()
            prepared.formatted = writer.format_new(prepared.rows)
            prepared.seconds["format"] = time.perf_counter() - started
            return prepared

        timer.lap("store")
        # Reading, validating and formatting chunk n+1 runs on a worker thread while
        # chunk n is written.
        for prepared in prefetched(_with_read_time(chunks), prepare):
            timer.lap("wait")
            for stage, seconds in prepared.seconds.items():
                timer.seconds[stage] = timer.seconds.get(stage, 0.0) + seconds
            counts.rows_read += prepared.rows_read
            record_lines += prepared.chunk.lines
            stored_rows.append(_store_chunk(encoder, writer, prepared, counts))
            if on_chunk is not None:
                on_chunk(counts.rows_read)
            timer.lap("store")
        if stored_rows:
            batch_rows = pd.concat(stored_rows)
            stored_rows.clear()  # the parts are copied: free them before aggregating
            reaggregate_batch(connection, batch_id, batch_rows, encoder)
            del batch_rows
        timer.lap("aggregate")
        if counts.accepted + counts.quarantined + counts.duplicates != counts.rows_read:
            raise RuntimeError(f"batch {batch_id}: counts do not add up: {counts}")
        status, message = "ok", None
        if isinstance(chunks, FeedReader):
            counts.lines_read = chunks.lines_read
            accounted = chunks.header_lines + chunks.blank_lines + record_lines
            if accounted != chunks.lines_read:
                raise RuntimeError(
                    f"batch {batch_id}: {chunks.lines_read} lines read but {accounted} "
                    "accounted for (header, blank, records)"
                )
            if chunks.cut:
                status = "partial"
                message = (
                    f"feed {chunks.path}: {chunks.cut}; the {counts.rows_read:,} records of its "
                    f"first {chunks.lines_read:,} lines are stored or quarantined, the rest of "
                    "the file is missing: send it again"
                )
        connection.execute(
            update(ingest_batches)
            .where(ingest_batches.c.batch_id == batch_id)
            .values(status=status, message=message, finished_at=datetime.now(UTC), **asdict(counts))
        )
    return status, message


def _with_read_time(chunks: Iterable[FeedChunk]) -> Iterator[tuple[FeedChunk, float]]:
    """Each chunk with the seconds it took to read."""
    iterator = iter(chunks)
    while True:
        started = time.perf_counter()
        chunk = next(iterator, None)
        if chunk is None:
            return
        yield chunk, time.perf_counter() - started


# --- one chunk ----------------------------------------------------------------------------


@dataclass
class _PreparedChunk:
    """One chunk after validation and in-chunk dedupe: what is left to store, and why not the rest."""

    rows_read: int
    rows: pd.DataFrame  # candidates: valid, first of their key in the chunk
    quarantine_rows: list[dict]
    duplicates: int
    chunk: FeedChunk
    seconds: dict[str, float]  # read, validate and format time, spent on the worker thread
    formatted: BulkRows | None = None  # rows as the bulk append writes them


def _prepare_chunk(
    batch_id: int,
    chunk: FeedChunk,
    known: set[str],
    now: datetime,
    future_tolerance: timedelta,
    earliest: datetime,
) -> _PreparedChunk:
    """Validate one chunk and dedupe it within itself; touches no database."""
    started = time.perf_counter()
    frame = chunk.frame
    malformed_rows = [
        {
            "batch_id": batch_id,
            "line_no": line.line_no,
            "point_id": None,
            "txn_id": None,
            "raw": _safe_text(json.dumps({"line": line.text}, ensure_ascii=False)),
            "reasons": _safe_text(line.reason),
            "kind": "malformed",
        }
        for line in chunk.malformed
    ]
    if not len(frame):
        return _PreparedChunk(chunk.records, _no_rows(), malformed_rows, 0, chunk, {})
    checked = validate_chunk(
        frame,
        known_point_ids=known,
        now=now,
        future_tolerance=future_tolerance,
        earliest=earliest,
        nonscalar=chunk.nonscalar,
    )
    quarantine_rows = malformed_rows + [
        _quarantine_row(batch_id, chunk, position, "; ".join(reasons), "invalid")
        for position, reasons in sorted(checked.reasons.items())
    ]

    ok = ~checked.failed
    occurred_us = checked.occurred_at.dt.as_unit("us").array.asi8[ok]
    rows = pd.DataFrame(
        {
            "pos": np.flatnonzero(ok),
            "point_id": frame["point_id"].to_numpy(dtype=object)[ok],
            "txn_id": frame["txn_id"].to_numpy(dtype=object)[ok],
            "occurred_at": occurred_us.view("datetime64[us]"),  # naive UTC
            "amount": checked.amount[ok].astype(np.int64),
            "payment_method": frame["payment_method"].to_numpy(dtype=object)[ok],
            "status": frame["status"].to_numpy(dtype=object)[ok],
            "operator_id": _optional(frame["operator_id"])[ok],
            "payer_ref": _optional(frame["payer_ref"])[ok],
        }
    )

    # The same key twice in one chunk: the first is a candidate, the rest are duplicates of it
    # (or conflicts, when their content differs).
    repeated = rows.duplicated(["point_id", "txn_id"], keep="first").to_numpy()
    duplicates = 0
    if repeated.any():
        # Compare each repeat with its first occurrence, vectorised: a file sent twice in one
        # upload is all repeats.
        later = rows[repeated]
        # One left join of the repeats onto the first occurrences (many to one): each repeat
        # gets exactly its first row, however many times the key comes back.
        first = later[["point_id", "txn_id"]].merge(
            rows[~repeated], on=["point_id", "txn_id"], how="left", validate="many_to_one"
        )
        identical = np.ones(len(later), dtype=bool)
        for name in CONTENT_FIELDS:
            a, b = later[name].to_numpy(dtype=object), first[name].to_numpy(dtype=object)
            identical &= (a == b) | (pd.isna(a) & pd.isna(b))
        duplicates += int(identical.sum())
        for i in np.flatnonzero(~identical):
            row, earlier = later.iloc[i], first.iloc[i]
            reason = _conflict_reason(
                row, _differing(earlier, row.to_dict()), "earlier in this feed"
            )
            quarantine_rows.append(
                _quarantine_row(batch_id, chunk, int(row.pos), reason, "conflict")
            )
        rows = rows[~repeated]
    # Near key order: the rows then go into the primary-key B-tree at neighbouring places,
    # about 1.3x faster to write than feed (time) order (a point's txn_ids mostly grow with time).
    order = point_time_order(rows["point_id"], rows["occurred_at"].to_numpy())
    rows = rows.iloc[order].reset_index(drop=True)
    return _PreparedChunk(
        rows_read=chunk.records,
        rows=rows,
        quarantine_rows=quarantine_rows,
        duplicates=duplicates,
        chunk=chunk,
        seconds={"validate": time.perf_counter() - started},
    )


def _no_rows() -> pd.DataFrame:
    return pd.DataFrame({name: [] for name in STAGE_COLUMNS})


def _store_chunk(
    encoder: Encoder, writer: _TransactionWriter, prepared: _PreparedChunk, counts: _Counts
) -> pd.DataFrame:
    """Store one prepared chunk; returns its stored rows encoded for aggregation.

    New keys - every row of a fresh feed - go in with one bulk append. Only when some key is
    already stored (a resend, an overlapping export) is the chunk staged and compared with the
    stored rows, to tell identical resends (duplicates) from changed ones (conflicts).
    """
    rows = prepared.rows
    quarantine_rows = list(prepared.quarantine_rows)
    duplicates = prepared.duplicates
    if len(rows) and not writer.append(prepared.formatted):
        writer.load(rows)
        same, conflicts = writer.classify_against_stored()
        duplicates += len(same)
        stored_keys = same | {pos for pos, _ in conflicts}
        if conflicts:
            by_pos = rows.set_index("pos", drop=False)
            for pos, stored in conflicts:
                row = by_pos.loc[pos]
                reason = _conflict_reason(row, _differing(stored, row.to_dict()), "already stored")
                quarantine_rows.append(
                    _quarantine_row(writer.batch_id, prepared.chunk, pos, reason, "conflict")
                )
        if stored_keys:
            rows = rows[~rows["pos"].isin(stored_keys)]
        writer.insert_unstored(expected=len(rows))
    if quarantine_rows:
        writer.connection.execute(insert(quarantine), quarantine_rows)

    counts.accepted += len(rows)
    counts.quarantined += len(quarantine_rows)
    counts.duplicates += duplicates
    return encoder.encode(
        rows["point_id"].to_numpy(dtype=object),
        rows["occurred_at"].to_numpy().astype(np.int64),
        rows["amount"].to_numpy(),
        rows["status"].to_numpy(dtype=object),
        rows["payment_method"].to_numpy(dtype=object),
        rows["operator_id"].to_numpy(dtype=object),
    )


def _optional(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype=object, na_value=None)


def _differing(stored, incoming: dict) -> list[tuple[str, object, object]]:
    """(field, stored, incoming) for each content field that differs."""
    out = []
    for name in CONTENT_FIELDS:
        a, b = _normal(name, stored[name]), _normal(name, incoming[name])
        if a != b:
            out.append((name, a, b))
    return out


def _normal(field: str, value):
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if field == "occurred_at":
        return (
            pd.Timestamp(value).tz_convert(UTC)
            if pd.Timestamp(value).tzinfo
            else pd.Timestamp(value, tz=UTC)
        )
    if field == "amount":
        return int(value)
    return str(value)


def _show(field: str, value) -> str:
    if value is None:
        return "empty"
    if field == "occurred_at":
        return value.isoformat()
    return str(value)


def _conflict_reason(row, differing, where: str) -> str:
    parts = ", ".join(f"{f} {_show(f, new)} (stored {_show(f, old)})" for f, old, new in differing)
    return (
        f'txn_id "{row.txn_id}" at point {row.point_id} was {where} with different content: {parts}'
    )


def _quarantine_row(
    batch_id: int, chunk: FeedChunk, position: int, reasons: str, kind: str
) -> dict:
    frame = chunk.frame
    point_id, txn_id = frame.at[position, "point_id"], frame.at[position, "txn_id"]
    return {
        "batch_id": batch_id,
        "line_no": int(chunk.line_no[position]),
        "point_id": None if pd.isna(point_id) else _safe_text(str(point_id))[:64],
        "txn_id": None if pd.isna(txn_id) else _safe_text(str(txn_id))[:128],
        "raw": _safe_text(chunk.raw_row(position)),
        "reasons": _safe_text(reasons),
        "kind": kind,
    }


def _safe_text(value: str) -> str:
    """Text every database stores as it is: NUL (PostgreSQL refuses it) and lone surrogates
    (not encodable) written as escapes. Only quarantine text needs this: stored transactions
    never hold either (the suite quarantines such rows)."""
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return value


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


# --- progress -----------------------------------------------------------------------------


def _progress(progress: bool | ProgressCallback, path: Path):
    """(callback, finish) for the chosen kind of progress report."""
    if callable(progress):
        return progress, lambda: None
    if not progress:
        return None, lambda: None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        transient=True,
    )
    task = bar.add_task(path.name, total=None)
    bar.start()
    return (lambda rows: bar.update(task, completed=rows)), bar.stop


def quarantine_reasons(engine: Engine, batch_id: int) -> list[dict]:
    """The quarantined rows of one batch, in file order (for reports and tests)."""
    with engine.connect() as connection:
        result = connection.execute(
            select(quarantine)
            .where(quarantine.c.batch_id == batch_id)
            .order_by(quarantine.c.line_no)
        )
        return [{**row._asdict(), "raw": json.loads(row.raw)} for row in result]
