"""What inspectors reach for, over HTTP on a real seeded database: finding cases (search, my
cases, the point type-ahead, overlapping dates, filters kept, next case), a case's history, its
transactions filtered, bulk actions on the queue, and the follow-up (due day, money recovered)
with the dashboard's found-against-recovered totals. Every new route is tried by every role."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from pipeline.casework import audit
from pipeline.casework.users import add_user, ensure_demo_users, get_user
from pipeline.core.errors import UnusableInputError
from pipeline.core.settings import Settings
from pipeline.review import create_app, queries
from pipeline.store import connect
from pipeline.store.schema import case_events, case_exports, cases, points, suppressions
from tests.helpers.review_client import app_on_a_copy, as_role, role_cookies
from tests.helpers.review_seed import TZ, seed

SETTINGS = Settings(secret_key="test-key", false_alarm_days=7)
CASE_LINK = re.compile(r'<tr class="[^"]*" data-case="(\d+)">')
NPWPD = "P.2.0012345.05.01"


def _plant_history(engine, world) -> dict:
    """A taxpayer number on the restaurant, a three-day case at the market (found by any of its
    days), and an earlier confirmed case at the main case's point by its operator op-7."""
    now = datetime.now(UTC)
    main = queries.get_case(engine, world.case_id)
    with engine.begin() as connection:
        connection.execute(
            update(points).where(points.c.point_id == "RST-003").values(taxpayer_id=NPWPD)
        )
        long_case = connection.execute(
            cases.insert().values(
                origin="detector",
                point_id="PSR-002",
                kind="device_off",
                score=0.9,
                severity="high",
                reasons="device off",
                shortfall_rp=900_000,
                operators="op-9",
                start_at=main.start_at - timedelta(days=12),
                end_at=main.start_at - timedelta(days=9),
                status="open",
                created_at=now,
                updated_at=now,
            )  # fmt: skip
        ).inserted_primary_key[0]
        earlier = connection.execute(
            cases.insert().values(
                origin="detector",
                point_id="PKR-001",
                kind="void_abuse",
                score=0.8,
                severity="high",
                reasons="voids",
                shortfall_rp=300_000,
                operators="op-7",
                start_at=main.start_at - timedelta(days=30),
                end_at=main.start_at - timedelta(days=30, hours=-2),
                status="open",
                created_at=now,
                updated_at=now,
            )  # fmt: skip
        ).inserted_primary_key[0]
    supervisor = get_user(engine, "supervisor")
    audit.decide(engine, earlier, supervisor, "confirmed", "owner admitted", false_alarm_days=7)
    audit.record_recovery(engine, earlier, supervisor, 120_000, "paid back, receipt 77")
    return {"long_case": long_case, "earlier": earlier}


@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("review-inspect") / "eincome.db"
    engine = connect(f"sqlite:///{path}")
    world = seed(engine, extra_cases=12)
    ensure_demo_users(engine)
    add_user(engine, "alice", "auditor", "alice-password", actor="test")
    planted = _plant_history(engine, world)
    cookies = role_cookies(create_app(engine, SETTINGS))
    engine.dispose()
    return path, world, planted, cookies


@pytest.fixture
def site(template_db, tmp_path):
    path, world, planted, cookies = template_db
    with app_on_a_copy(path, cookies, tmp_path, SETTINGS) as (app, engine):
        yield app, engine, world, planted


def queue_ids(page: str) -> list[int]:
    return [int(i) for i in CASE_LINK.findall(page.split('<table class="queue">')[1])]


def events_of(engine, case_id: int) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(case_events.c.action)
                .where(case_events.c.case_id == case_id)
                .order_by(case_events.c.event_id)
            ).scalars()
        )


# ----------------------------------------------------------------------------- every route x role


def _new_routes(world, planted, token):
    """(method, path, form) of every route this module adds, with input that is allowed."""
    other = world.case_ids[2]
    return [
        ("GET", "/cases/points.json?q=pasar", None),
        ("POST", f"/cases/{world.case_id}/due", {"due_on": "", "csrf_token": token}),
        ("POST", f"/cases/{planted['earlier']}/recovered",
         {"recovered": "150.000", "note": "second instalment", "csrf_token": token}),
        ("POST", "/cases/bulk",
         {"action": "assign", "case_id": [str(other)], "assignee": "alice", "csrf_token": token}),
        ("POST", "/cases/bulk",
         {"action": "false_alarm", "case_id": [str(world.case_ids[4])], "note": "closure",
          "csrf_token": token}),
        ("POST", "/cases/bulk",
         {"action": "export", "case_id": [str(world.case_id)], "fmt": "csv", "csrf_token": token}),
    ]  # fmt: skip


@pytest.mark.parametrize("role", ["viewer", "ops", "auditor", "supervisor"])
def test_each_new_route_answers_each_role(site, role):
    app, engine, world, planted = site
    client, token = as_role(app, role)
    if role in ("auditor", "supervisor"):  # the due route clears a due day: give it one first
        audit.assign(engine, world.case_id, get_user(engine, "supervisor"), "demo")
        audit.set_due(engine, world.case_id, get_user(engine, "supervisor"), world.today)
    for method, path, form in _new_routes(world, planted, token):
        if method == "GET":
            response = client.get(path)
        else:
            response = client.post(path, data=form)
        if role in ("viewer", "ops"):
            assert response.status_code == 403 and "Tidak diizinkan" in response.text, path
            continue
        expected = 200 if method == "GET" or form.get("action") == "export" else 303
        assert response.status_code == expected, (role, path, response.status_code)
    if role in ("viewer", "ops"):
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(case_exports)).scalar() == 0
        assert queries.get_case(engine, planted["earlier"]).recovered_rp == 120_000


def test_the_new_forms_refuse_a_post_without_the_token(site):
    app, engine, world, planted = site
    client, _ = as_role(app, "supervisor")
    for method, path, form in _new_routes(world, planted, "wrong-token"):
        if method == "POST":
            response = client.post(path, data=form)
            assert response.status_code == 403 and "Formulir ditolak" in response.text, path
    assert queries.get_case(engine, world.case_ids[2]).assignee is None
    assert queries.get_case(engine, planted["earlier"]).recovered_rp == 120_000


# ----------------------------------------------------------------------------- finding cases


@pytest.mark.parametrize(
    ("term", "expect"),
    [
        ("PKR-001-00010", "main"),  # a receipt number inside the main case's span
        ("alun-alun", "pkr"),  # part of the point's name, any case
        ("rst-003", "rst"),  # the point id
        ("0012345", "rst"),  # part of the taxpayer number
        ("op-9", "long"),  # the operator on the long case only
    ],
)
def test_search_finds_cases_by_point_taxpayer_operator_and_receipt(site, term, expect):
    app, engine, world, planted = site
    client, _ = as_role(app, "auditor")
    found = set(queue_ids(client.get("/cases", params={"q": term, "status": ""}).text))
    point_of = {
        i: queries.get_case(engine, i).point_id
        for i in [*world.case_ids, planted["long_case"], planted["earlier"]]
    }
    if expect == "main":
        assert found == {world.case_id}
    elif expect == "long":
        assert found == {planted["long_case"]}
    else:
        wanted = {"pkr": "PKR-001", "rst": "RST-003"}[expect]
        assert found and found == {i for i, p in point_of.items() if p == wanted}


def test_search_by_case_number_and_nothing_for_a_stranger(site):
    app, _, world, _ = site
    client, _ = as_role(app, "auditor")
    assert queue_ids(client.get(f"/cases?q=%23{world.case_ids[2]}").text) == [world.case_ids[2]]
    page = client.get("/cases?q=no-such-thing_%25").text
    assert queue_ids(page) == [] and "Tidak ada kasus" in page
    assert client.get("/cases?q=" + "x" * 101).status_code == 400


def test_my_cases_and_the_assignee_filter(site):
    app, engine, world, _ = site
    supervisor = get_user(engine, "supervisor")
    audit.assign(engine, world.case_ids[2], supervisor, "demo")
    audit.assign(engine, world.case_ids[3], supervisor, "alice")
    client, _ = as_role(app, "auditor")
    page = client.get("/cases").text
    mine = re.search(r'href="/cases\?([^"]+)" id="my-cases"', page).group(1).replace("&amp;", "&")
    assert queue_ids(client.get("/cases?" + mine).text) == [world.case_ids[2]]
    assert queue_ids(client.get("/cases?assignee=alice").text) == [world.case_ids[3]]
    assert queue_ids(client.get("/cases?assignee=ALICE").text) == [world.case_ids[3]]


def test_the_date_filter_finds_a_case_from_any_day_it_overlaps(site):
    app, engine, world, planted = site
    client, _ = as_role(app, "auditor")
    long_case = queries.get_case(engine, planted["long_case"])
    middle = (long_case.start_at + timedelta(days=1, hours=12)).astimezone(TZ).date()
    query = {"date_from": middle.isoformat(), "date_to": middle.isoformat(), "status": ""}
    assert planted["long_case"] in queue_ids(client.get("/cases", params=query).text)
    after = (long_case.end_at + timedelta(days=1)).astimezone(TZ).date().isoformat()
    query = {"date_from": after, "date_to": after, "status": ""}
    assert planted["long_case"] not in queue_ids(client.get("/cases", params=query).text)


def test_point_type_ahead_answers_small_json(site):
    app, engine, _, _ = site
    client, _ = as_role(app, "auditor")
    response = client.get("/cases/points.json?q=pasar")
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "points": [{"point_id": "PSR-002", "name": "Pasar Induk", "district": "Utara"}]
    }
    assert [p["point_id"] for p in client.get("/cases/points.json?q=0012345").json()["points"]] == [
        "RST-003"
    ]
    page = client.get("/cases").text
    assert 'list="point-list"' in page and '<select name="point_id"' not in page


def test_point_suggestions_stop_at_twenty_of_thousands(site):
    app, engine, _, _ = site
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            points.insert(),
            [
                dict(
                    point_id=f"PKR-{n:05d}",
                    name=f"Parkir Jalan {n}",
                    revenue_type="parking",
                    district="Kota",
                    open_hours="06:00-22:00",
                    updated_at=now,
                )
                for n in range(1000, 4000)
            ],  # fmt: skip
        )
    client, _ = as_role(app, "auditor")
    found = client.get("/cases/points.json?q=jalan 12").json()["points"]
    assert len(found) == 20 and all("Jalan 12" in p["name"] for p in found)
    assert len(client.get("/cases").text) < 60_000  # no 3000-option dropdown in the page


def test_filters_are_kept_going_back_and_next_case_follows_a_decision(site):
    app, engine, world, _ = site
    client, token = as_role(app, "auditor")
    queue = queue_ids(client.get("/cases?district=Kota&sort=shortfall").text)
    assert len(queue) >= 3
    first = client.get(f"/cases/{queue[0]}").text
    back = re.search(r'href="/cases\?([^"]*)" id="back-to-queue"', first).group(1)
    assert "district=Kota" in back and "sort=shortfall" in back
    assert f'href="/cases/{queue[1]}" id="next-case"' in first
    response = client.post(
        f"/cases/{queue[0]}/decide",
        data={"decision": "false_alarm", "note": "market day", "then": "next", "csrf_token": token},
    )
    # The decided case has left the open queue: the next one is the first that is left.
    assert response.status_code == 303 and response.headers["location"] == f"/cases/{queue[1]}"
    assert queries.get_case(engine, queue[0]).status == "false_alarm"


# ----------------------------------------------------------------------------- the case page


def test_case_page_shows_earlier_cases_at_the_point_and_by_its_operators(site):
    app, _, world, planted = site
    client, _ = as_role(app, "auditor")
    page = client.get(f"/cases/{world.case_id}").text
    at_point = page.split('id="history-point"')[1].split("</table>")[0]
    assert f'data-case="{planted["earlier"]}"' in at_point
    assert "Rp 120.000" in at_point and "owner admitted" in at_point  # recovered, decision
    assert f'data-case="{planted["long_case"]}"' not in at_point
    by_operators = page.split('id="history-operators"')[1].split("</table>")[0]
    assert "Parkir Alun-Alun" not in by_operators  # the case's own point is the other table
    assert f'data-case="{world.decided_case_id}"' in by_operators  # the market, op-7 too
    summary = page.split('id="history-confirmed"')[1].split("</p>")[0]
    # the earlier case here (300.000, 120.000 back) and the market's (150.000, nothing back)
    assert "2 kasus, ditemukan Rp 450.000, dipulihkan Rp 120.000" in summary


def test_case_transactions_filter_by_status_method_and_operator(site):
    app, _, world, _ = site
    client, _ = as_role(app, "auditor")

    def shown(query: str) -> tuple[int, str]:
        page = client.get(f"/cases/{world.case_id}?{query}").text
        table = page.split('<table id="txns">')[1].split("</table>")[0]
        found = re.search(r'id="txn-shown">([\d.]+) dari', page)
        return (int(found.group(1).replace(".", "")) if found else -1), table

    n, table = shown("txn_status=void")
    assert n == 12 and table.count('class="st-void"') == 12 and "st-paid" not in table
    n, table = shown("operator=op-2")
    assert n > 0 and "op-7" not in table
    n, table = shown("method=qris&txn_status=paid")
    assert "Tunai" not in table and "tunai" not in table
    n, _ = shown("operator=-")
    assert n == 0
    paged = client.get(f"/cases/{world.case_id}?method=cash").text
    assert "method=cash&amp;page=2" in paged  # paging keeps the filter
    assert client.get(f"/cases/{world.case_id}?txn_status=lost").status_code == 400


# ----------------------------------------------------------------------------- bulk actions


def test_bulk_assign_with_a_due_day_writes_each_trail(site):
    app, engine, world, _ = site
    client, token = as_role(app, "auditor")
    chosen = world.case_ids[4:7]
    due = (world.today + timedelta(days=5)).isoformat()
    response = client.post(
        "/cases/bulk",
        data={"action": "assign", "case_id": [str(i) for i in chosen], "assignee": "alice",
              "due_on": due, "note": "week plan", "csrf_token": token},
    )  # fmt: skip
    assert response.status_code == 303
    for case_id in chosen:
        case = queries.get_case(engine, case_id)
        assert (case.assignee, case.due_on.isoformat()) == ("alice", due)
        assert events_of(engine, case_id) == ["assign", "due"]
    assert "3 kasus diubah" in client.get("/cases").text


def test_bulk_false_alarm_needs_a_note_and_suppresses_each(site):
    app, engine, world, _ = site
    client, token = as_role(app, "auditor")
    chosen = [world.case_ids[4], world.case_ids[5], world.decided_case_id]
    form = {"action": "false_alarm", "case_id": [str(i) for i in chosen], "csrf_token": token}
    assert client.post("/cases/bulk", data=form).status_code == 400
    response = client.post("/cases/bulk", data={**form, "note": "road closed that week"})
    assert response.status_code == 303
    page = client.get("/cases").text
    # The already confirmed case is left as it was and said so.
    assert "2 kasus diubah" in page and f"#{world.decided_case_id}" in page
    with engine.connect() as connection:
        made = connection.execute(
            select(func.count()).where(suppressions.c.reason.contains("road closed"))
        ).scalar()
    assert made == 2
    assert queries.get_case(engine, world.decided_case_id).status == "confirmed"


def test_bulk_export_of_the_selection_is_recorded(site):
    app, engine, world, _ = site
    client, token = as_role(app, "supervisor")
    chosen = sorted([world.case_id, world.decided_case_id])  # one open, one decided
    response = client.post(
        "/cases/bulk",
        data={"action": "export", "case_id": [str(i) for i in chosen], "fmt": "csv",
              "csrf_token": token},
    )  # fmt: skip
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert sorted(int(r[0]) for r in rows[1:]) == chosen
    with engine.connect() as connection:
        record = connection.execute(select(case_exports)).one()
    assert (record.actor, record.what, record.fmt, record.rows) == (
        "supervisor",
        "selection",
        "csv",
        2,
    )
    assert json.loads(record.case_ids) == chosen
    # the queue's own export is recorded too
    client.get("/cases/export.xlsx?status=confirmed")
    with engine.connect() as connection:
        whats = connection.execute(select(case_exports.c.what)).scalars().all()
    assert whats == ["selection", "queue"]


@pytest.mark.parametrize(
    "form",
    [
        {"action": "delete", "case_id": ["1"]},
        {"action": "assign"},
        {"action": "assign", "case_id": ["1; drop"]},
        {"action": "export", "case_id": ["1"], "fmt": "pdf"},
        {"action": "assign", "case_id": ["1"], "due_on": "soon"},
    ],
)
def test_bulk_refuses_unusable_input_with_a_page(site, form):
    app, _, _, _ = site
    client, token = as_role(app, "supervisor")
    response = client.post("/cases/bulk", data={**form, "csrf_token": token})
    assert response.status_code == 400 and "Traceback" not in response.text


# ----------------------------------------------------------------------------- follow-up


def test_a_due_day_past_marks_the_case_overdue(site):
    app, engine, world, _ = site
    client, token = as_role(app, "auditor")
    target = world.case_ids[2]
    refused = client.post(
        f"/cases/{target}/due", data={"due_on": "2026-01-01", "csrf_token": token}
    )
    assert refused.status_code == 400  # nobody is assigned yet
    audit.assign(engine, target, get_user(engine, "demo"), "demo")
    yesterday = (queries.local_today() - timedelta(days=1)).isoformat()
    response = client.post(f"/cases/{target}/due", data={"due_on": yesterday, "csrf_token": token})
    assert response.status_code == 303
    overdue = client.get("/cases?due=overdue").text
    assert queue_ids(overdue) == [target]
    assert f'class="sev-low overdue" data-case="{target}"' in overdue
    assert "lewat tenggat" in client.get(f"/cases/{target}").text
    assert events_of(engine, target) == ["assign", "due"]
    # decided, it is no longer overdue
    audit.decide(engine, target, get_user(engine, "demo"), "confirmed", "seen", false_alarm_days=7)
    assert queue_ids(client.get("/cases?due=overdue&status=").text) == []


def test_money_recovered_only_on_confirmed_leakage_and_on_the_dashboard(site):
    app, engine, world, planted = site
    client, token = as_role(app, "auditor")
    open_case = world.case_id
    response = client.post(
        f"/cases/{open_case}/recovered",
        data={"recovered": "1000", "note": "x", "csrf_token": token},
    )
    assert response.status_code == 400
    for typed in ("-5", "12,5", "lots"):
        response = client.post(
            f"/cases/{planted['earlier']}/recovered",
            data={"recovered": typed, "note": "x", "csrf_token": token},
        )
        assert response.status_code == 400, typed
    response = client.post(
        f"/cases/{planted['earlier']}/recovered",
        data={"recovered": "Rp 250.000", "note": "second payment", "csrf_token": token},
    )
    assert response.status_code == 303
    assert queries.get_case(engine, planted["earlier"]).recovered_rp == 250_000
    assert events_of(engine, planted["earlier"])[-2:] == ["recover", "recover"]
    page = client.get(f"/cases/{planted['earlier']}").text
    assert 'id="case-recovered" data-rp="250000"' in page
    # Dashboard: found against recovered per measure, for every role that sees the dashboard.
    viewer, _ = as_role(app, "viewer")
    figures = viewer.get("/api/dashboard").json()
    sales_not_recorded = figures["found_recovered_by_measure"]["sales_not_recorded"]
    # two confirmed detector cases: the market's 150.000 and the earlier 300.000
    assert sales_not_recorded == {"cases": 2, "found": 450_000, "recovered": 250_000}
    board = viewer.get("/dashboard").text
    assert 'id="found-recovered"' in board and 'class="num recovered" data-rp="250000"' in board


def test_record_recovery_refuses_what_is_not_whole_rupiah(site):
    _, engine, _, planted = site
    supervisor = get_user(engine, "supervisor")
    for bad in (-1, 1.5, True, "100"):
        with pytest.raises(UnusableInputError):
            audit.record_recovery(engine, planted["earlier"], supervisor, bad, "n")


# ----------------------------------------------------------------------------- both databases


def test_inspector_queries_on_sqlite_and_postgresql(engine):
    """Search (the correlated receipt lookup, escaped LIKE), overlapping dates, next case, the
    history's operator match, the type-ahead and found-vs-recovered on both databases."""
    world = seed(engine, extra_cases=6)
    ensure_demo_users(engine)
    planted = _plant_history(engine, world)

    def ids(**kw) -> set[int]:
        return {r.case_id for r in queries.case_queue(engine, queries.QueueFilter(**kw)).rows}

    assert ids(q="PKR-001-00010", status="") == {world.case_id}
    assert ids(q="op-9", status="") == {planted["long_case"]}
    assert ids(q="%", status="") == set()  # a LIKE wildcard is a character, not "anything"
    assert ids(q=NPWPD.lower(), status="") >= {world.case_ids[2]}
    long_case = queries.get_case(engine, planted["long_case"])
    middle = (long_case.start_at + timedelta(days=1)).astimezone(TZ).date()
    assert planted["long_case"] in ids(date_from=middle, date_to=middle, status="")
    flt = queries.QueueFilter(sort="shortfall")
    ordered = [r.case_id for r in queries.case_queue(engine, flt).rows]
    assert queries.next_case_id(engine, flt, ordered[0]) == ordered[1]
    assert queries.next_case_id(engine, flt, ordered[-1]) is None
    history = queries.case_history(engine, queries.get_case(engine, world.case_id))
    assert planted["earlier"] in [h["case"].case_id for h in history.at_point]
    assert world.decided_case_id in [h["case"].case_id for h in history.by_operators]
    assert history.confirmed_by_measure["sales_not_recorded"] == [2, 450_000, 120_000]
    assert [p["point_id"] for p in queries.point_suggestions(engine, "INDUK")] == ["PSR-002"]
    figures = queries.dashboard(engine, now=datetime.now(UTC), day=world.day)
    assert figures["found_recovered_by_measure"]["sales_not_recorded"]["recovered"] == 120_000
    only_voids = queries.TransactionFilter(status="void")
    txns = queries.case_transactions(
        engine, queries.get_case(engine, world.case_id), only=only_voids
    )
    assert (txns.total, txns.span_total) == (12, 82)
