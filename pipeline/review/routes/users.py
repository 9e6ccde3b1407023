"""User management for supervisors: add people, change roles, (de)activate, passwords."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request

from pipeline.casework import users as users_store
from pipeline.casework.users import ROLES, User
from pipeline.review.deps import csrf_protect, engine_of, flash, need, render, see_other

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
    flash(request, f"User {added.username} ({added.role}) added.")
    return see_other("/users")


@router.post("/users/{username}/role")
def users_role(
    request: Request, username: str, role: str = Form(""), user: User = need("users.manage")
):
    users_store.set_role(engine_of(request), username, role, actor=user.username)
    flash(request, f"{username} is now {role}.")
    return see_other("/users")


@router.post("/users/{username}/active")
def users_active(
    request: Request, username: str, active: str = Form(""), user: User = need("users.manage")
):
    users_store.set_active(engine_of(request), username, active == "1", actor=user.username)
    flash(request, f"{username} {'reactivated' if active == '1' else 'deactivated'}.")
    return see_other("/users")


@router.post("/users/{username}/password")
def users_password(
    request: Request, username: str, password: str = Form(""), user: User = need("users.manage")
):
    users_store.set_password(engine_of(request), username, password, actor=user.username)
    flash(request, f"Password of {username} changed.")
    return see_other("/users")
