"""The review app factory: sessions, CSRF, templates, error pages. Routes live in ``routes.py``."""

from __future__ import annotations

import functools
import hmac
import json
import logging
import secrets
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from pipeline.casework.audit import STATUS_LABELS
from pipeline.casework.users import LoginThrottle, NotAllowed, User, get_user
from pipeline.core.errors import UnusableInputError
from pipeline.core.settings import Settings
from pipeline.core.times import DEFAULT_TIMEZONE

HERE = Path(__file__).parent
SESSION_COOKIE = "eincome_session"
SESSION_HOURS = 10  # one working day
log = logging.getLogger("eincome.review")


class LoginRequired(Exception):
    """No signed-in user: the browser is sent to the login page."""


class CSRFRefused(Exception):
    """A form arrived without the token of this session."""


def rupiah(value) -> str:
    """1234567 -> 'Rp 1.234.567' (Indonesian thousands separator)."""
    if value is None:
        return "–"
    sign = "-" if value < 0 else ""
    return f"{sign}Rp {abs(int(value)):,}".replace(",", ".")


def rupiah_short(value) -> str:
    """Compact rupiah for narrow tables: 12194000 -> 'Rp 12,2 jt' (juta), 850000 -> 'Rp 850 rb'."""
    if value is None:
        return "–"
    for size, unit in ((1e12, "T"), (1e9, "M"), (1e6, "jt"), (1e3, "rb")):
        if abs(value) >= size:
            return f"Rp {value / size:.1f} {unit}".replace(".", ",").replace(",0 ", " ")
    return rupiah(value)


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


def flash(request: Request, message: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", []).append([kind, message])


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


def _error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    try:
        return render(request, "error.html", status_code, title=title, message=message)
    except Exception:  # the error page itself must never fail into a stack trace
        log.exception("error page failed")
        return HTMLResponse(f"<h1>{status_code}</h1>", status_code=status_code)


def _install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(NotAllowed)
    async def not_allowed(request: Request, exc: NotAllowed):
        return _error_page(request, 403, "Not allowed", str(exc))

    @app.exception_handler(CSRFRefused)
    async def csrf_refused(request: Request, exc: CSRFRefused):
        return _error_page(
            request,
            403,
            "Form refused",
            "This form is missing its security token or comes from an old session. "
            "Go back, reload the page and submit again.",
        )

    @app.exception_handler(UnusableInputError)
    async def unusable(request: Request, exc: UnusableInputError):
        return _error_page(request, 400, "Cannot do that", str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
            for e in exc.errors()
        )
        return _error_page(request, 400, "Cannot do that", f"the request is not usable: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        titles = {404: "Not found", 405: "Not allowed here"}
        return _error_page(
            request, exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error_page(
            request,
            500,
            "Something went wrong",
            "The server could not finish this request. It has been logged; "
            "please tell the operations team what you were doing.",
        )


@functools.cache
def _templates() -> Jinja2Templates:
    # One environment per process: templates compile once, however many apps are made (tests).
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["rp"] = rupiah
    templates.env.filters["rp_short"] = rupiah_short
    templates.env.filters["local"] = local_time
    templates.env.filters["fromjson"] = _from_json
    return templates


def create_app(engine: Engine, settings: Settings) -> FastAPI:
    """The review web app on ``engine`` (the composition root makes and migrates it)."""
    from pipeline.review.routes import router

    app = FastAPI(title="eincome review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.state.settings = settings
    app.state.templates = _templates()
    app.state.login_throttle = LoginThrottle()

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if request.url.path != "/static" and not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    # An empty key means a random one per start: everyone signs in again after a restart.
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key or secrets.token_urlsafe(32),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_HOURS * 3600,
        same_site="lax",
        https_only=bool(settings.secure_cookies),  # on when served behind TLS
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(router)
    _install_error_pages(app)
    return app


def serve(engine: Engine, settings: Settings, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app with uvicorn until interrupted (for `eincome serve` and `eincome demo`)."""
    import uvicorn

    uvicorn.run(create_app(engine, settings), host=host, port=port, log_level="info")
