"""The revenue dashboard for leaders: the page and its JSON for the live refresh."""

from __future__ import annotations

from datetime import UTC, date, datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from pipeline.casework.users import User
from pipeline.core.times import parse_day
from pipeline.review import queries
from pipeline.review.deps import csrf_protect, engine_of, need, render

router = APIRouter(dependencies=[Depends(csrf_protect)])


def _day(value: str | None) -> date | None:
    return parse_day(value, "day")


@router.get("/dashboard")
def dashboard(
    request: Request,
    day: str | None = None,
    refresh: int = 30,
    user: User = need("dashboard.view"),
):
    figures = queries.dashboard(engine_of(request), now=datetime.now(UTC), day=_day(day))
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
    return JSONResponse(queries.dashboard(engine_of(request), now=datetime.now(UTC), day=_day(day)))
