"""The parent side of the benchmark: generate one feed, run each stage in its own process on
each database, and save the figures as they come."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pipeline.testbed.bench.report import with_ratios
from pipeline.testbed.bench.stages import PATH_PARAMS, STAGES, peak_mib

DEFAULT_ROWS = 5_000_000
DEFAULT_POINTS = 1_000
QUICK_ROWS = 20_000
QUICK_POINTS = 40
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _run_in_process(stage: str, params: dict) -> dict:
    """--quick: every stage in this process, so Great Expectations is imported once; the peak
    memory is then the process's high-water mark so far, not the stage's own."""
    params = {k: Path(v) if k in PATH_PARAMS else v for k, v in params.items()}
    started = time.perf_counter()
    try:
        out = STAGES[stage](**params)
    except Exception as exc:  # a failed stage is reported in its row, the others still run
        return {"error": f"{type(exc).__name__}: {exc}"}
    out.setdefault("seconds", time.perf_counter() - started)
    out["peak_mib"] = round(peak_mib(), 1)
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


def _database_urls(db: str, work: Path) -> tuple[list[str], list]:
    """URLs of the four databases a run of ``db`` writes (ingest, naive, store, bare), fresh, and
    the callables that drop them afterwards (none for SQLite files in the work folder)."""
    if db == "sqlite":
        names = ("bench.db", "naive.db", "store.db", "bare.db")
        return [f"sqlite:///{work / name}" for name in names], []
    made = [_postgres_database() for _ in range(4)]
    return [url for url, _ in made], [drop for _, drop in made]


def _why_no_detection(args: argparse.Namespace) -> str:
    if args.quick:
        return "not measured: --quick"
    if args.skip_detection:
        return "not measured: --skip-detection"
    return "not measured: pipeline.detection.backfill is missing"


def run(args: argparse.Namespace) -> dict:
    """Generate the feed, time every stage on every database asked for; the report as saved."""
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
            "results": with_ratios([dict(r) for r in results]),
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

    for stage in ("parse", "reader", "floor", "validate"):
        record(stage, "-", common)
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    detection = _has_detection() and not args.skip_detection and not args.quick
    for db in databases:
        (url, naive_url, store_url, bare_url), drops = _database_urls(db, work)
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
        why = _why_no_detection(args)
        results.append({"stage": "backfill", "db": "-", "error": why})
        results.append({"stage": "hourly", "db": "-", "error": why})
    report = save()
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return report
