"""The one writer of the ``cases`` table, and the one rule about its rows.

Two producers raise cases: the detector (runs of flagged hours, ``casework.cases``) and
reconciliation (gaps between recorded, declared and deposited money,
``reconciliation.raise_cases``). Both rebuild their open cases on every rerun. People act on
cases through ``casework.audit`` (decide, reopen, assign, note). Every insert, update and delete
of a ``cases`` row goes through a function here, so the rule that keeps a person's work safe from
a rerun is written once:

    A person has acted on a case when it is decided (status other than ``open``), assigned, or
    has anything in its audit trail (``case_events``: a note, an assignment, a decision since
    reopened). Producers never rewrite or delete such a case.

Every ``case_events`` row is written by an auditor's action (``casework.audit``), with one machine
exception: ``clear_case``, which closes an untouched open case that late data disproved (status
``cleared``, actor ``pipeline``) and says why in the trail. A cleared case is no longer open, so
the rule keeps it as well: "has a case event" is still "nobody may rewrite it".

``ACTED_ON`` is the rule as a SQL condition (for queries and as the guard of the producers'
writes); ``acted_on_ids`` is the same rule for a handful of cases already in hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, delete, exists, insert, not_, or_, select, update

from pipeline.core.errors import UnusableInputError
from pipeline.core.phrases import Phrase, dumps
from pipeline.store.schema import case_events, cases

ACTED_ON = or_(
    cases.c.status != "open",
    cases.c.assignee.is_not(None),
    exists().where(case_events.c.case_id == cases.c.case_id),
)


def acted_on_ids(connection: Connection, case_ids: Iterable[int]) -> set[int]:
    """The cases among ``case_ids`` a person has acted on (``ACTED_ON``): never to be rewritten."""
    ids = sorted({int(i) for i in case_ids})
    if not ids:
        return set()
    query = select(cases.c.case_id).where(cases.c.case_id.in_(ids), ACTED_ON)
    return {int(i) for (i,) in connection.execute(query)}


# --- Producers: the detector and reconciliation ---------------------------------------------------


def open_case(connection: Connection, fields: dict, *, now: datetime) -> int:
    """Insert a producer's new open case; return its id."""
    values = {"created_at": now, "updated_at": now, **fields, "status": "open"}
    return connection.execute(insert(cases).values(**values)).inserted_primary_key[0]


def rewrite_case(connection: Connection, case_id: int, fields: dict) -> bool:
    """A producer's new figures for its open case; False (nothing written) if a person has
    acted on it meanwhile."""
    result = connection.execute(
        update(cases).where(cases.c.case_id == case_id, not_(ACTED_ON)).values(**fields)
    )
    return result.rowcount == 1


def drop_cases(connection: Connection, case_ids: Iterable[int]) -> int:
    """Delete a producer's open cases that no longer stand (a gap closed, a run rescored away);
    cases a person has acted on are left. Returns how many went."""
    ids = sorted({int(i) for i in case_ids})
    if not ids:
        return 0
    result = connection.execute(delete(cases).where(cases.c.case_id.in_(ids), not_(ACTED_ON)))
    return result.rowcount


def clear_case(
    connection: Connection,
    case_id: int,
    *,
    reason: str,
    actor: str,
    now: datetime,
    parts: list[Phrase] | None = None,
) -> bool:
    """Close a producer's open case that no longer holds (late sales disproved its flags): status
    ``cleared`` and one trail entry by ``actor`` (a system name such as "pipeline") with
    ``reason`` (and its phrases, ``parts``, for the reader's language). False, and nothing
    written, if a person has acted on it meanwhile."""
    result = connection.execute(
        update(cases)
        .where(cases.c.case_id == case_id, not_(ACTED_ON))
        .values(status="cleared", updated_at=now)
    )
    if result.rowcount != 1:
        return False
    connection.execute(
        insert(case_events).values(
            case_id=case_id,
            at=now,
            actor=actor,
            action="clear",
            before=json.dumps({"assignee": None, "status": "open"}, sort_keys=True),
            after=json.dumps({"assignee": None, "status": "cleared"}, sort_keys=True),
            note=reason,
            note_parts=dumps(parts) if parts else None,
        )
    )
    return True


# --- People: the audit workflow -------------------------------------------------------------------


def change_state(connection: Connection, row, now: datetime, **values) -> None:
    """An auditor's change to a case's workflow columns (status, assignee, and the follow-up's
    due day and recovered rupiah), made only if nobody changed the case since ``row`` was read
    (two auditors, one case)."""
    same_assignee = (
        cases.c.assignee.is_(None) if row.assignee is None else cases.c.assignee == row.assignee
    )
    result = connection.execute(
        update(cases)
        .where(cases.c.case_id == row.case_id)
        .where(cases.c.status == row.status)
        .where(same_assignee)
        .values(updated_at=now, **values)
    )
    if result.rowcount != 1:
        raise UnusableInputError.said(
            "case %(case)s was changed by someone else meanwhile; reload it and try again",
            case=row.case_id,
        )


__all__ = [
    "ACTED_ON",
    "acted_on_ids",
    "change_state",
    "clear_case",
    "drop_cases",
    "open_case",
    "rewrite_case",
]
