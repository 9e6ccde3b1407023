"""Windows in which no case is raised: announced closures and maintenance (every kind), and
patterns an auditor marked as a false alarm (one kind, for a set period)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, and_, insert, select

from pipeline.core.errors import UnusableInputError
from pipeline.core.leakage_kinds import LEAKAGE_KINDS as KINDS
from pipeline.store.schema import points, suppressions

CLOSURE_COLUMNS = ("point_id", "starts_at", "ends_at", "reason")


def _parse_time(raw: str, where: str, column: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise UnusableInputError(f"{where}: {column} {raw!r} is not an ISO-8601 time") from None
    if value.tzinfo is None:
        raise UnusableInputError(f"{where}: {column} {raw!r} has no UTC offset (e.g. +07:00)")
    return value.astimezone(UTC)


def add_suppression(
    engine: Engine,
    *,
    point_id: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    kind: str | None = None,
    created_by: str = "ops",
) -> int:
    """Record one suppression window; returns its id. ``kind`` None silences every pattern."""
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise UnusableInputError("suppression times must carry a UTC offset")
    if ends_at <= starts_at:
        raise UnusableInputError(
            f"suppression for {point_id}: ends_at {ends_at} is not after starts_at {starts_at}"
        )
    if kind is not None and kind not in KINDS:
        raise UnusableInputError(f"suppression kind {kind!r} is not one of {', '.join(KINDS)}")
    with engine.begin() as connection:
        known = connection.execute(
            select(points.c.point_id).where(points.c.point_id == point_id)
        ).first()
        if known is None:
            raise UnusableInputError(
                f"suppression: point_id {point_id!r} is not in the point registry"
            )
        return connection.execute(
            insert(suppressions).values(
                point_id=point_id,
                starts_at=starts_at,
                ends_at=ends_at,
                kind=kind,
                reason=reason or "suppressed",
                created_by=created_by,
                created_at=datetime.now(UTC),
            )
        ).inserted_primary_key[0]


def load_closures(engine: Engine, path: Path, *, created_by: str = "ops") -> int:
    """Load an announced-closures CSV (point_id, starts_at, ends_at, reason) into suppressions.

    Loading the same file again adds nothing: a window already recorded for the point with the
    same times and reason is skipped. Returns how many windows were added.
    """
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UnusableInputError(f"closures file {path}: cannot open ({exc.strerror})") from None
    rows, problems = [], []
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CLOSURE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UnusableInputError(
                f"closures file {path}: missing column(s) {', '.join(missing)}; "
                f"expected {', '.join(CLOSURE_COLUMNS)}"
            )
        for line_no, raw in enumerate(reader, start=2):
            where = f"closures file {path} line {line_no}"
            try:
                starts = _parse_time(raw.get("starts_at") or "", where, "starts_at")
                ends = _parse_time(raw.get("ends_at") or "", where, "ends_at")
            except UnusableInputError as exc:
                problems.append(str(exc))
                continue
            if ends <= starts:
                problems.append(f"{where}: ends_at is not after starts_at")
                continue
            rows.append(
                {
                    "point_id": (raw.get("point_id") or "").strip(),
                    "starts_at": starts,
                    "ends_at": ends,
                    "kind": None,
                    "reason": (raw.get("reason") or "").strip() or "announced closure",
                    "created_by": created_by,
                }
            )
    if problems:
        raise UnusableInputError("; ".join(problems[:5]))
    added = 0
    with engine.begin() as connection:
        known = {r.point_id for r in connection.execute(select(points.c.point_id))}
        unknown = sorted({r["point_id"] for r in rows} - known)
        if unknown:
            raise UnusableInputError(
                f"closures file {path}: point_id(s) not in the registry: {', '.join(unknown[:5])}"
            )
        now = datetime.now(UTC)
        for row in rows:
            exists = connection.execute(
                select(suppressions.c.suppression_id).where(
                    and_(
                        suppressions.c.point_id == row["point_id"],
                        suppressions.c.starts_at == row["starts_at"],
                        suppressions.c.ends_at == row["ends_at"],
                        suppressions.c.reason == row["reason"],
                        suppressions.c.kind.is_(None),
                    )
                )
            ).first()
            if exists is None:
                connection.execute(insert(suppressions).values(**row, created_at=now))
                added += 1
    return added


def suppression_windows(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Suppressions overlapping [start, end): point_id, starts_at, ends_at (UTC), kind, reason."""
    query = select(
        suppressions.c.suppression_id,
        suppressions.c.point_id,
        suppressions.c.starts_at,
        suppressions.c.ends_at,
        suppressions.c.kind,
        suppressions.c.reason,
        suppressions.c.created_by,
    ).where(and_(suppressions.c.starts_at < end, suppressions.c.ends_at > start))
    with engine.connect() as connection:
        rows = [r._asdict() for r in connection.execute(query.order_by(suppressions.c.starts_at))]
    frame = pd.DataFrame(
        rows,
        columns=[
            "suppression_id",
            "point_id",
            "starts_at",
            "ends_at",
            "kind",
            "reason",
            "created_by",
        ],
    )
    for column in ("starts_at", "ends_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def suppressed_mask(
    frame: pd.DataFrame, windows: pd.DataFrame, *, kind_column: str | None = None
) -> pd.Series:
    """True for rows of ``frame`` (point_id, hour_start[, kind]) whose hour overlaps a window.

    A window with no kind covers every pattern; a window with a kind covers that pattern only
    (when ``kind_column`` is given; otherwise only kind-less windows count).
    """
    mask = pd.Series(False, index=frame.index)
    if windows.empty or frame.empty:
        return mask
    hour_end = frame["hour_start"] + pd.Timedelta(hours=1)
    for window in windows.itertuples(index=False):
        has_kind = isinstance(window.kind, str) and window.kind != ""
        if has_kind and kind_column is None:
            continue
        hit = (
            (frame["point_id"] == window.point_id)
            & (frame["hour_start"] < window.ends_at)
            & (hour_end > window.starts_at)
        )
        if has_kind:
            hit &= frame[kind_column] == window.kind
        mask |= hit
    return mask
