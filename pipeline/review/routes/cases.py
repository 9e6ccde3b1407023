"""The case queue, one case, the decisions on it, and their CSV/XLSX exports."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse

from pipeline.casework import attachments, audit
from pipeline.casework.users import User
from pipeline.review import exports, queries
from pipeline.review.deps import (
    CSV,
    XLSX,
    csrf_protect,
    download,
    engine_of,
    flash,
    language,
    need,
    page_number,
    render,
    see_other,
    tr,
)
from pipeline.review.formats import zone_name
from pipeline.review.i18n import N_, TranslatableInputError

router = APIRouter(dependencies=[Depends(csrf_protect)])
QUEUE_MEMORY = "queue"  # session key: the queue's last filter, for "back" and "next case"


@router.get("/cases")
def case_queue(request: Request, user: User = need("cases.view")):
    engine = engine_of(request)
    flt = queries.QueueFilter.from_params(request.query_params)
    if request.session.get(QUEUE_MEMORY) != flt.query_string():
        request.session[QUEUE_MEMORY] = flt.query_string()
    return render(
        request,
        "queue.html",
        user=user,
        flt=flt,
        queue=queries.case_queue(engine, flt),
        choices=queries.filter_choices(engine),
        workers=queries.case_workers(engine),
        today=queries.local_today(),
    )


def remembered_queue(request: Request) -> queries.QueueFilter:
    """The queue filter this session last used (the working queue if none, or if it no longer
    reads: a filter value that has gone since)."""
    try:
        return queries.QueueFilter.from_params(
            dict(parse_qsl(request.session.get(QUEUE_MEMORY, ""), keep_blank_values=True))
        )
    except TranslatableInputError:
        return queries.QueueFilter()


@router.get("/cases/points.json")
def point_suggestions(request: Request, q: str = "", user: User = need("cases.view")):
    # Before /cases/{case_id}: the point filter's type-ahead, twenty matches at a time.
    return JSONResponse({"points": queries.point_suggestions(engine_of(request), q)})


def queue_download(request: Request, user: User, rows, fmt: str, what: str):
    """A CSV or XLSX of queue ``rows``, recorded as an export of those cases by ``user``."""
    if fmt not in ("csv", "xlsx"):
        raise TranslatableInputError("export format %(fmt)r is not csv or xlsx", fmt=fmt)
    engine = engine_of(request)
    table = exports.queue_table(
        rows, queries.latest_decisions(engine, [r.case_id for r in rows]), language(request)
    )
    audit.record_export(engine, user, what, fmt, [r.case_id for r in rows], len(rows))
    name = tr(request, "cases") + "-" + _local_stamp()
    if fmt == "csv":
        return download(exports.to_csv(table), f"{name}.csv", CSV)
    return download(exports.to_xlsx({tr(request, "Cases"): table}), f"{name}.xlsx", XLSX)


@router.get("/cases/export.{fmt}")
def case_queue_export(request: Request, fmt: str, user: User = need("cases.export")):
    flt = queries.QueueFilter.from_params(request.query_params)
    if fmt not in ("csv", "xlsx"):
        raise TranslatableInputError("export format %(fmt)r is not csv or xlsx", fmt=fmt)
    rows = queries.queue_rows_for_export(engine_of(request), flt)
    return queue_download(request, user, rows, fmt, "queue")


def _local_stamp() -> str:
    # File names in the regency's time, as the pages show it, with the zone named.
    zone = queries.region_tz()
    return datetime.now(UTC).astimezone(zone).strftime("%Y%m%d-%H%M") + "-" + zone_name(str(zone))


def _casepage_number(request: Request, user: User, case_id: int, page: int):
    engine = engine_of(request)
    case = queries.get_case(engine, case_id)
    recon = queries.reconciliation_view(case)
    only = queries.TransactionFilter.from_params(request.query_params)
    queue = remembered_queue(request)
    return render(
        request,
        "case.html",
        user=user,
        case=case,
        recon=recon,
        chart=None if recon else queries.case_chart(engine, case),
        breakdown=None if recon else queries.case_breakdown(engine, case),
        band_weeks=queries.BAND_WEEKS,
        txns=queries.case_transactions(engine, case, page, only=only),
        only=only,
        txn_statuses=queries.TXN_STATUSES,
        payment_methods=queries.PAYMENT_METHODS,
        no_operator=queries.NO_OPERATOR,
        history=queries.case_history(engine, case),
        evidence=attachments.attachments_of(engine, case_id),
        evidence_types=", ".join(e.upper() for e in attachments.EXTENSIONS),
        evidence_max_mb=request.app.state.settings.attachment_max_mb,
        queue_query=queue.query_string(),
        next_case_id=queries.next_case_id(engine, queue, case_id),
        today=queries.local_today(),
        trail=audit.trail(engine, case_id),
        workers=queries.case_workers(engine),
        decisions=audit.DECISIONS,
        decidable=case.status in audit.DECIDABLE,
        decidable_statuses=audit.DECIDABLE,
    )


@router.get("/cases/{case_id}")
def casepage_number(
    request: Request, case_id: int, page: str | None = None, user: User = need("cases.view")
):
    return _casepage_number(request, user, case_id, page_number(page))


@router.get("/cases/{case_id}/report")
def case_report(request: Request, case_id: int, user: User = need("cases.view")):
    """The case as a printable inspection report (berita acara pemeriksaan)."""
    engine = engine_of(request)
    case = queries.get_case(engine, case_id)
    recon = queries.reconciliation_view(case)
    chart = None if recon else queries.case_chart(engine, case)
    return render(
        request,
        "report.html",
        user=user,
        case=case,
        recon=recon,
        chart=queries.report_chart(chart) if chart else None,
        breakdown=None if recon else queries.case_breakdown(engine, case),
        txns=queries.case_transactions(engine, case, 1, page_size=1),
        decision=queries.latest_decisions(engine, [case_id]).get(case_id),
        trail=audit.trail(engine, case_id),
        evidence=attachments.attachments_of(engine, case_id),
        printed_at=datetime.now(UTC),
        report_number=f"BAP/{case_id}/{datetime.now(UTC).astimezone(queries.region_tz()).year}",
    )


@router.post("/cases/{case_id}/decide")
def case_decide(
    request: Request,
    case_id: int,
    decision: str = Form(""),
    note: str = Form(""),
    then: str = Form(""),
    user: User = need("cases.decide"),
):
    audit.decide(
        engine_of(request),
        case_id,
        user,
        decision,
        note,
        false_alarm_days=request.app.state.settings.false_alarm_days,
    )
    flash(
        request,
        N_("Case %(case_id)s: %(decision)s recorded."),
        case_id=case_id,
        decision=tr(request, audit.DECISIONS[decision]),
    )
    if then == "next":  # "record and open the next case" of the queue this session works
        following = queries.next_case_id(engine_of(request), remembered_queue(request), case_id)
        return see_other(f"/cases/{following}" if following else "/cases?" + _queue_back(request))
    return see_other(f"/cases/{case_id}")


def _queue_back(request: Request) -> str:
    return request.session.get(QUEUE_MEMORY, "")


@router.post("/cases/{case_id}/reopen")
def case_reopen(
    request: Request, case_id: int, note: str = Form(""), user: User = need("cases.reopen")
):
    audit.reopen(engine_of(request), case_id, user, note)
    flash(request, N_("Case %(case_id)s reopened."), case_id=case_id)
    return see_other(f"/cases/{case_id}")


@router.post("/cases/{case_id}/assign")
def case_assign(
    request: Request,
    case_id: int,
    assignee: str = Form(""),
    note: str = Form(""),
    user: User = need("cases.assign"),
):
    audit.assign(engine_of(request), case_id, user, assignee, note)
    if assignee:
        flash(request, N_("Case %(case_id)s assigned to %(who)s."), case_id=case_id, who=assignee)
    else:
        flash(request, N_("Case %(case_id)s assigned to nobody."), case_id=case_id)
    return see_other(f"/cases/{case_id}")


@router.post("/cases/{case_id}/note")
def case_note(
    request: Request, case_id: int, note: str = Form(""), user: User = need("cases.decide")
):
    audit.add_note(engine_of(request), case_id, user, note)
    flash(request, N_("Note added to case %(case_id)s."), case_id=case_id)
    return see_other(f"/cases/{case_id}")


@router.get("/cases/{case_id}/export.{fmt}")
def case_export(request: Request, case_id: int, fmt: str, user: User = need("cases.export")):
    engine = engine_of(request)
    case = queries.get_case(engine, case_id)
    if fmt not in ("csv", "xlsx"):
        raise TranslatableInputError("export format %(fmt)r is not csv or xlsx", fmt=fmt)
    audit.record_export(engine, user, "case", fmt, [case_id], 1)
    recon = queries.reconciliation_view(case)
    sheets = exports.case_sheets(
        case,
        None if recon else queries.case_breakdown(engine, case),
        recon,
        queries.case_transactions_for_export(engine, case),
        audit.trail(engine, case_id),
        language(request),
    )
    name = tr(request, "case") + f"-{case_id}-{_local_stamp()}"
    if fmt == "csv":
        return download(exports.sheets_to_csv(sheets), f"{name}.csv", CSV)
    if fmt == "xlsx":
        return download(exports.to_xlsx(sheets), f"{name}.xlsx", XLSX)
    raise TranslatableInputError("export format %(fmt)r is not csv or xlsx", fmt=fmt)
