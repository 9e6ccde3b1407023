"""The collection-point registry: parking lots, markets, taxpayer venues."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, select

from pipeline.core.errors import UnusableInputError
from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.store.schema import points
from pipeline.store.upsert import upsert

REVENUE_TYPES = ("parking", "market", "hotel_tax", "restaurant_tax", "entertainment_tax", "other")
REGISTRY_COLUMNS = ("point_id", "name", "revenue_type", "district", "open_hours")
_OPEN_HOURS = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$")


def parse_registry(path: Path) -> list[dict]:
    """Read and check a registry CSV; every problem is reported with its line, nothing half-loaded."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UnusableInputError(f"point registry {path}: cannot open ({exc.strerror})") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REGISTRY_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UnusableInputError(
                f"point registry {path}: missing column(s) {', '.join(missing)}; "
                f"expected {', '.join(REGISTRY_COLUMNS)}[, timezone, taxpayer_id]"
            )
        rows, problems = [], []
        now = datetime.now(UTC)
        for line_no, raw in enumerate(reader, start=2):
            row = {k: (raw.get(k) or "").strip() for k in (*REGISTRY_COLUMNS, "timezone")}
            row["timezone"] = row["timezone"] or DEFAULT_TIMEZONE
            # The taxpayer's number (NPWPD) where the point is a taxpayer; optional.
            row["taxpayer_id"] = (raw.get("taxpayer_id") or "").strip() or None
            if not row["point_id"]:
                problems.append(f"line {line_no}: point_id is empty")
            if row["revenue_type"] not in REVENUE_TYPES:
                problems.append(
                    f"line {line_no}: revenue_type {row['revenue_type']!r} is not one of {', '.join(REVENUE_TYPES)}"
                )
            if not _OPEN_HOURS.match(row["open_hours"]):
                problems.append(
                    f"line {line_no}: open_hours {row['open_hours']!r} is not HH:MM-HH:MM"
                )
            try:
                ZoneInfo(row["timezone"])
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(f"line {line_no}: timezone {row['timezone']!r} is unknown")
            row["name"] = row["name"] or row["point_id"]
            row["updated_at"] = now
            rows.append(row)
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise UnusableInputError(f"point registry {path}: {shown}")
    if not rows:
        raise UnusableInputError(f"point registry {path}: no points in the file")
    return rows


def load_registry(engine: Engine, path: Path) -> int:
    """Upsert the registry's points; returns how many were loaded."""
    rows = parse_registry(path)
    with engine.begin() as connection:
        upsert(connection, points, rows)
    return len(rows)


def known_points(engine: Engine) -> dict[str, dict]:
    """point_id -> registry row."""
    with engine.connect() as connection:
        return read_registry(connection)


def read_registry(connection: Connection) -> dict[str, dict]:
    """point_id -> registry row, inside the caller's transaction: the one reader of the registry."""
    return {row.point_id: row._asdict() for row in connection.execute(select(points))}


def open_hours_matrix(open_hours: pd.Series) -> np.ndarray:
    """(points x 24) booleans: the local hours [h, h+1) that overlap the point's open hours."""
    matrix = np.zeros((len(open_hours), 24), dtype=bool)
    for i, spec in enumerate(open_hours):
        begin, finish = spec.split("-")
        start = int(begin[:2]) * 60 + int(begin[3:])
        end = int(finish[:2]) * 60 + int(finish[3:])
        if end <= start:  # open past midnight, e.g. 18:00-02:00
            end += 24 * 60
        for hour in range(24):
            for shift in (0, 24 * 60):
                if hour * 60 + shift < end and (hour + 1) * 60 + shift > start:
                    matrix[i, hour] = True
    return matrix
