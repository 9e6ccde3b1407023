"""The review app's languages: every msgid of the templates and the Python is in the Indonesian
catalog and translated; formats are id-ID; the language switch sticks."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from babel.messages.pofile import read_po

from pipeline.review import formats
from pipeline.review.i18n import LANG_COOKIE, catalog_path, extract, translations

JAKARTA = ZoneInfo("Asia/Jakarta")


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\(\w+\)[sdr]", text))


def test_every_template_and_python_string_is_in_the_indonesian_catalog():
    """Fails naming each msgid the catalog lacks or leaves untranslated: run
    ``python -m pipeline.review.i18n`` and translate the new entries of messages.po."""
    with catalog_path("id").open("rb") as po:
        catalog = read_po(po, locale="id")
    extracted = [m for m in extract() if m.id]
    assert len(extracted) > 200
    missing, untranslated, broken = [], [], []
    for message in extracted:
        entry = catalog.get(message.id)
        if entry is None:
            missing.append(message.id)
            continue
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if not all(strings) or entry.fuzzy:
            untranslated.append(message.id)
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        if any(_placeholders(s) != _placeholders(ids[-1]) for s in strings):
            broken.append(message.id)
    assert not missing, f"not in messages.po: {missing}"
    assert not untranslated, f"untranslated in messages.po: {untranslated}"
    assert not broken, f"placeholders differ from the msgid: {broken}"


def test_catalog_loads_from_the_po_without_a_compiled_mo():
    assert not catalog_path("id").with_suffix(".mo").exists()
    assert translations("id").gettext("Cases") == "Kasus"
    assert translations("en").gettext("Cases") == "Cases"
    assert translations("id").ngettext("%(num)s case", "%(num)s cases", 3) == "%(num)s kasus"


@pytest.mark.parametrize(
    ("start", "end", "lang", "expected"),
    [
        # a seven-day detector case: both dates
        (
            datetime(2025, 12, 1, 6, tzinfo=JAKARTA),
            datetime(2025, 12, 7, 22, tzinfo=JAKARTA),
            "id",
            "1 Des 2025 06.00 – 7 Des 2025 22.00 WIB",
        ),
        (
            datetime(2025, 12, 1, 6, tzinfo=JAKARTA),
            datetime(2025, 12, 1, 22, tzinfo=JAKARTA),
            "id",
            "1 Des 2025 06.00–22.00 WIB",
        ),
        # a month-long reconciliation case: the month, not "00:00 - 00:00"
        (
            datetime(2025, 12, 1, tzinfo=JAKARTA),
            datetime(2026, 1, 1, tzinfo=JAKARTA),
            "id",
            "Desember 2025",
        ),
        (
            datetime(2025, 12, 3, tzinfo=JAKARTA),
            datetime(2025, 12, 10, tzinfo=JAKARTA),
            "id",
            "3–9 Des 2025",
        ),
        (
            datetime(2025, 12, 1, tzinfo=JAKARTA),
            datetime(2026, 1, 1, tzinfo=JAKARTA),
            "en",
            "December 2025",
        ),
    ],
)
def test_case_spans_show_their_dates(start, end, lang, expected):
    assert formats.span_text(start, end, "Asia/Jakarta", lang) == expected


def test_numbers_money_and_percentages_are_written_the_indonesian_way():
    assert formats.money(9_155_783) == "Rp 9.155.783"
    assert formats.number(1234567) == "1.234.567"
    assert formats.percent(0.125, 1) == "12,5%"
    assert formats.signed_percent(-3) == "-3,0%"
    assert formats.signed_percent(12.5) == "+12,5%"
    moment = datetime(2025, 12, 1, 6, 5, 9, tzinfo=JAKARTA)
    assert formats.local_datetime(moment, "Asia/Jakarta", "id", seconds=True) == (
        "1 Des 2025 06.05.09"
    )


def test_language_cookie_and_lang_attribute(tmp_path):
    from fastapi.testclient import TestClient

    from pipeline.core.settings import Settings
    from pipeline.review import create_app
    from pipeline.store import connect

    engine = connect(f"sqlite:///{tmp_path / 'eincome.db'}")
    client = TestClient(create_app(engine, Settings(secret_key="k")), follow_redirects=False)
    page = client.get("/login")
    assert '<html lang="id">' in page.text and "Kata sandi" in page.text
    assert 'href="/login?lang=en"' in page.text  # the switch in the header
    english = client.get("/login?lang=en")
    assert '<html lang="en">' in english.text and "Password" in english.text
    assert english.cookies.get(LANG_COOKIE) == "en"
    again = client.get("/login")  # the cookie keeps the choice
    assert '<html lang="en">' in again.text
    assert '<html lang="id">' in client.get("/login?lang=id").text
    assert '<html lang="id">' in client.get("/login?lang=xx").text  # unknown: the cookie's
    engine.dispose()


def test_review_commands_speak_the_configured_language(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pipeline.cli import app

    monkeypatch.setenv("EINCOME_HOME", str(tmp_path / "var"))
    monkeypatch.delenv("EINCOME_DB_URL", raising=False)
    monkeypatch.delenv("EINCOME_LANGUAGE", raising=False)
    added = CliRunner().invoke(
        app, ["users", "add", "siti", "--role", "auditor", "--password", "rahasia-123"]
    )
    assert added.exit_code == 0 and "pengguna siti ditambahkan dengan peran auditor" in added.stdout
    monkeypatch.setenv("EINCOME_LANGUAGE", "en")
    listed = CliRunner().invoke(app, ["users", "list"])
    assert listed.exit_code == 0 and "siti\tauditor\tactive" in listed.stdout


def test_reasons_are_said_in_the_readers_language_with_the_page_formats():
    from pipeline.core.phrases import dumps, phrase

    silent = phrase(
        "no transactions while open; %(sales_avg)s sales on average (%(expected_rp)s)"
        " expected at %(at_slot)s",
        sales_avg=0.4,
        expected_rp=122_000,
        at_slot="Wed 03:00",
    )
    late = phrase(
        "sales arrived late: %(rows_n)s transactions at %(first_at)s %(tz)s;"
        " re-scored, no hour of the case is flagged any more",
        rows_n=1200,
        first_at=datetime(2026, 3, 1, 14, 5, tzinfo=JAKARTA),
        tz="Asia/Jakarta",
    )
    stored = dumps([silent, late])
    assert formats.reason_lines(stored, "ignored", "id", "Asia/Jakarta") == [
        "tidak ada transaksi saat buka; diperkirakan rata-rata 0,4 penjualan (Rp 122.000)"
        " pada Rab 03.00",
        "penjualan datang terlambat: 1.200 transaksi pada 1 Mar 2026 14.05 WIB; dinilai ulang,"
        " tidak ada lagi jam kasus ini yang ditandai",
    ]
    assert formats.reason_lines(stored, "ignored", "en")[0] == (
        "no transactions while open; 0,4 sales on average (Rp 122.000) expected at Wed 03.00"
    )
    # a row from before phrases: its text, split into its parts
    assert formats.reason_lines(None, "a; b", "id") == ["a", "b"]


def test_reconciliation_periods_and_months_read_as_dates():
    from pipeline.core.phrases import phrase

    unfiled = phrase(
        "no return filed for %(period_days)s; devices recorded %(recorded_rp)s",
        period_days=["2026-03-01", "2026-03-31"],
        recorded_rp=9_000_000,
    )
    assert formats.phrase_text(unfiled, "id") == (
        "tidak ada SPT untuk 1–31 Mar 2026; perangkat mencatat Rp 9.000.000"
    )
    month = phrase(
        "for %(point)s period %(period_month)s, which has no return and no recorded sales",
        point="HTL-004",
        period_month="2026-03",
    )
    assert formats.phrase_text(month, "id") == (
        "untuk HTL-004 masa Maret 2026, yang tidak memiliki SPT maupun penjualan tercatat"
    )


# ----------------------------------------------------------------------------- refusals


@pytest.fixture(scope="module")
def refusing_site(tmp_path_factory):
    """A seeded app whose refusals the tests below provoke (none of them changes anything)."""
    from dataclasses import replace

    from pipeline.casework import attachments
    from pipeline.casework.users import ensure_demo_users, get_user
    from pipeline.core.settings import Settings
    from pipeline.review import create_app
    from pipeline.store import connect
    from tests.helpers.review_client import role_cookies
    from tests.helpers.review_seed import seed

    home = tmp_path_factory.mktemp("review-refusals")
    engine = connect(f"sqlite:///{home / 'eincome.db'}")
    world = seed(engine)
    ensure_demo_users(engine)
    app = create_app(engine, replace(Settings(secret_key="k"), home=home))
    app.state.role_cookies = role_cookies(app)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
    attachment_id = attachments.add_attachment(
        engine, home, world.case_id, get_user(engine, "demo"), "lot.png", png, max_bytes=10**6
    )
    (row,) = attachments.attachments_of(engine, world.case_id)
    (home / attachments.FOLDER / row.stored_as).write_bytes(b"swapped on disk")
    yield app, world, attachment_id
    engine.dispose()


def _refusal(app, role: str, lang: str, request) -> tuple[int, str]:
    """The status and the message paragraph of the error page ``request(client, token)`` gets."""
    from tests.helpers.review_client import as_role

    client, token = as_role(app, role)
    client.cookies.set(LANG_COOKIE, lang)
    response = request(client, token)
    message = re.search(r'error-page">\s*<h1>[^<]*</h1>\s*<p>(.*?)</p>', response.text, re.S)
    assert message, response.text[:500]
    return response.status_code, message.group(1)


REFUSALS = {
    "403 on a supervisor's page": (
        "viewer",
        lambda c, t, w, a: c.get("/alerts"),
        403,
        "pengguna &#39;leader&#39; (pemantau) tidak boleh mengelola aturan peringatan",
    ),
    "403 on a release": (
        "auditor",
        lambda c, t, w, a: c.post(
            "/ops/quarantine/release", data={"csrf_token": t, "scope": "matching"}
        ),
        403,
        "tidak boleh melepas baris karantina",
    ),
    "due day on an unassigned case": (
        "auditor",
        lambda c, t, w, a: c.post(
            f"/cases/{w.case_id}/due", data={"csrf_token": t, "due_on": "2030-01-31"}
        ),
        400,
        "harus sudah ditugaskan dan belum diputuskan",
    ),
    "money recovered on an open case": (
        "auditor",
        lambda c, t, w, a: c.post(
            f"/cases/{w.case_id}/recovered",
            data={"csrf_token": t, "recovered": "1.500.000", "note": "setoran susulan"},
        ),
        400,
        "bukan kebocoran terkonfirmasi",
    ),
    "money recovered without a note": (
        "auditor",
        lambda c, t, w, a: c.post(
            f"/cases/{w.decided_case_id}/recovered", data={"csrf_token": t, "recovered": "5"}
        ),
        400,
        "mencatat uang yang dipulihkan memerlukan catatan",
    ),
    "too many cases at once": (
        "supervisor",
        lambda c, t, w, a: c.post(
            "/cases/bulk",
            data={
                "csrf_token": t,
                "action": "false_alarm",
                "note": "uji",
                "case_id": [str(i) for i in range(1, 502)],
            },
        ),
        400,
        "501 kasus dipilih; paling banyak 500 sekaligus",
    ),
    "an attachment altered on disk": (
        "auditor",
        lambda c, t, w, a: c.get(f"/cases/{w.case_id}/attachments/{a}"),
        400,
        "telah diubah",
    ),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_refusals_reach_an_indonesian_page_in_indonesian(refusing_site, name):
    """Fails while a refusal reaches the Indonesian page as the English the domain wrote."""
    app, world, attachment_id = refusing_site
    role, request, status, indonesian = REFUSALS[name]

    def send(client, token):
        return request(client, token, world, attachment_id)

    id_status, id_text = _refusal(app, role, "id", send)
    en_status, en_text = _refusal(app, role, "en", send)
    assert id_status == en_status == status
    assert indonesian in id_text, id_text
    assert id_text != en_text, f"the Indonesian page says it in English: {id_text}"


def test_every_right_has_a_label_in_both_languages():
    from pipeline.casework.users import RIGHTS
    from pipeline.review.labels import LABELS, label

    assert set(RIGHTS) <= set(LABELS)
    assert all(label(r, "id") != label(r, "en") for r in RIGHTS)
