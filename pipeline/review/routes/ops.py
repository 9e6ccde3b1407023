"""Pipeline health for ops: sources, failed batches, one batch's quarantined rows, and freshness
per point (the page and its JSON)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from pipeline.casework.users import User
from pipeline.review import queries
from pipeline.review.airflow_runs import recent_dag_runs
from pipeline.review.deps import csrf_protect, engine_of, need, page_number, render
from pipeline.review.i18n import TranslatableInputError

router = APIRouter(dependencies=[Depends(csrf_protect)])

# The ops page lists this many silent points; the freshness page and the JSON have them all.
SILENT_ON_OPS_PAGE = 20
# The JSON answers in pages this long (a few thousand points are a few pages).
API_PAGE_SIZE = 1000


@router.get("/ops")
def ops(request: Request, user: User = need("ops.view")):
    engine = engine_of(request)
    return render(
        request,
        "ops.html",
        user=user,
        h=queries.pipeline_health(engine),
        fresh=queries.freshness_view(
            engine, as_of=datetime.now(UTC), only_silent=True, page_size=SILENT_ON_OPS_PAGE
        ),
        scheduler=recent_dag_runs(request.app.state.settings.airflow_db_url),
    )


def _only_silent(value: str | None) -> bool:
    text = (value or "").strip()
    if text not in ("", "0", "1"):
        raise TranslatableInputError("silent=%(value)r is not 0 or 1", value=text[:40])
    return text == "1"


def _freshness(request: Request, silent, min_open_hours, page, **page_size):
    """The freshness view the page and its JSON show, from the same query parameters."""
    return queries.freshness_view(
        engine_of(request),
        as_of=datetime.now(UTC),
        min_open_hours=queries.min_open_hours_param(min_open_hours),
        only_silent=_only_silent(silent),
        page=page_number(page),
        **page_size,
    )


@router.get("/ops/freshness")
def ops_freshness(
    request: Request,
    silent: str | None = None,
    min_open_hours: str | None = None,
    page: str | None = None,
    user: User = need("ops.view"),
):
    view = _freshness(request, silent, min_open_hours, page)
    return render(
        request, "freshness.html", user=user, fresh=view, only_silent=_only_silent(silent)
    )


@router.get("/api/ops/freshness")
def ops_freshness_json(
    request: Request,
    silent: str | None = None,
    min_open_hours: str | None = None,
    page: str | None = None,
    user: User = need("ops.view"),
):
    # Beside /api/dashboard: a signed-in page's JSON (session and rights), not a device API.
    view = _freshness(request, silent, min_open_hours, page, page_size=API_PAGE_SIZE)
    return JSONResponse(queries.freshness_json(view))


@router.get("/ops/batches/{batch_id}")
def ops_batch(
    request: Request, batch_id: int, page: str | None = None, user: User = need("ops.view")
):
    batch, rows, total, pages = queries.batch_quarantine(
        engine_of(request), batch_id, page_number(page)
    )
    return render(
        request,
        "batch.html",
        user=user,
        batch=batch,
        rows=rows,
        total=total,
        page=page_number(page),
        pages=pages,
    )
