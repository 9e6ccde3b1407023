"""Load for the push API: how fast a pushed sale reaches an open dashboard, whether a kill -9 of
the server loses or doubles anything, and how many one-row requests a second it takes.

    python scripts/push_load.py --db sqlite --seconds 60 --rate 200 --devices 50
    python scripts/push_load.py --db postgres --kill-at 20
    python scripts/push_load.py --db postgres --small-requests 1000 --workers 2

Each run: a fresh database, a simulated registry of ``--devices`` points (one device and one
key each), ``eincome serve --workers N`` as a subprocess, a signed-in dashboard reading the event
stream, and the simulated devices (pipeline.testbed.push_devices) pushing at ``--rate`` sales a
second. A sale counts as on the dashboard at the first event whose day total covers every sale
sent up to it (conservative: a sale that landed early still waits for the ones before it).
``--small-requests``: one-row requests, sent by wrk when it is installed (else by Python
threads; ``--generator`` chooses), with the CPU the generator, the web workers, the writer and
the database's backends used. Prints one JSON object of figures; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from bisect import bisect_left
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

from pipeline.casework.users import add_user  # noqa: E402
from pipeline.intake.push import inbox, issue_key  # noqa: E402
from pipeline.reference.points import load_registry  # noqa: E402
from pipeline.store import connect  # noqa: E402
from pipeline.store.schema import transactions  # noqa: E402
from pipeline.testbed.push_devices import push_day, simulated_day  # noqa: E402

PG_ADMIN = os.environ.get(
    "EINCOME_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _database(kind: str, home: Path) -> tuple[str, callable]:
    if kind == "sqlite":
        return f"sqlite:///{home / 'eincome.db'}", lambda: None
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"push_load_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return admin.url.set(database=name).render_as_string(hide_password=False), drop


class Server:
    def __init__(self, env: dict, port: int, workers: int):
        self.env, self.port, self.workers, self.process = env, port, workers, None
        self.database = env["EINCOME_DB_URL"].rsplit("/", 1)[-1]  # its backends' CPU is counted

    def start(self) -> None:
        command = [sys.executable, "-m", "pipeline", "serve", "--port", str(self.port)]
        command += ["--workers", str(self.workers)]
        self.process = subprocess.Popen(
            command,
            env=self.env,
            cwd=REPO,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(self.env["EINCOME_HOME"]) / "serve.log", "a"),
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if (
                    httpx.get(
                        f"http://127.0.0.1:{self.port}/api/v1/openapi.json", timeout=2
                    ).status_code
                    == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("the server did not start")

    def kill9(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)  # the uvicorn master and every worker
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)


class Dashboard(threading.Thread):
    """A leader's open dashboard: (wall time, day total) of every event the stream sends."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base, self.seen, self.stop = base, [], False

    def run(self) -> None:
        while not self.stop:
            try:
                with httpx.Client(base_url=self.base, follow_redirects=True, timeout=30) as client:
                    page = client.get("/login")
                    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
                    client.post(
                        "/login",
                        data={"username": "leader", "password": "leader-load", "csrf_token": token},
                    )
                    with client.stream("GET", "/api/dashboard/events?refresh=2") as events:
                        for line in events.iter_lines():
                            if line.startswith("data: "):
                                self.seen.append((time.time(), json.loads(line[6:])["today_total"]))
                            if self.stop:
                                return
            except (httpx.HTTPError, IndexError):
                time.sleep(0.5)  # the server is down (kill -9): reconnect like a browser


def _visible_latencies(
    sales: list[tuple[float, int]], seen: list[tuple[float, int]]
) -> list[float]:
    sales = sorted(sales)
    cumulative = list(accumulate(amount for _, amount in sales))
    totals = [total for _, total in seen]
    best = list(accumulate(totals, max))  # the total never goes down; guard against reorder
    out = []
    for (sent, _), needed in zip(sales, cumulative, strict=True):
        i = bisect_left(best, needed)
        if i < len(seen):
            out.append(max(0.0, seen[i][0] - sent))
    return out


def _quantiles(values: list[float]) -> dict:
    values = sorted(values)
    if not values:
        return {}
    pick = lambda p: round(values[min(len(values) - 1, int(p * len(values)))], 3)  # noqa: E731
    return {"n": len(values), "p50": pick(0.5), "p95": pick(0.95), "max": pick(1.0)}


def _small_requests(
    base: str, keys: dict, point_ids: list, rps: int, seconds: float, prefer_async: bool
) -> dict:
    """``rps`` one-row requests a second from many threads, each its own connection."""
    import http.client

    lat, codes, lock = [], {}, threading.Lock()
    threads = 64
    per_thread = rps / threads
    end = time.time() + seconds

    def run(n: int) -> None:
        point = point_ids[n % len(point_ids)]
        conn = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=30)
        next_at, i = time.time(), 0
        while time.time() < end:
            now = time.time()
            if now < next_at:
                time.sleep(next_at - now)
            next_at += 1 / per_thread
            i += 1
            row = {
                "txn_id": f"s{n}-{i}-{uuid.uuid4().hex[:6]}",
                "point_id": point,
                "occurred_at": datetime.now(UTC).isoformat(),
                "amount": 2000,
                "payment_method": "qris",
                "status": "paid",
            }
            headers = {"Authorization": f"Bearer {keys[point]}", "Content-Type": "application/json"}
            if prefer_async:
                headers["Prefer"] = "respond-async"
            started = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/transactions", json.dumps([row]), headers)
                response = conn.getresponse()
                response.read()
                code = response.status
            except (OSError, http.client.HTTPException):
                code = "error"
                conn = http.client.HTTPConnection(
                    "127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=30
                )
            with lock:
                lat.append(time.perf_counter() - started)
                codes[code] = codes.get(code, 0) + 1

    started = time.time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))
    took = time.time() - started
    accepted = sum(v for k, v in codes.items() if k in (200, 202))
    return {
        "target_rps": rps,
        "achieved_rps": round(accepted / took, 1),
        "codes": codes,
        "latency_s": _quantiles(lat),
        "respond_async": prefer_async,
    }


# wrk (C, one event loop a thread) drives the one-row requests when it is installed
# (`apt-get install wrk`): the Python generator above costs about as much CPU per request as the
# server does, and on two shared cores it was the limit it claimed to measure. Each request is
# a new sale (a unique txn_id, so a new inbox row, never a replay) from one of the keys in turn.
WRK_SCRIPT = """
local keys = {%(keys)s}
local counter, tid = 0, "0"
local threads, next_id = {}, 0
function setup(thread)
  next_id = next_id + 1
  thread:set("tid", tostring(next_id))
  table.insert(threads, thread)
end
function request()
  counter = counter + 1
  local k = keys[(counter %% #keys) + 1]
  local body = string.format(
    '[{"txn_id":"w%%s-%%d","point_id":"%%s","occurred_at":"%%s","amount":2000,'
    .. '"payment_method":"qris","status":"paid"}]',
    tid, counter, k[1], os.date("!%%Y-%%m-%%dT%%H:%%M:%%S+00:00"))
  return wrk.format("POST", "/api/v1/transactions", {
    ["Authorization"] = "Bearer " .. k[2], ["Content-Type"] = "application/json",
    ["Prefer"] = "respond-async"}, body)
end
function done(summary, latency, requests)
  io.write(string.format(
    'WRK {"requests":%%d,"seconds":%%.3f,"non_2xx_or_3xx":%%d,"socket_errors":%%d,'
    .. '"p50":%%.4f,"p95":%%.4f,"p99":%%.4f,"max":%%.4f}\\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50) / 1e6, latency:percentile(95) / 1e6,
    latency:percentile(99) / 1e6, latency.max / 1e6))
end
"""


def _wrk_requests(base: str, keys: dict, seconds: float, connections: int, home: Path) -> dict:
    """As many one-row requests as ``connections`` keep-alive connections get through (each
    sends its next request when the last is answered), by wrk."""
    script = home / "push.lua"
    pairs = ", ".join(f'{{"{p}", "{k}"}}' for p, k in sorted(keys.items()))
    script.write_text(WRK_SCRIPT % {"keys": pairs})
    command = ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s"]
    command += [str(script), base]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRK ")), None)
    if line is None:
        raise RuntimeError(f"wrk said: {out.stdout[-500:]} {out.stderr[-500:]}")
    got = json.loads(line[4:])
    accepted = got["requests"] - got["non_2xx_or_3xx"]
    return {
        "generator": f"wrk, {connections} connections (closed loop: as fast as answered)",
        "achieved_rps": round(accepted / got["seconds"], 1),
        "requests": got["requests"],
        "refused_or_failed": got["non_2xx_or_3xx"] + got["socket_errors"],
        "latency_s": {k: round(got[k], 4) for k in ("p50", "p95", "p99", "max")},
        "respond_async": True,
    }


def _cpu_ticks(group: int, database: str) -> dict | None:
    """{pid: (part, CPU ticks so far)} of the processes of session ``group`` (the server:
    "web", uvicorn and its workers; "writer", the push writer) and of the PostgreSQL backends
    serving ``database`` ("postgres"). Linux /proc; None elsewhere."""
    found, backend = {}, f" {database} ".encode()
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    for pid in entries:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        if int(fields[3]) == group:  # pgrp
            found[pid] = ("writer" if b"push-writer" in command else "web", ticks)
        elif command.startswith(b"postgres:") and backend in command:
            found[pid] = ("postgres", ticks)
    return found


def _cpu_used(before: dict, after: dict) -> dict:
    """CPU seconds each part used between two ``_cpu_ticks`` (a process that exited meanwhile
    is not counted: its last ticks are gone with it)."""
    used, tick = {"web": 0.0, "writer": 0.0, "postgres": 0.0}, os.sysconf("SC_CLK_TCK")
    for pid, (part, ticks) in after.items():
        used[part] += (ticks - before.get(pid, (part, 0))[1]) / tick
    return {part: round(seconds, 1) for part, seconds in used.items()}


def _own_cpu_seconds() -> float:
    # This process and its finished children (wrk; the server is a child too, but it is waited
    # for only at the end, so it is not counted here).
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _measured(run, server: Server) -> dict:
    """``run()``'s figures plus the CPU its generator (this process) and the server used."""
    own, theirs = _own_cpu_seconds(), _cpu_ticks(server.process.pid, server.database)
    figures = run()
    figures["generator_cpu_s"] = round(_own_cpu_seconds() - own, 1)
    if theirs is not None:
        figures["server_cpu_s"] = _cpu_used(theirs, _cpu_ticks(server.process.pid, server.database))
    figures["load_average"] = os.getloadavg()
    return figures


def _drained(engine, limit: float = 180) -> float:
    """Seconds until no request is pending or processing in the inbox (at most ``limit``)."""
    started = time.time()
    while time.time() - started < limit and inbox.pending_count(engine):
        time.sleep(0.5)
    return round(time.time() - started, 1)


def _warm_up(base: str, keys: dict, point: str) -> float:
    """Seconds until the writer answers a first request (it imports Great Expectations and runs
    the suite once: seconds on an idle machine, a minute on a crowded one). Not measured after."""
    started = time.time()
    row = {
        "txn_id": "warm-up",
        "point_id": point,
        "occurred_at": datetime.now(UTC).isoformat(),
        "amount": 0,
        "payment_method": "cash",
        "status": "paid",
    }
    headers = {"Authorization": f"Bearer {keys[point]}", "Idempotency-Key": "warm-up"}
    while True:
        answer = httpx.post(f"{base}/api/v1/transactions", json=[row], headers=headers, timeout=120)
        if answer.status_code == 200:
            return round(time.time() - started, 1)
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--kill-at", type=float, default=None, help="kill -9 the server this many seconds in"
    )
    parser.add_argument(
        "--small-requests", type=int, default=None, help="one-row requests a second instead"
    )
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="who sends the one-row requests Prefer: respond-async (auto: wrk when installed)",
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk's keep-alive connections")
    parser.add_argument("--port", type=int, default=8790)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="push-load-"))
    url, drop = _database(args.db, home)
    env = {
        **os.environ,
        "EINCOME_HOME": str(home),
        "EINCOME_DB_URL": url,
        "EINCOME_PUSH_RATE": "0",
        "EINCOME_SECRET_KEY": "push-load",
        "PYTHONPATH": str(REPO),
    }
    engine = connect(url)
    day = simulated_day(
        home / "sim", points=args.devices, rows=int(args.rate * args.seconds * 1.3) + 1000
    )
    load_registry(engine, home / "sim" / "points.csv")
    point_ids = sorted(day["point_id"].unique())
    keys = {p: issue_key(engine, f"device {p}", [p], actor="push_load").secret for p in point_ids}
    add_user(engine, "leader", "viewer", "leader-load", actor="push_load")
    server = Server(env, args.port, args.workers)
    base = f"http://127.0.0.1:{args.port}"
    figures = {
        "db": args.db,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
    }
    server.start()
    figures["writer_ready_s"] = _warm_up(base, keys, point_ids[0])
    try:
        if args.small_requests:
            use_wrk = args.generator == "wrk" or args.generator == "auto" and shutil.which("wrk")
            if use_wrk:
                figures["small_requests"] = _measured(
                    lambda: _wrk_requests(base, keys, args.seconds, args.connections, home),
                    server,
                )
            else:
                figures["small_requests"] = _measured(
                    lambda: _small_requests(
                        base, keys, point_ids, args.small_requests, args.seconds, True
                    ),
                    server,
                )
            # The writer first ingests what the burst left in the inbox: otherwise the first
            # waiting requests would measure that backlog, not their own group.
            figures["inbox_drained_s"] = _drained(engine)
            figures["small_requests_sync"] = _measured(
                lambda: _small_requests(
                    base, keys, point_ids, args.small_requests // 4, min(args.seconds, 20), False
                ),
                server,
            )
        else:
            figures.update(_stream(args, server, base, day, keys, engine))
    finally:
        figures["load_average_after"] = os.getloadavg()
        server.stop()
        engine.dispose()
        drop()
    print(json.dumps(figures, indent=2, default=str))


def _stream(args, server: Server, base: str, day, keys: dict, engine) -> dict:
    dashboard = Dashboard(base)
    dashboard.start()
    time.sleep(2)
    if args.kill_at is not None:

        def kill_and_restart():
            time.sleep(args.kill_at)
            server.kill9()
            time.sleep(2)
            server.start()

        threading.Thread(target=kill_and_restart, daemon=True).start()
    started = time.time()
    report = push_day(
        f"{base}/api/v1/transactions", day, keys, rate=args.rate, seconds=args.seconds
    )
    pushing = time.time() - started
    expected = sum(amount for _, amount in report.sales)
    deadline = time.time() + 120
    while time.time() < deadline and (not dashboard.seen or dashboard.seen[-1][1] < expected):
        time.sleep(0.5)
    dashboard.stop = True
    with engine.connect() as c:
        stored, stored_rp = c.execute(
            select(func.count(), func.coalesce(func.sum(transactions.c.amount), 0))
        ).one()
    sent_rows = report.rows + 1  # and the warm-up row
    return {
        "rate_target": args.rate,
        "devices": len(keys),
        "seconds": round(pushing, 1),
        "sales_per_second_sent": round(sent_rows / pushing, 1),
        "devices_report": report.summary(),
        "dashboard_latency_s": _quantiles(_visible_latencies(report.sales, dashboard.seen)),
        "dashboard_events": len(dashboard.seen),
        "rows_sent": sent_rows,
        "rows_stored": stored,
        "lost": max(0, sent_rows - stored),
        "doubled": max(0, stored - sent_rows),
        "killed_at_s": args.kill_at,
    }


if __name__ == "__main__":
    main()
