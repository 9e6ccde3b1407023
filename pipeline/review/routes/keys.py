"""API keys for pushing devices and vendors: supervisors issue and revoke them."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request

from pipeline.casework.users import User
from pipeline.intake import push
from pipeline.intake.push import inbox
from pipeline.review.deps import csrf_protect, engine_of, flash, need, render, see_other
from pipeline.review.i18n import N_

router = APIRouter(dependencies=[Depends(csrf_protect)])


def _page(request: Request, user: User, issued: push.IssuedKey | None = None):
    engine = engine_of(request)
    return render(
        request,
        "keys.html",
        user=user,
        keys=push.list_keys(engine),
        use=inbox.key_use(engine),
        issued=issued,
    )


@router.get("/keys")
def keys_page(request: Request, user: User = need("keys.manage")):
    return _page(request, user)


@router.post("/keys")
def keys_issue(
    request: Request,
    label: str = Form(""),
    points: str = Form(""),
    user: User = need("keys.manage"),
):
    # The secret is shown on this one page and never again (only its hash is kept): no redirect.
    point_ids = points.replace(",", " ").split()
    issued = push.issue_key(engine_of(request), label, point_ids, actor=user.username)
    return _page(request, user, issued)


@router.post("/keys/{prefix}/revoke")
def keys_revoke(request: Request, prefix: str, user: User = need("keys.manage")):
    key = push.revoke_key(engine_of(request), prefix, actor=user.username)
    flash(request, N_("Key %(prefix)s (%(label)s) revoked."), prefix=key.prefix, label=key.label)
    return see_other("/keys")
