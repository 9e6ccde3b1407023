"""The dashboard's live stream: server-sent events with every figure when sales or cases change."""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from pipeline.casework.users import User
from pipeline.review import queries
from pipeline.review.deps import engine_of, language, need
from pipeline.review.live import HEARTBEAT, STREAM_SECONDS, TokenWatch, dashboard_event

router = APIRouter()


def _watch(request: Request) -> TokenWatch:
    app = request.app
    if getattr(app.state, "token_watch", None) is None:
        app.state.token_watch = TokenWatch(engine_of(request))
    return app.state.token_watch


@router.get("/api/dashboard/events")
async def dashboard_events(
    request: Request,
    day: str | None = None,
    refresh: int = int(HEARTBEAT),
    user: User = need("dashboard.view"),
):
    # The figures are sent again at least every ``refresh`` seconds (the page's own setting).
    every = min(max(refresh, 2), HEARTBEAT)
    engine, lang, watch = engine_of(request), language(request), _watch(request)
    chosen_day = queries.parse_day_param(day, "day")

    async def events():
        since_case = await asyncio.to_thread(queries.latest_case_id, engine)
        sent_token, beat, ends = None, time.monotonic(), time.monotonic() + STREAM_SECONDS
        yield "retry: 2000\n\n"
        while time.monotonic() < ends and not await request.is_disconnected():
            token = await watch.token()
            # Unchanged figures are sent again now and then: "as of" then moves on, truthfully.
            if token != sent_token or time.monotonic() - beat >= every:
                event = await asyncio.to_thread(
                    dashboard_event, engine, lang, chosen_day, since_case
                )
                since_case = max([since_case] + [c["case_id"] for c in event["new_cases"]])
                sent_token, beat = token, time.monotonic()
                yield f"event: dashboard\ndata: {json.dumps(event, default=str)}\n\n"
            await asyncio.sleep(0.25)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
