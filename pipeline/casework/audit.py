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
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import NamedTuple

from sqlalchemy import Connection, Engine, select, update

from pipeline.casework.case_store import change_state
from pipeline.casework.users import CASE_WORKER_ROLES, User
from pipeline.core.errors import NotFoundError, UnusableInputError
from pipeline.store.schema import (
    MAX_ROW_ID,
    case_events,
    case_exports,
    cases,
    suppressions,
    users,
)

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


def load_case(connection: Connection, case_id: int):
    """The ``cases`` row of ``case_id`` (NotFoundError if there is none)."""
    return _load(connection, case_id)


def append_event(connection, row, actor: str, action: str, extra: dict, note: str, now) -> None:
    """One trail row for an act on case ``row`` that leaves its state as it is (an attachment
    added): the state before and after, with ``extra`` in the after."""
    state = _state(row)
    _append(connection, row.case_id, actor, action, state, {**state, **extra}, note, now)


def _load(connection: Connection, case_id: int):
    row = None
    if 0 < case_id <= MAX_ROW_ID:
        row = connection.execute(select(cases).where(cases.c.case_id == case_id)).first()
    if row is None:
        raise NotFoundError.said("case %(case)s does not exist", case=case_id)
    return row


def _state(row) -> dict:
    state = {"status": row.status, "assignee": row.assignee}
    # The follow-up's fields enter the trail once they are set (older events lack them).
    if row.due_on is not None:
        state["due_on"] = row.due_on.isoformat()
    if row.recovered_rp is not None:
        state["recovered_rp"] = int(row.recovered_rp)
    return state


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


def _change(connection, row, actor: str, action: str, note: str, now, extra=None, **values):
    """Set ``values`` on case ``row`` (its status, assignee, due day or money recovered) through
    the one writer of ``cases``, and append the trail row with the state before and after (and
    ``extra`` in the after); returns the after."""
    before = _state(row)
    change_state(connection, row, now, **values)
    after = {**_state(SimpleNamespace(**{**row._asdict(), **values})), **(extra or {})}
    _append(connection, row.case_id, actor, action, before, after, note, now)
    return after


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
        extra = {}
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
            extra["suppression_id"] = result.inserted_primary_key[0]
        return _change(connection, row, actor.username, "decide", text, now, extra, status=decision)


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
        extra = {}
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
                    extra.setdefault("ended_suppression_ids", []).append(suppression_id)
        return _change(connection, row, actor.username, "reopen", text, now, extra, status="open")


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
        return _change(connection, row, actor.username, "assign", text, now, assignee=name)


def set_due(
    engine: Engine,
    case_id: int,
    actor: User,
    due_on: date | None,
    note: str = "",
    *,
    now: datetime | None = None,
) -> dict:
    """The local day an assigned, undecided case should be worked by (None clears it)."""
    actor.require("cases.assign")
    text = _note(note)
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        row = _load(connection, case_id)
        if due_on is not None and (row.assignee is None or row.status not in DECIDABLE):
            raise UnusableInputError.said(
                "case %(case)s needs an assignee and no decision yet to get a due day",
                case=case_id,
            )
        if row.due_on == due_on:
            raise UnusableInputError.said("case %(case)s already has that due day", case=case_id)
        return _change(connection, row, actor.username, "due", text, now, due_on=due_on)


def record_recovery(
    engine: Engine,
    case_id: int,
    actor: User,
    recovered_rp: int,
    note: str,
    *,
    now: datetime | None = None,
) -> dict:
    """The rupiah recovered so far on a confirmed-leakage case (the running total, not an
    increment: a correction is a new total with a note saying why)."""
    actor.require("cases.decide")
    text = _note(
        note, missing=UnusableInputError.said("recording money recovered needs a note saying why")
    )
    if isinstance(recovered_rp, bool) or not isinstance(recovered_rp, int) or recovered_rp < 0:
        raise UnusableInputError.said(
            "recovered amount %(amount)s is not whole rupiah >= 0", amount=repr(recovered_rp)
        )
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        row = _load(connection, case_id)
        if row.status != "confirmed":
            raise UnusableInputError.said(
                "case %(case)s is not confirmed leakage; only then is money recovered",
                case=case_id,
            )
        if row.recovered_rp == recovered_rp:
            raise UnusableInputError.said(
                "case %(case)s already shows %(recovered_rp)s recovered",
                case=case_id,
                recovered_rp=recovered_rp,
            )
        return _change(
            connection, row, actor.username, "recover", text, now, recovered_rp=recovered_rp
        )


def record_export(
    engine: Engine,
    actor: User,
    what: str,
    fmt: str,
    case_ids,
    rows: int,
    *,
    now: datetime | None = None,
) -> int:
    """Record that ``actor`` took ``case_ids`` out of the app (``what``: queue, selection,
    case); an export changes no case, so it is kept apart from the cases' own trails."""
    actor.require("cases.export")
    with engine.begin() as connection:
        return connection.execute(
            case_exports.insert().values(
                at=now or datetime.now(UTC),
                actor=actor.username,
                what=what,
                fmt=fmt,
                case_ids=json.dumps(sorted({int(i) for i in case_ids})),
                rows=rows,
            )
        ).inserted_primary_key[0]


MAX_BULK = 500  # cases one bulk action may touch: a page of the queue is 50


@dataclass
class BulkResult:
    """What a bulk action did: the cases it changed, and why each other one was left."""

    done: list[int]
    refused: dict[int, str]


def _each_case(case_ids, act) -> BulkResult:
    # One transaction per case: a case someone else just decided is refused with its reason,
    # the rest of the selection still goes through.
    ids = sorted({int(i) for i in case_ids})
    if not ids:
        raise UnusableInputError.said("no cases selected")
    if len(ids) > MAX_BULK:
        raise UnusableInputError.said(
            "%(selected_n)s cases selected; at most %(most_n)s at once",
            selected_n=len(ids),
            most_n=MAX_BULK,
        )
    result = BulkResult([], {})
    for case_id in ids:
        try:
            act(case_id)
        except (UnusableInputError, NotFoundError) as exc:
            result.refused[case_id] = str(exc)
        else:
            result.done.append(case_id)
    return result


def bulk_assign(
    engine: Engine,
    case_ids,
    actor: User,
    assignee: str,
    note: str = "",
    *,
    due_on: date | None = None,
    now: datetime | None = None,
) -> BulkResult:
    """Assign each of ``case_ids`` (and give it ``due_on``), each written to its own trail."""
    actor.require("cases.assign")

    def act(case_id: int) -> None:
        try:
            assign(engine, case_id, actor, assignee, note, now=now)
        except UnusableInputError:
            if due_on is None or _assignee_of(engine, case_id) != (
                assignee.strip().lower() or None
            ):
                raise  # already assigned to this person is fine when a due day comes with it
        if due_on is not None:
            set_due(engine, case_id, actor, due_on, note, now=now)

    return _each_case(case_ids, act)


def _assignee_of(engine: Engine, case_id: int) -> str | None:
    with engine.connect() as connection:
        return _load(connection, case_id).assignee


def bulk_false_alarm(
    engine: Engine,
    case_ids,
    actor: User,
    note: str,
    *,
    false_alarm_days: int,
    now: datetime | None = None,
) -> BulkResult:
    """Decide each of ``case_ids`` a false alarm with one note (each suppresses its own point
    and kind, as a single decision does)."""
    actor.require("cases.decide")
    _note(
        note,
        missing=UnusableInputError.said(
            "deciding %(decision_kind)s needs a note saying why", decision_kind="false_alarm"
        ),
    )
    return _each_case(
        case_ids,
        lambda case_id: decide(
            engine,
            case_id,
            actor,
            "false_alarm",
            note,
            false_alarm_days=false_alarm_days,
            now=now,
        ),
    )


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
