"""The quarantine worklist for ops: quarantined rows across batches with filters, their CSV, and
releasing them once the cause is fixed (``pipeline.intake.quarantine`` does the work)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from pipeline.casework.users import User
from pipeline.intake.quarantine import (
    export_quarantine_csv,
    list_quarantine,
    recent_releases,
    release_quarantine,
    row_state,
)
from pipeline.review import queries
from pipeline.review.deps import (
    CSV,
    csrf_protect,
    current_user,
    download,
    engine_of,
    flash,
    need,
    render,
    see_other,
)
from pipeline.review.i18n import N_, TranslatableInputError

router = APIRouter(dependencies=[Depends(csrf_protect)])


@router.get("/ops/quarantine")
def quarantine_list(request: Request, user: User = need("ops.view")):
    params = queries.QuarantineParams.from_params(request.query_params)
    engine = engine_of(request)
    found = list_quarantine(engine, params.to_filter(), params.page)
    return render(
        request,
        "quarantine.html",
        user=user,
        flt=params,
        found=found,
        state_of=row_state,
        releases=recent_releases(engine),
        may_release=user.can("quarantine.release"),
    )


@router.get("/ops/quarantine/export.csv")
def quarantine_export(request: Request, user: User = need("ops.view")):
    params = queries.QuarantineParams.from_params(request.query_params)
    body, _ = export_quarantine_csv(engine_of(request), params.to_filter())
    return download(body, "quarantine.csv", CSV)


@router.post("/ops/quarantine/release")
async def quarantine_release(request: Request, user: User = Depends(current_user)):
    user.require("quarantine.release")
    form = await request.form()
    params = queries.QuarantineParams.from_params(form)
    if params.state != "open":
        raise TranslatableInputError("only open rows can be released")
    ids = queries.release_ids([str(v) for v in form.getlist("id")])
    scope = str(form.get("scope") or "")
    if scope not in ("selected", "matching"):
        raise TranslatableInputError(
            "scope %(value)r is not one of selected, matching", value=scope[:40]
        )
    if scope == "selected" and not ids:
        raise TranslatableInputError("no rows selected")
    settings = request.app.state.settings
    # The release runs the ingest (Great Expectations included): off the event loop.
    result = await run_in_threadpool(
        release_quarantine,
        engine_of(request),
        params.to_filter(ids=ids if scope == "selected" else ()),
        actor=user.username,
        naive_times_in_point_zone=form.get("naive_zone") == "1",
        future_tolerance=timedelta(minutes=settings.future_tolerance_minutes),
        earliest=settings.earliest_time,
        now=datetime.now(UTC),
    )
    if result.release_id is None:
        flash(request, N_("No open rows to release: nothing was changed."), kind="error")
    else:
        summary = result.summary()
        flash(request, summary.msgid, **summary.params)
    return see_other("/ops/quarantine?" + params.query_string(page=1))
