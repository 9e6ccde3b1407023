"""The push API for devices and vendors: ``POST /api/v1/transactions`` and its OpenAPI text.

JSON in, JSON out, an API key instead of a session, no CSRF (no cookie is involved). Every
refusal is a 4xx with ``{"error": ...}``; the logic lives in ``pipeline.intake.push``.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pipeline.intake.push import (
    ApiKey,
    KeyRefused,
    PushRefused,
    PushService,
    answer_of,
    authenticate_key,
)
from pipeline.review.push_openapi import push_openapi

router = APIRouter(prefix="/api/v1")


def _service(request: Request) -> PushService:
    return request.app.state.push


def _refusal(status: int, message: str, *, retry_after: float | None = None) -> JSONResponse:
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="eincome push"'
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after + 0.49)))
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _presented(request: Request) -> str | None:
    presented = request.headers.get("x-api-key")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        presented = token
    return presented


async def _key(request: Request) -> ApiKey:
    service = _service(request)
    return await asyncio.to_thread(authenticate_key, service.engine, _presented(request))


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    too_big = PushRefused(413, f"the body is over {limit:,} bytes; send fewer rows per request")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise too_big
        parts.append(part)
    return b"".join(parts)


@router.post("/transactions")
async def push_transactions(request: Request):
    service = _service(request)
    # The body first (bounded by the limit), then one hop to a thread for everything that
    # touches the database: the key, the rate, the checks and the inbox row in one transaction.
    body, too_big = None, None
    try:
        body = await _body(request, service.limits.max_body_bytes)
    except PushRefused as exc:
        too_big = exc
    try:
        receipt = await asyncio.to_thread(
            service.receive,
            _presented(request),
            body,
            request.headers.get("content-type"),
            request.headers.get("idempotency-key"),
            refused=too_big,
        )
    except KeyRefused as exc:
        return _refusal(401, str(exc))
    except PushRefused as exc:  # recorded by receive
        return _refusal(exc.status, str(exc), retry_after=exc.retry_after)
    if "respond-async" in request.headers.get("prefer", "").lower():
        status, answer = answer_of(receipt.row, replayed=not receipt.new)
    else:
        status, answer = await service.wait_answer(receipt)
    return JSONResponse(answer, status_code=status)


@router.get("/transactions/requests/{request_id:path}")
async def push_request_status(request: Request, request_id: str):
    try:
        key = await _key(request)
    except KeyRefused as exc:
        return _refusal(401, str(exc))
    row = await asyncio.to_thread(_service(request).lookup, key, request_id)
    if row is None:
        return _refusal(404, f"key {key.prefix} sent no request {request_id!r}")
    status, answer = answer_of(row, replayed=True)
    return JSONResponse(answer, status_code=status)


@router.get("/openapi.json")
def openapi_description():
    return JSONResponse(push_openapi())
