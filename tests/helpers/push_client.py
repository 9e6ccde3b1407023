"""Serving the app on 127.0.0.1 in a thread, and pushing rows to it as a device would."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx

from pipeline.core.settings import Settings
from pipeline.review import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(engine, settings: Settings):
    """The review app (and its push writer) served by uvicorn; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(engine, settings), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def sale(txn_id: str, point_id: str, amount=5000, *, when: datetime | None = None, **extra) -> dict:
    """One feed row, rung up now (or ``when``)."""
    when = when or datetime.now(UTC)
    return {
        "txn_id": txn_id,
        "point_id": point_id,
        "occurred_at": when.isoformat(timespec="seconds"),
        "amount": amount,
        "payment_method": "cash",
        "status": "paid",
        **extra,
    }


def push(base: str, key: str | None, rows=None, *, content=None, headers=None, timeout=60.0):
    """POST rows (a JSON array) or raw ``content`` to the push endpoint."""
    sent = {"Content-Type": "application/json"}
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    sent.update(headers or {})
    if content is None:
        return httpx.post(f"{base}/api/v1/transactions", json=rows, headers=sent, timeout=timeout)
    return httpx.post(f"{base}/api/v1/transactions", content=content, headers=sent, timeout=timeout)
