"""Pipeline health for ops: sources, failed batches, one batch's quarantined rows."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from pipeline.casework.users import User
from pipeline.review import queries
from pipeline.review.airflow_runs import recent_dag_runs
from pipeline.review.deps import csrf_protect, engine_of, need, page_number, render

router = APIRouter(dependencies=[Depends(csrf_protect)])


@router.get("/ops")
def ops(request: Request, user: User = need("ops.view")):
    return render(
        request,
        "ops.html",
        user=user,
        h=queries.pipeline_health(engine_of(request)),
        scheduler=recent_dag_runs(request.app.state.settings.airflow_db_url),
    )


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
