"""The case workflow: decide, reopen, assign; each step appended to the audit trail.

Every change to a case writes one ``case_events`` row (who, when, what, the state before and
after, the note) in the same transaction as the change. That table is append-only: the app has no
way to edit it and migration 0002 adds database triggers that refuse UPDATE and DELETE.

The change itself goes through ``casework.case_store``, the one writer of ``cases``. A case with
anything in its trail is one a person has acted on: the detector and reconciliation never rewrite it.

Feedback to detection:
- a false alarm adds a ``suppressions`` row for the case's point and kind, from the case start
  until ``false_alarm_days`` after the decision, so the same pattern there is not raised again;
  reopening the case ends that suppression;
- confirmed leakage windows (``confirmed_leakage_windows``) are to be left out of the detector's
  "usual" baseline, so stolen revenue does not teach the model that low takings are normal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Connection, Engine, select, update

from pipeline.casework.case_store import change_state
from pipeline.casework.users import CASE_WORKER_ROLES, User
from pipeline.core.errors import NotFoundError, UnusableInputError
from pipeline.store.schema import MAX_ROW_ID, case_events, cases, suppressions, users

DECISIONS = {
    "confirmed": "confirmed leakage",
    "false_alarm": "false alarm",
    "field_check": "needs field check",
}
# "cleared": closed by the pipeline when late sales disproved the flags (case_store.clear_case).
STATUS_LABELS = {"open": "open", **DECISIONS, "cleared": "cleared by late data"}
# A decision can be taken on an open case, or on one waiting for its field check.
DECIDABLE = ("open", "field_check")
MAX_NOTE = 4000


@dataclass(frozen=True)
class CaseEvent:
    event_id: int
    case_id: int
    at: datetime
    actor: str
    action: str
    before: dict
    after: dict
    note: str
    note_parts: str | None = None  # JSON phrases of a pipeline's note (core.phrases)


class LeakageWindow(NamedTuple):
    point_id: str
    start_at: datetime
    end_at: datetime  # exclusive


def _note(note: str | None, *, missing: UnusableInputError | None = None) -> str:
    """The note, stripped; ``missing`` is raised when a note is required and there is none."""
    text = (note or "").strip()
    if missing is not None and not text:
        raise missing
    if len(text) > MAX_NOTE:
        raise UnusableInputError.said(
            "note is %(length_n)s characters long; at most %(most_n)s",
            length_n=len(text),
            most_n=MAX_NOTE,
        )
    return text


def _load(connection: Connection, case_id: int):
    row = None
    if 0 < case_id <= MAX_ROW_ID:
        row = connection.execute(select(cases).where(cases.c.case_id == case_id)).first()
    if row is None:
        raise NotFoundError.said("case %(case)s does not exist", case=case_id)
    return row


def _state(row) -> dict:
    return {"status": row.status, "assignee": row.assignee}


def _append(connection, case_id, actor, action, before, after, note, now) -> None:
    connection.execute(
        case_events.insert().values(
            case_id=case_id,
            at=now,
            actor=actor,
            action=action,
            before=json.dumps(before, sort_keys=True),
            after=json.dumps(after, sort_keys=True),
            note=note or None,
        )
    )


def decide(
    engine: Engine,
    case_id: int,
    actor: User,
    decision: str,
    note: str,
    *,
    false_alarm_days: int,
    now: datetime | None = None,
) -> dict:
    """Record ``decision`` (confirmed, false_alarm, field_check) on an open case; return the state.

    A false alarm also suppresses the same kind at the same point for ``false_alarm_days``.
    """
    actor.require("cases.decide")
    if decision not in DECISIONS:
        raise UnusableInputError.said(
            "decision %(decision)r is not one of %(choices)s",
            decision=decision,
            choices=", ".join(DECISIONS),
        )
    text = _note(
        note,
        missing=UnusableInputError.said(
            "deciding %(decision_kind)s needs a note saying why", decision_kind=decision
        ),
    )
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        row = _load(connection, case_id)
        if row.status not in DECIDABLE:
            raise UnusableInputError.said(
                "case %(case)s is already decided (%(status_kind)s); a supervisor must reopen it"
                " first",
                case=case_id,
                status_kind=row.status,
            )
        if row.status == decision:
            raise UnusableInputError.said(
                "case %(case)s is already %(decision_kind)s", case=case_id, decision_kind=decision
            )
        before = _state(row)
        after = {**before, "status": decision}
        change_state(connection, row, now, status=decision)
        if decision == "false_alarm":
            result = connection.execute(
                suppressions.insert().values(
                    point_id=row.point_id,
                    starts_at=row.start_at,
                    ends_at=now + timedelta(days=false_alarm_days),
                    kind=row.kind,
                    reason=f"false alarm on case {case_id}: {text}"[:2000],
                    created_by=actor.username,
                    created_at=now,
                )
            )
            after["suppression_id"] = result.inserted_primary_key[0]
        _append(connection, case_id, actor.username, "decide", before, after, text, now)
    return after


def reopen(
    engine: Engine, case_id: int, actor: User, note: str, *, now: datetime | None = None
) -> dict:
    """Supervisor only: put a decided case back to open; a false alarm's suppression is ended."""
    actor.require("cases.reopen")
    text = _note(note, missing=UnusableInputError.said("reopening a case needs a note saying why"))
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        row = _load(connection, case_id)
        if row.status == "open":
            raise UnusableInputError.said("case %(case)s is already open", case=case_id)
        before = _state(row)
        after = {**before, "status": "open"}
        change_state(connection, row, now, status="open")
        if row.status == "false_alarm":
            for suppression_id in _suppressions_made_by(connection, case_id):
                # End it now rather than delete it: what was suppressed meanwhile stays explainable.
                ended = connection.execute(
                    update(suppressions)
                    .where(suppressions.c.suppression_id == suppression_id)
                    .where(suppressions.c.ends_at > now)
                    .values(ends_at=now)
                )
                if ended.rowcount:
                    after.setdefault("ended_suppression_ids", []).append(suppression_id)
        _append(connection, case_id, actor.username, "reopen", before, after, text, now)
    return after


def _suppressions_made_by(connection: Connection, case_id: int) -> list[int]:
    rows = connection.execute(
        select(case_events.c.after)
        .where(case_events.c.case_id == case_id)
        .where(case_events.c.action == "decide")
    ).all()
    found = []
    for (after,) in rows:
        suppression_id = json.loads(after or "{}").get("suppression_id")
        if suppression_id is not None:
            found.append(int(suppression_id))
    return found


def assign(
    engine: Engine,
    case_id: int,
    actor: User,
    assignee: str,
    note: str = "",
    *,
    now: datetime | None = None,
) -> dict:
    """Give the case to a colleague (active auditor or supervisor); empty ``assignee`` unassigns."""
    actor.require("cases.assign")
    text = _note(note)
    name = assignee.strip().lower() or None
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        if name is not None:
            person = connection.execute(
                select(users.c.role, users.c.active).where(users.c.username == name)
            ).first()
            if person is None or not person.active or person.role not in CASE_WORKER_ROLES:
                raise UnusableInputError.said(
                    "cannot assign to %(assignee)r: not an active auditor or supervisor",
                    assignee=assignee,
                )
        row = _load(connection, case_id)
        if row.assignee == name:
            if name is None:
                raise UnusableInputError.said(
                    "case %(case)s is already assigned to nobody", case=case_id
                )
            raise UnusableInputError.said(
                "case %(case)s is already assigned to %(assignee)s", case=case_id, assignee=name
            )
        before = _state(row)
        after = {**before, "assignee": name}
        change_state(connection, row, now, assignee=name)
        _append(connection, case_id, actor.username, "assign", before, after, text, now)
    return after


def add_note(
    engine: Engine, case_id: int, actor: User, note: str, *, now: datetime | None = None
) -> None:
    """Append a note to the case's trail without changing it (a call made, a document found)."""
    actor.require("cases.decide")
    text = _note(note, missing=UnusableInputError.said("a note cannot be empty"))
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        state = _state(_load(connection, case_id))
        _append(connection, case_id, actor.username, "note", state, state, text, now)


def trail(engine: Engine, case_id: int) -> list[CaseEvent]:
    """The audit trail of one case, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(case_events)
            .where(case_events.c.case_id == case_id)
            .order_by(case_events.c.at, case_events.c.event_id)
        ).all()
    return [
        CaseEvent(
            r.event_id,
            r.case_id,
            r.at,
            r.actor,
            r.action,
            json.loads(r.before or "{}"),
            json.loads(r.after or "{}"),
            r.note or "",
            r.note_parts,
        )
        for r in rows
    ]


def confirmed_leakage_windows(
    engine: Engine, point_ids: list[str] | None = None
) -> list[LeakageWindow]:
    """Point-time windows of cases confirmed as leakage, for keeping out of the usual baseline.

    The detector's features should drop hours inside these windows when they compute what is
    usual for a point, so confirmed theft does not become the norm it is compared against.
    """
    query = select(cases.c.point_id, cases.c.start_at, cases.c.end_at).where(
        cases.c.status == "confirmed"
    )
    if point_ids is not None:
        query = query.where(cases.c.point_id.in_(point_ids))
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(cases.c.point_id, cases.c.start_at)).all()
    return [LeakageWindow(r.point_id, r.start_at, r.end_at) for r in rows]
