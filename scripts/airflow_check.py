"""The real-scheduler check: eincome's DAGs under a real Airflow 3 on loopback, as ops run them.

    python scripts/airflow_check.py                    # LocalExecutor, then CeleryExecutor
    python scripts/airflow_check.py --executor local   # one of them
    make airflow-check

For each executor it starts Airflow (api-server, scheduler, dag-processor, triggerer, and for
Celery one worker) with a PostgreSQL metadata database of its own on 127.0.0.1:5432 (Celery's
broker: Redis on 127.0.0.1:6379), then does what an operator does:

 1. drops simulator feeds into a landing folder beside a dead HTTP source, unpauses
    eincome_ingest and waits for its scheduled round: the landing files stored, the dead source
    failed under its name, and the round red (it must not look healthy);
 2. unpauses eincome_retrain and triggers it by hand (no logical date, as the UI's button);
 3. unpauses eincome_detect and eincome_backfill, waits for the scheduled detect run, and
    triggers the bulk backfill with WIB dates;
 4. triggers a manual detect run for one named hour, and creates a native backfill of six
    detect hours with four runs at a time (these deadlocked on PostgreSQL);
 5. does the same through the CLI on a database of its own (`eincome pull`, `train` on the same
    window, `backfill`, `score` hour by hour) and compares: transactions, quarantine,
    aggregates, flags and cases must be equal;
 6. reads the task logs: no deprecation warnings, no Great Expectations INFO lines.

Every wait is bounded; everything started is stopped on exit (also on Ctrl-C), and the
databases it made are dropped (``--keep`` keeps them and the work folder to look at).
The settings: EINCOME_TEST_POSTGRES_URL (an admin URL, default the test server),
AIRFLOW_CHECK_REDIS_URL (default redis://127.0.0.1:6379/13; the check flushes that database).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WIB = ZoneInfo("Asia/Jakarta")
ADMIN_URL = os.environ.get(
    "EINCOME_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("AIRFLOW_CHECK_REDIS_URL", "redis://127.0.0.1:6379/13")
# Four weeks of history before the first scored week (rhythm.MIN_HISTORY) and a week and a
# day of it scored: the bulk backfill must flag something, or comparing the hour-by-hour
# rescoring with it proves nothing (at 10 days the backfill scored no hour at all).
SIM_DAYS = 36
SIM_POINTS = 8
NATIVE_HOURS = 6
# What task logs must not carry: deprecation warnings (skops walking Airflow's shims logged
# ~1,160 per scoring task) and Great Expectations' INFO lines (~213 per pull).
LOG_NOISE = ("DeprecationWarning", "DeprecatedImportWarning", "great_expectations")
MAX_TASK_LOG_BYTES = 100_000
EINCOME_DAGS = ("eincome_ingest", "eincome_detect", "eincome_retrain", "eincome_backfill")


class CheckFailed(Exception):
    pass


def say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, predicate, timeout: float, every: float = 5.0):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after
    ``timeout`` seconds (with the last thing it returned, when it says why)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what} (last: {last})")


class Services:
    """The processes the check started, stopped together (process groups, TERM then KILL)."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append((name, proc))
        say(f"started {name} (pid {proc.pid})")

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise CheckFailed(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for name, proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop on TERM: killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.procs.clear()


class Run:
    """One executor's check, in its own work folder and databases."""

    def __init__(self, executor: str, work: Path, keep: bool):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.executor, self.work, self.keep = executor, work, keep
        self.tag = f"{executor}_{os.getpid()}"
        admin = make_url(ADMIN_URL)
        self.admin = create_engine(admin, isolation_level="AUTOCOMMIT")
        self.dbs = {
            name: f"eincome_check_{name}_{self.tag}" for name in ("airflow", "eincome", "cli")
        }
        self.url = {
            name: admin.set(database=db).render_as_string(hide_password=False)
            for name, db in self.dbs.items()
        }
        self.services = Services(work / "logs")
        self.timings: dict[str, float] = {}

    # -- set-up ------------------------------------------------------------------------
    def create_databases(self) -> None:
        from sqlalchemy import text

        with self.admin.connect() as connection:
            for db in self.dbs.values():
                connection.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
                connection.execute(text(f'CREATE DATABASE "{db}"'))

    def drop_databases(self) -> None:
        from sqlalchemy import text

        with self.admin.connect() as connection:
            for db in self.dbs.values():
                connection.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        self.admin.dispose()

    def simulate(self) -> None:
        """Feeds of the SIM_DAYS local days before today, in two landing folders (Airflow's and
        the CLI's), settled (old modification times), and the point registry in both DBs."""
        from pipeline.testbed.simulator import simulate

        today = datetime.now(WIB).replace(hour=0, minute=0, second=0, microsecond=0)
        self.sim_start = today - timedelta(days=SIM_DAYS)
        self.sim_end = today
        self.manifest = simulate(
            self.work / "sim",
            points=SIM_POINTS,
            days=SIM_DAYS,
            seed=11,
            start=self.sim_start,
            split="day",
        )
        settled = time.time() - 3600
        for home in ("airflow-eincome", "cli-eincome"):
            landing = self.work / home / "landing"
            landing.mkdir(parents=True)
            for feed in self.manifest.feeds:
                shutil.copy(feed, landing / feed.name)
                os.utime(landing / feed.name, (settled, settled))
        dead = free_port()  # nothing listens there: a vendor API that is down
        (self.work / "airflow-eincome" / "sources.yml").write_text(
            "sources:\n"
            "  - {name: landing, kind: landing, path: landing, archive: archive, settle_seconds: 60}\n"
            f"  - {{name: dead-api, kind: http, url: 'http://127.0.0.1:{dead}/tx',"
            " token_env: DEAD_API_TOKEN, max_attempts: 2, backoff_seconds: 1, timeout_seconds: 2}\n"
        )
        (self.work / "cli-eincome" / "sources.yml").write_text(
            "sources:\n"
            "  - {name: landing, kind: landing, path: landing, archive: archive, settle_seconds: 60}\n"
        )
        for side in ("eincome", "cli"):
            self.eincome(side, "points", "load", str(self.manifest.points_csv))

    def env(self, side: str = "eincome") -> dict[str, str]:
        home = self.work / ("airflow-eincome" if side == "eincome" else "cli-eincome")
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EINCOME_"))}
        return {
            **keep,
            "PYTHONPATH": str(ROOT),
            "EINCOME_HOME": str(home),
            "EINCOME_DB_URL": self.url[side],
            "EINCOME_MODELS_DIR": str(home / "models"),
            "EINCOME_SOURCES": str(home / "sources.yml"),
            "DEAD_API_TOKEN": "not-used",
        }

    def airflow_env(self) -> dict[str, str]:
        airflow_url = self.url["airflow"].replace("postgresql+psycopg:", "postgresql+psycopg2:")
        env = {
            **self.env("eincome"),
            "AIRFLOW_HOME": str(self.work / "airflow-home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"
            if self.executor == "celery"
            else "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__FERNET_KEY": self.fernet,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW__API__SECRET_KEY": self.secret,
            "AIRFLOW__API_AUTH__JWT_SECRET": self.secret,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # Log servers on ports of their own: other Airflows may share this machine.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_ports[0]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_ports[1]),
        }
        if self.executor == "celery":
            env["AIRFLOW__CELERY__BROKER_URL"] = REDIS_URL
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + airflow_url
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = "4"
        return env

    # -- commands ----------------------------------------------------------------------
    def _run(self, args: list[str], env: dict[str, str], timeout: float) -> str:
        completed = subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=timeout, cwd=self.work
        )
        if completed.returncode != 0:
            raise CheckFailed(
                f"{' '.join(args)} exited {completed.returncode}:\n"
                f"{(completed.stdout + completed.stderr)[-3000:]}"
            )
        return completed.stdout

    def airflow(self, *args: str, timeout: float = 180) -> str:
        return self._run([str(BIN / "airflow"), *args], self.airflow_env(), timeout)

    def eincome(self, side: str, *args: str, timeout: float = 900) -> str:
        return self._run([str(BIN / "eincome"), *args], self.env(side), timeout)

    def start_airflow(self) -> None:
        self.api_port = free_port()
        self.log_ports = (free_port(), free_port())
        self.secret = secrets.token_urlsafe(32)
        from cryptography.fernet import Fernet

        self.fernet = Fernet.generate_key().decode()
        (self.work / "logs").mkdir(exist_ok=True)
        started = time.monotonic()
        self.airflow("db", "migrate", timeout=600)
        env = self.airflow_env()
        airflow = str(BIN / "airflow")
        if self.executor == "celery":
            self.flush_redis()
        self.services.start(
            "api-server",
            [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "-w", "1"],
            env,
        )
        self.services.start("scheduler", [airflow, "scheduler"], env)
        self.services.start("dag-processor", [airflow, "dag-processor"], env)
        self.services.start("triggerer", [airflow, "triggerer"], env)
        if self.executor == "celery":
            self.services.start(
                "celery-worker", [airflow, "celery", "worker", "--concurrency", "4"], env
            )
        wait_for("the api-server", self.api_up, 240)
        wait_for("the DAGs to be parsed", self.dags_parsed, 300)
        self.timings["start Airflow"] = time.monotonic() - started

    def flush_redis(self) -> None:
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()

    def api_up(self):
        import urllib.request

        self.services.check_alive()
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.api_port}/api/v2/version", timeout=5
            ) as answer:
                return answer.status == 200
        except OSError:
            return None

    # -- the metadata database ---------------------------------------------------------
    def meta(self, query: str, **params) -> list:
        from sqlalchemy import create_engine, text

        if not hasattr(self, "_meta"):
            self._meta = create_engine(self.url["airflow"], pool_size=1)
        with self._meta.connect() as connection:
            return connection.execute(text(query), params).all()

    def dags_parsed(self):
        self.services.check_alive()
        found = {r[0] for r in self.meta("SELECT dag_id FROM dag")}
        errors = self.meta("SELECT filename, stacktrace FROM import_error")
        if errors:
            raise CheckFailed(f"DAG import errors: {errors}")
        return set(EINCOME_DAGS) <= found

    def runs(self, dag_id: str, run_type: str | None = None) -> list:
        query = (
            "SELECT run_id, run_type, state, logical_date, data_interval_start, conf"
            " FROM dag_run WHERE dag_id = :dag_id"
        )
        rows = self.meta(query, dag_id=dag_id)
        return [r for r in rows if run_type is None or r.run_type == run_type]

    def tasks(self, dag_id: str, run_id: str) -> dict[str, str]:
        rows = self.meta(
            "SELECT task_id, map_index, state, rendered_map_index FROM task_instance"
            " WHERE dag_id = :d AND run_id = :r",
            d=dag_id,
            r=run_id,
        )
        return {
            (
                f"{r.task_id}[{r.rendered_map_index or r.map_index}]"
                if r.map_index >= 0
                else r.task_id
            ): r.state
            for r in rows
        }

    def finished_runs(self, dag_id: str, run_type: str, count: int = 1):
        """A predicate: ``count`` runs of ``run_type`` finished (any state), or None."""

        def done():
            self.services.check_alive()
            runs = [r for r in self.runs(dag_id, run_type) if r.state in ("success", "failed")]
            return runs if len(runs) >= count else None

        return done

    def expect_success(self, dag_id: str, runs) -> None:
        for run in runs:
            if run.state != "success":
                raise CheckFailed(
                    f"{dag_id} run {run.run_id} {run.state}: {self.tasks(dag_id, run.run_id)}"
                    f" (logs under {self.work / 'airflow-home' / 'logs'})"
                )

    # -- the steps ---------------------------------------------------------------------
    def step(self, name: str, function) -> None:
        started = time.monotonic()
        say(f"{self.executor}: {name} ...")
        function()
        self.timings[name] = time.monotonic() - started
        say(f"{self.executor}: {name} ok ({self.timings[name]:.0f} s)")

    def scheduled_ingest(self) -> None:
        self.airflow("dags", "unpause", "eincome_ingest")
        [run] = wait_for(
            "a scheduled eincome_ingest round",
            self.finished_runs("eincome_ingest", "scheduled"),
            600,
        )[:1]
        tasks = self.tasks("eincome_ingest", run.run_id)
        expected = {
            "list_sources": "success",
            "pull[landing]": "success",
            "pull[dead-api]": "failed",
            "minute_aggregates": "success",
            "every_source_pulled": "failed",
        }
        if run.state != "failed" or tasks != expected:
            raise CheckFailed(f"ingest round {run.state} {tasks}, expected failed {expected}")
        self.airflow("dags", "pause", "eincome_ingest")  # the files are in; keep the DB still
        failures = self.eincome_rows(
            "eincome", 'SELECT "where" FROM pipeline_failures ORDER BY failure_id'
        )
        if ("eincome_ingest.pull[dead-api]",) not in failures:
            raise CheckFailed(f"the dead source is not recorded by name: {failures}")
        self.eincome("cli", "pull")
        self.compare(
            "ingest",
            [
                "SELECT count(*), sum(amount) FROM transactions",
                "SELECT count(*) FROM quarantine",
                "SELECT count(*), sum(txn_count), sum(gross_paid) FROM hour_aggregates",
                "SELECT count(*) FROM minute_aggregates",
            ],
        )

    def retrain(self) -> None:
        self.airflow("dags", "unpause", "eincome_retrain")
        self.airflow("dags", "trigger", "eincome_retrain")  # no logical date: the UI's button
        manual = wait_for(
            "the manual eincome_retrain run", self.finished_runs("eincome_retrain", "manual"), 600
        )
        if manual[0].logical_date is not None:
            raise CheckFailed("the manual retrain run has a logical date; expected none")
        self.expect_success("eincome_retrain", manual)
        # Unpausing also made the latest weekly run; both must be done before anything scores.
        scheduled = wait_for(
            "the scheduled eincome_retrain run",
            self.finished_runs("eincome_retrain", "scheduled"),
            600,
        )
        self.expect_success("eincome_retrain", scheduled)

    def detect_and_bulk_backfill(self) -> None:
        self.airflow("dags", "unpause", "eincome_detect")
        self.airflow("dags", "unpause", "eincome_backfill")
        self.bulk = {
            "start": self.sim_start.date().isoformat(),
            "end": self.sim_end.date().isoformat(),
        }
        self.airflow("dags", "trigger", "eincome_backfill", "--conf", json.dumps(self.bulk))
        backfill = wait_for(
            "the eincome_backfill run", self.finished_runs("eincome_backfill", "manual"), 900
        )
        self.expect_success("eincome_backfill", backfill)
        # The latest hour's scheduled run waits until 10 minutes past the hour for late rows.
        scheduled = wait_for(
            "the scheduled eincome_detect run",
            self.finished_runs("eincome_detect", "scheduled"),
            1200,
            every=10,
        )
        self.expect_success("eincome_detect", scheduled)
        self.scheduled_hour = scheduled[0].data_interval_start

    def hourly_runs(self) -> None:
        # The last local day's busiest hours; a manual run names the hour before them.
        first = (self.sim_end - timedelta(days=1)).replace(hour=10)
        self.native_hours = [first + timedelta(hours=h) for h in range(NATIVE_HOURS)]
        self.manual_hour = first - timedelta(hours=1)
        self.airflow(
            "dags",
            "trigger",
            "eincome_detect",
            "--conf",
            json.dumps({"start": self.manual_hour.isoformat()}),
        )
        self.airflow(
            "backfill",
            "create",
            "--dag-id",
            "eincome_detect",
            "--from-date",
            self.native_hours[0].astimezone(UTC).isoformat(),
            "--to-date",
            self.native_hours[-1].astimezone(UTC).isoformat(),
            "--max-active-runs",
            "4",
            "--reprocess-behavior",
            "completed",
        )
        manual = wait_for(
            "the manual eincome_detect run", self.finished_runs("eincome_detect", "manual"), 900
        )
        self.expect_success("eincome_detect", manual)
        native = wait_for(
            f"{NATIVE_HOURS} native backfill runs of eincome_detect",
            self.finished_runs("eincome_detect", "backfill", NATIVE_HOURS),
            1200,
            every=10,
        )
        self.expect_success("eincome_detect", native)
        self.airflow("dags", "pause", "eincome_detect")  # no new hour while comparing
        hours = sorted(r.data_interval_start for r in native)
        wanted = [h.astimezone(UTC) for h in self.native_hours]
        if hours != wanted:
            raise CheckFailed(f"native backfill ran hours {hours}, expected {wanted}")

    def cli_reference(self) -> None:
        """The same work through the CLI, on the CLI's database: the same model window, the
        bulk backfill, then the same hours one by one."""
        # Every model Airflow fitted, in the order it fitted them: each hour is judged by the
        # model in force then (the weekly retrain's for the scheduled hour, while the manual
        # retrain's window may end after it), so the newest alone cannot reproduce them all.
        windows = self.eincome_rows(
            "eincome",
            "SELECT trained_from, trained_to FROM detector_models ORDER BY created_at, version",
        )
        for trained_from, trained_to in windows:
            self.eincome("cli", "train", "--start", _iso(trained_from), "--end", _iso(trained_to))
        self.eincome(
            "cli",
            "backfill",
            "--start",
            self.sim_start.isoformat(),
            "--end",
            self.sim_end.isoformat(),
        )
        bulk = self.flags("cli")
        if not bulk:
            raise CheckFailed("the CLI's bulk backfill flagged nothing: nothing to compare with")
        hours = [self.scheduled_hour, self.manual_hour, *self.native_hours]
        for hour in hours:
            self.eincome(
                "cli", "score", "--start", _iso(hour), "--end", _iso(hour + timedelta(hours=1))
            )
        # Point in time inside the day too: rescoring the backfilled hours one by one reproduces
        # the bulk run (the scheduled hour is today's, after the backfilled range: its flags are
        # new, and compared with Airflow's below).
        backfilled = self.sim_start.astimezone(UTC), self.sim_end.astimezone(UTC)
        hourly = [f for f in self.flags("cli") if backfilled[0] <= _utc(f[1]) < backfilled[1]]
        changed = len(set(bulk) ^ set(hourly))
        rescored = sum(backfilled[0] <= h.astimezone(UTC) < backfilled[1] for h in hours)
        say(
            f"{self.executor}: hour-by-hour rescoring of {rescored} backfilled hours changed"
            f" {changed} flag rows against the bulk result ({len(bulk)} -> {len(hourly)} flags)"
        )
        if changed:
            raise CheckFailed(
                f"hour-by-hour rescoring of {rescored} backfilled hours changed {changed} flag"
                f" rows against the bulk backfill ({len(bulk)} -> {len(hourly)} flags)"
            )
        self.compare(
            "flags and cases",
            [
                "SELECT point_id, hour_start, kind, severity, round(score::numeric, 6),"
                " shortfall_rp FROM anomalies ORDER BY point_id, hour_start",
                "SELECT point_id, start_at, end_at, kind, severity, shortfall_rp, status"
                " FROM cases ORDER BY point_id, start_at",
            ],
        )

    def flags(self, side: str) -> list:
        return self.eincome_rows(
            side,
            "SELECT point_id, hour_start, kind, round(score::numeric, 6) FROM anomalies",
        )

    def quiet_logs(self) -> None:
        logs = self.work / "airflow-home" / "logs"
        noisy = {}
        for path in logs.rglob("*.log"):
            body = path.read_text(errors="replace")
            count = sum(body.count(noise) for noise in LOG_NOISE)
            if count:
                noisy[str(path.relative_to(logs))] = count
        if noisy:
            raise CheckFailed(f"task logs carry deprecation warnings or GE INFO lines: {noisy}")
        sizes = {p: p.stat().st_size for p in logs.glob("dag_id=*/**/*.log")}
        largest = max(sizes, key=sizes.get)
        say(f"{self.executor}: {len(sizes)} task logs, largest {sizes[largest]} bytes ({largest})")
        if sizes[largest] > MAX_TASK_LOG_BYTES:
            raise CheckFailed(f"task log {largest} is {sizes[largest]} bytes")

    # -- comparing ---------------------------------------------------------------------
    def eincome_rows(self, side: str, query: str) -> list:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url[side], pool_size=1)
        try:
            with engine.connect() as connection:
                return [tuple(r) for r in connection.execute(text(query))]
        finally:
            engine.dispose()

    def compare(self, what: str, queries: list[str]) -> None:
        for query in queries:
            ours, theirs = self.eincome_rows("eincome", query), self.eincome_rows("cli", query)
            if ours != theirs:
                extra = [r for r in ours if r not in theirs][:5]
                missing = [r for r in theirs if r not in ours][:5]
                raise CheckFailed(
                    f"{what}: Airflow and the CLI differ on {query!r}: {len(ours)} vs"
                    f" {len(theirs)} rows; only Airflow: {extra}; only CLI: {missing}"
                )
        say(f"{self.executor}: {what} equal to the CLI's ({len(queries)} queries)")

    # -- all of it ---------------------------------------------------------------------
    def __call__(self) -> dict[str, float]:
        started = time.monotonic()
        try:
            self.create_databases()
            self.step("simulate feeds", self.simulate)
            self.step("start Airflow", self.start_airflow)
            self.step("scheduled ingest (a dead source fails the round)", self.scheduled_ingest)
            self.step("manual + scheduled retrain", self.retrain)
            self.step("scheduled detect + bulk backfill DAG", self.detect_and_bulk_backfill)
            self.step("manual detect + native backfill (4 at a time)", self.hourly_runs)
            self.step("the CLI on its own database, compared", self.cli_reference)
            self.step("task logs", self.quiet_logs)
        finally:
            self.services.stop()
            if hasattr(self, "_meta"):
                self._meta.dispose()
            if self.executor == "celery":
                self.flush_redis()
            if not self.keep:
                self.drop_databases()
        self.timings["total"] = time.monotonic() - started
        return self.timings


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _utc(value) -> datetime:
    """A timestamp read back from either database (SQLite gives naive UTC text) as aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executor", choices=("local", "celery", "both"), default="both")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and databases")
    args = parser.parse_args()
    executors = ("local", "celery") if args.executor == "both" else (args.executor,)

    def stop_on_signal(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)
    results = {}
    for executor in executors:
        work = Path(tempfile.mkdtemp(prefix=f"eincome-airflow-check-{executor}-"))
        say(f"{executor}: work folder {work}")
        try:
            results[executor] = Run(executor, work, args.keep)()
        except CheckFailed as exc:
            say(f"{executor}: FAILED: {exc}")
            say(f"{executor}: logs kept in {work}")
            return 1
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for executor, timings in results.items():
        say(f"{executor}: passed; " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
