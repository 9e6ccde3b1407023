"""A sale pushed by a device appears on an open dashboard in real Chromium, without a reload."""

from __future__ import annotations

import pytest

from pipeline.casework.users import add_user
from pipeline.core.money import rupiah
from tests.helpers.browser import sign_in
from tests.helpers.push_client import push, sale

pytestmark = pytest.mark.browser


def test_a_pushed_sale_appears_on_the_open_dashboard_without_a_reload(push_app, chromium_browser):
    base, engine, key = push_app
    add_user(engine, "leader", "viewer", "leader-pass", actor="test")
    context = chromium_browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, base, "/dashboard", "leader", "leader-pass")
    assert "/dashboard" in page.url
    page.wait_for_function("() => document.getElementById('dashboard').dataset.live === 'stream'")
    assert page.inner_text("#d-today").replace("\u00a0", " ") == rupiah(0)
    assert page.inner_text("#d-live").startswith("data pukul ")  # "as of HH:MM:SS", Indonesian
    page.evaluate("() => { window.notReloaded = true; }")

    answer = push(base, key, [sale("live-1", "P1", 123_000)])
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    shown = rupiah(123_000)
    # Stored when answered: the stream brings it within a second or two (the bound is generous;
    # the seconds themselves are measured by scripts/push_load.py, not asserted here).
    page.wait_for_function(
        f"() => document.getElementById('d-today').textContent.replace(/\\u00a0/g, ' ') === '{shown}'",
        timeout=15_000,
    )
    assert page.evaluate("() => window.notReloaded === true"), "the page was reloaded"
    assert errors == []
    context.close()
