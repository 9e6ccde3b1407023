"""What every route of the review app shares: the signed-in user and the rights check, the CSRF
guard, flash messages, page rendering and the template filters, and small response helpers.

Routers (``pipeline.review.routes.*``) import this module; nothing here imports a router or
``app.py``, so imports flow one way: app -> routes -> deps -> pipeline.
"""

from __future__ import annotations

import functools
import hmac
import json
import secrets
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine

from pipeline.casework.audit import STATUS_LABELS
from pipeline.casework.users import User, get_user
from pipeline.core.errors import UnusableInputError
from pipeline.core.money import rupiah, rupiah_short
from pipeline.core.times import DEFAULT_TIMEZONE

HERE = Path(__file__).parent
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"


class LoginRequired(Exception):
    """No signed-in user: the browser is sent to the login page."""


class CSRFRefused(Exception):
    """A form arrived without the token of this session."""


# ----------------------------------------------------------------------------- template filters


def local_time(
    moment: datetime | None, tz_name: str | None = None, fmt: str = "%Y-%m-%d %H:%M"
) -> str:
    if moment is None:
        return "–"
    return moment.astimezone(ZoneInfo(tz_name or DEFAULT_TIMEZONE)).strftime(fmt)


def _from_json(text: str | None):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


@functools.cache
def templates() -> Jinja2Templates:
    # One environment per process: templates compile once, however many apps are made (tests).
    env = Jinja2Templates(directory=str(HERE / "templates"))
    env.env.filters["rp"] = rupiah
    env.env.filters["rp_short"] = rupiah_short
    env.env.filters["local"] = local_time
    env.env.filters["fromjson"] = _from_json
    return env


# ----------------------------------------------------------------------------- session and user


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def csrf_protect(request: Request) -> None:
    """Router dependency: every POST must carry this session's token in the form."""
    if request.method != "POST":
        return
    form = await request.form()
    sent = str(form.get("csrf_token") or "")
    expected = request.session.get("csrf") or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CSRFRefused()


def current_user(request: Request) -> User:
    """The signed-in, still active user (re-read each request so a deactivation bites at once)."""
    username = request.session.get("user")
    user = get_user(request.app.state.engine, username) if username else None
    if user is None or not user.active:
        raise LoginRequired()
    return user


def need(right: str):
    """Dependency: the signed-in user, who must hold ``right`` (else a 403 page)."""

    def dependency(request: Request) -> User:
        user = current_user(request)
        user.require(right)
        return user

    return Depends(dependency)


def engine_of(request: Request) -> Engine:
    return request.app.state.engine


def flash(request: Request, message: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", []).append([kind, message])


# ----------------------------------------------------------------------------- responses


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    """Render a page with what every page needs: the user, the CSRF token, pending messages."""
    username = request.session.get("user")
    user = context.pop("user", None) or (
        get_user(request.app.state.engine, username) if username else None
    )
    messages = request.session.pop("flash", []) if "flash" in request.session else []
    return request.app.state.templates.TemplateResponse(
        request,
        template,
        {
            "user": user,
            "csrf": csrf_token(request),
            "messages": messages,
            "status_labels": STATUS_LABELS,
            **context,
        },
        status_code=status_code,
    )


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def download(body: bytes, filename: str, media_type: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def page_number(value: str | None) -> int:
    """The ``page`` query parameter: absent means 1; anything but a positive integer is refused."""
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise UnusableInputError(f"page={value!r} is not a page number")
    return int(value)
