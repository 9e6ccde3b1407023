"""The stages the benchmark times, each a function of its inputs run in a child process of its
own (``python -m pipeline.testbed.bench --stage NAME --params JSON``), so its peak RSS is its own."""

from __future__ import annotations

import json
import resource
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

PATH_PARAMS = ("feed", "points_csv", "models_dir")


def peak_mib() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    an exec, so a child would report the parent's size at fork time."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _arrow_batches(feed: Path):
    """The feed's record batches from Arrow's streaming, multi-threaded CSV reader, every column
    as text (a line with the wrong number of fields is skipped: a floor stores none of them)."""
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(
        feed,
        read_options=pacsv.ReadOptions(block_size=16 << 20),
        convert_options=pacsv.ConvertOptions(
            column_types={name: "string" for name in _FEED_TEXT},
            strings_can_be_null=True,
            null_values=[""],
        ),
        parse_options=pacsv.ParseOptions(invalid_row_handler=lambda row: "skip"),
    )
    yield from reader


_FEED_TEXT = ("txn_id", "point_id", "occurred_at", "amount", "payment_method", "status")


def stage_parse(feed: Path, chunk_rows: int, **_) -> dict:
    """The parse floor: Arrow's multi-threaded CSV reader, every value kept as text."""
    rows = sum(batch.num_rows for batch in _arrow_batches(feed))
    return {"rows": rows}


def stage_reader(feed: Path, chunk_rows: int, **_) -> dict:
    """The project's own feed reader (every line accounted for, malformed lines kept)."""
    from pipeline.intake.feeds import read_feed

    rows = sum(len(chunk) for chunk in read_feed(feed, chunk_rows=chunk_rows))
    return {"rows": rows}


def stage_floor(feed: Path, chunk_rows: int, **_) -> dict:
    """Parse, parse times and amounts, and sum per point-minute and point-hour, all in Arrow:
    the least any ingest must do."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = 0
    parts = []
    for batch in _arrow_batches(feed):
        rows += batch.num_rows
        when = pc.cast(
            pc.strptime(
                batch.column("occurred_at"), "%Y-%m-%dT%H:%M:%S%z", "us", error_is_null=True
            ),
            pa.timestamp("us", tz="UTC"),
        )
        amount = pc.cast(batch.column("amount"), pa.float64(), safe=False)
        work = pa.table(
            {
                "point_id": batch.column("point_id"),
                "minute": pc.floor_temporal(when, unit="minute"),
                "amount": amount,
            }
        )
        parts.append(
            work.group_by(["point_id", "minute"]).aggregate(
                [("amount", "sum"), ("amount", "count")]
            )
        )
    minutes = (
        pa.concat_tables(parts)
        .group_by(["point_id", "minute"])
        .aggregate([("amount_sum", "sum"), ("amount_count", "sum")])
    )
    hours = (
        pa.table(
            {
                "point_id": minutes.column("point_id"),
                "hour": pc.floor_temporal(minutes.column("minute"), unit="hour"),
                "n": minutes.column("amount_count_sum"),
            }
        )
        .group_by(["point_id", "hour"])
        .aggregate([("n", "sum")])
    )
    return {"rows": rows, "minute_rows": minutes.num_rows, "hour_rows": hours.num_rows}


def _warm_validator() -> float:
    """Import Great Expectations and build its context; returns the seconds it took.

    Reported apart from throughput: it is paid once per process (several seconds on a busy
    machine), not per row.
    """
    from pipeline.intake.validate import _batch_definition, load_suite

    started = time.perf_counter()
    _batch_definition()
    load_suite()
    return round(time.perf_counter() - started, 2)


def stage_validate(feed: Path, chunk_rows: int, points_csv: Path, **_) -> dict:
    from pipeline.intake.feeds import read_feed
    from pipeline.intake.validate import validate_chunk
    from pipeline.reference.points import parse_registry

    startup = _warm_validator()
    started = time.perf_counter()
    known = {row["point_id"] for row in parse_registry(points_csv)}
    rows = failed = 0
    now = datetime.now(UTC)
    for chunk in read_feed(feed, chunk_rows=chunk_rows):
        result = validate_chunk(
            chunk.frame, known_point_ids=known, now=now, future_tolerance=timedelta(minutes=10)
        )
        rows += len(chunk)
        failed += result.failed_count
    seconds = time.perf_counter() - started
    return {"rows": rows, "failed": failed, "seconds": seconds, "startup_seconds": startup}


def stage_ingest(feed: Path, chunk_rows: int, points_csv: Path, db_url: str, **_) -> dict:
    from pipeline.intake.ingest import ingest_file
    from pipeline.reference.points import load_registry
    from pipeline.store import connect

    startup = _warm_validator()
    engine = connect(db_url)
    load_registry(engine, points_csv)
    started = time.perf_counter()
    result = ingest_file(engine, feed, chunk_rows=chunk_rows)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {
        "rows": result.rows_read,
        "seconds": seconds,
        "accepted": result.accepted,
        "quarantined": result.quarantined,
        "duplicates": result.duplicates,
        "stage_seconds": result.seconds,
        "startup_seconds": startup,
    }


def stage_store(feed: Path, chunk_rows: int, points_csv: Path, db_url: str, **_) -> dict:
    """The database's own floor: each chunk bulk-written into the real ``transactions`` table (its
    key and index) - no validation, dedupe against stored rows, or aggregates; writes timed."""
    return _parse_and_write(feed, chunk_rows, points_csv, db_url, bare=False)


def stage_bare(feed: Path, chunk_rows: int, points_csv: Path, db_url: str, **_) -> dict:
    """The least any writer of these rows pays: ``store`` into a table of the same columns with
    no key and no index (so no dedupe possible), the same bulk path as ingest."""
    return _parse_and_write(feed, chunk_rows, points_csv, db_url, bare=True)


def _parse_and_write(
    feed: Path, chunk_rows: int, points_csv: Path, db_url: str, *, bare: bool
) -> dict:
    """Parse and keep the storable rows (untimed), then bulk-write them by the fastest path
    known - ADBC's bulk ingest straight into the table (PostgreSQL: COPY in binary; SQLite:
    adbc-driver-sqlite), Arrow columns as ingest builds them, sorted by (point, time), one
    transaction - timing only the writes: the database's floor, not this stage's own dedupe."""

    from pipeline.intake.feeds import read_feed
    from pipeline.intake.ingest.run import SQLITE_CACHE_KIB
    from pipeline.reference.points import load_registry
    from pipeline.store import connect
    from pipeline.store.bulk import adbc_uri
    from pipeline.store.schema import ingest_batches

    engine = connect(db_url)
    load_registry(engine, points_csv)
    dialect = engine.dialect.name
    table = "transactions"
    with engine.begin() as connection:
        if bare:
            table = "bare_transactions"
            connection.exec_driver_sql(
                f"CREATE TABLE {table} AS SELECT * FROM transactions WHERE 1 = 0"
            )
        batch_id = connection.execute(
            ingest_batches.insert()
            .values(source="bench", source_ref=str(feed), started_at=datetime.now(UTC), status="ok")
            .returning(ingest_batches.c.batch_id)
        ).scalar_one()
        uri = adbc_uri(connection) if dialect == "postgresql" else engine.url.database
    engine.dispose()
    adbc = _adbc_connect(dialect, uri)
    cursor = adbc.cursor()
    if dialect == "sqlite":
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")  # as ingest's writer
        cursor.execute("BEGIN IMMEDIATE")
    rows = 0
    seen_keys: set[int] = set()
    write_seconds = 0.0
    started = time.perf_counter()
    for chunk in read_feed(feed, chunk_rows=chunk_rows):
        frame, micros, amount = _storable(chunk.frame, seen_keys)
        rows += len(frame)
        arrow = _arrow_rows(dialect, frame, micros, amount, batch_id)
        write_started = time.perf_counter()
        cursor.adbc_ingest(table, arrow, mode="append")
        write_seconds += time.perf_counter() - write_started
    commit_started = time.perf_counter()
    if dialect == "sqlite":
        cursor.execute("COMMIT")
    else:
        adbc.commit()
    write_seconds += time.perf_counter() - commit_started
    total = time.perf_counter() - started
    cursor.close()
    adbc.close()
    return {
        "rows": rows,
        "seconds": write_seconds,
        "untimed_seconds": round(total - write_seconds, 1),
        "path": "adbc",
    }


def _adbc_connect(dialect: str, uri: str):
    if dialect == "postgresql":
        import adbc_driver_postgresql.dbapi as adbc_pg

        return adbc_pg.connect(uri)
    import adbc_driver_sqlite.dbapi as adbc_sqlite

    return adbc_sqlite.connect(uri, autocommit=True)


def _arrow_rows(dialect: str, frame, micros, amount, batch_id: int):
    """A chunk's storable rows (``_storable``) as the Arrow table ADBC bulk-loads into
    ``transactions``."""
    import numpy as np

    from pipeline.store.bulk import format_rows

    arrow = format_rows(
        dialect,
        {
            "point_id": frame["point_id"].to_numpy(dtype=object),
            "txn_id": frame["txn_id"].to_numpy(dtype=object),
            "occurred_at": micros.view("datetime64[us]"),
            "amount": amount.to_numpy(dtype=np.int64),
            "payment_method": frame["payment_method"].to_numpy(dtype=object),
            "status": frame["status"].to_numpy(dtype=object),
            "operator_id": frame["operator_id"].to_numpy(dtype=object, na_value=None),
            "payer_ref": frame["payer_ref"].to_numpy(dtype=object, na_value=None),
            "batch_id": np.full(len(frame), batch_id, dtype=np.int64),
        },
        arrow=True,
    ).payload
    if dialect == "postgresql":  # COPY binary wants the column's own width: INTEGER
        arrow = arrow.set_column(8, "batch_id", arrow.column("batch_id").cast("int32"))
    return arrow


def _storable(frame, seen_keys: set[int]):
    """The chunk's storable rows sorted by (point, time) as ingest writes them: (frame, UTC
    microseconds, amount). The feed's few bad and repeated rows are left out: they cannot be
    stored at all. Repeats are found by a 64-bit hash of the key, also across chunks (the hashes
    kept are added to ``seen_keys``)."""
    import pandas as pd

    from pipeline.store.bulk import point_time_order

    when = pd.to_datetime(frame["occurred_at"], format="ISO8601", utc=True, errors="coerce")
    amount = pd.to_numeric(frame["amount"], errors="coerce")
    key_hash = pd.util.hash_pandas_object(frame[["point_id", "txn_id"]], index=False)
    keep = (
        (when.notna() & amount.notna()).to_numpy()
        & ~key_hash.duplicated().to_numpy()
        & ~key_hash.isin(seen_keys).to_numpy()
    )
    seen_keys.update(key_hash[keep].tolist())
    frame, when, amount = frame[keep], when[keep], amount[keep]
    micros = when.dt.as_unit("us").array.asi8
    order = point_time_order(frame["point_id"], micros)
    return frame.iloc[order], micros[order], amount.iloc[order]


def stage_naive(feed: Path, chunk_rows: int, db_url: str, **_) -> dict:
    """What a first attempt looks like: read_csv + to_sql, no validation, no dedupe."""
    import pandas as pd
    from sqlalchemy import create_engine

    engine = create_engine(db_url)
    rows = 0
    for frame in pd.read_csv(feed, chunksize=chunk_rows):
        frame["occurred_at"] = pd.to_datetime(
            frame["occurred_at"], format="ISO8601", utc=True, errors="coerce"
        )
        frame.to_sql("naive_transactions", engine, if_exists="append", index=False)
        rows += len(frame)
    engine.dispose()
    return {"rows": rows}


def _detection_setup(db_url: str):
    """Import the detection stage and open the database: paid once per process, reported apart."""
    started = time.perf_counter()
    from pipeline.detection.backfill import backfill, score_range  # noqa: F401  (sklearn, scipy, ...)
    from pipeline.detection.features import data_span
    from pipeline.store import connect

    engine = connect(db_url)
    return engine, data_span(engine), round(time.perf_counter() - started, 2)


def stage_backfill(db_url: str, models_dir: Path, **_) -> dict:
    """Aggregate + train + score the whole stored range (the detection lane's bulk path)."""
    engine, (start, end), startup = _detection_setup(db_url)
    from pipeline.detection.backfill import backfill

    started = time.perf_counter()
    return _scored(backfill(engine, models_dir, start, end), started, startup)


def stage_hourly(db_url: str, models_dir: Path, warm_runs: int = 3, **_) -> dict:
    """One hourly scoring run over every point, cold (no baseline cache yet): the hour before
    the last stored one; then the same hour ``warm_runs`` times warm (baseline cached, model
    read), as the hourly runs of a day after its first. CPU seconds of each (the process's own,
    ``time.process_time``: the machine's other load does not count), cold first."""
    engine, (_, end), startup = _detection_setup(db_url)
    from pipeline.detection.backfill import score_range

    end -= timedelta(hours=1)
    cpu = []
    for _run in range(1 + warm_runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = score_range(engine, models_dir, end - timedelta(hours=1), end)
        cpu.append(round(time.process_time() - cpu_started, 2))
        if _run == 0:
            figures = _scored(result, started, startup)
    return {**figures, "cold_cpu_seconds": cpu[0], "warm_cpu_seconds": cpu[1:]}


def _scored(result, started: float, startup: float) -> dict:
    """A detection stage's figures from its BackfillResult or ScoreResult."""
    return {
        "rows": result.hours_scored,
        "unit": "point-hours",
        "flagged": result.flagged,
        "seconds": time.perf_counter() - started,
        "startup_seconds": startup,
    }


STAGES = {
    "parse": stage_parse,
    "reader": stage_reader,
    "floor": stage_floor,
    "validate": stage_validate,
    "ingest": stage_ingest,
    "store": stage_store,
    "bare": stage_bare,
    "naive": stage_naive,
    "backfill": stage_backfill,
    "hourly": stage_hourly,
}


def run_child(stage: str, params_json: str) -> None:
    """The child process's side: run one stage and print its figures on a ``BENCH`` line."""
    params = json.loads(params_json)
    for key in PATH_PARAMS:
        if key in params:
            params[key] = Path(params[key])
    started = time.perf_counter()
    out = STAGES[stage](**params)
    out.setdefault("seconds", time.perf_counter() - started)
    out["peak_mib"] = round(peak_mib(), 1)
    print("BENCH " + json.dumps(out))
