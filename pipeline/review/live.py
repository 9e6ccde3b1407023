"""The live dashboard: one watcher per server process reads the change token (at most twice a
second, however many dashboards are open) and wakes the open event streams when it moves.

Why server-sent events: one long GET per open dashboard, through the same session cookie and
any proxy that passes HTTP; a script falls back to a short poll where a proxy cuts it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from sqlalchemy import Engine

from pipeline.review import formats, queries
from pipeline.review.i18n import translations
from pipeline.review.labels import label

TOKEN_EVERY = 0.5  # seconds between two reads of the token
HEARTBEAT = 30.0  # seconds: figures are sent at least this often (and keep proxies open)
STREAM_SECONDS = (
    300.0  # a stream ends after this; the browser reconnects, and the session is checked again
)


class TokenWatch:
    """The latest change token of one process, read at most every ``TOKEN_EVERY`` seconds."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._token: tuple | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> tuple:
        async with self._lock:
            if self._token is None or time.monotonic() - self._read_at >= TOKEN_EVERY:
                self._token = await asyncio.to_thread(queries.live_token, self.engine)
                self._read_at = time.monotonic()
            return self._token


def live_texts(lang: str, now: datetime) -> dict:
    """The "as of HH:MM:SS" line of the live dashboard, in the region's time and ``lang``."""
    _ = translations(lang).gettext
    clock = now.astimezone(queries.region_tz()).strftime("%H:%M:%S")
    if lang == "id":
        clock = clock.replace(":", ".")  # Indonesian writes times 13.05.09
    return {"live_as_of": _("as of %(time)s") % {"time": clock}}


def dashboard_event(engine: Engine, lang: str, day, since_case: int) -> dict:
    """What one push to an open dashboard carries: every figure, its sentences, new cases."""
    now = datetime.now(UTC)
    figures = queries.dashboard(engine, now=now, day=day)
    texts = {**formats.dashboard_texts(figures, lang), **live_texts(lang, now)}
    new_cases = [
        {**case, "kind_label": label(case["kind"], lang)}
        for case in queries.cases_after(engine, since_case)
    ]
    return {**figures, "text": texts, "new_cases": new_cases}
