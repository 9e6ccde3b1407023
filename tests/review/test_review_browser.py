"""The review app in a real headless Chromium: sign in, read a case's chart, decide it, and read
the dashboard on a phone-sized screen.

Set EINCOME_SCREENSHOTS=docs/screenshots to save the case page and the dashboard as PNGs.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from pipeline.casework.users import ensure_demo_users
from pipeline.core.money import rupiah
from pipeline.core.settings import Settings
from pipeline.review import create_app
from pipeline.store import connect
from tests.helpers.review_seed import seed
from tests.helpers.services import service_missing

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("EINCOME_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app on a seeded SQLite database, served by uvicorn on 127.0.0.1 in a thread."""
    import uvicorn

    engine = connect(f"sqlite:///{tmp_path_factory.mktemp('review') / 'eincome.db'}")
    world = seed(engine)
    ensure_demo_users(engine)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(engine, Settings(secret_key="browser-test")),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", world
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        service_missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _watch_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    return errors


def _sign_in(page, base: str, path: str, username: str, password: str) -> None:
    page.goto(base + path)
    assert "/login" in page.url, "an anonymous visitor must land on the login page"
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("load")


def _screenshot(page, name: str) -> None:
    folder = os.environ.get("EINCOME_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_auditor_reads_the_chart_and_decides_a_case(served, browser):
    base, world = served
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = _watch_errors(page)
    _sign_in(page, base, f"/cases/{world.case_id}", "demo", "demo")
    assert page.url.endswith(f"/cases/{world.case_id}")

    page.wait_for_selector("#case-chart canvas")
    drawn = page.evaluate(
        """() => {
          const holder = document.getElementById('case-chart');
          const canvas = holder.querySelector('canvas');
          const context = canvas.getContext('2d');
          const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
          let inked = 0;
          for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) inked++;
          return {points: Number(holder.dataset.points), flagged: Number(holder.dataset.flagged),
                  width: canvas.width, inked: inked};
        }"""
    )
    assert drawn["width"] > 300
    assert drawn["points"] > 100, drawn  # six days of hours
    assert drawn["flagged"] == 3, drawn  # 14:00, 15:00, 16:00
    assert drawn["inked"] > 5000, "the chart canvas is blank"
    assert "Rp 412.000" in page.inner_text(".facts")
    assert "op-7" in page.inner_text("#txns")

    page.check("input[name=decision][value=confirmed]")
    page.fill("#decide-form textarea[name=note]", "Voids by op-7 match the missing tickets")
    page.click("#decide-form button[type=submit]")
    page.wait_for_load_state("load")
    assert page.inner_text("#case-status") == "confirmed leakage"
    trail = page.inner_text("#audit-trail tbody")
    assert "demo" in trail and "decide" in trail and "Voids by op-7" in trail
    assert page.locator("#decide-form").count() == 0, "a decided case offers no decide form"
    _screenshot(page, "case.png")
    assert errors == []
    context.close()


def test_leader_dashboard_fits_a_phone_and_refreshes(served, browser):
    base, world = served
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    errors = _watch_errors(page)
    _sign_in(page, base, "/dashboard?refresh=2", "leader", "leader")
    assert "/dashboard" in page.url
    page.wait_for_selector("#chart-minute canvas")
    page.wait_for_selector("#chart-hour canvas")

    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
    # No data "today" in the seeded world: the latest full day is shown, and the page says so.
    assert world.day.isoformat() in page.inner_text("#d-day")
    assert page.inner_text("#d-today").replace("\u00a0", " ") == rupiah(world.day_total_rp)
    assert page.inner_text("#d-open") == "2"  # the seeded open cases (one was decided just now)
    assert "Kota" in page.inner_text("#t-district") and "parking" in page.inner_text("#t-type")
    assert page.locator("nav >> text=Cases").count() == 0, "a viewer gets no case queue"

    first = page.get_attribute("#dashboard", "data-updated")
    page.wait_for_function(
        f"() => document.getElementById('dashboard').dataset.updated !== '{first}'", timeout=8000
    )
    _screenshot(page, "dashboard.png")
    assert errors == []
    context.close()


def test_sign_out_ends_a_copied_cookie(served, browser):
    base, _ = served
    mine = browser.new_context()
    page = mine.new_page()
    _sign_in(page, base, "/cases", "supervisor", "supervisor")
    assert page.url.endswith("/cases")
    copied = browser.new_context()
    copied.add_cookies(mine.cookies())
    thief = copied.new_page()
    thief.goto(base + "/cases")
    assert thief.url.endswith("/cases"), "the copy works while the session lives"

    page.click("form.logout button[type=submit]")
    page.wait_for_load_state("load")
    assert "/login" in page.url
    thief.goto(base + "/cases")
    assert "/login" in thief.url, "a cookie copied before sign-out must not work after it"
    assert thief.locator("input[name=password]").count() == 1
    mine.close()
    copied.close()


def test_a_strangers_wrong_passwords_do_not_lock_out_the_user(served, browser):
    # Last in the module: the failures slow this address (127.0.0.1) for a while afterwards.
    base, _ = served
    stranger = browser.new_context()
    page = stranger.new_page()
    for _ in range(5):
        page.goto(base + "/login")
        page.fill("input[name=username]", "DEMO")
        page.fill("input[name=password]", "a wrong guess")
        page.click("button[type=submit]")
        page.wait_for_load_state("load")
        assert "Wrong username or password" in page.inner_text("main")
    stranger.close()

    user = browser.new_context()
    page = user.new_page()
    started = time.monotonic()
    _sign_in(page, base, "/cases", "demo", "demo")
    assert page.url.endswith("/cases"), "the right password is taken, only a little later"
    assert time.monotonic() - started < 6  # one capped delay (4 s) at most
    user.close()
