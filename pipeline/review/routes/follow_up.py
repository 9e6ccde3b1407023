"""Following a case up (its due day, the money recovered) and acting on many cases at once from
the queue (assign, decide as false alarm, export the selection)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request

from pipeline.casework import audit
from pipeline.casework.users import User
from pipeline.core.money import typed_rupiah
from pipeline.review import queries
from pipeline.review.deps import csrf_protect, current_user, engine_of, flash, need, see_other
from pipeline.review.i18n import N_, TranslatableInputError
from pipeline.review.routes.cases import QUEUE_MEMORY, queue_download

router = APIRouter(dependencies=[Depends(csrf_protect)])
BULK_ACTIONS = {"assign": "cases.assign", "false_alarm": "cases.decide", "export": "cases.export"}


def parse_rupiah(text: str) -> int:
    """Whole rupiah as a person types it (``core.money.typed_rupiah``), else a 400 naming it."""
    value = typed_rupiah(text)
    if value is None:
        raise TranslatableInputError(
            "amount %(value)r is not whole rupiah (e.g. 1.500.000)", value=text[:40]
        )
    return value


@router.post("/cases/{case_id}/due")
def case_due(
    request: Request,
    case_id: int,
    due_on: str = Form(""),
    note: str = Form(""),
    user: User = need("cases.assign"),
):
    day = queries.parse_day_param(due_on.strip() or None, "due_on")
    audit.set_due(engine_of(request), case_id, user, day, note)
    if day:
        flash(request, N_("Case %(case_id)s is due on %(day)s."), case_id=case_id, day=day)
    else:
        flash(request, N_("Case %(case_id)s has no due day now."), case_id=case_id)
    return see_other(f"/cases/{case_id}")


@router.post("/cases/{case_id}/recovered")
def case_recovered(
    request: Request,
    case_id: int,
    recovered: str = Form(""),
    note: str = Form(""),
    user: User = need("cases.decide"),
):
    rupiah = parse_rupiah(recovered)
    audit.record_recovery(engine_of(request), case_id, user, rupiah, note)
    flash(request, N_("Case %(case_id)s: money recovered recorded."), case_id=case_id)
    return see_other(f"/cases/{case_id}")


def _selected(form) -> list[int]:
    ids = []
    for value in form.getlist("case_id"):
        if not str(value).isdigit() or len(str(value)) > 12:
            raise TranslatableInputError("case number %(value)r is not a number", value=value)
        ids.append(int(value))
    if not ids:
        raise TranslatableInputError("no cases selected")
    return ids


@router.post("/cases/bulk")
async def case_bulk(request: Request, user: User = Depends(current_user)):
    form = await request.form()
    action = str(form.get("action") or "")
    if action not in BULK_ACTIONS:
        raise TranslatableInputError(
            "action %(value)r is not one of %(allowed)s",
            value=action[:40],
            allowed=", ".join(BULK_ACTIONS),
        )
    user.require(BULK_ACTIONS[action])
    ids = _selected(form)
    engine = engine_of(request)
    if action == "export":
        rows = queries.queue_rows_for_export(engine, queries.QueueFilter(), case_ids=ids)
        return queue_download(request, user, rows, str(form.get("fmt") or "csv"), "selection")
    note = str(form.get("note") or "")
    if action == "assign":
        due = queries.parse_day_param(str(form.get("due_on") or "").strip() or None, "due_on")
        result = audit.bulk_assign(
            engine, ids, user, str(form.get("assignee") or ""), note, due_on=due
        )
    else:
        if not note.strip():
            raise TranslatableInputError("a false alarm needs a note saying why")
        result = audit.bulk_false_alarm(
            engine,
            ids,
            user,
            note,
            false_alarm_days=request.app.state.settings.false_alarm_days,
        )
    flash(request, N_("%(n)s cases changed."), n=len(result.done))
    if result.refused:
        flash(
            request,
            N_("%(n)s cases left as they were (changed meanwhile or not possible): %(ids)s"),
            kind="error",
            n=len(result.refused),
            ids=", ".join(f"#{i}" for i in sorted(result.refused)),
        )
    return see_other("/cases?" + request.session.get(QUEUE_MEMORY, ""))
