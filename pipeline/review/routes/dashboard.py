"""The revenue dashboard for leaders: the page and its JSON for the live refresh."""

from __future__ import annotations

from datetime import UTC, date, datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from pipeline.casework.users import User
from pipeline.review import formats, queries
from pipeline.review.deps import csrf_protect, engine_of, language, need, render
from pipeline.review.live import live_texts
from pipeline.review.queries import parse_day_param

router = APIRouter(dependencies=[Depends(csrf_protect)])


def _day(value: str | None) -> date | None:
    return parse_day_param(value, "day")


@router.get("/dashboard")
def dashboard(
    request: Request,
    day: str | None = None,
    refresh: int = 30,
    user: User = need("dashboard.view"),
):
    figures = _with_texts(
        request, queries.dashboard(engine_of(request), now=datetime.now(UTC), day=_day(day))
    )
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
    figures = queries.dashboard(engine_of(request), now=datetime.now(UTC), day=_day(day))
    return JSONResponse(_with_texts(request, figures))


def _with_texts(request: Request, figures: dict) -> dict:
    # The figures stay language-free (tests and scripts read them); the page's sentences ride along.
    lang = language(request)
    texts = {**formats.dashboard_texts(figures, lang), **live_texts(lang, datetime.now(UTC))}
    return {**figures, "text": texts}
