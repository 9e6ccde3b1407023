"""Signing in and out, and the home page that sends each role to its first page."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Form, Request
from starlette.concurrency import run_in_threadpool

from pipeline.casework import users as users_store
from pipeline.review.deps import (
    csrf_protect,
    current_user,
    end_session,
    engine_of,
    render,
    see_other,
    start_session,
    tr,
)

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
async def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
):
    # Async so that waiting out a throttle delay holds no worker thread; the password check
    # (argon2, ~50 ms of CPU) and the database run in the thread pool.
    throttle = request.app.state.login_throttle
    address = request.client.host if request.client else "unknown"
    wait = await run_in_threadpool(throttle.delay, address, username, datetime.now(UTC))
    if wait:
        if not throttle.enter(address):
            response = render(
                request,
                "login.html",
                429,
                next=_safe_next(next),
                error=tr(request, "Too many attempts at once; try again in a few seconds."),
                username=username,
            )
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        try:
            await asyncio.sleep(wait)
        finally:
            throttle.leave(address)
    user = await run_in_threadpool(users_store.authenticate, engine_of(request), username, password)
    if user is None:
        await run_in_threadpool(throttle.failed, address, username, datetime.now(UTC))
        return render(
            request,
            "login.html",
            401,
            next=_safe_next(next),
            error=tr(request, "Wrong username or password."),
            username=username,
        )
    await run_in_threadpool(throttle.succeeded, username)
    await run_in_threadpool(start_session, request, user.username)
    return see_other(_safe_next(next))


@router.post("/logout")
def logout(request: Request):
    end_session(request)
    return see_other("/login")


@router.get("/")
def home(request: Request):
    user = current_user(request)
    if user.can("cases.view"):
        return see_other("/cases")
    if user.can("ops.view"):
        return see_other("/ops")
    return see_other("/dashboard")
