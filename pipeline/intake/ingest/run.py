"""Running a batch: the file or frame in, chunk by chunk, under one database transaction."""

from __future__ import annotations

import ctypes
import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from pipeline.core.errors import UnusableInputError
from pipeline.intake.aggregate import BatchAggregates, Encoder
from pipeline.intake.feeds import FeedChunk, FeedReader, frame_chunk, read_feed
from pipeline.intake.ingest.batches import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_FUTURE_TOLERANCE,
    BatchFailedError,
    BatchResult,
    ProgressCallback,
    _close_batch,
    _file_sha256,
    _one_line,
    _open_batch,
    _release_batch_lock,
    _wait_for_writers,
    recover_abandoned_batches,
)
from pipeline.intake.ingest.chunks import _Counts, _prepare_chunk, _PreparedChunk, _store_chunk
from pipeline.intake.ingest.writer import _TransactionWriter
from pipeline.intake.late_rows import queue_late_hours
from pipeline.intake.validate import DEFAULT_EARLIEST
from pipeline.store.bulk import drop_stale_stages, prefetched, release_stages
from pipeline.store.freshness import record_batch_freshness
from pipeline.store.schema import ingest_batches, points, quarantine

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The batch connection's SQLite page cache. 64 MiB, not 256: the 5M-row ingest's moves into
# transactions and the aggregates and its commit took the same time with either (the writes are
# near key order, so the hot pages are few), and the larger cache, full by the batch's end, was
# what lifted its peak above 1 GiB (docs/bench.md, 2026-12-02 session 10).
SQLITE_CACHE_KIB = 65_536


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


def ingest_rows(
    engine: Engine,
    rows,
    *,
    source: str,
    source_ref: str,
    now: datetime | None = None,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    earliest: datetime = DEFAULT_EARLIEST,
) -> BatchResult:
    """Ingest an in-memory batch - a list of dicts or a ``pyarrow.Table`` in feed columns (a
    pushed request) - as one batch, with lineage, exactly as ``ingest_frame`` does."""
    if hasattr(rows, "column_names"):  # a pyarrow Table: values as Python objects, never typed
        frame = pd.DataFrame(
            {name: rows.column(name).to_pylist() for name in rows.column_names}, dtype=object
        )
    else:
        frame = pd.DataFrame.from_records(list(rows)).astype(object)
    return ingest_frame(
        engine,
        frame,
        source=source,
        source_ref=source_ref,
        now=now,
        future_tolerance=future_tolerance,
        earliest=earliest,
    )


class _StageTimer:
    """Accumulates wall seconds per stage; ``lap`` charges the time since the last lap."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


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
        drop_stale_stages(connection)
    except SQLAlchemyError as exc:
        raise BatchFailedError(f"{source_ref}: cannot start the batch: {_one_line(exc)}") from None
    batch_id = None
    try:
        _wait_for_writers(connection)
        batch_id = _open_batch(connection, source, source_ref, sha256)
        status, message = _store_batch(
            connection,
            batch_id,
            source,
            chunks,
            counts,
            timer,
            now,
            future_tolerance,
            earliest,
            on_chunk,
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
        try:
            release_stages(connection)
        except SQLAlchemyError:
            pass  # the connection is broken; it is closed below, its stages with it
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
    source: str,
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
        # The default 2 MB page cache thrashes once the transactions indexes outgrow it (set
        # outside a transaction; its size: ``SQLITE_CACHE_KIB``). Temp files, not memory: with
        # temp_store=MEMORY SQLite's scratch space (statement journals, temp B-trees) grew RSS
        # by 383 MiB during the 5M-row ingest's aggregates, 75 MiB with files (docs/bench.md,
        # 2026-12-02 02:55).
        # A resend's stage (a temp table) keeps a 64 MiB cache of its own.
        connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        connection.exec_driver_sql("PRAGMA temp_store=FILE")
        connection.exec_driver_sql("PRAGMA temp.cache_size=-65536")
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
        aggregates = BatchAggregates(connection, encoder)
        newest_us: dict[int, int] = {}  # point code -> newest stored time, for freshness
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
            stored = _store_chunk(encoder, writer, prepared, counts)
            timer.lap("store")
            # The chunk's aggregates and late hours from its own rows: no second pass.
            aggregates.add_chunk(stored)
            queue_late_hours(connection, batch_id, stored, encoder, datetime.now(UTC))
            _note_newest(newest_us, stored)
            del stored
            _return_freed_memory()
            timer.lap("aggregate")
            if on_chunk is not None:
                on_chunk(counts.rows_read)
        writer.flush()
        timer.lap("store")
        finish_aggregates(aggregates)
        _record_freshness(connection, batch_id, source, newest_us, encoder)
        timer.lap("aggregate")
        status, message = _verdict(batch_id, chunks, counts, record_lines)
        connection.execute(
            update(ingest_batches)
            .where(ingest_batches.c.batch_id == batch_id)
            .values(status=status, message=message, finished_at=datetime.now(UTC), **asdict(counts))
        )
    return status, message


def _glibc_malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to call
        return None


_MALLOC_TRIM = _glibc_malloc_trim()


def _return_freed_memory() -> None:
    """Give the pages of a chunk's freed frames back to the system (glibc's ``malloc_trim``).

    glibc keeps freed memory mapped in its arenas (the worker thread that reads and validates
    the chunks has one of its own), so the frames of chunks already stored stayed resident
    beneath the SQLite page cache that fills at the batch's end: the 5M-row ingest peaked at
    1,181 MiB, ~1,020 MiB with this call after each chunk (~2 ms a call; docs/bench.md,
    2026-12-02 session 10).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def finish_aggregates(aggregates: BatchAggregates) -> None:
    """The batch's aggregates once its rows are all stored (a seam the tests fail on purpose)."""
    aggregates.finish()


def _note_newest(newest_us: dict[int, int], rows: pd.DataFrame) -> None:
    """Fold a chunk's newest stored time per point (``rows`` encoded) into ``newest_us``."""
    if not len(rows):
        return
    for point, us in rows.groupby("point")["us"].max().items():
        point = int(point)
        newest_us[point] = max(newest_us.get(point, int(us)), int(us))


def _record_freshness(
    connection: Connection,
    batch_id: int,
    source: str,
    newest_us: dict[int, int],
    encoder: Encoder,
) -> None:
    """The newest stored time of each point in the batch, for the ops page's freshness per
    point and source."""
    if not newest_us:
        return
    names = encoder.point_names()
    record_batch_freshness(
        connection,
        batch_id=batch_id,
        source=source,
        newest_by_point={
            names[point]: EPOCH + timedelta(microseconds=us) for point, us in newest_us.items()
        },
        now=datetime.now(UTC),
    )


def _verdict(
    batch_id: int, chunks: Iterable[FeedChunk], counts: _Counts, record_lines: int
) -> tuple[str, str | None]:
    """The batch's (status, message), once every record is counted. Counts that do not add up,
    or file lines not accounted for, are a bug: raised, so the batch's transaction rolls back."""
    if counts.accepted + counts.quarantined + counts.duplicates != counts.rows_read:
        raise RuntimeError(f"batch {batch_id}: counts do not add up: {counts}")
    if not isinstance(chunks, FeedReader):
        return "ok", None
    counts.lines_read = chunks.lines_read
    accounted = chunks.header_lines + chunks.blank_lines + record_lines
    if accounted != chunks.lines_read:
        raise RuntimeError(
            f"batch {batch_id}: {chunks.lines_read} lines read but {accounted} "
            "accounted for (header, blank, records)"
        )
    if not chunks.cut:
        return "ok", None
    return "partial", (
        f"feed {chunks.path}: {chunks.cut}; the {counts.rows_read:,} records of its "
        f"first {chunks.lines_read:,} lines are stored or quarantined, the rest of "
        "the file is missing: send it again"
    )


def _with_read_time(chunks: Iterable[FeedChunk]) -> Iterator[tuple[FeedChunk, float]]:
    """Each chunk with the seconds it took to read."""
    iterator = iter(chunks)
    while True:
        started = time.perf_counter()
        chunk = next(iterator, None)
        if chunk is None:
            return
        yield chunk, time.perf_counter() - started


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
