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

from pipeline.casework.users import User, get_user
from pipeline.core.leakage_kinds import shortfall_measure
from pipeline.review import formats, i18n
from pipeline.review.i18n import (
    LANG_COOKIE,
    LANGUAGES,
    TranslatableInputError,
    choose_language,
    current_language,
    translations,
)
from pipeline.review.labels import label

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


def flash(request: Request, message: str, kind: str = "ok", **params) -> None:
    """Queue ``message`` (a msgid) for the next page, said in this request's language."""
    request.session.setdefault("flash", []).append([kind, tr(request, message, **params)])


# ----------------------------------------------------------------------------- responses


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    """Render a page with what every page needs: the user, the CSRF token, pending messages."""
    username = request.session.get("user")
    user = context.pop("user", None) or (
        get_user(request.app.state.engine, username) if username else None
    )
    messages = request.session.pop("flash", []) if "flash" in request.session else []
    lang = language(request)
    other = "en" if lang == "id" else "id"
    # The language link keeps the page's own query (filters, page number) and swaps lang.
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    switch_url = request.url.path + "?" + urlencode([*query, ("lang", other)])
    token = current_language.set(lang)
    try:  # TemplateResponse renders at once, inside this language
        return request.app.state.templates.TemplateResponse(
            request,
            template,
            {
                "user": user,
                "csrf": csrf_token(request),
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
        current_language.reset(token)


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
        raise TranslatableInputError("page=%(value)r is not a page number", value=value)
    return int(value)
