"""Signing in and out, and the home page that sends each role to its first page."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Form, Request

from pipeline.casework import users as users_store
from pipeline.review.deps import csrf_protect, current_user, engine_of, render, see_other

router = APIRouter(dependencies=[Depends(csrf_protect)])


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would make the login page a phishing tool.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login")
def login_form(request: Request, next: str | None = None):
    return render(request, "login.html", next=_safe_next(next), error="")


@router.post("/login")
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
):
    throttle = request.app.state.login_throttle
    now = datetime.now(UTC)
    if throttle.locked(username, now):
        return render(
            request,
            "login.html",
            429,
            next=_safe_next(next),
            error="Too many wrong passwords for this user; wait 15 minutes and try again.",
            username=username,
        )
    user = users_store.authenticate(engine_of(request), username, password)
    if user is None:
        throttle.failed(username, now)
        return render(
            request,
            "login.html",
            401,
            next=_safe_next(next),
            error="Wrong username or password.",
            username=username,
        )
    throttle.succeeded(username)
    # A fresh session on sign-in (new CSRF token too): nothing carried over from before.
    request.session.clear()
    request.session["user"] = user.username
    return see_other(_safe_next(next))


@router.post("/logout")
def logout(request: Request):
    request.session.clear()
    return see_other("/login")


@router.get("/")
def home(request: Request):
    user = current_user(request)
    if user.can("cases.view"):
        return see_other("/cases")
    if user.can("ops.view"):
        return see_other("/ops")
    return see_other("/dashboard")
