"""User management for supervisors: add people, change roles, (de)activate, passwords."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request

from pipeline.casework import users as users_store
from pipeline.casework.users import ROLES, User
from pipeline.review.deps import csrf_protect, engine_of, flash, need, render, see_other, tr
from pipeline.review.i18n import N_
from pipeline.review.labels import LABELS

router = APIRouter(dependencies=[Depends(csrf_protect)])


@router.get("/users")
def users_page(request: Request, user: User = need("users.manage")):
    return render(
        request,
        "users.html",
        user=user,
        people=users_store.list_users(engine_of(request)),
        roles=ROLES,
        changes=users_store.user_trail(engine_of(request)),
        emails={
            c.username: c.email for c in users_store.contacts(engine_of(request), active_only=False)
        },
    )


@router.post("/users")
def users_add(
    request: Request,
    username: str = Form(""),
    role: str = Form(""),
    password: str = Form(""),
    user: User = need("users.manage"),
):
    added = users_store.add_user(engine_of(request), username, role, password, actor=user.username)
    flash(
        request,
        N_("User %(name)s (%(role)s) added."),
        name=added.username,
        role=tr(request, LABELS[added.role]),
    )
    return see_other("/users")


@router.post("/users/{username}/role")
def users_role(
    request: Request, username: str, role: str = Form(""), user: User = need("users.manage")
):
    users_store.set_role(engine_of(request), username, role, actor=user.username)
    flash(
        request,
        N_("%(name)s is now %(role)s."),
        name=username,
        role=tr(request, LABELS.get(role, role)),
    )
    return see_other("/users")


@router.post("/users/{username}/active")
def users_active(
    request: Request, username: str, active: str = Form(""), user: User = need("users.manage")
):
    users_store.set_active(engine_of(request), username, active == "1", actor=user.username)
    if active == "1":
        flash(request, N_("%(name)s reactivated."), name=username)
    else:
        flash(request, N_("%(name)s deactivated."), name=username)
    return see_other("/users")


@router.post("/users/{username}/email")
def users_email(
    request: Request, username: str, email: str = Form(""), user: User = need("users.manage")
):
    # Where alerts and the daily digest reach the user (pipeline.alerts); empty clears it.
    users_store.set_email(engine_of(request), username, email, actor=user.username)
    if email.strip():
        flash(request, N_("Alerts for %(name)s go to %(email)s."), name=username, email=email)
    else:
        flash(request, N_("%(name)s has no e-mail address now."), name=username)
    return see_other("/users")


@router.post("/users/{username}/password")
def users_password(
    request: Request, username: str, password: str = Form(""), user: User = need("users.manage")
):
    users_store.set_password(engine_of(request), username, password, actor=user.username)
    flash(request, N_("Password of %(name)s changed."), name=username)
    return see_other("/users")
