"""The review app factory: sessions, security headers, error pages, and the routers.

Routers live in ``routes/`` (one per area) and share ``deps.py``; nothing imports this module
back but the entry points (``pipeline.review.serve``/``create_app``).
"""

from __future__ import annotations

import logging
import secrets
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from pipeline.casework.sessions import SessionLimits
from pipeline.casework.throttle import LoginThrottle
from pipeline.casework.users import NotAllowed
from pipeline.core.errors import NotFoundError, UnusableInputError
from pipeline.core.settings import Settings
from pipeline.intake.push import PushLimits, PushService
from pipeline.review import formats
from pipeline.review.deps import (
    HERE,
    CSRFRefused,
    LoginRequired,
    language,
    render,
    templates,
    tr,
)
from pipeline.review.i18n import (
    LANG_COOKIE,
    LANG_COOKIE_DAYS,
    LANGUAGES,
    N_,
    TranslatableInputError,
    TranslatableNotFound,
)
from pipeline.review.routes import ROUTERS

SESSION_COOKIE = "eincome_session"
log = logging.getLogger("eincome.review")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    try:
        response = render(
            request, "error.html", status_code, error_page=True, title=title, message=message
        )
    except Exception:  # the error page itself must never fail into a stack trace
        log.exception("error page failed")
        response = HTMLResponse(f"<h1>{status_code}</h1>", status_code=status_code)
    # A 500 is answered outside the middleware stack: it gets the headers here.
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    return response


class NoCookieOnErrors:
    """Drops the session cookie from every 4xx/5xx response.

    A cross-site POST arrives without the cookie (SameSite=lax); its refusal page would otherwise
    set a fresh anonymous session over the real one and sign the user out. No error page has a
    session change worth keeping.
    """

    def __init__(self, app, cookie: str):
        self.app = app
        self.prefix = f"{cookie}=".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_without_cookie(message):
            if message["type"] == "http.response.start" and message["status"] >= 400:
                message["headers"] = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if not (name.lower() == b"set-cookie" and value.startswith(self.prefix))
                ]
            await send(message)

        await self.app(scope, receive, send_without_cookie)


# The two layers below are plain ASGI, not ``@app.middleware("http")``: Starlette's
# BaseHTTPMiddleware runs every request through a task group and memory streams, about a
# quarter of a millisecond of CPU each - on two cores, at a thousand push requests a second,
# that was a third of the budget.


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response that does not bring its own (an evidence file's
    sandbox is stricter) and ``Cache-Control: no-store`` to all but the static files."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        static = path == "/static" or path.startswith("/static/")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if not static:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RememberLanguage:
    """``?lang=`` switches the language; the cookie keeps the choice for the next pages."""

    def __init__(self, app, *, secure: bool):
        self.app = app
        self.secure = secure

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or b"lang=" not in scope.get("query_string", b""):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        chosen = request.query_params.get("lang")
        if chosen not in LANGUAGES or chosen == request.cookies.get(LANG_COOKIE):
            await self.app(scope, receive, send)
            return
        holder = Response()  # formats the cookie exactly as a response's set_cookie does
        holder.set_cookie(
            LANG_COOKIE,
            chosen,
            max_age=LANG_COOKIE_DAYS * 86400,
            samesite="lax",
            secure=self.secure,
            httponly=True,
        )
        cookie = holder.headers["set-cookie"]

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _said(request: Request, exc: Exception) -> str:
    # The app's own refusals carry a msgid; a domain message is looked up whole (a fixed
    # sentence may be in the catalog) and otherwise shown as the domain wrote it.
    if isinstance(exc, TranslatableInputError | TranslatableNotFound):
        return exc.translated(language(request))
    if getattr(exc, "phrase", None) is not None:  # a refusal the domain phrased
        return formats.phrase_text(exc.phrase, language(request))
    return tr(request, str(exc))


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
        return _error_page(request, 403, tr(request, "Not allowed"), _said(request, exc))

    @app.exception_handler(CSRFRefused)
    async def csrf_refused(request: Request, exc: CSRFRefused):
        return _error_page(
            request,
            403,
            tr(request, "Form refused"),
            tr(
                request,
                "This form is missing its security token or comes from an old session. "
                "Go back, reload the page and submit again.",
            ),
        )

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError):
        return _error_page(request, 404, tr(request, "Not found"), _said(request, exc))

    @app.exception_handler(UnusableInputError)
    async def unusable(request: Request, exc: UnusableInputError):
        return _error_page(request, 400, tr(request, "Cannot do that"), _said(request, exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
            for e in exc.errors()
        )
        return _error_page(
            request,
            400,
            tr(request, "Cannot do that"),
            tr(request, "the request is not usable: %(problems)s", problems=problems),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith("/api/v1/"):  # devices read JSON, not pages
            return JSONResponse(
                {"error": str(exc.detail), "status": exc.status_code}, status_code=exc.status_code
            )
        titles = {404: N_("Not found"), 405: N_("Not allowed here")}
        details = {
            404: N_("There is no page at this address."),
            405: N_("This address does not take this kind of request."),
        }
        detail = details.get(exc.status_code, str(exc.detail))
        return _error_page(
            request,
            exc.status_code,
            tr(request, titles.get(exc.status_code, N_("Error"))),
            tr(request, detail),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error_page(
            request,
            500,
            tr(request, "Something went wrong"),
            tr(
                request,
                "The server could not finish this request. It has been logged; "
                "please tell the operations team what you were doing.",
            ),
        )


def push_service(engine: Engine, settings: Settings) -> PushService:
    """The push API's service (its writer runs while the app is served)."""
    limits = PushLimits(
        max_body_bytes=settings.push_max_body_bytes,
        max_rows=settings.push_max_rows,
        rate_per_second=settings.push_rate,
        burst=settings.push_burst,
        answer_wait_seconds=settings.push_wait_seconds,
    )
    return PushService(
        engine,
        limits,
        future_tolerance=timedelta(minutes=settings.future_tolerance_minutes),
        earliest=settings.earliest_time,
    )


@asynccontextmanager
async def _lifespan(app: FastAPI):
    if app.state.push_writer:
        app.state.push.start()
    try:
        yield
    finally:
        app.state.push.stop()


def create_app(engine: Engine, settings: Settings, *, push_writer: bool = True) -> FastAPI:
    """The review web app on ``engine`` (the composition root makes and migrates it).

    ``push_writer``: ingest pushed requests on a thread of this process; `eincome serve` runs the
    writer as a process of its own instead (``False`` here)."""
    app = FastAPI(
        title="eincome review", docs_url=None, redoc_url=None, openapi_url=None, lifespan=_lifespan
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.push = push_service(engine, settings)
    app.state.push_writer = push_writer
    app.state.templates = templates()
    app.state.login_throttle = LoginThrottle(engine)
    app.state.session_limits = SessionLimits.of(
        idle_minutes=settings.session_idle_minutes, hours=settings.session_hours
    )

    app.add_middleware(RememberLanguage, secure=bool(settings.secure_cookies))
    app.add_middleware(SecurityHeaders)

    # An empty key means a random one per start: everyone signs in again after a restart.
    # The cookie only names a server-side session (``casework.sessions``), which enforces the
    # idle and absolute limits; its own max-age is the absolute one, a backstop.
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key or secrets.token_urlsafe(32),
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_hours * 3600,
        same_site="lax",
        https_only=bool(settings.secure_cookies),  # on when served behind TLS
    )
    app.add_middleware(NoCookieOnErrors, cookie=SESSION_COOKIE)  # outside the session layer
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for router in ROUTERS:
        app.include_router(router)
    _install_error_pages(app)
    return app


def serve(
    engine: Engine,
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    push_writer: bool = True,
) -> None:
    """Run the app with uvicorn until interrupted (for `eincome serve` and `eincome demo`)."""
    import uvicorn

    app = create_app(engine, settings, push_writer=push_writer)
    uvicorn.run(app, host=host, port=port, log_level="info")
