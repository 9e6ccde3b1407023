"""The benchmark: where ingest time goes, as rows/s, wall seconds and peak memory per stage.

    python -m pipeline.testbed.bench [--rows N] [--points N] [--quick] [--db sqlite|postgres|both]

Generates one simulator feed of the given size, then runs each stage in its own subprocess (so
its peak RSS is its own) on SQLite and/or PostgreSQL:

- floor: bare CSV parse, and parse + minute/hour aggregation in pandas (nothing stored);
- parse + validate (Great Expectations on every chunk), nothing stored;
- ingest end to end (parse, validate, dedupe, store, minute + hour aggregates), with the
  seconds of each stage inside it;
- store: the rows bulk-written into the real ``transactions`` table and nothing else, only the
  writes timed (the database's own floor for this schema); bare: the same into a table with no
  key or index (the least any writer of these rows pays);
- naive: pandas ``read_csv`` + ``to_sql`` into a bare table;
- backfill (aggregate + train + score) from the stored data, and one hourly scoring run,
  through the detection lane's ``pipeline.detection.backfill``.

Writes bench-results/bench.json and prints a table with each figure's ratio to the floor.
It is a script, not a timed test: figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

DEFAULT_ROWS = 5_000_000
DEFAULT_POINTS = 1_000
QUICK_ROWS = 20_000
QUICK_POINTS = 40
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# --- the stages, each run in a child process ------------------------------------------------


def _peak_mib() -> float:
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
    import pandas as pd

    from pipeline.intake.feeds import read_feed
    from pipeline.reference.points import load_registry
    from pipeline.store import connect
    from pipeline.store.bulk import copy_columns, nullable, point_time_order, utc_text
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
            frame = chunk.frame
            when = pd.to_datetime(frame["occurred_at"], format="ISO8601", utc=True, errors="coerce")
            amount = pd.to_numeric(frame["amount"], errors="coerce")
            # The feed's few bad and repeated rows are left out: they cannot be stored at all.
            # Repeats are found by a 64-bit hash of the key, also across chunks.
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
            frame, micros, amount = frame.iloc[order], micros[order], amount.iloc[order]
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


def _child(args: argparse.Namespace) -> None:
    params = json.loads(args.params)
    for key in ("feed", "points_csv", "models_dir"):
        if key in params:
            params[key] = Path(params[key])
    started = time.perf_counter()
    out = STAGES[args.stage](**params)
    out.setdefault("seconds", time.perf_counter() - started)
    out["peak_mib"] = round(_peak_mib(), 1)
    print("BENCH " + json.dumps(out))


# --- the parent: generate, run, report --------------------------------------------------------


def _run_in_process(stage: str, params: dict) -> dict:
    """--quick: every stage in this process, so Great Expectations is imported once; the peak
    memory is then the process's high-water mark so far, not the stage's own."""
    params = {
        k: Path(v) if k in ("feed", "points_csv", "models_dir") else v for k, v in params.items()
    }
    started = time.perf_counter()
    try:
        out = STAGES[stage](**params)
    except Exception as exc:  # a failed stage is reported in its row, the others still run
        return {"error": f"{type(exc).__name__}: {exc}"}
    out.setdefault("seconds", time.perf_counter() - started)
    out["peak_mib"] = round(_peak_mib(), 1)
    out["in_process"] = True
    return out


def _run_stage(stage: str, params: dict, timeout: float, *, in_process: bool = False) -> dict:
    if in_process:
        return _run_in_process(stage, params)
    command = [
        sys.executable,
        "-m",
        "pipeline.testbed.bench",
        "--stage",
        stage,
        "--params",
        json.dumps(params),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            result = json.loads(line[6:])
            result["process_seconds"] = round(wall, 2)
            return result
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"error": " | ".join(tail) or f"exit {done.returncode}"}


def _postgres_database() -> tuple[str, callable]:
    from sqlalchemy import create_engine, text

    admin = create_engine(
        os.environ.get("EINCOME_BENCH_POSTGRES_URL", POSTGRES_ADMIN_URL),
        isolation_level="AUTOCOMMIT",
    )
    name = f"eincome_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin.url.set(database=name).render_as_string(hide_password=False), drop


def generate_feed(out_dir: Path, rows: int, points: int, *, quick: bool) -> dict:
    """One simulator feed of about ``rows`` rows over ``points`` points (a year, or 2 weeks)."""
    from pipeline.testbed.simulator import simulate

    days = 14 if quick else 365
    started = time.perf_counter()
    manifest = simulate(
        out_dir / "sim", points=points, days=days, target_rows=rows, split="none", seed=7
    )
    return {
        "feed": str(manifest.feeds[0]),
        "points_csv": str(manifest.points_csv),
        "rows": manifest.rows,
        "points": points,
        "days": days,
        "bytes": manifest.feeds[0].stat().st_size,
        "generate_seconds": round(time.perf_counter() - started, 1),
    }


def _has_detection() -> bool:
    try:
        from pipeline.detection.backfill import backfill, score_range  # noqa: F401
    except ImportError:
        return False
    return True


def run(args: argparse.Namespace) -> dict:
    rows = args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS)
    points = args.points or (QUICK_POINTS if args.quick else DEFAULT_POINTS)
    chunk_rows = args.chunk_rows
    timeout = 600 if args.quick else 3 * 3600
    work = Path(tempfile.mkdtemp(prefix="eincome-bench-"))
    feed = generate_feed(work, rows, points, quick=args.quick)
    print(
        f"feed: {feed['rows']:,} rows, {points:,} points, {feed['days']} days, "
        f"{feed['bytes'] / 1e6:.0f} MB, generated in {feed['generate_seconds']} s",
        file=sys.stderr,
    )
    common = {"feed": feed["feed"], "points_csv": feed["points_csv"], "chunk_rows": chunk_rows}
    results: list[dict] = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def save() -> dict:
        report = {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average": os.getloadavg(),
            },
            "feed": feed,
            "chunk_rows": chunk_rows,
            "results": _with_ratios([dict(r) for r in results]),
        }
        (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
        return report

    def record(stage: str, db: str, params: dict) -> dict:
        if args.only and stage not in args.only:
            return {"stage": stage, "db": db, "error": "not run (--only)"}
        print(f"  {stage} ({db}) ...", file=sys.stderr, flush=True)
        result = {
            "stage": stage,
            "db": db,
            **_run_stage(stage, params, timeout, in_process=args.quick),
        }
        results.append(result)
        save()  # a long run can be read, or stopped, half way
        return result

    for stage in ("parse", "floor", "validate"):
        record(stage, "-", common)
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    detection = _has_detection() and not args.skip_detection and not args.quick
    for db in databases:
        drops = []
        if db == "sqlite":
            url, naive_url, store_url, bare_url = (
                f"sqlite:///{work / name}"
                for name in ("bench.db", "naive.db", "store.db", "bare.db")
            )
        else:
            databases_made = [_postgres_database() for _ in range(4)]
            (url, naive_url, store_url, bare_url) = (made[0] for made in databases_made)
            drops += [made[1] for made in databases_made]
        try:
            ingest = record("ingest", db, {**common, "db_url": url})
            record("store", db, {**common, "db_url": store_url})
            record("bare", db, {**common, "db_url": bare_url})
            record("naive", db, {**common, "db_url": naive_url})
            models_dir = str(work / f"models-{db}")
            if detection and "error" not in ingest:
                record("backfill", db, {"db_url": url, "models_dir": models_dir})
                record("hourly", db, {"db_url": url, "models_dir": models_dir})
        finally:
            for drop in drops:
                drop()
    if not detection:
        why = "not measured: " + (
            "--quick"
            if args.quick
            else "--skip-detection"
            if args.skip_detection
            else "pipeline.detection.backfill is missing"
        )
        results.append({"stage": "backfill", "db": "-", "error": why})
        results.append({"stage": "hourly", "db": "-", "error": why})
    report = save()
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return report


def _with_ratios(results: list[dict]) -> list[dict]:
    floor = next((r for r in results if r["stage"] == "floor" and "error" not in r), None)
    naive = {r["db"]: r for r in results if r["stage"] == "naive" and "error" not in r}
    store = {r["db"]: r for r in results if r["stage"] == "store" and "error" not in r}
    bare = {r["db"]: r for r in results if r["stage"] == "bare" and "error" not in r}
    for r in results:
        if "error" in r:
            continue
        r["seconds"] = round(r["seconds"], 2)
        r["rows_per_s"] = round(r["rows"] / r["seconds"]) if r["seconds"] else None
        if floor and r.get("unit") is None:
            r["x_floor"] = round(r["seconds"] / floor["seconds"], 2)
        if r["stage"] == "ingest" and r["db"] in naive:
            r["x_faster_than_naive"] = round(naive[r["db"]]["seconds"] / r["seconds"], 2)
        if r["stage"] == "ingest" and r["db"] in store:
            r["x_store_floor"] = round(r["seconds"] / store[r["db"]]["seconds"], 2)
        if r["stage"] == "ingest" and r["db"] in bare:
            r["bare_rows_per_s"] = round(bare[r["db"]]["rows"] / bare[r["db"]]["seconds"])
    return results


def _notes(r: dict, *, stage_decimals: int) -> str:
    """The notes column of one result: stage seconds inside it, startup, ratios, unit."""
    notes = []
    if "stage_seconds" in r:
        notes.append(
            ", ".join(f"{k} {v:.{stage_decimals}f} s" for k, v in r["stage_seconds"].items())
        )
    if "untimed_seconds" in r:
        notes.append(f"the writes alone; +{r['untimed_seconds']:.0f} s parse and dedupe untimed")
    if "startup_seconds" in r:
        notes.append(f"+{r['startup_seconds']:.0f} s startup")
    if "x_faster_than_naive" in r:
        notes.append(f"{r['x_faster_than_naive']}x naive")
    if "x_store_floor" in r:
        notes.append(f"{r['x_store_floor']}x the store floor")
    if "bare_rows_per_s" in r:
        notes.append(f"bare write {r['bare_rows_per_s'] / 1000:.0f}k rows/s")
    if r.get("unit"):
        notes.append(r["unit"])
    return "; ".join(notes)


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    feed = report["feed"]
    table = Table(title=f"eincome bench: {feed['rows']:,} rows, {feed['points']:,} points")
    for column in ("stage", "db", "rows", "seconds", "rows/s", "peak MiB", "x floor", "notes"):
        table.add_column(column, justify="left" if column in ("stage", "db", "notes") else "right")
    for r in report["results"]:
        if "error" in r:
            table.add_row(r["stage"], r["db"], "", "", "", "", "", r["error"][:80])
            continue
        table.add_row(
            r["stage"],
            r["db"],
            f"{r['rows']:,}",
            f"{r['seconds']:.2f}",
            f"{r['rows_per_s']:,}" if r.get("rows_per_s") else "",
            f"{r['peak_mib']:,.0f}",
            f"{r['x_floor']:.2f}" if r.get("x_floor") is not None else "",
            _notes(r, stage_decimals=1),
        )
    Console(width=max(Console().width, 150)).print(table)


def markdown_table(report: dict) -> str:
    """The results as a Markdown table, for docs/bench.md and the README."""
    lines = [
        "| stage | db | rows | seconds | rows/s | peak MiB | x floor | notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        if "error" in r:
            lines.append(f"| {r['stage']} | {r['db']} | | | | | | {r['error'][:100]} |")
            continue
        ratio = f"{r['x_floor']:.2f}" if r.get("x_floor") is not None else ""
        lines.append(
            f"| {r['stage']} | {r['db']} | {r['rows']:,} | {r['seconds']:.1f} | "
            f"{r.get('rows_per_s') or 0:,} | {r['peak_mib']:,.0f} | {ratio} | {_notes(r, stage_decimals=0)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.testbed.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--rows", type=int, help=f"feed rows (default {DEFAULT_ROWS:,}; quick {QUICK_ROWS:,})"
    )
    parser.add_argument(
        "--points", type=int, help=f"collection points (default {DEFAULT_POINTS:,})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small run for CI (well under a minute)"
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=200_000,
        help="rows per streamed chunk (as EINCOME_CHUNK_ROWS)",
    )
    parser.add_argument("--out", default="bench-results", help="folder for bench.json")
    parser.add_argument(
        "--skip-detection", action="store_true", help="leave out backfill/hourly scoring"
    )
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        metavar="STAGES",
        help=f"run only these stages, comma-separated ({', '.join(STAGES)})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated feed and databases")
    parser.add_argument("--render", metavar="JSON", help="print an earlier bench.json as Markdown")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        _child(args)
        return
    if args.render:
        print(markdown_table(json.loads(Path(args.render).read_text())))
        return
    report = run(args)
    print_table(report)
    print(f"written: {Path(args.out) / 'bench.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
