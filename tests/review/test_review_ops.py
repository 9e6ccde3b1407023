"""The ops pages over HTTP on a real SQLite database: freshness per point (the page, its JSON)
and the quarantine worklist, for every role."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.casework.users import ensure_demo_users
from pipeline.core.settings import Settings
from pipeline.intake.ingest import ingest_rows
from pipeline.review import create_app
from pipeline.store import connect
from pipeline.store.schema import points
from pipeline.store.upsert import upsert
from tests.helpers.review_client import app_on_a_copy, as_role, role_cookies

SETTINGS = Settings(secret_key="test-key")
ROLES = ("viewer", "auditor", "ops", "supervisor")
OPS_ROLES = {"ops", "supervisor"}


def sale(txn: str, point: str, at: datetime, status: str = "paid") -> dict:
    return {"txn_id": txn, "point_id": point, "occurred_at": at.isoformat(), "amount": "5000",
            "payment_method": "cash", "status": status, "operator_id": "op1"}  # fmt: skip


@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    """Three points open round the clock: FRESH sold a minute ago, QUIET ten hours ago, NEVER
    nothing; and a pushed row for LATE, a point not registered yet (quarantined)."""
    path = tmp_path_factory.mktemp("review-ops") / "eincome.db"
    engine = connect(f"sqlite:///{path}")
    now = datetime.now(UTC)
    with engine.begin() as connection:
        upsert(connection, points, [
            {"point_id": p, "name": f"Titik {p}", "revenue_type": "parking", "district": "Kota",
             "open_hours": "00:00-24:00", "timezone": "Asia/Jakarta", "updated_at": now}
            for p in ("FRESH", "QUIET", "NEVER")
        ])  # fmt: skip
    ingest_rows(
        engine,
        [sale("f1", "FRESH", now - timedelta(minutes=1)), sale("q1", "QUIET", now - timedelta(hours=10)),
         sale("l1", "LATE", now - timedelta(hours=2))],
        source="landing:kota", source_ref="today.csv", now=now,
    )  # fmt: skip
    ensure_demo_users(engine)
    cookies = role_cookies(create_app(engine, SETTINGS))
    engine.dispose()
    return path, cookies


@pytest.fixture
def site(template_db, tmp_path):
    path, cookies = template_db
    with app_on_a_copy(path, cookies, tmp_path, SETTINGS) as (app, engine):
        yield app, engine


FRESHNESS_ROUTES = ["/ops", "/ops/freshness", "/ops/freshness?silent=1", "/api/ops/freshness"]


@pytest.mark.parametrize("role", ROLES)
def test_freshness_routes_answer_each_role(site, role):
    app, _ = site
    client, _ = as_role(app, role)
    for path in FRESHNESS_ROUTES:
        response = client.get(path)
        assert response.status_code == (200 if role in OPS_ROLES else 403), (role, path)


def test_anonymous_is_sent_to_sign_in(site):
    from tests.helpers.review_client import client_for

    client = client_for(site[0])
    for path in FRESHNESS_ROUTES:
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_freshness_json_lists_silent_points_first_with_their_sources(site):
    app, _ = site
    client, _ = as_role(app, "ops")
    body = client.get("/api/ops/freshness").json()
    assert (body["registered"], body["silent"], body["never"], body["min_open_hours"]) == (
        3,
        2,
        1,
        2,
    )
    listed = [(p["point_id"], p["silent"]) for p in body["points"]]
    assert listed == [("NEVER", True), ("QUIET", True), ("FRESH", False)]
    quiet = body["points"][1]
    assert quiet["silent_open_hours"] in (9, 10) and not quiet["silent_at_least"]
    assert [s["source"] for s in quiet["sources"]] == ["landing:kota"]
    assert datetime.fromisoformat(quiet["last_txn_at"]) < datetime.now(UTC) - timedelta(hours=9)
    only = client.get("/api/ops/freshness?silent=1&min_open_hours=168").json()
    assert [p["point_id"] for p in only["points"]] == ["NEVER"]


def test_ops_page_lists_the_silent_points_in_indonesian(site):
    app, _ = site
    client, _ = as_role(app, "ops")
    page = client.get("/ops").text
    assert "Titik yang senyap" in page and "2 dari 3 titik" in page
    table = page.split('id="freshness"')[1].split("</table>")[0]
    assert 'data-point="NEVER"' in table and 'data-point="QUIET"' in table
    assert 'data-point="FRESH"' not in table
    every = client.get("/ops/freshness").text.split('id="freshness"')[1]
    assert 'data-point="FRESH"' in every and "belum pernah" in every


@pytest.mark.parametrize(
    "query", ["silent=2", "silent=%00", "min_open_hours=0", "min_open_hours=169",
              "min_open_hours=abc", "min_open_hours=" + "9" * 30, "page=0", "page=abc"],
)  # fmt: skip
def test_unusable_freshness_filters_are_refused_with_the_value(site, query):
    app, _ = site
    client, _ = as_role(app, "ops")
    for path in ("/ops/freshness", "/api/ops/freshness"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query, response.status_code)


# ----------------------------------------------------------------------------- quarantine

QUARANTINE_PAGES = ["/ops/quarantine", "/ops/quarantine?state=all&point=LATE",
                    "/ops/quarantine/export.csv"]  # fmt: skip


def stored_keys(engine) -> set:
    from sqlalchemy import select

    from pipeline.store.schema import transactions

    with engine.connect() as connection:
        return set(connection.execute(select(transactions.c.point_id, transactions.c.txn_id)))


@pytest.mark.parametrize("role", ROLES)
def test_quarantine_pages_answer_each_role(site, role):
    app, _ = site
    client, _ = as_role(app, role)
    for path in QUARANTINE_PAGES:
        response = client.get(path)
        assert response.status_code == (200 if role in OPS_ROLES else 403), (role, path)


@pytest.mark.parametrize("role", ["viewer", "auditor"])
def test_only_ops_and_supervisors_may_release(site, role):
    app, engine = site
    client, token = as_role(app, role)
    response = client.post(
        "/ops/quarantine/release", data={"csrf_token": token, "scope": "matching"}
    )
    assert response.status_code == 403
    from pipeline.intake.quarantine import QuarantineFilter, list_quarantine

    assert list_quarantine(engine, QuarantineFilter()).total == 1


def test_a_release_without_the_session_token_is_refused(site):
    app, engine = site
    client, _ = as_role(app, "ops")
    response = client.post("/ops/quarantine/release", data={"scope": "matching"})
    assert response.status_code == 403
    from pipeline.intake.quarantine import recent_releases

    assert recent_releases(engine) == []


@pytest.mark.parametrize("role", sorted(OPS_ROLES))
def test_release_from_the_page_once_the_point_is_registered(site, role):
    app, engine = site
    client, token = as_role(app, role)
    page = client.get("/ops/quarantine").text
    assert 'data-quarantine="' in page and "LATE" in page and 'id="release"' in page
    (qid,) = [int(x) for x in __import__("re").findall(r'data-quarantine="(\d+)"', page)]
    with engine.begin() as connection:
        upsert(connection, points, [
            {"point_id": "LATE", "name": "Titik LATE", "revenue_type": "parking", "district": "Kota",
             "open_hours": "00:00-24:00", "timezone": "Asia/Jakarta", "updated_at": datetime.now(UTC)}
        ])  # fmt: skip
    response = client.post(
        "/ops/quarantine/release",
        data={"csrf_token": token, "scope": "selected", "id": str(qid), "point": "LATE"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ops/quarantine?point=LATE"
    after = client.get(response.headers["location"]).text
    assert "Pelepasan 1: 1 baris divalidasi ulang; 1 disimpan" in after
    assert ("LATE", "l1") in stored_keys(engine)
    released = client.get("/ops/quarantine?state=released").text
    assert f'data-quarantine="{qid}"' in released and 'data-release="1"' in released
    assert role_user(role) in released.split('id="releases"')[1]
    # Again: nothing is open, nothing new is stored.
    again = client.post("/ops/quarantine/release", data={"csrf_token": token, "scope": "matching"})
    assert "Tidak ada baris terbuka" in client.get(again.headers["location"]).text
    assert len(stored_keys(engine)) == 3
    export = client.get("/ops/quarantine/export.csv?state=all").content.decode("utf-8-sig")
    assert "released" in export and "LATE" in export


def role_user(role: str) -> str:
    from tests.helpers.review_client import ROLE_USER

    return ROLE_USER[role]


@pytest.mark.parametrize(
    "query", ["state=closed", "date_from=2026-13-01", "date_to=9999-12-31", "page=0",
              "point=" + "x" * 300, "reason=%00"],
)  # fmt: skip
def test_unusable_quarantine_filters_are_refused_with_the_value(site, query):
    app, _ = site
    client, token = as_role(app, "ops")
    for path in ("/ops/quarantine", "/ops/quarantine/export.csv"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query, response.status_code)


@pytest.mark.parametrize(
    "form", [{"scope": "everything"}, {"scope": "selected"}, {"scope": "selected", "id": "abc"},
             {"scope": "matching", "state": "released"}, {"scope": "selected", "id": "0"}],
)  # fmt: skip
def test_unusable_release_forms_are_refused_and_change_nothing(site, form):
    app, engine = site
    client, token = as_role(app, "ops")
    response = client.post("/ops/quarantine/release", data={"csrf_token": token, **form})
    assert response.status_code == 400, (form, response.status_code)
    from pipeline.intake.quarantine import recent_releases

    assert recent_releases(engine) == []
