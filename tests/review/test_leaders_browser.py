"""The leaders' pages in a real headless Chromium on a phone-sized screen: the realisation
against target fits the phone and reads the Indonesian way; a supervisor sets a target from the
phone and sees it counted; the cashless progress draws a bar per week as wide as its share; a
tap on a district in the trends opens its points.

Set EINCOME_SCREENSHOTS=docs/screenshots to save the pages as PNGs.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from pipeline.casework.users import ensure_demo_users
from pipeline.core.settings import Settings
from pipeline.reference.targets import load_targets
from pipeline.review import create_app
from pipeline.store import connect
from tests.helpers.browser import sign_in
from tests.helpers.review_seed import seed
from tests.review.test_review_leaders import TODAY, plant_drop, vary_cash

pytestmark = pytest.mark.browser
PHONE = dict(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
             has_touch=True)  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app on a seeded SQLite database with targets, served by uvicorn on 127.0.0.1."""
    import uvicorn

    folder = tmp_path_factory.mktemp("leaders")
    engine = connect(f"sqlite:///{folder / 'eincome.db'}")
    seed(engine, today=TODAY)
    ensure_demo_users(engine)
    targets = folder / "targets.csv"
    targets.write_text(
        "year,revenue_type,district,target_rp\n2026,parking,,1.200.000.000\n"
        "2026,market,Utara,900000000\n2026,market,Kota,100000000\n2026,hotel_tax,,450000000\n"
    )
    load_targets(engine, targets, actor="test")
    vary_cash(engine)
    plant_drop(engine)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(engine, Settings(secret_key="leaders-browser")),
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
    yield f"http://127.0.0.1:{port}", engine
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


def _phone_page(browser):
    context = browser.new_context(**PHONE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return context, page, errors


def _sideways(page) -> int:
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def _screenshot(page, name: str) -> None:
    folder = os.environ.get("EINCOME_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_a_leader_reads_the_realisation_on_a_phone(served, chromium_browser):
    base, _ = served
    context, page, errors = _phone_page(chromium_browser)
    sign_in(page, base, "/realisation", "leader", "leader")
    assert page.url.endswith("/realisation")
    assert _sideways(page) <= 0, "the page scrolls sideways on a phone"
    realised = page.inner_text("#r-realised")
    assert realised.endswith("%") and "," in realised  # "5,9%"
    assert (
        page.inner_text("#r-target").replace("\u00a0", " ") == "Rp 2.650.000.000"
    )  # 1,2 + 0,9 + 0,1 + 0,45 M
    assert page.inner_text("#r-pace").startswith("Rp ")
    rows = page.inner_text("#t-realisation tbody")
    assert "parkir" in rows and "pasar" in rows and "Utara" in rows
    # The realised bar of each targeted type is drawn, with the mark of the year gone.
    bar = page.locator('tr[data-type="parking"] .progress .done').bounding_box()
    assert bar is not None and bar["width"] > 0
    assert page.locator("#target-form").count() == 0, "a viewer gets no target form"
    _screenshot(page, "realisation.png")
    assert errors == []
    context.close()


def test_a_supervisor_sets_a_target_from_the_phone(served, chromium_browser):
    base, _ = served
    context, page, errors = _phone_page(chromium_browser)
    sign_in(page, base, "/realisation", "supervisor", "supervisor")
    page.select_option("#target-form select[name=revenue_type]", "restaurant_tax")
    page.fill("#target-form input[name=target_rp]", "300.000.000")
    page.click("#target-form button[type=submit]")
    page.wait_for_load_state("load")
    assert "Target 2026 pajak restoran seluruh kabupaten ditetapkan." in page.inner_text("main")
    target = page.locator('tr[data-type="restaurant_tax"] td[data-rp]').first
    assert target.inner_text() == "Rp 300 jt" and target.get_attribute("data-rp") == "300000000"
    assert "supervisor" in page.inner_text("#target-trail")
    assert _sideways(page) <= 0
    assert errors == []
    context.close()


def test_a_leader_reads_the_cashless_progress_on_a_phone(served, chromium_browser):
    base, _ = served
    context, page, errors = _phone_page(chromium_browser)
    sign_in(page, base, "/cashless", "leader", "leader")
    assert page.url.endswith("/cashless")
    assert _sideways(page) <= 0, "the page scrolls sideways on a phone"
    share = page.inner_text("#c-share")
    assert share.endswith("%") and "," in share  # "40,0%"
    # A bar per week with data, each as wide as its share of the track.
    widths = page.evaluate(
        """() => [...document.querySelectorAll('#c-weeks .bar')].map(b =>
             b.getBoundingClientRect().width / b.parentElement.getBoundingClientRect().width)"""
    )
    shares = [
        float(s.replace("%", "").replace(",", ".")) / 100
        for s in page.locator("#c-weeks span.num").all_inner_texts()
    ]
    assert len(widths) == len(shares) >= 5
    assert widths == pytest.approx(shares, abs=0.01)
    heavy = page.locator("#t-cash-heavy tbody tr").first
    assert heavy.get_attribute("data-point") == "PKR-001"
    # A district opens its points (the trends page's drill-down).
    assert page.locator('#t-cash-district a[href="/trends?district=Kota"]').count() == 1
    _screenshot(page, "cashless.png")
    assert errors == []
    context.close()


def test_a_leader_taps_a_district_and_reads_its_points_on_a_phone(served, chromium_browser):
    base, _ = served
    context, page, errors = _phone_page(chromium_browser)
    sign_in(page, base, "/trends", "leader", "leader")
    assert _sideways(page) <= 0
    assert page.locator("#tr-weeks .bar").count() >= 5
    _screenshot(page, "trends.png")
    with page.expect_navigation():
        page.locator('#tr-district a[href="/trends?district=Kota"]').tap()
    assert page.url.endswith("/trends?district=Kota")
    assert "Kota" in page.inner_text("h1")
    points = page.locator("#tr-points tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.point)"
    )
    assert sorted(points) == ["PKR-001", "RST-003"]
    assert page.locator("a[href^='/cases/']").count() == 0, "a viewer is shown no case"
    assert _sideways(page) <= 0
    with page.expect_navigation():
        page.locator("#t-all").tap()
    assert page.url.endswith("/trends")
    assert errors == []
    context.close()
