"""Every route of the review app, in one place. Each parses its input, calls one function in
``pipeline`` (queries, audit, users, exports) and renders or redirects."""

from __future__ import annotations

from datetime import UTC, date, datetime

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from pipeline.casework import audit
from pipeline.casework import users as users_store
from pipeline.casework.users import ROLES, User
from pipeline.core.errors import UnusableInputError
from pipeline.review import exports, queries
from pipeline.review.app import csrf_protect, current_user, flash, render

router = APIRouter(dependencies=[Depends(csrf_protect)])


def need(right: str):
    """Dependency: the signed-in user, who must hold ``right`` (else a 403 page)."""

    def dependency(request: Request) -> User:
        user = current_user(request)
        user.require(right)
        return user

    return Depends(dependency)


def _engine(request: Request):
    return request.app.state.engine


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would make the login page a phishing tool.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _page(value: str | None) -> int:
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise UnusableInputError(f"page={value!r} is not a page number")
    return int(value)


def _download(body: bytes, filename: str, media_type: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"

# ----------------------------------------------------------------------------- sign in / out


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
    user = users_store.authenticate(_engine(request), username, password)
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
    return _see_other(_safe_next(next))


@router.post("/logout")
def logout(request: Request):
    request.session.clear()
    return _see_other("/login")


@router.get("/")
def home(request: Request):
    user = current_user(request)
    if user.can("cases.view"):
        return _see_other("/cases")
    if user.can("ops.view"):
        return _see_other("/ops")
    return _see_other("/dashboard")


# ----------------------------------------------------------------------------- cases


@router.get("/cases")
def case_queue(request: Request, user: User = need("cases.view")):
    flt = queries.QueueFilter.from_params(request.query_params)
    return render(
        request,
        "queue.html",
        user=user,
        flt=flt,
        queue=queries.case_queue(_engine(request), flt),
        choices=queries.filter_choices(_engine(request)),
    )


@router.get("/cases/export.{fmt}")
def case_queue_export(request: Request, fmt: str, user: User = need("cases.export")):
    flt = queries.QueueFilter.from_params(request.query_params)
    table = exports.queue_table(queries.queue_rows_for_export(_engine(request), flt))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    if fmt == "csv":
        return _download(exports.to_csv(table), f"cases-{stamp}.csv", CSV)
    if fmt == "xlsx":
        return _download(exports.to_xlsx({"Cases": table}), f"cases-{stamp}.xlsx", XLSX)
    raise UnusableInputError(f"export format {fmt!r} is not csv or xlsx")


def _case_page(request: Request, user: User, case_id: int, page: int):
    engine = _engine(request)
    case = queries.get_case(engine, case_id)
    chart = queries.case_chart(engine, case)
    hours = queries.case_hours(engine, case, chart)
    return render(
        request,
        "case.html",
        user=user,
        case=case,
        chart=chart,
        hours=hours,
        days=queries.case_days(hours, case.timezone) if len(hours) > 24 else None,
        txns=queries.case_transactions(engine, case, page),
        trail=audit.trail(engine, case_id),
        workers=queries.case_workers(engine),
        decisions=audit.DECISIONS,
        decidable=case.status in audit.DECIDABLE,
    )


@router.get("/cases/{case_id}")
def case_page(
    request: Request, case_id: int, page: str | None = None, user: User = need("cases.view")
):
    return _case_page(request, user, case_id, _page(page))


@router.post("/cases/{case_id}/decide")
def case_decide(
    request: Request,
    case_id: int,
    decision: str = Form(""),
    note: str = Form(""),
    user: User = need("cases.decide"),
):
    audit.decide(
        _engine(request),
        case_id,
        user,
        decision,
        note,
        false_alarm_days=request.app.state.settings.false_alarm_days,
    )
    flash(request, f"Case {case_id}: {audit.DECISIONS[decision]} recorded.")
    return _see_other(f"/cases/{case_id}")


@router.post("/cases/{case_id}/reopen")
def case_reopen(
    request: Request, case_id: int, note: str = Form(""), user: User = need("cases.reopen")
):
    audit.reopen(_engine(request), case_id, user, note)
    flash(request, f"Case {case_id} reopened.")
    return _see_other(f"/cases/{case_id}")


@router.post("/cases/{case_id}/assign")
def case_assign(
    request: Request,
    case_id: int,
    assignee: str = Form(""),
    note: str = Form(""),
    user: User = need("cases.assign"),
):
    audit.assign(_engine(request), case_id, user, assignee, note)
    flash(request, f"Case {case_id} assigned to {assignee or 'nobody'}.")
    return _see_other(f"/cases/{case_id}")


@router.post("/cases/{case_id}/note")
def case_note(
    request: Request, case_id: int, note: str = Form(""), user: User = need("cases.decide")
):
    audit.add_note(_engine(request), case_id, user, note)
    flash(request, f"Note added to case {case_id}.")
    return _see_other(f"/cases/{case_id}")


@router.get("/cases/{case_id}/export.{fmt}")
def case_export(request: Request, case_id: int, fmt: str, user: User = need("cases.export")):
    engine = _engine(request)
    case = queries.get_case(engine, case_id)
    sheets = exports.case_sheets(
        case,
        queries.case_hours(engine, case, queries.case_chart(engine, case)),
        queries.case_transactions_for_export(engine, case),
        audit.trail(engine, case_id),
    )
    if fmt == "csv":
        return _download(exports.sheets_to_csv(sheets), f"case-{case_id}.csv", CSV)
    if fmt == "xlsx":
        return _download(exports.to_xlsx(sheets), f"case-{case_id}.xlsx", XLSX)
    raise UnusableInputError(f"export format {fmt!r} is not csv or xlsx")


# ----------------------------------------------------------------------------- dashboard


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UnusableInputError(f"day={value!r} is not a date (YYYY-MM-DD)") from None


@router.get("/dashboard")
def dashboard(
    request: Request,
    day: str | None = None,
    refresh: int = 30,
    user: User = need("dashboard.view"),
):
    figures = queries.dashboard(_engine(request), now=datetime.now(UTC), day=_day(day))
    return render(
        request,
        "dashboard.html",
        user=user,
        d=figures,
        day_param=day or "",
        refresh_ms=1000 * min(max(refresh, 2), 3600),
    )


@router.get("/api/dashboard")
def dashboard_json(request: Request, day: str | None = None, user: User = need("dashboard.view")):
    return JSONResponse(queries.dashboard(_engine(request), now=datetime.now(UTC), day=_day(day)))


# ----------------------------------------------------------------------------- ops


@router.get("/ops")
def ops(request: Request, user: User = need("ops.view")):
    return render(request, "ops.html", user=user, h=queries.pipeline_health(_engine(request)))


@router.get("/ops/batches/{batch_id}")
def ops_batch(
    request: Request, batch_id: int, page: str | None = None, user: User = need("ops.view")
):
    batch, rows, total, pages = queries.batch_quarantine(_engine(request), batch_id, _page(page))
    return render(
        request,
        "batch.html",
        user=user,
        batch=batch,
        rows=rows,
        total=total,
        page=_page(page),
        pages=pages,
    )


# ----------------------------------------------------------------------------- users


@router.get("/users")
def users_page(request: Request, user: User = need("users.manage")):
    return render(
        request,
        "users.html",
        user=user,
        people=users_store.list_users(_engine(request)),
        roles=ROLES,
    )


@router.post("/users")
def users_add(
    request: Request,
    username: str = Form(""),
    role: str = Form(""),
    password: str = Form(""),
    user: User = need("users.manage"),
):
    added = users_store.add_user(_engine(request), username, role, password)
    flash(request, f"User {added.username} ({added.role}) added.")
    return _see_other("/users")


@router.post("/users/{username}/role")
def users_role(
    request: Request, username: str, role: str = Form(""), user: User = need("users.manage")
):
    if username == user.username:
        raise UnusableInputError("you cannot change your own role; ask another supervisor")
    users_store.set_role(_engine(request), username, role)
    flash(request, f"{username} is now {role}.")
    return _see_other("/users")


@router.post("/users/{username}/active")
def users_active(
    request: Request, username: str, active: str = Form(""), user: User = need("users.manage")
):
    if username == user.username:
        raise UnusableInputError("you cannot deactivate yourself")
    users_store.set_active(_engine(request), username, active == "1")
    flash(request, f"{username} {'reactivated' if active == '1' else 'deactivated'}.")
    return _see_other("/users")


@router.post("/users/{username}/password")
def users_password(
    request: Request, username: str, password: str = Form(""), user: User = need("users.manage")
):
    users_store.set_password(_engine(request), username, password)
    flash(request, f"Password of {username} changed.")
    return _see_other("/users")
