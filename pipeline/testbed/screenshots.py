"""Screenshots of the case page, the phone dashboard and the leaders' pages, from the configured
database.

    eincome demo --no-serve && python -m pipeline.testbed.screenshots [docs/screenshots]

Serves the app on a free 127.0.0.1 port, signs in with the demo logins (created if missing),
opens the open case with the largest estimated shortfall, and saves case.png, queue.png (the
queue searched for that case's point), dashboard.png, realisation.png, cashless.png, trends.png
and alerts.png.
Needs Playwright (dev extra) and Chromium at /usr/bin/chromium (or $EINCOME_CHROMIUM).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import Engine, func, select

from pipeline.core.errors import UnusableInputError
from pipeline.core.settings import Settings
from pipeline.store.schema import cases, hour_aggregates, transactions

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _largest_open_case(engine: Engine, origin: str = "detector") -> int:
    """The open case of ``origin`` with the largest shortfall (shortfalls of one origin measure
    the same thing), preferring one with transactions to show and three weeks of history before
    it (so the chart has its usual band)."""
    with engine.connect() as connection:
        first = connection.execute(select(func.min(hour_aggregates.c.hour_start))).scalar()
        query = (
            select(cases.c.case_id, cases.c.point_id, cases.c.start_at, cases.c.end_at)
            .where(cases.c.status == "open")
            .where(cases.c.origin == origin)
            .order_by(cases.c.shortfall_rp.desc(), cases.c.case_id)
            .limit(20)
        )
        rows = (
            connection.execute(
                query.where(cases.c.start_at >= first + timedelta(weeks=3)) if first else query
            ).all()
            or connection.execute(query).all()
        )
        for row in rows:
            has_sales = connection.execute(
                select(transactions.c.txn_id)
                .where(transactions.c.point_id == row.point_id)
                .where(transactions.c.occurred_at >= row.start_at)
                .where(transactions.c.occurred_at < row.end_at)
                .limit(1)
            ).first()
            if has_sales:
                return row.case_id
    if not rows:
        raise UnusableInputError("no open case in the database; run `eincome demo` first")
    return rows[0].case_id


def _point_of(engine: Engine, case_id: int) -> str:
    with engine.connect() as connection:
        return connection.execute(
            select(cases.c.point_id).where(cases.c.case_id == case_id)
        ).scalar_one()


def take(
    engine: Engine, settings: Settings, out_dir: Path, *, chromium: str = "/usr/bin/chromium"
) -> list[Path]:
    """Save case.png, recon.png (a reconciliation case, when there is one) and dashboard.png of
    this database's app into ``out_dir``."""
    import uvicorn
    from playwright.sync_api import sync_playwright

    from pipeline.casework.users import ensure_demo_users
    from pipeline.review import create_app

    ensure_demo_users(engine)
    case_id = _largest_open_case(engine)
    try:
        recon_id = _largest_open_case(engine, "reconciliation")
    except UnusableInputError:
        recon_id = None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(engine, settings), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            phone = {"width": 390, "height": 844}
            shots = [
                ("case.png", f"/cases/{case_id}", "demo", {"width": 1280, "height": 900}, 1),
                (
                    "queue.png",
                    f"/cases?{urlencode({'q': _point_of(engine, case_id), 'status': ''})}",
                    "demo",
                    {"width": 1280, "height": 900},
                    1,
                ),
                ("dashboard.png", "/dashboard", "leader", phone, 2),
                ("realisation.png", "/realisation", "leader", phone, 2),
                ("cashless.png", "/cashless", "leader", phone, 2),
                ("trends.png", "/trends", "leader", phone, 2),
                ("alerts.png", "/alerts", "supervisor", {"width": 1280, "height": 900}, 1),
            ]
            if recon_id is not None:
                shots.insert(
                    1,
                    ("recon.png", f"/cases/{recon_id}", "demo", {"width": 1280, "height": 900}, 1),
                )
            for name, path, login, viewport, scale in shots:
                context = browser.new_context(viewport=viewport, device_scale_factor=scale)
                page = context.new_page()
                page.goto(base + path)
                page.fill("input[name=username]", login)
                page.fill("input[name=password]", login)
                page.click("button[type=submit]")
                page.wait_for_selector(
                    "canvas, #recon, #realisation, #cashless, #trends, #alert-rules, #queue-search"
                )
                page.wait_for_timeout(300)  # let the charts finish their first paint
                page.screenshot(path=str(out_dir / name), full_page=True)
                saved.append(out_dir / name)
                context.close()
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return saved


def main(argv: list[str]) -> None:
    from pipeline.runtime import runtime_from_env

    out_dir = Path(argv[0]) if argv else Path("docs/screenshots")
    rt = runtime_from_env()
    chromium = os.environ.get("EINCOME_CHROMIUM", "/usr/bin/chromium")
    try:
        saved = take(rt.engine, rt.settings, out_dir, chromium=chromium)
    except UnusableInputError as exc:
        sys.exit(f"error: {exc}")
    for path in saved:
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
