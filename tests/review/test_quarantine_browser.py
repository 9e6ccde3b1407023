"""The quarantine page in real Chromium: a row ticked in the table (its checkbox sits outside
the release form, tied to it by the form attribute) is the one released."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from pipeline.casework.users import add_user
from pipeline.core.settings import Settings
from pipeline.intake.ingest import ingest_file
from pipeline.store import connect
from pipeline.store.schema import transactions
from tests.helpers.browser import sign_in
from tests.helpers.push_client import served
from tests.helpers.registry import register

pytestmark = pytest.mark.browser
HEADER = "txn_id,point_id,occurred_at,amount,payment_method,status,operator_id\n"


def test_the_ticked_row_is_released_and_the_other_stays_open(
    sqlite_url, tmp_path, chromium_browser
):
    engine = connect(sqlite_url)
    register(engine, "P1")
    feed = tmp_path / "week.csv"
    feed.write_text(
        HEADER + "N1,P9,2026-03-01T10:05:00+07:00,2000,qris,paid,op1\n"
        "N2,P8,2026-03-01T10:06:00+07:00,3000,cash,paid,op1\n"
    )
    ingest_file(engine, feed, source="landing:kota", now=datetime(2026, 3, 2, tzinfo=UTC))
    register(engine, "P9", "P8")
    add_user(engine, "budi", "ops", "budi-password", actor="test")
    with served(engine, Settings(secret_key="browser-test")) as base:
        page = chromium_browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, base, "/ops/quarantine", "budi", "budi-password")
        assert page.url.endswith("/ops/quarantine")
        row = page.locator("#quarantine-rows tr", has_text="N1")
        row.locator("input[type=checkbox]").check()
        page.click("button[name=scope][value=selected]")
        page.wait_for_load_state("load")
        assert "Pelepasan 1: 1 baris divalidasi ulang; 1 disimpan" in page.inner_text("body")
        open_rows = page.locator("#quarantine-rows tbody tr").all_inner_texts()
        assert len(open_rows) == 1 and "N2" in open_rows[0]
        assert errors == []
        page.close()
    with engine.connect() as connection:
        assert connection.execute(select(transactions.c.txn_id)).scalars().all() == ["N1"]
    engine.dispose()
