"""Simulated tapping boxes pushing a simulated day to ``POST /api/v1/transactions``.

Each device is a thread with one keep-alive connection that sends the sales that have come due
since its last send as one request, with an Idempotency-Key, and retries that same request -
same key, same body - after any network error, 5xx or 429 until it gets a 2xx, as a device
should. Sales are re-timed to the moment they are sent (so they are "today" on the dashboard)
and their receipt numbers prefixed with a run id (so a second run is new sales).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

PUSH_PATH = "/api/v1/transactions"


@dataclass
class DeviceReport:
    """What the devices did: requests, rows, answers, and per sale (sent at, paid amount)."""

    requests: int = 0
    rows: int = 0
    retries: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    pending: int = 0  # answered 202: stored, counts not awaited
    refused: dict[int, int] = field(default_factory=dict)  # 4xx other than 429, by status
    latencies: list[float] = field(default_factory=list)  # seconds, first send to final 2xx
    sales: list[tuple[float, int]] = field(default_factory=list)  # (wall time sent, paid rp)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def summary(self) -> dict:
        lat = sorted(self.latencies)

        def q(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None

        return {
            "requests": self.requests,
            "rows": self.rows,
            "retries": self.retries,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "pending": self.pending,
            "refused": self.refused,
            "latency_p50_s": q(0.5),
            "latency_p95_s": q(0.95),
            "latency_max_s": q(1.0),
        }


def simulated_day(out: Path, *, points: int, rows: int, seed: int = 7) -> pd.DataFrame:
    """One simulated day of clean trade (the simulator's own), in time order, as feed text."""
    from pipeline.testbed.simulator import simulate

    manifest = simulate(
        out, points=points, days=1, seed=seed, leakage=False, bad_rows=False, target_rows=rows
    )
    frames = [pd.read_csv(path, dtype=str, keep_default_na=False) for path in manifest.feeds]
    day = pd.concat(frames, ignore_index=True)
    day["_at"] = pd.to_datetime(day["occurred_at"], utc=True, format="ISO8601")
    return day.sort_values("_at", kind="stable").reset_index(drop=True)


def schedule(day: pd.DataFrame, *, rate: float | None, speed: float) -> list[float]:
    """Seconds after the start at which each row is due: ``rate`` rows a second, or the day's
    own rhythm ``speed`` times faster than real time."""
    if rate:
        return [i / rate for i in range(len(day))]
    seconds = (day["_at"] - day["_at"].iloc[0]).dt.total_seconds()
    return (seconds / speed).tolist()


class _Device(threading.Thread):
    def __init__(self, url: str, key: str, rows: list[tuple[float, dict]], report, start_at, run):
        super().__init__(daemon=True)
        self.target = urlsplit(url)
        self.key, self.rows, self.report = key, rows, report
        self.start_at, self.run_id = start_at, run
        self.interval = 0.25
        self.connection = None

    def _connect(self):
        self.connection = http.client.HTTPConnection(
            self.target.hostname, self.target.port or 80, timeout=60
        )

    def run(self) -> None:
        position = 0
        while position < len(self.rows):
            now = time.time()
            due_end = position
            while due_end < len(self.rows) and self.start_at + self.rows[due_end][0] <= now:
                due_end += 1
            if due_end == position:
                time.sleep(min(self.interval, self.start_at + self.rows[position][0] - now))
                continue
            batch = [self._row(r, now) for _, r in self.rows[position:due_end][:1000]]
            self._send(batch, now)
            position += len(batch)

    def _row(self, row: dict, now: float) -> dict:
        sent = {k: (v if v != "" else None) for k, v in row.items() if not k.startswith("_")}
        sent["txn_id"] = f"{self.run_id}-{row['txn_id']}"
        sent["occurred_at"] = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
        return sent

    def _send(self, batch: list[dict], first_sent: float) -> None:
        body = json.dumps(batch).encode()
        headers = {
            "Authorization": f"Bearer {self.key}",
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
        }
        paid = [int(r["amount"]) if r["status"] == "paid" else 0 for r in batch]
        with self.report.lock:
            self.report.sales.extend((first_sent, amount) for amount in paid)
        backoff = 0.2
        while True:
            try:
                if self.connection is None:
                    self._connect()
                self.connection.request("POST", self.target.path or PUSH_PATH, body, headers)
                answer = self.connection.getresponse()
                status, text = answer.status, answer.read()
            except (OSError, http.client.HTTPException):
                status, text = None, b""
                self.connection = None  # the server went away: reconnect, send the same again
            if status is not None and status < 500 and status != 429:
                break
            with self.report.lock:
                self.report.retries += 1
            time.sleep(backoff)
            backoff = min(2.0, backoff * 2)
        self._record(status, text, len(batch), time.time() - first_sent)

    def _record(self, status: int, text: bytes, rows: int, seconds: float) -> None:
        with self.report.lock:
            self.report.requests += 1
            self.report.rows += rows
            self.report.latencies.append(seconds)
            if status == 200:
                answer = json.loads(text)
                self.report.accepted += answer["accepted"]
                self.report.duplicates += answer["duplicates"]
                self.report.quarantined += answer["quarantined"]
            elif status == 202:
                self.report.pending += rows
            else:
                self.report.refused[status] = self.report.refused.get(status, 0) + 1


def push_day(
    url: str,
    day: pd.DataFrame,
    keys: dict[str, str] | str,
    *,
    rate: float | None = None,
    speed: float = 1.0,
    seconds: float | None = None,
    run_id: str | None = None,
) -> DeviceReport:
    """Replay ``day`` against ``url``: one device per point (its key from ``keys``, or one key
    for all). Stops after ``seconds`` of schedule when given. Returns when every device is done."""
    due = schedule(day, rate=rate, speed=speed)
    run_id = run_id or datetime.now(UTC).strftime("%H%M%S")
    by_point: dict[str, list[tuple[float, dict]]] = {}
    for at, row in zip(due, day.to_dict("records"), strict=True):
        if seconds is not None and at > seconds:
            break
        by_point.setdefault(row["point_id"], []).append((at, row))
    report = DeviceReport()
    start_at = time.time() + 0.5
    devices = [
        _Device(url, keys if isinstance(keys, str) else keys[point], rows, report, start_at, run_id)
        for point, rows in by_point.items()
    ]
    for device in devices:
        device.start()
    for device in devices:
        device.join()
    return report
