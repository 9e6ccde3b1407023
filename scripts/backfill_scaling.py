"""How the fanned-out backfill scales: the same range, one process vs Celery with 1 and 2 workers.

    python scripts/backfill_scaling.py --points 100 --weeks 9
    make backfill-scaling

Simulates a regency (``--points`` x ``--weeks``, seed 7), ingests it once into a PostgreSQL
database on 127.0.0.1:5432 that serves as the template, then times, each time on a fresh copy
of that database (``CREATE DATABASE ... TEMPLATE``) with no models:

 1. the single-process CLI, ``eincome backfill --start --end`` (and, last, ``--workers 2``);
 2. the ``eincome_backfill`` DAG under a real Airflow 3 (PostgreSQL metadata database,
    CeleryExecutor, Redis broker) with one Celery worker of concurrency 1, then with a second
    such worker started beside it: the run's own start-to-end time in the metadata database.

Every run's flags and cases are compared with the single-process run's (they must be equal).
Prints a table and writes it as JSON (``--json``). Built on scripts/airflow_check.py (its
process handling, Airflow settings and metadata queries).
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from airflow_check import BIN, WIB, CheckFailed, Run, free_port, say, wait_for  # noqa: E402

FLAG_QUERY = (
    "SELECT point_id, hour_start, kind, severity, round(score::numeric, 6), shortfall_rp"
    " FROM anomalies ORDER BY point_id, hour_start"
)
CASE_QUERY = (
    "SELECT point_id, start_at, end_at, kind, severity, shortfall_rp, status"
    " FROM cases ORDER BY point_id, start_at"
)


class Scaling(Run):
    """One measurement: its own work folder, template database, eincome and Airflow databases."""

    def __init__(self, work: Path, keep: bool, points: int, weeks: int):
        super().__init__("celery", work, keep)
        from sqlalchemy.engine import make_url

        self.points, self.weeks = points, weeks
        self.dbs = {
            name: f"eincome_scaling_{name}_{self.tag}"
            for name in ("airflow", "eincome", "template")
        }
        admin = make_url(self.admin.url)
        self.url = {
            name: admin.set(database=db).render_as_string(hide_password=False)
            for name, db in self.dbs.items()
        }
        self.figures: dict[str, float] = {}
        self.workers = 0

    def simulate(self) -> None:
        """The regency's feeds into the template database, through the real ingest."""
        from pipeline.testbed.simulator import simulate

        self.manifest = simulate(
            self.work / "sim", points=self.points, weeks=self.weeks, seed=7, split="week"
        )
        self.start = self.manifest.start.astimezone(WIB)
        self.end = self.manifest.end.astimezone(WIB)
        for home in ("airflow-eincome", "cli-eincome"):
            (self.work / home).mkdir(parents=True, exist_ok=True)
        self.eincome("template", "points", "load", str(self.manifest.points_csv))
        self.eincome("template", "ingest", *map(str, self.manifest.feeds), timeout=3600)

    def env(self, side: str = "eincome") -> dict[str, str]:
        env = super().env("eincome")
        env["EINCOME_DB_URL"] = self.url[side]
        return env

    def fresh_copy(self) -> None:
        """The eincome database as the template left it (no models, no flags), and no models."""
        from sqlalchemy import text

        db, template = self.dbs["eincome"], self.dbs["template"]
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{db}" TEMPLATE "{template}"'))
        shutil.rmtree(self.work / "airflow-eincome" / "models", ignore_errors=True)

    def range_args(self) -> list[str]:
        return ["--start", self.start.isoformat(), "--end", self.end.isoformat()]

    # -- the CLI -------------------------------------------------------------------
    def cli(self, workers: int) -> None:
        self.fresh_copy()
        started = time.monotonic()
        self.eincome("eincome", "backfill", *self.range_args(), "--no-progress",
                     "--workers", str(workers), timeout=7200)  # fmt: skip
        name = f"CLI, {workers} process{'es' if workers > 1 else ''}"
        self.figures[name] = time.monotonic() - started
        say(f"{name}: {self.figures[name]:.1f} s")
        if workers == 1:
            self.reference = [self.eincome_rows("eincome", q) for q in (FLAG_QUERY, CASE_QUERY)]
            say(f"reference: {len(self.reference[0])} flags, {len(self.reference[1])} cases")
        else:
            self.same_as_reference(name)

    def same_as_reference(self, name: str) -> None:
        found = [self.eincome_rows("eincome", q) for q in (FLAG_QUERY, CASE_QUERY)]
        for what, ours, theirs in zip(("flags", "cases"), found, self.reference, strict=True):
            if ours != theirs:
                raise CheckFailed(
                    f"{name}: {what} differ from the single process ({len(ours)} vs"
                    f" {len(theirs)}); only here: {[r for r in ours if r not in theirs][:3]}"
                )
        say(f"{name}: flags and cases equal to the single process's")

    # -- Airflow -------------------------------------------------------------------
    def start_airflow(self) -> None:
        from cryptography.fernet import Fernet

        self.api_port = free_port()
        self.log_ports = (free_port(), free_port())
        self.secret = secrets.token_urlsafe(32)
        self.fernet = Fernet.generate_key().decode()
        (self.work / "logs").mkdir(exist_ok=True)
        self.airflow("db", "migrate", timeout=900)
        env, airflow = self.airflow_env(), str(BIN / "airflow")
        self.flush_redis()
        self.services.start(
            "api-server",
            [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "-w", "1"],
            env,
        )
        self.services.start("scheduler", [airflow, "scheduler"], env)
        self.services.start("dag-processor", [airflow, "dag-processor"], env)
        self.add_worker()
        wait_for("the api-server", self.api_up, 300)
        wait_for("the DAGs to be parsed", self.dags_parsed, 400)
        self.airflow("dags", "unpause", "eincome_backfill")

    def add_worker(self) -> None:
        """One more Celery worker running one task at a time (the second one serves no logs:
        the first one's log server has the port)."""
        self.workers += 1
        args = [str(BIN / "airflow"), "celery", "worker", "--concurrency", "1",
                "--celery-hostname", f"worker{self.workers}@%h"]  # fmt: skip
        if self.workers > 1:
            args.append("--skip-serve-logs")
        self.services.start(f"celery-worker-{self.workers}", args, self.airflow_env())
        time.sleep(20)  # the worker joins the broker before work is queued

    def dag_run(self) -> None:
        self.fresh_copy()
        conf = {"start": self.start.isoformat(), "end": self.end.isoformat()}
        before = {r.run_id for r in self.runs("eincome_backfill")}
        triggered = time.monotonic()
        self.airflow("dags", "trigger", "eincome_backfill", "--conf", json.dumps(conf))

        def finished():
            self.services.check_alive()
            rows = self.meta(
                "SELECT run_id, state, start_date, end_date FROM dag_run"
                " WHERE dag_id = 'eincome_backfill'"
            )
            new = [r for r in rows if r.run_id not in before and r.state in ("success", "failed")]
            return new or None

        [run] = wait_for("the eincome_backfill run", finished, 7200, every=2)
        waited = time.monotonic() - triggered
        if run.state != "success":
            raise CheckFailed(
                f"backfill run {run.state}: {self.tasks('eincome_backfill', run.run_id)}"
            )
        name = f"Celery, {self.workers} worker{'s' if self.workers > 1 else ''}"
        self.figures[name] = (run.end_date - run.start_date).total_seconds()
        self.figures[f"{name} (trigger to done)"] = waited
        say(f"{name}: run {self.figures[name]:.1f} s ({waited:.1f} s from the trigger)")
        self.same_as_reference(name)

    def __call__(self) -> dict[str, float]:
        try:
            self.create_databases()
            self.step("simulate and ingest", self.simulate)
            self.step("single process", lambda: self.cli(1))
            self.step("start Airflow (Celery, 1 worker)", self.start_airflow)
            self.step("DAG run, 1 worker", self.dag_run)
            self.add_worker()
            self.step("DAG run, 2 workers", self.dag_run)
            self.services.stop()  # the CLI's two processes get the machine to themselves
            self.step("two processes", lambda: self.cli(2))
        finally:
            self.services.stop()
            if hasattr(self, "_meta"):
                self._meta.dispose()
            self.flush_redis()
            if not self.keep:
                self.drop_databases()
        return self.figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--weeks", type=int, default=9)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and databases")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eincome-backfill-scaling-"))
    say(f"work folder {work}")
    measuring = Scaling(work, args.keep, args.points, args.weeks)
    try:
        figures = measuring()
    except CheckFailed as exc:
        say(f"FAILED: {exc} (logs in {work})")
        return 1
    single = figures["CLI, 1 process"]
    say(
        f"{args.points} points x {args.weeks} weeks, {measuring.start:%Y-%m-%d}..{measuring.end:%Y-%m-%d}"
    )
    for name, seconds in figures.items():
        say(f"  {name:<40} {seconds:8.1f} s   {single / seconds:5.2f}x the single process")
    if args.json:
        args.json.write_text(json.dumps(
            {"points": args.points, "weeks": args.weeks, "measured_at": datetime.now().isoformat(),
             "seconds": figures}, indent=2))  # fmt: skip
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
