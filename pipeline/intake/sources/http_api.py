"""HTTP API source: pages of JSON transactions after a ``since`` cursor (payment gateway, tapping box).

Protocol (configurable names): ``GET url?since=<cursor>&limit=<n>`` with ``Authorization:
Bearer <token>`` returns ``{"items": [...], "next_cursor": "..."}``; an empty page or a missing
next cursor means "caught up". The cursor of the next page is stored in ``source_watermarks``
only after the page is stored, so a crash or a failing server is resumed from the last stored
page: a page is at worst fetched twice, and the ingest's dedupe on point_id+txn_id keeps it once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from sqlalchemy import Engine

from pipeline.core.errors import UnusableInputError
from pipeline.intake.sources.config import FEED_COLUMNS, HttpSource
from pipeline.intake.sources.errors import SourceUnavailableError
from pipeline.intake.sources.watermarks import get_watermark, set_watermark

RETRY_STATUSES = {429, 500, 502, 503, 504}


def fetch_page(
    client: httpx.Client,
    config: HttpSource,
    params: dict[str, str | int],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """One page, retried with exponential backoff on 5xx, 429, timeouts and dropped connections."""
    last_problem = ""
    for attempt in range(1, config.max_attempts + 1):
        try:
            response = client.get(config.url, params=params)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            last_problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code in (401, 403):
                raise UnusableInputError(
                    f"source {config.name}: {config.url} answered {response.status_code} "
                    f"{response.reason_phrase}; check its token"
                    + (f" ({config.token.describe()})" if config.token else " (none is configured)")
                )
            if response.status_code in RETRY_STATUSES:
                last_problem = f"HTTP {response.status_code} {response.reason_phrase}"
            elif response.is_error:
                raise UnusableInputError(
                    f"source {config.name}: {config.url} answered {response.status_code} "
                    f"{response.reason_phrase} to {dict(params)}: {response.text[:200]}"
                )
            else:
                try:
                    body = response.json()
                except ValueError:
                    raise UnusableInputError(
                        f"source {config.name}: {config.url} did not return JSON: {response.text[:200]!r}"
                    ) from None
                if not isinstance(body, dict) or not isinstance(body.get(config.items_key), list):
                    raise UnusableInputError(
                        f"source {config.name}: response has no '{config.items_key}' list "
                        f"(keys: {', '.join(body) if isinstance(body, dict) else type(body).__name__})"
                    )
                return body
        if attempt < config.max_attempts:
            sleep(config.backoff_seconds * 2 ** (attempt - 1))
    raise SourceUnavailableError(
        f"source {config.name}: {config.url} failed {config.max_attempts} times; last: {last_problem}"
    )


def page_frame(config: HttpSource, items: list[dict]):
    """The page's items renamed to feed columns (``fields`` maps feed column -> API field)."""
    import pandas as pd

    rows = []
    for item in items:
        item = item if isinstance(item, dict) else {}  # a non-object item: every field missing
        # API field names as configured, matched ignoring case and surrounding spaces.
        item = {str(k).strip().lower(): v for k, v in item.items()}
        rows.append({c: item.get(config.fields.get(c, c).strip().lower()) for c in FEED_COLUMNS})
    # object: values stay what the API sent. Inferred, a numeric id column with a null in it
    # became float64, and its ids were stored as "900000.0" and the null as "nan".
    return pd.DataFrame(rows, columns=list(FEED_COLUMNS), dtype=object)


def _went_back(cursor: str, next_cursor: str, seen: set[str]) -> bool:
    """True when the next cursor is one already followed, or a smaller number."""
    if next_cursor in seen:
        return True
    try:
        return int(next_cursor) < int(cursor)
    except ValueError:
        return False


def pull_http(
    engine: Engine,
    config: HttpSource,
    *,
    token: str | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list:
    """Fetch pages from the stored cursor until caught up (or ``max_pages``); returns BatchResults."""
    from pipeline.intake.ingest import ingest_frame

    source = f"api:{config.name}"
    cursor = get_watermark(engine, source)
    if cursor is None:
        cursor = config.start_cursor
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    results = []
    seen = {cursor}
    with httpx.Client(
        headers=headers, timeout=config.timeout_seconds, transport=transport
    ) as client:
        for _ in range(config.max_pages):
            params: dict[str, str | int] = {config.limit_param: config.page_size}
            if cursor:
                params[config.since_param] = cursor
            body = fetch_page(client, config, params, sleep=sleep)
            items = body[config.items_key]
            next_cursor = str(body.get(config.next_cursor_key) or "")
            if items:
                results.append(
                    ingest_frame(
                        engine,
                        page_frame(config, items),
                        source=source,
                        source_ref=f"{config.url}?{config.since_param}={cursor}",
                    )
                )
            if not next_cursor or next_cursor == cursor:
                break
            if _went_back(cursor, next_cursor, seen):
                raise UnusableInputError(
                    f"source {config.name}: {config.url} answered cursor {cursor!r} with next "
                    f"cursor {next_cursor!r}, which goes backwards; stopped (the pages before are "
                    f"stored, the watermark stays at {cursor!r})"
                )
            seen.add(next_cursor)
            # Only now, with the page stored, does the source move on.
            cursor = next_cursor
            set_watermark(engine, source, cursor)
            if not items:
                break
    return results
