"""The files a simulation writes: feed lines from the numeric frame, and the CSV tables beside them."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.intake.feeds import FEED_COLUMNS
from pipeline.testbed.simulator.profiles import (
    LABEL_COLUMNS,
    LATE_RATE,
    LOCAL_OFFSET,
    METHODS,
    STATUSES,
)
from pipeline.testbed.simulator.regency import _Simulation


class _Writer:
    """Feed lines from the numeric frame: txn_id numbers each point's receipts in time order.

    Lines are built with plain f-strings over lookup tables (pandas' CSV writer is ~5x slower
    here, and this is the step that dominates a 5M-row run).
    """

    CHUNK = 400_000

    def __init__(self, sim: _Simulation, frame: pd.DataFrame):
        frame = frame.sort_values(["p", "t"], kind="stable", ignore_index=True)
        self.sim = sim
        self.cols = {name: frame[name].to_numpy() for name in frame.columns}
        p = self.cols["p"]
        self.cols["seq"] = (
            np.arange(len(p)) - np.searchsorted(p, np.arange(len(sim.pts.ids)))[p] + 1
        )
        t = self.cols["t"]
        local_day = (t - sim.t0) // 86400
        self.cols["day"] = local_day
        self.cols["sod"] = (t - sim.t0) % 86400
        # The file a row arrives in: its local day, except a few that come in a day late.
        late = sim.rng.random(len(t)) < LATE_RATE
        self.cols["file_day"] = np.minimum(local_day + late, sim.days - 1)
        payer = self.cols["payer"]
        pool = _payer_ids(
            np.random.default_rng(sim.rng.integers(2**32)), int(payer.max(initial=0)) + 1
        )
        self.payers = [*pool.tolist(), ""]  # index -1 -> no payer
        self.points = sim.pts.ids.tolist()
        self.operators = sim.pts.operators.tolist()
        first = sim.start_local.date()
        self.dates = [f"{(first + timedelta(days=d)).isoformat()}T" for d in range(sim.days + 1)]
        self.times = [
            f"{x // 3600:02d}:{x // 60 % 60:02d}:{x % 60:02d}{LOCAL_OFFSET}" for x in range(86400)
        ]

    def __len__(self) -> int:
        return len(self.cols["p"])

    def lines(self, rows: np.ndarray, amount: np.ndarray | None = None) -> list[str]:
        c = self.cols
        P, D, T, PAY = self.points, self.dates, self.times, self.payers  # noqa: N806
        amount = c["amount"][rows] if amount is None else amount
        # The operator, method and status part as one code into a small table of strings:
        # the fewer pieces formatted per row, the faster (this loop is the run's hot spot).
        code = (c["op"][rows].astype(np.int64) * 5 + c["method"][rows]) * 3 + c["status"][rows]
        used, inverse = np.unique(code, return_inverse=True)
        ops, methods, statuses = self.operators, METHODS.tolist(), STATUSES.tolist()
        middle = [f"{methods[k // 3 % 5]},{statuses[k % 3]},{ops[k // 15]}," for k in used.tolist()]
        seq = c["seq"][rows]
        digits = np.char.zfill(seq.astype("U12"), 7).tolist()
        return [
            f"{P[p]}-{q},{P[p]},{D[d]}{T[x]},{a},{middle[k]}{PAY[y]}"
            for p, q, d, x, a, k, y in zip(
                c["p"][rows].tolist(),
                digits,
                c["day"][rows].tolist(),
                c["sod"][rows].tolist(),
                amount.tolist(),
                inverse.tolist(),
                c["payer"][rows].tolist(),
                strict=True,
            )
        ]

    def bad_lines(self) -> tuple[list[str], dict[str, int]]:
        """A few rows validation must catch, all sent in the last file."""
        sim, c = self.sim, self.cols
        earlier = np.flatnonzero(c["file_day"] < sim.days - 1)
        if len(earlier) < 2:
            return [], {}
        picked = sim.rng.choice(earlier, size=2, replace=False)
        base = self.lines(picked[:1])[0].split(",")
        when = f"{self.dates[sim.days - 1]}12:00:00{LOCAL_OFFSET}"
        pid = base[1]

        def row(suffix, **change):
            fields = dict(zip(FEED_COLUMNS, base, strict=True))
            fields.update({"txn_id": f"{pid}-BAD{suffix}", "occurred_at": when, **change})
            return ",".join(fields[k] for k in FEED_COLUMNS)

        bad = {
            "negative_amount": row(1, amount=f"-{base[3]}"),
            "unknown_point": row(2, point_id="XXX-9999"),
            "bad_method": row(3, payment_method="bitcoin"),
            "unparseable_time": row(4, occurred_at="31/12/2025 25:61"),
            "future_time": row(5, occurred_at=f"2099-01-01T10:00:00{LOCAL_OFFSET}"),
            # Resends of real rows from an earlier file: one identical, one with a changed amount.
            "duplicate_resend": self.lines(picked[1:])[0],
            "conflicting_resend": self.lines(picked[:1], c["amount"][picked[:1]] + 5000)[0],
        }
        return list(bad.values()), dict.fromkeys(bad, 1)


def _payer_ids(rng: np.random.Generator, size: int) -> np.ndarray:
    raw = rng.integers(0, 2**63 - 1, size=size, dtype=np.int64)
    return np.array([f"py_{v:016x}" for v in raw.tolist()])


def _write_csv(path: Path, rows: list[dict], columns: tuple[str, ...] | list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def write_feeds(writer: _Writer, feeds_dir: Path, split: str, bad: list[str]) -> list[Path]:
    """The feed files, one per local day, per week (named by its first day) or one in all;
    the rows validation must reject go at the end of the last file."""
    sim = writer.sim
    file_day = writer.cols["file_day"]
    key = (
        file_day // 7
        if split == "week"
        else (file_day if split == "day" else np.zeros_like(file_day))
    )
    order = np.lexsort((writer.cols["t"], key))
    key = key[order]
    cuts = np.flatnonzero(np.diff(key)) + 1
    header = ",".join(FEED_COLUMNS) + "\n"
    feeds = []
    groups = list(zip(np.r_[0, cuts], np.r_[cuts, len(order)], strict=True))
    for number, (lo, hi) in enumerate(groups):
        k = int(key[lo]) if hi > lo else 0
        if split == "none":
            name = "all.csv"
        else:
            first_day = (sim.start_local + timedelta(days=k * (7 if split == "week" else 1))).date()
            name = f"{split}-{first_day.isoformat()}.csv"
        path = feeds_dir / name
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write(header)
            for chunk in range(lo, hi, _Writer.CHUNK):
                lines = writer.lines(order[chunk : min(hi, chunk + _Writer.CHUNK)])
                handle.write("\n".join(lines))
                handle.write("\n")
            if number == len(groups) - 1 and bad:
                handle.write("\n".join(bad) + "\n")
        feeds.append(path)
    return feeds


def write_tables(out_dir: Path, sim: _Simulation) -> tuple[Path, Path, Path, Path]:
    """points.csv, labels.csv, closures.csv and calendar.csv; returns their paths in that order."""
    points_csv = out_dir / "points.csv"
    _write_csv(
        points_csv,
        sim.registry,
        ("point_id", "name", "revenue_type", "district", "open_hours", "timezone", "taxpayer_id"),
    )
    labels_csv = out_dir / "labels.csv"
    labels = sorted(sim.labels, key=lambda r: (r["start_utc"], r["point_id"], r["kind"]))
    _write_csv(labels_csv, labels, LABEL_COLUMNS)
    closures_csv = out_dir / "closures.csv"
    _write_csv(closures_csv, sim.closures, ("point_id", "starts_at", "ends_at", "reason"))
    calendar_csv = out_dir / "calendar.csv"
    calendar = sorted(sim.calendar, key=lambda r: r["starts_at"])
    _write_csv(
        calendar_csv, calendar, ("date", "kind", "name", "starts_at", "ends_at", "revenue_types")
    )
    return points_csv, labels_csv, closures_csv, calendar_csv
