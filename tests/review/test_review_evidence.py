"""Evidence files on a case and its printable inspection report, over HTTP on a real seeded
database: who may upload, download and print; the type and size limits; downloads that are
never shown inline; the audit trail and the export record; a file altered on disk refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from pipeline.casework import attachments, audit
from pipeline.casework.users import ensure_demo_users, get_user
from pipeline.core.settings import Settings
from pipeline.review import create_app
from pipeline.store import connect
from pipeline.store.schema import case_attachments, case_events, case_exports
from tests.helpers.review_client import app_on_a_copy, as_role, role_cookies
from tests.helpers.review_seed import seed

SETTINGS = Settings(secret_key="test-key", false_alarm_days=7, attachment_max_mb=1)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0" + bytes(300)


@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("review-evidence") / "eincome.db"
    engine = connect(f"sqlite:///{path}")
    world = seed(engine)
    ensure_demo_users(engine)
    cookies = role_cookies(create_app(engine, SETTINGS))
    engine.dispose()
    return path, world, cookies


@pytest.fixture
def site(template_db, tmp_path):
    path, world, cookies = template_db
    home = tmp_path / "home"
    with app_on_a_copy(path, cookies, tmp_path, replace(SETTINGS, home=home)) as (app, engine):
        yield app, engine, world, home


def upload(client, token, case_id, name, data, note="field-check photo"):
    return client.post(
        f"/cases/{case_id}/attachments",
        data={"csrf_token": token, "note": note},
        files={"file": (name, data, "application/octet-stream")},
    )


def stored(engine) -> list:
    with engine.connect() as connection:
        return connection.execute(select(case_attachments)).all()


@pytest.mark.parametrize("role", ["viewer", "ops", "auditor", "supervisor"])
def test_evidence_and_report_routes_answer_each_role(site, role):
    app, engine, world, home = site
    attachment_id = attachments.add_attachment(
        engine, home, world.case_id, get_user(engine, "demo"), "z-report.pdf", PDF, max_bytes=10**6
    )
    client, token = as_role(app, role)
    allowed = role in ("auditor", "supervisor")
    posted = upload(client, token, world.case_id, "lot.png", PNG)
    fetched = client.get(f"/cases/{world.case_id}/attachments/{attachment_id}")
    report = client.get(f"/cases/{world.case_id}/report")
    for response in (posted, fetched, report):
        if not allowed:
            assert response.status_code == 403 and "Tidak diizinkan" in response.text
    if allowed:
        assert posted.status_code == 303 and posted.headers["location"].endswith("#evidence")
        assert fetched.status_code == 200 and fetched.content == PDF
        assert report.status_code == 200 and "BERITA ACARA PEMERIKSAAN" in report.text
    assert len(stored(engine)) == (2 if allowed else 1)


def test_an_upload_without_the_token_is_refused(site):
    app, engine, world, _ = site
    client, _ = as_role(app, "supervisor")
    assert upload(client, "wrong", world.case_id, "lot.png", PNG).status_code == 403
    assert stored(engine) == []


def test_an_attachment_is_stored_by_hash_in_the_trail_and_listed(site):
    app, engine, world, home = site
    client, token = as_role(app, "auditor")
    response = upload(client, token, world.case_id, "../../etc/Foto lot <1>.JPG", JPEG)
    assert response.status_code == 303
    (row,) = stored(engine)
    assert row.filename == "Foto lot _1_.JPG" and row.media_type == "image/jpeg"
    assert row.uploaded_by == "demo" and row.size_bytes == len(JPEG)
    assert (home / "attachments" / row.stored_as).read_bytes() == JPEG
    assert row.stored_as == f"{world.case_id}/{row.sha256}.jpg"
    with engine.connect() as connection:
        event = connection.execute(
            select(case_events).where(case_events.c.case_id == world.case_id)
        ).one()
    assert event.action == "attach" and '"attachment_id": 1' in event.after
    page = client.get(f"/cases/{world.case_id}").text
    evidence = page.split('id="evidence-list"')[1].split("</table>")[0]
    assert "Foto lot _1_.JPG" in evidence and "field-check photo" in evidence
    assert "bukti dilampirkan" in page.split('id="audit-trail"')[1]
    # The case now has a person's act on it: the detector will not rewrite it.
    assert audit.trail(engine, world.case_id)[0].actor == "demo"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("page.html", b"<html><script>alert(1)</script></html>"),
        ("photo.png", b"<html><script>alert(1)</script></html>"),  # a page named as a picture
        ("photo.html", PNG),  # a picture named as a page
        ("tool.exe", b"MZ\x90\x00" + bytes(100)),
        ("letter.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>"),
        ("empty.pdf", b""),
    ],
)
def test_only_pictures_and_pdfs_are_accepted_by_content_and_name(site, name, data):
    app, engine, world, home = site
    client, token = as_role(app, "auditor")
    response = upload(client, token, world.case_id, name, data)
    assert response.status_code == 400 and "bukan foto JPEG atau PNG maupun PDF" in response.text
    assert stored(engine) == [] and not (home / "attachments").exists()


def test_a_file_over_the_size_limit_is_refused(site):
    app, engine, world, _ = site
    client, token = as_role(app, "auditor")
    big = PNG + bytes(1024 * 1024)  # just over EINCOME_ATTACHMENT_MAX_MB=1
    response = upload(client, token, world.case_id, "big.png", big)
    assert response.status_code == 400 and "lebih besar dari 1 MB" in response.text
    assert stored(engine) == []


def test_a_download_is_never_shown_inline_and_is_recorded(site):
    app, engine, world, home = site
    attachment_id = attachments.add_attachment(
        engine, home, world.case_id, get_user(engine, "demo"), "letter.pdf", PDF, max_bytes=10**6
    )
    client, _ = as_role(app, "supervisor")
    response = client.get(f"/cases/{world.case_id}/attachments/{attachment_id}")
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == 'attachment; filename="letter.pdf"'
    assert response.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    with engine.connect() as connection:
        record = connection.execute(select(case_exports)).one()
    assert (record.actor, record.what, record.fmt) == ("supervisor", "attachment", "pdf")
    # Another case's number in the address finds nothing.
    other = world.case_ids[2]
    assert client.get(f"/cases/{other}/attachments/{attachment_id}").status_code == 404
    assert client.get(f"/cases/{world.case_id}/attachments/99999").status_code == 404


def test_a_file_altered_on_disk_is_not_served(site):
    app, engine, world, home = site
    attachment_id = attachments.add_attachment(
        engine, home, world.case_id, get_user(engine, "demo"), "lot.png", PNG, max_bytes=10**6
    )
    (row,) = stored(engine)
    (home / "attachments" / row.stored_as).write_bytes(b"<html>swapped</html>")
    client, _ = as_role(app, "auditor")
    response = client.get(f"/cases/{world.case_id}/attachments/{attachment_id}")
    assert response.status_code == 400 and "swapped" not in response.text


def test_the_report_holds_the_facts_chart_numbers_decision_trail_and_signatures(site):
    app, engine, world, _ = site
    audit.decide(
        engine,
        world.case_id,
        get_user(engine, "demo"),
        "confirmed",
        "op-7 voided paid tickets",
        false_alarm_days=7,
    )
    audit.record_recovery(engine, world.case_id, get_user(engine, "supervisor"), 200_000, "paid")
    client, _ = as_role(app, "auditor")
    page = client.get(f"/cases/{world.case_id}/report").text
    assert f"Nomor: BAP/{world.case_id}/" in page
    assert "Parkir Alun-Alun (PKR-001)" in page.split('id="report-point"')[1]
    assert 'id="report-shortfall">Rp 412.000<' in page
    chart = page.split('id="report-chart"')[1].split("</figure>")[0]
    assert chart.count('class="flag"') == 3 and "<polyline" in chart
    breakdown = page.split('id="report-breakdown"')[1].split("</table>")[0]
    assert breakdown.count("<tr>") == 3 + 2  # three hours, the header and the total
    assert "Rp 412.000" in breakdown.split("<tfoot>")[1]
    decision = page.split('id="report-decision"')[1].split("</table>")[0]
    assert "kebocoran terbukti" in decision and "op-7 voided paid tickets" in decision
    assert "Rp 200.000" in decision
    assert page.split('id="report-trail"')[1].count("<tr>") == 1 + 2
    signatures = page.split('id="report-signatures"')[1]
    assert "Pemeriksa" in signatures and "Mengetahui, supervisor" in signatures
    assert "<script>" not in page and 'src="/static/report.js"' in page


def test_a_reconciliation_case_report_shows_its_figures(site):
    app, _, world, _ = site
    client, _ = as_role(app, "auditor")
    page = client.get(f"/cases/{world.case_ids[3]}/report").text
    assert 'id="report-recon"' in page and 'id="report-chart"' not in page
    assert "Rp 9.000.000" in page and "Rp 7.750.000" in page
