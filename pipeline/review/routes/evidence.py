"""Evidence files on a case: upload (size- and type-checked) and download (never inline)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from pipeline.casework import attachments, audit
from pipeline.casework.users import User
from pipeline.review.deps import csrf_protect, engine_of, flash, need, see_other
from pipeline.review.i18n import N_, TranslatableInputError

router = APIRouter(dependencies=[Depends(csrf_protect)])
FORM_SLACK = 64 * 1024  # the form's other fields and multipart framing around the file


def _max_bytes(request: Request) -> int:
    return request.app.state.settings.attachment_max_mb * 1024 * 1024


@router.post("/cases/{case_id}/attachments")
async def case_attach(request: Request, case_id: int, user: User = need("cases.decide")):
    limit = _max_bytes(request)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + FORM_SLACK:
        raise TranslatableInputError(
            "the file is larger than %(mb)s MB", mb=request.app.state.settings.attachment_max_mb
        )
    form = await request.form()
    upload = form.get("file")
    if upload is None or not hasattr(upload, "read"):
        raise TranslatableInputError("choose a file to attach")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise TranslatableInputError(
            "the file is larger than %(mb)s MB", mb=request.app.state.settings.attachment_max_mb
        )
    name = attachments.safe_filename(upload.filename or "")
    if not data or attachments.kind_of(data, name) is None:
        raise TranslatableInputError(
            "%(name)s is not a JPEG or PNG photo or a PDF (by its content and its name)", name=name
        )
    attachments.add_attachment(
        engine_of(request),
        request.app.state.settings.home,
        case_id,
        user,
        name,
        data,
        str(form.get("note") or ""),
        max_bytes=limit,
    )
    flash(request, N_("%(name)s attached to case %(case_id)s."), name=name, case_id=case_id)
    return see_other(f"/cases/{case_id}#evidence")


@router.get("/cases/{case_id}/attachments/{attachment_id}")
def case_attachment(
    request: Request, case_id: int, attachment_id: int, user: User = need("cases.view")
):
    engine = engine_of(request)
    row, data = attachments.open_attachment(
        engine, request.app.state.settings.home, case_id, attachment_id
    )
    audit.record_export(engine, user, "attachment", row.stored_as.rsplit(".", 1)[-1], [case_id], 1)
    return Response(
        data,
        media_type=row.media_type,
        headers={
            # Always a download, never shown in the app's own origin; and should a browser
            # open it anyway, it runs in a sandbox with nothing allowed.
            "Content-Disposition": f'attachment; filename="{row.filename}"',
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )
