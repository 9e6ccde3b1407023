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
from pathlib import Path
from urllib.parse import urlencode

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine

from pipeline.casework import sessions
from pipeline.casework.users import User, get_user
from pipeline.core.leakage_kinds import shortfall_measure
from pipeline.review import formats, i18n
from pipeline.review.i18n import (
    LANG_COOKIE,
    LANGUAGES,
    choose_language,
    current_language,
    translations,
)
from pipeline.review.labels import label
from pipeline.review.queries import page_number

__all__ = ["page_number"]  # re-exported for the routes: one page rule, the queries' own

HERE = Path(__file__).parent
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"


class LoginRequired(Exception):
    """No signed-in user: the browser is sent to the login page."""


class CSRFRefused(Exception):
    """A form arrived without the token of this session."""


# ----------------------------------------------------------------------------- language, filters


def language(request: Request) -> str:
    """The language of this request (``?lang=``, the language cookie, else Indonesian)."""
    return choose_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))


def tr(request: Request, message: str, **params) -> str:
    """``message`` (a msgid with ``%(name)s`` parameters) in the language of ``request``."""
    text = translations(language(request)).gettext(message)
    return text % params if params else text


def _lang() -> str:
    return current_language.get()


def _from_json(text: str | None):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


@functools.cache
def templates() -> Jinja2Templates:
    # One environment per process: templates compile once, however many apps are made (tests).
    # The gettext callables and the filters read the page's language from a context variable
    # that ``render`` sets, so one environment serves every language.
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,
        extensions=[i18n.JINJA_EXTENSIONS],
    )
    environment.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)
    env = Jinja2Templates(env=environment)
    env.env.filters.update(
        {
            "rp": formats.money,
            "rp_short": formats.money_short,
            "num": formats.number,
            "pct": formats.percent,
            "spct": formats.signed_percent,
            "zone": formats.zone_name,
            "local": lambda moment, tz=None, seconds=False: formats.local_datetime(
                moment, tz, _lang(), seconds=seconds
            ),
            "day": lambda day, weekday=False: formats.day_text(day, _lang(), weekday=weekday),
            "span": lambda start, end, tz=None: formats.span_text(start, end, tz, _lang()),
            "label": lambda code: label(code, _lang()),
            "measure": lambda case: shortfall_measure(case.origin, case.kind, case.operators),
            "references": lambda refs, tz=None: formats.reference_lines(refs, tz, _lang()),
            "fromjson": _from_json,
            # A detector or reconciliation reason, a pipeline's trail note: in the page language.
            "reasons": lambda row: formats.reason_lines(
                row.reason_parts, row.reasons, _lang(), getattr(row, "timezone", None)
            ),
            "event_note": lambda event, tz=None: formats.event_note(event, _lang(), tz),
        }
    )
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


def start_session(request: Request, username: str) -> None:
    """Sign ``username`` in: a fresh cookie session (new CSRF token too) naming a new server-side
    session; nothing carried over from before."""
    request.session.clear()
    request.session["sid"] = sessions.start(request.app.state.engine, username)
    csrf_token(request)  # made now, so pages that follow need not re-set the cookie


def end_session(request: Request) -> None:
    """Sign out: the server-side session ends, so a copy of the cookie is worth nothing."""
    sessions.end(request.app.state.engine, request.session.get("sid"))
    request.session.clear()


def _signed_in(request: Request) -> User | None:
    # Checked once per request (the route's dependency and the page's header both ask).
    if not hasattr(request.state, "user"):
        user = None
        token = request.session.get("sid")
        username = sessions.check(request.app.state.engine, token, request.app.state.session_limits)
        if username:
            user = get_user(request.app.state.engine, username)
        elif "sid" in request.session:
            request.session.clear()  # ended or expired: drop its CSRF token and messages too
        request.state.user = user if user is not None and user.active else None
    return request.state.user


def current_user(request: Request) -> User:
    """The signed-in, still active user of a live session (checked on every request, so a
    sign-out, a password reset, a role change or a deactivation bites at once)."""
    user = _signed_in(request)
    if user is None:
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


def flash(request: Request, message: str, kind: str = "ok", **params) -> None:
    """Queue ``message`` (a msgid) for the next page, said in this request's language."""
    request.session.setdefault("flash", []).append([kind, tr(request, message, **params)])


# ----------------------------------------------------------------------------- responses


def render(
    request: Request, template: str, status_code: int = 200, *, error_page: bool = False, **context
) -> HTMLResponse:
    """Render a page with what every page needs: the user, the CSRF token, pending messages,
    and the page's language (``<html lang>``, the switch link, the gettext of its templates).

    An ``error_page`` leaves the session alone (no new token, pending messages stay for the next
    page): its response never sets the cookie, see ``app.py``.
    """
    user = context.pop("user", None) or _signed_in(request)
    if error_page:
        token, messages = request.session.get("csrf", ""), []
    else:
        token = csrf_token(request)
        messages = request.session.pop("flash", []) if "flash" in request.session else []
    lang = language(request)
    other = "en" if lang == "id" else "id"
    # The language link keeps the page's own query (filters, page number) and swaps lang.
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    switch_url = request.url.path + "?" + urlencode([*query, ("lang", other)])
    lang_token = current_language.set(lang)
    try:  # TemplateResponse renders at once, inside this language
        return request.app.state.templates.TemplateResponse(
            request,
            template,
            {
                "user": user,
                "csrf": token,
                "messages": messages,
                "lang": lang,
                "other_lang": other,
                "other_lang_name": LANGUAGES[other],
                "lang_switch_url": switch_url,
                **context,
            },
            status_code=status_code,
        )
    finally:
        current_language.reset(lang_token)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def download(body: bytes, filename: str, media_type: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
