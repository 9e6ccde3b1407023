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


def stage_parse(feed: Path, chunk_rows: int, **_) -> dict:
    from pipeline.intake.feeds import read_feed

    rows = sum(len(chunk) for chunk in read_feed(feed, chunk_rows=chunk_rows))
    return {"rows": rows}


def stage_floor(feed: Path, chunk_rows: int, **_) -> dict:
    """Parse, parse times, and sum per point-minute and point-hour: the least any ingest must do."""
    import pandas as pd

    from pipeline.intake.feeds import read_feed

    rows = 0
    parts = []
    for chunk in read_feed(feed, chunk_rows=chunk_rows):
        frame = chunk.frame
        rows += len(frame)
        when = pd.to_datetime(frame["occurred_at"], format="ISO8601", utc=True, errors="coerce")
        amount = pd.to_numeric(frame["amount"], errors="coerce")
        work = pd.DataFrame(
            {"point_id": frame["point_id"], "minute": when.dt.floor("min"), "amount": amount}
        )
        parts.append(
            work.groupby(["point_id", "minute"]).agg(n=("amount", "size"), s=("amount", "sum"))
        )
    minutes = pd.concat(parts).groupby(level=[0, 1]).sum()
    hours = minutes.groupby(
        [minutes.index.get_level_values(0), minutes.index.get_level_values(1).floor("h")]
    ).sum()
    return {"rows": rows, "minute_rows": len(minutes), "hour_rows": len(hours)}


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
    """Parse and keep the storable rows (untimed), then format and bulk-write them as ingest
    does - sorted by (point, time), the same pragmas, one transaction - timing only the
    writes: the seconds are the database's and the bulk path's, not this stage's own dedupe."""
    import numpy as np

    from pipeline.intake.feeds import read_feed
    from pipeline.reference.points import load_registry
    from pipeline.store import connect
    from pipeline.store.bulk import copy_columns, nullable, utc_text
    from pipeline.store.schema import ingest_batches

    engine = connect(db_url)
    load_registry(engine, points_csv)
    dialect = engine.dialect.name
    table = "transactions"
    if bare:
        table = "bare_transactions"
        with engine.begin() as connection:
            connection.exec_driver_sql(
                f"CREATE TABLE {table} AS SELECT * FROM transactions WHERE 1 = 0"
            )
    rows = 0
    seen_keys: set[int] = set()
    write_seconds = 0.0
    started = time.perf_counter()
    with engine.begin() as connection:
        if dialect == "sqlite":
            connection.exec_driver_sql("PRAGMA cache_size=-262144")  # as ingest's writer
        batch_id = connection.execute(
            ingest_batches.insert()
            .values(source="bench", source_ref=str(feed), started_at=datetime.now(UTC), status="ok")
            .returning(ingest_batches.c.batch_id)
        ).scalar_one()
        for chunk in read_feed(feed, chunk_rows=chunk_rows):
            frame, micros, amount = _storable(chunk.frame, seen_keys)
            rows += len(frame)

            write_started = time.perf_counter()
            copy_columns(
                connection,
                table,
                {
                    "point_id": frame["point_id"].tolist(),
                    "txn_id": frame["txn_id"].tolist(),
                    "occurred_at": utc_text(micros, dialect),
                    "amount": amount.to_numpy(dtype=np.int64).tolist(),
                    "payment_method": frame["payment_method"].tolist(),
                    "status": frame["status"].tolist(),
                    "operator_id": nullable(frame["operator_id"]),
                    "payer_ref": nullable(frame["payer_ref"]),
                    "batch_id": [batch_id] * len(frame),
                },
            )
            write_seconds += time.perf_counter() - write_started
        commit_started = time.perf_counter()
    write_seconds += time.perf_counter() - commit_started
    total = time.perf_counter() - started
    engine.dispose()
    return {
        "rows": rows,
        "seconds": write_seconds,
        "untimed_seconds": round(total - write_seconds, 1),
    }


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


def stage_hourly(db_url: str, models_dir: Path, **_) -> dict:
    """One hourly scoring run over every point, cold (no baseline cache yet): the hour before
    the last stored one."""
    engine, (_, end), startup = _detection_setup(db_url)
    from pipeline.detection.backfill import score_range

    end -= timedelta(hours=1)
    started = time.perf_counter()
    return _scored(score_range(engine, models_dir, end - timedelta(hours=1), end), started, startup)


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
