"""How the browser tests start Chromium: Debian's build, headless, no first-run noise."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("EINCOME_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def sign_in(page, base: str, path: str, username: str, password: str) -> None:
    """Visit ``path`` signed out, land on the login form, and sign in (back to ``path``)."""
    page.goto(base + path)
    assert "/login" in page.url, "an anonymous visitor must land on the login page"
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("load")
