"""Flagged point-hours -> ``anomalies`` rows -> ``cases``, one per point and incident.

An incident is the flagged hours of one point that belong together: consecutive hours, hours
with only closed ones between them (a night), or hours at most ``INCIDENT_GAP`` (a week) apart,
whatever mix of kinds they show (a device off for the afternoon inside a week of under-reporting
is one matter for an auditor, not two; a sustained drop is flagged on some days and not others,
and one visit to the point settles all of them). Its severity follows the rupiah at stake,
tempered by the strength of the evidence, so the top of the queue is where the money is.

Which incidents are cases is ``casework.incidents.raises_case``: not a lone flagged hour of low
evidence, nor revenue or sales down at one point with nothing else before it has been seen on
three local days; a silent device or a pattern's own signal at once. Until then the hours stay
flags (point in time: the live run opens the case when the flag that makes it one comes).

Rescoring a range is a replacement, never an accumulation: flags and open cases of the range are
rebuilt from the new scores. A case a person has acted on (``case_store.ACTED_ON``: decided,
assigned or annotated) is never rewritten or duplicated: its anomalies stay attached and new flags
inside its span are dropped. Case rows are written through ``case_store``, the table's one
writer. Suppression windows (closures, maintenance, auditor false alarms of one kind) keep flags
from being recorded at all.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    delete,
    insert,
    or_,
    select,
    text,
    true,
    update,
)

from pipeline.casework.case_store import ACTED_ON, drop_cases, open_case, rewrite_case
from pipeline.casework.incidents import INCIDENT_GAP, group_runs, raises_case
from pipeline.casework.rebuild_span import rebuild_span
from pipeline.core.phrases import Phrase, dumps, english, loads, phrase
from pipeline.reference.points import known_points, read_registry
from pipeline.reference.suppressions import suppressed_mask, suppression_windows
from pipeline.store.schema import anomalies, cases

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}
MARGIN = INCIDENT_GAP  # >= INCIDENT_GAP: a rebuild sees every case a new flag may join
HIGH_STAKE_RP = 1_000_000  # a case with this much at stake (and good evidence) is high
MEDIUM_STAKE_RP = 250_000
# PostgreSQL advisory-lock key taken by every transaction that rebuilds detector cases ("einc").
CASE_REBUILD_LOCK = 0x65696E63


@dataclass(frozen=True)
class RecordResult:
    anomalies: int  # flagged point-hours written
    suppressed: int  # flags dropped by a suppression window
    kept_decided: int  # flags dropped because a decided case already covers them
    cases_open: int  # open cases (re)built around the range


def case_severity(stake_rp: int, evidence: str) -> str:
    """A case's severity from the rupiah at stake and its hours' strongest evidence (their own
    severity): high for Rp 1.000.000 or more on good evidence, or strong evidence with
    Rp 250.000 or more; medium for Rp 250.000 or more, or strong evidence; else low."""
    rank = SEVERITY_RANK[evidence]
    if (stake_rp >= HIGH_STAKE_RP and rank >= 1) or (rank == 2 and stake_rp >= MEDIUM_STAKE_RP):
        return "high"
    if stake_rp >= MEDIUM_STAKE_RP or rank == 2:
        return "medium"
    return "low"


def summarise_run(run: pd.DataFrame) -> dict:
    """The case fields of one run of flagged hours."""
    # Plain lists: a backfill summarises thousands of runs, and pandas' per-call overhead on a
    # handful of rows was most of the time of recording flags.
    kinds = run["kind"].tolist()
    scores = run["score"].to_numpy(dtype=float)
    # The incident's kind is the pattern with the most rupiah at stake among its hours (the
    # scores break ties): a device off for the afternoon, whose silence also pulls the rest of
    # the day's figures down, is a device-off case.
    stakes = run["shortfall_rp"].to_numpy(dtype=float)
    weights = Counter()
    for kind, score, stake in zip(kinds, scores.tolist(), stakes.tolist(), strict=True):
        weights[kind] += stake + score
    kind = weights.most_common(1)[0][0]
    # The same sort as run.sort_values("score"), so ties pick the same hour.
    top = int(np.argsort(scores, kind="quicksort")[-1])
    evidence = max(run["severity"].tolist(), key=SEVERITY_RANK.__getitem__)
    operators = sorted(
        {
            o
            for value in run["operators"].tolist()
            if isinstance(value, str)
            for o in value.split(",")
            if o
        }
    )
    hour_starts = run["hour_start"]
    first, last = hour_starts.min(), hour_starts.max()
    shortfall = int(run["shortfall_rp"].sum())
    hours = len(run)
    counts = Counter(kinds)
    parts = _lead(hours, kind, counts, shortfall, _hour_reasons(run, top))
    lead = english(parts)
    return {
        "point_id": run["point_id"].iloc[0],
        "start_at": first.to_pydatetime(),
        "end_at": (last + pd.Timedelta(hours=1)).to_pydatetime(),
        "kind": kind,
        "score": float(scores.max()),
        "severity": case_severity(shortfall, evidence),
        "reasons": lead,
        "reason_parts": dumps(parts),
        "shortfall_rp": shortfall,
        "operators": ",".join(operators) or None,
        "details": json.dumps(
            {"hours": hours, "kinds": {k: counts[k] for k in sorted(counts)}},
            sort_keys=True,
        ),
    }


def _hour_reasons(run: pd.DataFrame, row: int) -> list[Phrase]:
    """The phrases of one flagged hour of ``run``; its text alone where it has none (flags
    recorded before reasons were phrases, or made up by a test)."""
    if "reason_parts" in run:
        stored = loads(run["reason_parts"].iloc[row])
        if stored:
            return stored
    return [Phrase(str(run["reasons"].iloc[row]))]


def _lead(hours: int, kind: str, counts: Counter, shortfall: int, top: list[Phrase]):
    """The case's reasons: how many hours, the suspected pattern (and the mix of patterns), the
    rupiah at stake, then the strongest hour's reasons."""
    figures = dict(hours_n=hours, suspected_kind=kind, stake_rp=shortfall)
    if hours == 1:
        head = phrase(
            "%(hours_n)s flagged hour, suspected %(suspected_kind)s, %(stake_rp)s at stake",
            **figures,
        )
    elif len(counts) > 1:
        mix = [[k, n] for k, n in sorted(counts.items(), key=lambda kv: -kv[1])]
        head = phrase(
            "%(hours_n)s flagged hours, suspected %(suspected_kind)s (kinds: %(mix_kinds)s),"
            " %(stake_rp)s at stake",
            mix_kinds=mix,
            **figures,
        )
    else:
        head = phrase(
            "%(hours_n)s flagged hours, suspected %(suspected_kind)s, %(stake_rp)s at stake",
            **figures,
        )
    strongest = phrase("strongest: %(first_part)s", first_part=top[0])
    return [head, strongest, *top[1:]]


def _frame(rows, columns) -> pd.DataFrame:
    frame = pd.DataFrame([r._asdict() for r in rows], columns=columns)
    for column in ("hour_start", "start_at", "end_at"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _preserved_cases(connection: Connection, begin: datetime, end: datetime) -> pd.DataFrame:
    """Detector cases overlapping [begin, end) that a person has acted on: never rewritten."""
    query = select(cases.c.case_id, cases.c.point_id, cases.c.start_at, cases.c.end_at).where(
        and_(cases.c.origin == "detector", cases.c.start_at < end, cases.c.end_at > begin, ACTED_ON)
    )
    return _frame(connection.execute(query), ["case_id", "point_id", "start_at", "end_at"])


def _inside(frame: pd.DataFrame, spans: pd.DataFrame) -> pd.Series:
    mask = pd.Series(False, index=frame.index)
    for span in spans.itertuples(index=False):
        mask |= (
            (frame["point_id"] == span.point_id)
            & (frame["hour_start"] >= span.start_at)
            & (frame["hour_start"] < span.end_at)
        )
    return mask


def drop_suppressed(
    engine: Engine, flags: pd.DataFrame, start: datetime, end: datetime
) -> pd.DataFrame:
    """Flags outside every suppression window (kind-less windows silence all kinds)."""
    if flags.empty:
        return flags
    windows = suppression_windows(engine, start, end)
    return flags[~suppressed_mask(flags, windows, kind_column="kind")]


def record_flags(
    engine: Engine,
    flags: pd.DataFrame,
    start: datetime,
    end: datetime,
    *,
    model_version: str,
    scored_at: datetime | None = None,
    known_until: datetime | None = None,
) -> RecordResult:
    """Replace the flags of [start, end) with ``flags`` and rebuild the open cases around them
    (from the flags before ``known_until`` only, when given: see ``rebuild_cases``)."""
    scored_at = scored_at or datetime.now(UTC)
    before = len(flags)
    flags = drop_suppressed(engine, flags, start, end)
    suppressed = before - len(flags)
    with engine.begin() as connection:
        _take_case_rebuild_lock(connection)
        kept_decided, keep_ids, written = _replace_flag_rows(
            connection, flags, start, end, None, model_version, scored_at
        )
        opened = _rebuild_cases(connection, start, end, keep_ids, model_version, known_until)
    return RecordResult(
        anomalies=written, suppressed=suppressed, kept_decided=kept_decided, cases_open=opened
    )


def replace_point_flags(
    engine: Engine,
    flags: pd.DataFrame,
    start: datetime,
    end: datetime,
    point_ids: list[str] | None,
    *,
    model_version: str,
    scored_at: datetime | None = None,
) -> RecordResult:
    """Replace the flags of ``point_ids`` (None: every point) in [start, end) with ``flags``,
    leaving every other point's flags and every case as they are: one work unit of a fanned-out
    backfill, whose cases ``rebuild_cases`` forms once every unit of the range is in (an
    incident crossing two units is then one case). A rerun replaces the unit's flags only."""
    scored_at = scored_at or datetime.now(UTC)
    before = len(flags)
    flags = drop_suppressed(engine, flags, start, end)
    with engine.begin() as connection:
        kept_decided, _keep, written = _replace_flag_rows(
            connection, flags, start, end, point_ids, model_version, scored_at
        )
    return RecordResult(
        anomalies=written, suppressed=before - len(flags), kept_decided=kept_decided, cases_open=0
    )


def rebuild_cases(
    engine: Engine, start: datetime, end: datetime, *, known_until: datetime | None = None
) -> int:
    """Regroup the flags around [start, end) into open cases, as ``record_flags`` does after
    writing them (cases a person acted on are kept); returns the open cases there.

    ``known_until``: group only the flags before it, as they stood when it came. A backfill
    walking forward passes each week's end: flags of later weeks still in the table (a rerun's
    previous pass, or hourly runs that scored them before) are not known at that moment, and a
    case they joined would keep the week's hours out of the next week's usual levels."""
    with engine.begin() as connection:
        _take_case_rebuild_lock(connection)
        preserved = _preserved_cases(connection, start - MARGIN, end + MARGIN)
        keep_ids = [int(i) for i in preserved["case_id"]]
        return _rebuild_cases(connection, start, end, keep_ids, "", known_until)


def _replace_flag_rows(
    connection: Connection,
    flags: pd.DataFrame,
    start: datetime,
    end: datetime,
    point_ids: list[str] | None,
    model_version: str,
    scored_at: datetime,
) -> tuple[int, list[int], int]:
    """Delete the flags of [start, end) (of ``point_ids``, None: every point) except those of
    cases a person acted on, and insert ``flags`` but those inside such cases. Returns (flags
    dropped for a decided case, the kept cases' ids, flags written)."""
    preserved = _preserved_cases(connection, start - MARGIN, end + MARGIN)
    inside = _inside(flags, preserved) if not flags.empty else pd.Series(dtype=bool)
    kept_decided = int(inside.sum()) if len(inside) else 0
    flags = flags[~inside] if len(inside) else flags
    keep_ids = [int(i) for i in preserved["case_id"]]
    # Old flags of the range go, except those of preserved cases.
    stale = and_(anomalies.c.hour_start >= start, anomalies.c.hour_start < end)
    if point_ids is not None:
        stale = and_(stale, anomalies.c.point_id.in_(point_ids))
    if keep_ids:
        stale = and_(
            stale, or_(anomalies.c.case_id.is_(None), anomalies.c.case_id.not_in(keep_ids))
        )
    connection.execute(delete(anomalies).where(stale))
    if not flags.empty:
        rows = [
            {
                "point_id": r.point_id,
                "hour_start": r.hour_start.to_pydatetime(),
                "score": float(r.score),
                "severity": r.severity,
                "kind": r.kind,
                "evidence": getattr(r, "evidence", None),
                "reasons": r.reasons,
                "reason_parts": getattr(r, "reason_parts", None),
                "shortfall_rp": int(r.shortfall_rp),
                "operators": r.operators if isinstance(r.operators, str) else None,
                "model_version": model_version,
                "case_id": None,
                "scored_at": scored_at,
            }
            for r in flags.itertuples(index=False)
        ]
        connection.execute(insert(anomalies), rows)
    return kept_decided, keep_ids, len(flags)


def _take_case_rebuild_lock(connection: Connection) -> None:
    """Make case rebuilds take turns. A rebuild reads, relinks and deletes every case within
    MARGIN of its range, so two scoring runs of nearby hours (parallel runs of an Airflow
    backfill) lock overlapping anomaly and case rows in different orders, and PostgreSQL
    killed one as a deadlock. A transaction-scoped advisory lock serialises only this write
    phase (features and scores are still computed in parallel); SQLite serialises writers
    on its own."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CASE_REBUILD_LOCK})


def _rebuild_cases(
    connection: Connection,
    start: datetime,
    end: datetime,
    keep_ids: list[int],
    model_version: str,
    known_until: datetime | None = None,
) -> int:
    """Regroup the free flags around [start, end) (those before ``known_until``, when given)
    into open cases, each point within its own span (``rebuild_span``), reusing ids where a case
    with the same point and start already exists (so links to an open case survive a rescore)."""
    known = anomalies.c.hour_start < known_until if known_until is not None else true()
    span = rebuild_span(connection, start - MARGIN, end + MARGIN, keep_ids, known)
    if span.points.empty:
        return _count_new(connection, span.begin, span.finish, keep_ids)
    old = span.old
    if not old.empty:
        old_ids = [int(i) for i in old["case_id"]]
        connection.execute(
            update(anomalies).where(anomalies.c.case_id.in_(old_ids)).values(case_id=None)
        )
    free = _frame(
        connection.execute(select(anomalies).where(span.free_flags(), known)),
        [c.name for c in anomalies.columns],
    )
    reuse = {(r.point_id, r.start_at): int(r.case_id) for r in old.itertuples(index=False)}
    now = datetime.now(UTC)
    used: set[int] = set()
    for run in group_runs(free, read_registry(connection)):
        if not raises_case(run):
            continue
        fields = summarise_run(run)
        fields["model_version"] = str(run["model_version"].iloc[-1])
        key = (fields["point_id"], pd.Timestamp(fields["start_at"]))
        case_id = reuse.get(key)
        if case_id is not None:
            rewrite_case(connection, case_id, {**fields, "updated_at": now})
            used.add(case_id)
        else:
            case_id = open_case(connection, {**fields, "origin": "detector"}, now=now)
        connection.execute(
            update(anomalies)
            .where(
                and_(
                    anomalies.c.point_id == fields["point_id"],
                    anomalies.c.hour_start >= fields["start_at"],
                    anomalies.c.hour_start < fields["end_at"],
                    anomalies.c.case_id.is_(None),
                    known,
                )
            )
            .values(case_id=case_id)
        )
    leftover = [int(i) for i in old["case_id"] if int(i) not in used] if not old.empty else []
    drop_cases(connection, leftover)
    return _count_new(connection, span.begin, span.finish, keep_ids)


def _count_new(
    connection: Connection, begin: datetime, finish: datetime, keep_ids: list[int]
) -> int:
    query = select(cases.c.case_id).where(
        and_(
            cases.c.origin == "detector",
            cases.c.status == "open",
            cases.c.start_at < finish,
            cases.c.end_at > begin,
        )
    )
    if keep_ids:
        query = query.where(cases.c.case_id.not_in(keep_ids))
    return len(connection.execute(query).all())


def list_anomalies(
    engine: Engine, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Flagged point-hours with the status of the case they belong to."""
    query = select(
        anomalies.c.point_id,
        anomalies.c.hour_start,
        anomalies.c.score,
        anomalies.c.severity,
        anomalies.c.kind,
        anomalies.c.reasons,
        anomalies.c.reason_parts,
        anomalies.c.shortfall_rp,
        anomalies.c.operators,
        anomalies.c.model_version,
        anomalies.c.case_id,
        cases.c.status,
    ).select_from(anomalies.outerjoin(cases, anomalies.c.case_id == cases.c.case_id))
    if start is not None:
        query = query.where(anomalies.c.hour_start >= start)
    if end is not None:
        query = query.where(anomalies.c.hour_start < end)
    with engine.connect() as connection:
        frame = _frame(
            connection.execute(query.order_by(anomalies.c.point_id, anomalies.c.hour_start)),
            [
                "point_id",
                "hour_start",
                "score",
                "severity",
                "kind",
                "reasons",
                "reason_parts",
                "shortfall_rp",
                "operators",
                "model_version",
                "case_id",
                "status",
            ],
        )
    frame["status"] = frame["status"].fillna("open")
    return frame


def list_cases(engine: Engine, *, status: str | None = None) -> pd.DataFrame:
    """Detector and reconciliation cases, newest first."""
    query = select(cases).order_by(cases.c.start_at.desc(), cases.c.point_id)
    if status is not None:
        query = query.where(cases.c.status == status)
    with engine.connect() as connection:
        return _frame(connection.execute(query), [c.name for c in cases.columns])


def cases_from_flags(flags: pd.DataFrame, pts: dict[str, dict]) -> pd.DataFrame:
    """What cases ``flags`` would form, without writing anything (for backtests)."""
    runs = [summarise_run(run) for run in group_runs(flags, pts) if raises_case(run)]
    frame = pd.DataFrame(
        runs,
        columns=[
            "point_id",
            "start_at",
            "end_at",
            "kind",
            "score",
            "severity",
            "reasons",
            "reason_parts",
            "shortfall_rp",
            "operators",
            "details",
        ],
    )
    return frame


# The registry's one reader is reference.points; this name stays for detection.backfill's import.
registry = known_points


__all__ = [
    "RecordResult",
    "case_severity",
    "cases_from_flags",
    "group_runs",
    "list_anomalies",
    "list_cases",
    "raises_case",
    "rebuild_cases",
    "record_flags",
    "registry",
    "replace_point_flags",
    "summarise_run",
]
