"""The review app in a real headless Chromium: sign in, read a case's chart and reasons, decide
it, read the dashboard on a phone-sized screen, out-of-range links, sessions and the throttle.

Set EINCOME_SCREENSHOTS=docs/screenshots to save the case page and the dashboard as PNGs.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from pipeline.casework.users import ensure_demo_users
from pipeline.core.money import rupiah
from pipeline.core.settings import Settings
from pipeline.store import connect
from tests.helpers.browser import sign_in
from tests.helpers.push_client import served as serve_app
from tests.helpers.review_seed import seed

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app on a seeded SQLite database, served by uvicorn on 127.0.0.1 in a thread."""
    engine = connect(f"sqlite:///{tmp_path_factory.mktemp('review') / 'eincome.db'}")
    world = seed(engine)
    ensure_demo_users(engine)
    with serve_app(engine, Settings(secret_key="browser-test")) as base:
        long_case = _add_seven_day_case(engine, world)
        yield base, world, long_case
    engine.dispose()


def _add_seven_day_case(engine, world) -> int:
    """A detector case over seven days at the parking lot: flags 06:00-21:00 local each day,
    the nights between them closed (as group_runs joins them), shortfalls summing to the case's."""
    from datetime import UTC, datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from sqlalchemy import insert

    from pipeline.store.schema import anomalies, cases

    tz = ZoneInfo("Asia/Jakarta")
    first_day = world.today - timedelta(days=40)
    hours = [
        datetime.combine(first_day + timedelta(days=d), time(h), tzinfo=tz).astimezone(UTC)
        for d in range(7)
        for h in (6, 9, 12, 15, 18, 21)
    ]
    now = datetime.now(UTC)
    with engine.begin() as connection:
        case_id = connection.execute(
            insert(cases).values(
                origin="detector",
                point_id="PKR-001",
                start_at=hours[0],
                end_at=hours[-1] + timedelta(hours=1),
                kind="under_reporting",
                score=0.8,
                severity="high",
                reasons="42 flagged hours, suspected under reporting",
                shortfall_rp=42 * 25_000,
                status="open",
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        connection.execute(
            insert(anomalies),
            [
                dict(
                    point_id="PKR-001",
                    hour_start=h,
                    score=0.8,
                    severity="high",
                    kind="under_reporting",
                    reasons="revenue below usual",
                    shortfall_rp=25_000,
                    model_version="iforest-test",
                    case_id=case_id,
                    scored_at=now,
                )
                for h in hours
            ],
        )
    return case_id


def _assert_axis_labels_fit(page, holder_id: str) -> None:
    """Every y-axis tick label is narrower than the axis uPlot gave it (no ':00,0 jt')."""
    fit = page.evaluate(
        """(id) => {
          const chart = id === 'case-chart' ? window.caseChart : window.dashboardCharts[id];
          const axis = chart.axes[1];
          const ctx = chart.ctx; ctx.font = axis.font[0];
          const widest = Math.max(...axis._values.map(v => ctx.measureText(String(v)).width)) / devicePixelRatio;
          return {widest: widest, size: axis._size, labels: axis._values};
        }""",
        holder_id,
    )
    assert fit["labels"] and fit["widest"] < fit["size"], fit


def _watch_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    return errors


def _screenshot(page, name: str) -> None:
    folder = os.environ.get("EINCOME_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_auditor_reads_the_chart_and_decides_a_case(served, chromium_browser):
    base, world, _ = served
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = _watch_errors(page)
    sign_in(page, base, f"/cases/{world.case_id}", "demo", "demo")
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
    assert page.inner_text("#case-status") == "kebocoran terbukti"
    trail = page.inner_text("#audit-trail tbody")
    assert "demo" in trail and "keputusan" in trail and "Voids by op-7" in trail
    assert page.locator("#decide-form").count() == 0, "a decided case offers no decide form"
    _screenshot(page, "case.png")
    assert errors == []
    context.close()


def test_leader_dashboard_fits_a_phone_and_refreshes(served, chromium_browser):
    base, world, _ = served
    context = chromium_browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    errors = _watch_errors(page)
    sign_in(page, base, "/dashboard?refresh=2", "leader", "leader")
    assert "/dashboard" in page.url
    page.wait_for_selector("#chart-minute canvas")
    page.wait_for_selector("#chart-hour canvas")

    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
    # No data "today" in the seeded world: the latest full day is shown, and the page says so.
    assert f"{world.day.day} " in page.inner_text("#d-day")  # "Sen, 30 Nov 2026"
    assert str(world.day.year) in page.inner_text("#d-day")
    assert page.inner_text("#d-today").replace("\u00a0", " ") == rupiah(world.day_total_rp)
    # the seeded open cases and the seven-day one (less the main case once the auditor test
    # has decided it)
    assert page.inner_text("#d-open") in ("3", "4")
    assert "Kota" in page.inner_text("#t-district") and "parkir" in page.inner_text("#t-type")
    assert page.locator("nav >> text=Kasus").count() == 0, "a viewer gets no case queue"
    _assert_axis_labels_fit(page, "chart-hour")
    page.locator("#chart-hour .u-over").scroll_into_view_if_needed()
    box = page.locator("#chart-hour .u-over").bounding_box()
    page.touchscreen.tap(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    page.wait_for_selector("#chart-hour .chart-tip:not([hidden])", timeout=3000)
    assert "Rp" in page.inner_text("#chart-hour .chart-tip")

    first = page.get_attribute("#dashboard", "data-updated")
    page.wait_for_function(
        f"() => document.getElementById('dashboard').dataset.updated !== '{first}'", timeout=8000
    )
    _screenshot(page, "dashboard.png")
    assert errors == []
    context.close()


def test_the_app_speaks_indonesian_and_switches_to_english(served, chromium_browser):
    base, world, _ = served
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = _watch_errors(page)
    page.goto(base + "/login")
    assert page.get_attribute("html", "lang") == "id"
    assert page.inner_text("h1") == "Masuk" and page.locator("text=Kata sandi").count() == 1
    page.click("#lang-switch")
    page.wait_for_load_state("load")
    assert page.get_attribute("html", "lang") == "en" and page.inner_text("h1") == "Sign in"
    page.goto(base + "/login")  # the cookie keeps the choice
    assert page.get_attribute("html", "lang") == "en"
    page.click("#lang-switch")
    page.wait_for_load_state("load")
    assert page.get_attribute("html", "lang") == "id"
    assert errors == []
    context.close()


def test_a_seven_day_case_shows_both_dates_and_a_breakdown_that_sums(served, chromium_browser):
    base, world, long_case = served
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = _watch_errors(page)
    sign_in(page, base, f"/cases/{long_case}", "demo", "demo")
    page.wait_for_selector("#case-chart canvas")
    span = page.inner_text("#case-span")
    from datetime import timedelta

    first, last = world.today - timedelta(days=40), world.today - timedelta(days=34)
    assert span.count(str(first.year)) >= 1 and f"{first.day} " in span and f"{last.day} " in span
    assert "06.00" in span and "22.00" in span and "WIB" in span, span
    # seven days of flags: summed per day, and the days add up to the headline
    assert page.get_attribute("#breakdown", "data-per") == "day"
    cells = page.eval_on_selector_all(
        "#breakdown tbody td.shortfall", "tds => tds.map(td => Number(td.dataset.rp))"
    )
    headline = int(page.get_attribute("#case-shortfall", "data-rp"))
    assert len(cells) == 7 and sum(cells) == headline == 42 * 25_000
    assert page.inner_text("#breakdown-total").replace("\u00a0", " ") == rupiah(headline)
    # closed night hours inside the span are not shaded as flagged
    assert page.get_attribute("#case-chart", "data-flagged") == "42"
    _assert_axis_labels_fit(page, "case-chart")
    page.locator("#case-chart .u-over").scroll_into_view_if_needed()
    box = page.locator("#case-chart .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#case-chart .chart-tip:not([hidden])")
    assert "Rp" in page.inner_text("#case-chart .chart-tip")
    # the queue shows the span with both dates too
    page.goto(base + "/cases?status=&sort=shortfall")
    row = page.locator(f"tr:has(a[href='/cases/{long_case}'])").first.inner_text()
    assert f"{first.day} " in row and f"{last.day} " in row, row
    assert errors == []
    context.close()


def test_case_reasons_read_in_the_page_language(served, chromium_browser):
    base, world, _ = served
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = _watch_errors(page)
    sign_in(page, base, f"/cases/{world.case_id}", "demo", "demo")
    reasons = page.locator("ul.reasons li").all_inner_texts()
    assert reasons[0] == "3 jam ditandai, dugaan pelaporan kurang, Rp 412.000 dipertaruhkan"
    assert reasons[1].startswith("terkuat: pendapatan 65% di bawah biasanya untuk Sel 14.00")
    page.goto(base + f"/cases/{world.case_id}?lang=en")
    reasons = page.locator("ul.reasons li").all_inner_texts()
    assert reasons[1].startswith("strongest: revenue 65% below the usual for Tue 14.00")
    page.goto(base + f"/cases/{world.case_id}?lang=id")
    assert errors == []
    context.close()


@pytest.mark.parametrize(
    "path",
    ["/cases/" + "9" * 30, "/cases/2147483648", "/cases?page=" + "9" * 30,
     "/cases?date_from=9999-12-31", "/cases?date_to=0001-01-01", "/dashboard?day=9999-12-31",
     "/api/dashboard?day=0001-01-01", "/cases/export.xlsx?date_from=0001-01-01"],
)  # fmt: skip
def test_out_of_range_parameters_give_a_4xx_page(served, chromium_browser, path):
    base, _, _ = served
    context = chromium_browser.new_context()
    page = context.new_page()
    sign_in(page, base, "/cases", "supervisor", "supervisor")
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    response = page.goto(base + path)
    assert 400 <= response.status < 500, (path, response.status)
    assert response.headers.get("content-security-policy"), path
    if "/api/" not in path:  # a page a person reads: the reason, in Indonesian
        assert page.locator("h1").count() == 1 and "Internal" not in page.inner_text("body")
    # the refusal leaves the sign-in alone: still signed in, same cookie
    assert {c["name"]: c["value"] for c in context.cookies()} == cookies
    assert page.goto(base + "/cases").status == 200 and page.url.endswith("/cases")
    context.close()


def test_sign_out_ends_a_copied_cookie(served, chromium_browser):
    base, _, _ = served
    mine = chromium_browser.new_context()
    page = mine.new_page()
    sign_in(page, base, "/cases", "supervisor", "supervisor")
    assert page.url.endswith("/cases")
    copied = chromium_browser.new_context()
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


def test_a_strangers_wrong_passwords_do_not_lock_out_the_user(served, chromium_browser):
    # Last in the module: the failures slow this address (127.0.0.1) for a while afterwards.
    base, _, _ = served
    stranger = chromium_browser.new_context()
    page = stranger.new_page()
    for _ in range(5):
        page.goto(base + "/login")
        page.fill("input[name=username]", "DEMO")
        page.fill("input[name=password]", "a wrong guess")
        page.click("button[type=submit]")
        page.wait_for_load_state("load")
        assert "Nama pengguna atau kata sandi salah" in page.inner_text("main")
    stranger.close()

    user = chromium_browser.new_context()
    page = user.new_page()
    started = time.monotonic()
    sign_in(page, base, "/cases", "demo", "demo")
    assert page.url.endswith("/cases"), "the right password is taken, only a little later"
    assert time.monotonic() - started < 6  # one capped delay (4 s) at most
    user.close()


def test_inspector_finds_a_case_by_receipt_and_points_by_typing(served, chromium_browser):
    base, world, _ = served
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = _watch_errors(page)
    sign_in(page, base, "/cases?status=", "demo", "demo")

    # The point filter asks the server as one types and offers what matches.
    page.fill("#point-filter", "")
    page.type("#point-filter", "Induk", delay=30)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#point-list option')].map(o => o.value).join()"
        " === 'PSR-002'"
    )
    offered = page.eval_on_selector_all("#point-list option", "os => os.map(o => o.value)")
    assert offered == ["PSR-002"]
    page.fill("#point-filter", "")

    # A receipt number finds the case whose span holds it, whatever its status.
    page.fill("#queue-search", "PKR-001-00010")
    page.press("#queue-search", "Enter")
    page.wait_for_load_state("load")
    rows = page.eval_on_selector_all(
        "table.queue tbody tr[data-case]", "rs => rs.map(r => r.dataset.case)"
    )
    assert rows == [str(world.case_id)]
    _screenshot(page, "queue-search.png")

    # Into the case and back: the search is still there.
    page.click(f"table.queue a[href='/cases/{world.case_id}']")
    page.wait_for_load_state("load")
    page.click("#back-to-queue")
    page.wait_for_load_state("load")
    assert page.input_value("#queue-search") == "PKR-001-00010"
    assert page.eval_on_selector_all(
        "table.queue tbody tr[data-case]", "rs => rs.map(r => r.dataset.case)"
    ) == [str(world.case_id)]
    assert errors == []
    context.close()


PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5d5b3f30000000049454e44ae426082"
)


def test_evidence_is_attached_and_comes_back_as_a_download(served, chromium_browser, tmp_path):
    base, world, _ = served
    context = chromium_browser.new_context(
        viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    page = context.new_page()
    errors = _watch_errors(page)
    sign_in(page, base, f"/cases/{world.case_ids[2]}", "demo", "demo")
    photo = tmp_path / "cek-lapangan.png"
    photo.write_bytes(PNG_1PX)
    page.set_input_files("#attach-form input[type=file]", str(photo))
    page.fill("#attach-form input[name=note]", "foto papan tarif")
    page.click("#attach-form button[type=submit]")
    page.wait_for_load_state("load")
    listed = page.inner_text("#evidence-list tbody")
    assert "cek-lapangan.png" in listed and "foto papan tarif" in listed
    with page.expect_download() as caught:
        page.click("#evidence-list a")
    download = caught.value
    assert download.suggested_filename == "cek-lapangan.png"
    assert Path(download.path()).read_bytes() == PNG_1PX
    assert page.url.endswith(f"/cases/{world.case_ids[2]}#evidence")  # not opened in the app
    assert errors == []
    context.close()


def test_the_inspection_report_prints_to_a_pdf(served, chromium_browser):
    base, world, _ = served
    context = chromium_browser.new_context(viewport={"width": 1000, "height": 1400})
    page = context.new_page()
    errors = _watch_errors(page)
    sign_in(page, base, f"/cases/{world.case_id}/report", "demo", "demo")
    assert "BERITA ACARA PEMERIKSAAN" in page.inner_text("header")
    page.emulate_media(media="print")
    assert not page.is_visible("nav.no-print"), "the print button is not on paper"
    # The chart is an SVG drawn on the server: it has its size before any script runs.
    box = page.locator("#report-chart svg").bounding_box()
    assert box and box["width"] > 500 and box["height"] > 120
    _screenshot(page, "report.png")
    pdf = page.pdf(format="A4", print_background=True)
    assert pdf.startswith(b"%PDF-") and len(pdf) > 20_000
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    assert 1 <= pages <= 3, pages
    folder = os.environ.get("EINCOME_SCREENSHOTS")
    if folder:
        (Path(folder) / "report.pdf").write_bytes(pdf)
    assert errors == []
    context.close()
