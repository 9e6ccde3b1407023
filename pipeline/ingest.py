"""Ingest: a feed file (or a pull source's frame) in, validated, deduplicated, stored, aggregated.

One batch = one unit of input. Its lineage row in ``ingest_batches`` is committed first (status
"running"); all of its data - transactions, quarantine rows, re-aggregated hours and the final
counts - is written in ONE database transaction, so a crash at any point leaves no half batch:
the data rolls back and the batch row says "failed" (or stays "running" if the process was
killed outright, with nothing attached to it). For every batch that finishes,
``accepted + quarantined + duplicates == rows_read``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, insert, select, update

from pipeline.aggregate import aggregate_in, hour_runs
from pipeline.errors import UnusableInputError
from pipeline.feeds import FeedChunk, frame_chunk, read_feed
from pipeline.store.schema import ingest_batches, points, quarantine
from pipeline.validate import validate_chunk

DEFAULT_CHUNK_ROWS = 200_000
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=10)
CONTENT_FIELDS = ("occurred_at", "amount", "payment_method", "status", "operator_id", "payer_ref")
STAGE_COLUMNS = ("pos", "point_id", "txn_id", *CONTENT_FIELDS)


@dataclass
class BatchResult:
    """What happened to one unit of input; the same figures are in its ``ingest_batches`` row."""

    batch_id: int
    source: str
    source_ref: str
    status: str  # ok | failed | rejected
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    message: str | None = None

    @property
    def file(self) -> str:
        return self.source_ref

    def as_dict(self) -> dict:
        return {"file": self.source_ref, **asdict(self)}


ProgressCallback = Callable[[int], None]


def ingest_file(
    engine: Engine,
    path: Path | str,
    *,
    source: str = "file",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    now: datetime | None = None,
    progress: bool | ProgressCallback = False,
) -> BatchResult:
    """Ingest one feed file as one batch.

    A file that is not a feed at all is recorded as a "rejected" batch and UnusableInputError
    is raised (its ``batch_id`` attribute names the batch). ``progress``: True shows a bar on
    the terminal; a callable is called with the number of rows read after each chunk.
    """
    path = Path(path)
    sha256 = _file_sha256(path)
    batch_id = _open_batch(engine, source, str(path), sha256)
    reporter, finish = _progress(progress, path)
    try:
        return _run_batch(
            engine,
            batch_id,
            source,
            str(path),
            read_feed(path, chunk_rows=chunk_rows),
            now=now,
            future_tolerance=future_tolerance,
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
) -> BatchResult:
    """Ingest rows already in feed-format columns (one API page, one SQL slice) as one batch."""
    text = frame.to_csv(index=False).encode("utf-8")
    batch_id = _open_batch(engine, source, source_ref, hashlib.sha256(text).hexdigest())

    def chunks() -> Iterator[FeedChunk]:
        yield frame_chunk(frame, source_ref=source_ref)

    return _run_batch(
        engine, batch_id, source, source_ref, chunks(), now=now, future_tolerance=future_tolerance
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


def _open_batch(engine: Engine, source: str, source_ref: str, sha256: str | None) -> int:
    with engine.begin() as connection:
        return connection.execute(
            insert(ingest_batches)
            .values(
                source=source,
                source_ref=source_ref,
                sha256=sha256,
                started_at=datetime.now(UTC),
                status="running",
            )
            .returning(ingest_batches.c.batch_id)
        ).scalar_one()


def _close_batch(engine: Engine, batch_id: int, status: str, message: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(ingest_batches)
            .where(ingest_batches.c.batch_id == batch_id)
            .values(status=status, message=message[:4000], finished_at=datetime.now(UTC))
        )


@dataclass
class _Counts:
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0


def _run_batch(
    engine: Engine,
    batch_id: int,
    source: str,
    source_ref: str,
    chunks: Iterable[FeedChunk],
    *,
    now: datetime | None,
    future_tolerance: timedelta,
    on_chunk: ProgressCallback | None = None,
) -> BatchResult:
    now = now or datetime.now(UTC)
    counts = _Counts()
    try:
        with engine.begin() as connection:
            known = set(connection.execute(select(points.c.point_id)).scalars())
            stage = _Stage(connection)
            touched: dict[datetime, set[str]] = {}
            for chunk in chunks:
                _ingest_chunk(
                    connection,
                    stage,
                    batch_id,
                    chunk,
                    known,
                    now,
                    future_tolerance,
                    counts,
                    touched,
                )
                if on_chunk is not None:
                    on_chunk(counts.rows_read)
            _reaggregate(connection, touched)
            if counts.accepted + counts.quarantined + counts.duplicates != counts.rows_read:
                raise RuntimeError(f"batch {batch_id}: counts do not add up: {counts}")
            connection.execute(
                update(ingest_batches)
                .where(ingest_batches.c.batch_id == batch_id)
                .values(status="ok", finished_at=datetime.now(UTC), **asdict(counts))
            )
    except UnusableInputError as exc:
        _close_batch(engine, batch_id, "rejected", str(exc))
        exc.batch_id = batch_id
        raise
    except BaseException as exc:
        _close_batch(engine, batch_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    return BatchResult(
        batch_id=batch_id, source=source, source_ref=source_ref, status="ok", **asdict(counts)
    )


def _reaggregate(connection: Connection, touched: dict[datetime, set[str]]) -> None:
    """Recompute the point-hours this batch added rows to (late rows included)."""
    for start, end in hour_runs(touched):
        hour, point_ids = start, set()
        while hour < end:
            point_ids |= touched[hour]
            hour += timedelta(hours=1)
        aggregate_in(connection, start, end, sorted(point_ids))


# --- one chunk ----------------------------------------------------------------------------


def _ingest_chunk(
    connection: Connection,
    stage: _Stage,
    batch_id: int,
    chunk: FeedChunk,
    known: set[str],
    now: datetime,
    future_tolerance: timedelta,
    counts: _Counts,
    touched: dict[datetime, set[str]],
) -> None:
    frame = chunk.frame
    counts.rows_read += len(frame)
    if not len(frame):
        return
    checked = validate_chunk(
        frame, known_point_ids=known, now=now, future_tolerance=future_tolerance
    )
    quarantine_rows = [
        _quarantine_row(batch_id, chunk, position, "; ".join(reasons), "invalid")
        for position, reasons in sorted(checked.reasons.items())
    ]

    ok = ~checked.failed
    rows = pd.DataFrame(
        {
            "pos": np.flatnonzero(ok),
            "point_id": frame["point_id"].to_numpy(dtype=object)[ok],
            "txn_id": frame["txn_id"].to_numpy(dtype=object)[ok],
            "occurred_at": checked.occurred_at.to_numpy()[ok],
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
        firsts = rows[~repeated].set_index(["point_id", "txn_id"])
        for row in rows[repeated].itertuples(index=False):
            first = firsts.loc[(row.point_id, row.txn_id)]
            differing = _differing(first, row._asdict())
            if differing:
                quarantine_rows.append(
                    _quarantine_row(
                        batch_id,
                        chunk,
                        row.pos,
                        _conflict_reason(row, differing, "earlier in this feed"),
                        "conflict",
                    )
                )
            else:
                duplicates += 1
        rows = rows[~repeated]

    stage.load(rows)
    same, conflicts = stage.classify_against_stored()
    duplicates += len(same)
    for pos, stored in conflicts:
        row = rows.loc[rows["pos"] == pos].iloc[0]
        differing = _differing(stored, row.to_dict())
        quarantine_rows.append(
            _quarantine_row(
                batch_id, chunk, pos, _conflict_reason(row, differing, "already stored"), "conflict"
            )
        )
    accepted = stage.insert_new(batch_id)
    if quarantine_rows:
        connection.execute(insert(quarantine), quarantine_rows)

    counts.accepted += accepted
    counts.quarantined += len(quarantine_rows)
    counts.duplicates += duplicates
    if accepted:
        new = ~rows["pos"].isin(np.fromiter((p for p, _ in conflicts), dtype=np.int64)).to_numpy()
        new &= ~rows["pos"].isin(np.asarray(list(same), dtype=np.int64)).to_numpy()
        hours = pd.DataFrame(
            {"hour": rows["occurred_at"][new].dt.floor("h"), "point_id": rows["point_id"][new]}
        )
        for hour, group in hours.drop_duplicates().groupby("hour"):
            touched.setdefault(hour.to_pydatetime(), set()).update(group["point_id"])


def _optional(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype=object, na_value=None)


def _differing(stored, incoming: dict) -> list[tuple[str, object, object]]:
    """(field, stored, incoming) for each content field that differs."""
    out = []
    for field in CONTENT_FIELDS:
        a, b = _normal(field, stored[field]), _normal(field, incoming[field])
        if a != b:
            out.append((field, a, b))
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
        "point_id": None if pd.isna(point_id) else str(point_id)[:64],
        "txn_id": None if pd.isna(txn_id) else str(txn_id)[:128],
        "raw": chunk.raw_row(position),
        "reasons": reasons,
        "kind": kind,
    }


# --- staging: bulk load a chunk, compare with stored rows, insert the new ones ----------------


class _Stage:
    """A temp table holding one chunk's candidate rows, on the batch's own connection."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.dialect = connection.dialect.name
        time_type = "TEXT" if self.dialect == "sqlite" else "TIMESTAMPTZ"
        connection.exec_driver_sql("DROP TABLE IF EXISTS ingest_stage")
        connection.exec_driver_sql(
            "CREATE TEMP TABLE ingest_stage (pos BIGINT NOT NULL, point_id TEXT NOT NULL, "
            f"txn_id TEXT NOT NULL, occurred_at {time_type} NOT NULL, amount BIGINT NOT NULL, "
            "payment_method TEXT NOT NULL, "
            "status TEXT NOT NULL, operator_id TEXT, payer_ref TEXT)"
        )

    def load(self, rows: pd.DataFrame) -> None:
        self.connection.exec_driver_sql("DELETE FROM ingest_stage")
        if not len(rows):
            return
        times = _utc_text(rows["occurred_at"])
        columns = [
            rows["pos"].tolist(),
            rows["point_id"].tolist(),
            rows["txn_id"].tolist(),
            times if self.dialect == "sqlite" else [t + "+00" for t in times],
            rows["amount"].tolist(),
            rows["payment_method"].tolist(),
            rows["status"].tolist(),
            _nullable(rows["operator_id"]),
            _nullable(rows["payer_ref"]),
        ]
        records = list(zip(*columns, strict=True))
        if self.dialect == "postgresql":
            cursor = self.connection.connection.driver_connection.cursor()
            with cursor.copy(f"COPY ingest_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
                for record in records:
                    copy.write_row(record)
        else:
            placeholders = ", ".join("?" for _ in STAGE_COLUMNS)
            self.connection.exec_driver_sql(
                f"INSERT INTO ingest_stage ({', '.join(STAGE_COLUMNS)}) VALUES ({placeholders})",
                records,
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

    def insert_new(self, batch_id: int) -> int:
        """Insert staged rows whose key is not stored yet; returns how many."""
        columns = ", ".join(("point_id", "txn_id", *CONTENT_FIELDS))
        result = self.connection.exec_driver_sql(
            f"INSERT INTO transactions ({columns}, batch_id) "
            f"SELECT {columns}, {int(batch_id)} FROM ingest_stage s WHERE NOT EXISTS "
            "(SELECT 1 FROM transactions t WHERE t.point_id = s.point_id AND t.txn_id = s.txn_id)"
        )
        return result.rowcount


def _nullable(values: pd.Series) -> list:
    # pandas stores a missing string as NaN; the database must get NULL, not the text "nan".
    return values.astype(object).where(values.notna(), None).tolist()


def _utc_text(times: pd.Series) -> list[str]:
    """UTC times as 'YYYY-MM-DD HH:MM:SS.ffffff', the form SQLAlchemy stores on SQLite."""
    values = times.dt.tz_convert(UTC).dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    text = np.datetime_as_string(values, unit="us")
    return [t.replace("T", " ") for t in text.tolist()]


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
