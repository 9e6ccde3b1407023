"""Gaps -> cases: every gap becomes (or updates) one open case in the review queue.

Raising is idempotent: a rerun updates the open case it raised before. A case a person has acted
on (``casework.case_store.ACTED_ON``: decided, assigned or noted) is never changed, merged into
or erased; the gap it covers is counted as kept. Consecutive gap days of one collector form one
case, like consecutive flagged hours do in the detector. Rows are written through
``casework.case_store``, the one writer of ``cases``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, not_, select

from pipeline.casework.case_store import (
    ACTED_ON,
    acted_on_ids,
    drop_cases,
    open_case,
    rewrite_case,
)
from pipeline.core.phrases import dumps
from pipeline.core.times import DEFAULT_TIMEZONE, local_midnight
from pipeline.reconciliation.gaps import Gap, ReconResult, combine_days
from pipeline.store.schema import cases, suppressions

ORIGIN = "reconciliation"
# The subject prefix of each scope's gaps (``run.SCOPES``), for clearing one scope's old cases.
_SCOPE_SUBJECT = {"tax": "point:", "collector": "collector:", "bank": "line:"}


def _severity(shortfall: int) -> str:
    return "high" if shortfall >= 5_000_000 else "medium" if shortfall >= 500_000 else "low"


def _share(part: int, whole: int | None) -> float:
    return round(min(1.0, abs(part) / whole), 4) if whole else 1.0


def _suppressed(connection: Connection, gap: Gap) -> bool:
    """A suppression window (auditor's false alarm, closure) covers the whole gap."""
    lo, hi = local_midnight(gap.start_day, gap.tz), local_midnight(gap.end_day, gap.tz)
    row = connection.execute(
        select(suppressions.c.suppression_id).where(
            suppressions.c.point_id == gap.point_id,
            suppressions.c.starts_at <= lo,
            suppressions.c.ends_at >= hi,
            (suppressions.c.kind.is_(None)) | (suppressions.c.kind == gap.kind),
        )
    ).first()
    return row is not None


def _case_row(gap: Gap, now: datetime) -> dict:
    """The ``cases`` fields of a gap: the three numbers, the difference and the refs in details."""
    base = (
        gap.recorded
        if gap.kind in ("declared_below_recorded", "deposit_below_recorded", "flat_deposits")
        else None
    )
    if gap.kind in ("deposit_below_declared", "no_deposit") and gap.declared is not None:
        base = (gap.refs.get("figures") or {}).get("tax_due_declared")
    # Key order is display order (the case page lists details as they come): the three
    # numbers side by side and the difference first, references last.
    details = {
        "recorded_rp": gap.recorded,
        "declared_rp": gap.declared,
        "deposited_rp": gap.deposited,
        "difference_rp": gap.difference_rp,
        "period": {
            "from": gap.start_day.isoformat(),
            "to": (gap.end_day - timedelta(days=1)).isoformat(),
        },
        "subject": gap.subject,
        "collector_id": gap.collector_id,
        "refs": gap.refs,
    }
    if gap.days:
        details["days"] = gap.days
    return {
        "origin": ORIGIN,
        "point_id": gap.point_id,
        "start_at": local_midnight(gap.start_day, gap.tz),
        "end_at": local_midnight(gap.end_day, gap.tz),
        "kind": gap.kind,
        "score": _share(gap.difference_rp, base or gap.difference_rp),
        "severity": _severity(gap.shortfall_rp) if gap.shortfall_rp else "low",
        "reasons": gap.reasons,
        "reason_parts": dumps(gap.parts),
        "shortfall_rp": gap.shortfall_rp,
        "operators": gap.collector_id,
        "model_version": None,
        "details": json.dumps(details, ensure_ascii=False),
        "updated_at": now,
    }


def _merge(existing: dict | None, gap: Gap, row: dict) -> dict:
    """An open collector case grown by an adjacent or overlapping gap: days united, sums redone.

    A new collector case goes through here too (``existing`` None), so a rerun that merges a day
    into the case it already holds produces exactly the same row.
    """
    old = json.loads(existing["details"] or "{}") if existing else {}
    start_day, end_day = gap.start_day, gap.end_day
    if old:
        start_day = min(start_day, date.fromisoformat(old["period"]["from"]))
        end_day = max(end_day, date.fromisoformat(old["period"]["to"]) + timedelta(days=1))
    merged = combine_days(
        gap,
        {**old.get("days", {}), **gap.days},
        start_day,
        end_day,
        (old.get("refs", {}).get("collector_deposits") or {}).get("days", []),
    )
    return _case_row(merged, row["updated_at"])


def raise_cases(
    engine: Engine,
    gaps: list[Gap],
    *,
    now: datetime | None = None,
    clear_within: tuple[date, date] | None = None,
    clear_scopes: tuple[str, ...] = (),
    result: ReconResult | None = None,
) -> ReconResult:
    """Upsert one case per gap (merging collector runs); cases a person acted on are never touched.

    With ``clear_within``, open reconciliation cases of ``clear_scopes`` lying wholly inside that
    window that this run did not produce, and that nobody has acted on, are removed: the money
    turned up (a late file was ingested) and the gap is gone.
    """
    now = now or datetime.now(UTC)
    result = result or ReconResult(date.min, date.min, date.min)
    touched: set[int] = set()
    with engine.begin() as connection:
        for gap in sorted(gaps, key=lambda g: (g.subject, g.kind, g.start_day)):
            if not _suppressed(connection, gap):
                touched.update(_raise_gap(connection, gap, now, result))
        if clear_within is not None and clear_scopes:
            result.cases_cleared += _clear_stale(connection, clear_within, clear_scopes, touched)
    return result


def _candidates(connection: Connection, gap: Gap, row: dict) -> list[dict]:
    """This subject's cases of the gap's kind overlapping or adjacent to its span."""
    query = select(cases).where(cases.c.origin == ORIGIN, cases.c.kind == gap.kind)
    if gap.subject.startswith("collector:"):
        query = query.where(cases.c.operators == gap.collector_id)
    else:
        query = query.where(cases.c.point_id == gap.point_id)
    query = query.where(cases.c.start_at <= row["end_at"], cases.c.end_at >= row["start_at"])
    return [
        dict(c)
        for c in connection.execute(query).mappings()
        if json.loads(c["details"] or "{}").get("subject") == gap.subject
    ]


def _raise_gap(connection: Connection, gap: Gap, now: datetime, result: ReconResult) -> set[int]:
    """Create, update or keep the case of one gap; return the ids of the cases it touched."""
    row = _case_row(gap, now)
    candidates = _candidates(connection, gap, row)
    acted = acted_on_ids(connection, (c["case_id"] for c in candidates))
    kept = [
        c
        for c in candidates
        if c["case_id"] in acted and c["start_at"] < row["end_at"] and c["end_at"] > row["start_at"]
    ]
    if kept:
        # A person has acted on (part of) this gap: leave their case exactly as it is.
        result.cases_kept += 1
        return {c["case_id"] for c in kept}
    same = [c for c in candidates if c["case_id"] not in acted]
    if not gap.merges:
        same = [c for c in same if (c["start_at"], c["end_at"]) == (row["start_at"], row["end_at"])]
    if not same:
        if gap.merges:
            row = _merge(None, gap, row)
        result.cases_created += 1
        return {open_case(connection, row, now=now)}
    target = same[0]
    if gap.merges:
        for extra in same[1:]:  # a gap that bridges two open runs joins them into one
            target = {**target, "details": _merge(target, _gap_from(extra, gap), row)["details"]}
            drop_cases(connection, [extra["case_id"]])
        row = _merge(target, gap, row)
    if any(target.get(k) != v for k, v in row.items() if k != "updated_at"):
        rewrite_case(connection, target["case_id"], row)
        result.cases_updated += 1
    return {target["case_id"]}


def _clear_stale(connection, window: tuple[date, date], scopes, touched: set[int]) -> int:
    # Day bounds in other Indonesian zones (WITA, WIT) sit up to 2 hours off Jakarta's; allow slack.
    lo = local_midnight(window[0], DEFAULT_TIMEZONE) - timedelta(hours=3)
    hi = local_midnight(window[1], DEFAULT_TIMEZONE) + timedelta(hours=3)
    prefixes = tuple(_SCOPE_SUBJECT[s] for s in scopes)
    stale = connection.execute(
        select(cases.c.case_id, cases.c.details).where(
            cases.c.origin == ORIGIN,
            cases.c.start_at >= lo,
            cases.c.end_at <= hi,
            not_(ACTED_ON),
        )
    ).all()
    gone = [
        case_id
        for case_id, details in stale
        if case_id not in touched
        and json.loads(details or "{}").get("subject", "").startswith(prefixes)
    ]
    return drop_cases(connection, gone)


def _gap_from(case: dict, like: Gap) -> Gap:
    details = json.loads(case["details"] or "{}")
    return replace(
        like,
        start_day=date.fromisoformat(details["period"]["from"]),
        end_day=date.fromisoformat(details["period"]["to"]) + timedelta(days=1),
        days=details.get("days", {}),
        refs={
            **like.refs,
            "collector_deposits": details.get("refs", {}).get("collector_deposits") or {},
        },
    )
