"""The leaders' pages: revenue against the year's targets (realisation, pace), the cashless
progress and the weekly trends with their drill-down, computed from known hours of revenue on
SQLite and PostgreSQL, and served to every role over HTTP on a seeded database (viewers read
aggregates and case counts; supervisors also set and remove targets, each change in the trail)."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select, update

from pipeline.casework.users import ensure_demo_users
from pipeline.core.settings import Settings
from pipeline.reference.targets import load_targets, set_target, target_trail, year_targets
from pipeline.review import create_app, queries
from pipeline.store import connect
from pipeline.store.schema import cases, hour_aggregates, points
from tests.helpers.review_client import as_role, client_for, csrf_token, role_cookies
from tests.helpers.review_seed import TZ, seed

SETTINGS = Settings(secret_key="test-key")
TODAY = date(2026, 3, 5)  # the seeded world's today: its data ends at this local midnight
ROLES = ("viewer", "auditor", "ops", "supervisor")


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=TZ).astimezone(UTC)


def _hour(point_id: str, start: datetime, gross: int, cash: int) -> dict:
    return dict(
        point_id=point_id,
        hour_start=start,
        txn_count=max(1, gross // 5000),
        gross_paid=gross,
        void_count=0,
        void_amount=0,
        refund_count=0,
        refund_amount=0,
        cash_amount=cash,
        operators=1,
        max_ticket=20_000,
    )


def plant_known_hours_points(engine) -> None:
    """Three points open around the clock: parking in Kota, markets in Utara and Kota."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            points.insert(),
            [
                dict(
                    point_id=p,
                    name=p,
                    revenue_type=t,
                    district=d,
                    open_hours="00:00-24:00",
                    timezone="Asia/Jakarta",
                    updated_at=now,
                )
                for p, t, d in (
                    ("PK", "parking", "Kota"),
                    ("MU", "market", "Utara"),
                    ("MK", "market", "Kota"),
                )
            ],  # fmt: skip
        )


def plant_known_hours(engine) -> None:
    """A handful of hours on both sides of the local new year (UTC+7) at the three points."""
    plant_known_hours_points(engine)
    with engine.begin() as connection:
        # The hour starting at 2025-12-31 23:00 WIB is 2025's; 00:00 WIB on 1 January is 2026's
        # though it is still 31 December in UTC.
        local_year_start = datetime(2026, 1, 1, tzinfo=TZ)
        connection.execute(
            hour_aggregates.insert(),
            [
                _hour("PK", local_year_start - timedelta(hours=1), 5_000_000, 5_000_000),
                _hour("PK", local_year_start, 700_000, 700_000),
                _hour("PK", _at(date(2026, 1, 10), 9), 1_000_000, 400_000),
                _hour("PK", _at(date(2026, 3, 4), 12), 2_000_000, 500_000),
                _hour("MU", _at(date(2026, 2, 1), 10), 400_000, 400_000),
            ],
        )


def test_realisation_counts_the_local_year_and_month_against_the_targets(engine):
    plant_known_hours(engine)
    set_target(engine, 2026, "parking", "", "365.000.000", actor="test")
    set_target(engine, 2026, "market", "Utara", "100000000", actor="test")
    set_target(engine, 2026, "market", "Kota", "50000000", actor="test")
    # Nothing arrived on 5 March yet: counted to the end of 4 March, the latest day with data.
    r = queries.realisation(engine, now=_at(date(2026, 3, 5), 10))
    assert (r["year"], r["as_of_day"], r["note"]) == (2026, date(2026, 3, 4), "latest")
    assert (r["days_done"], r["days_left"], r["month"]) == (63, 302, "2026-03")
    parking, market = (next(x for x in r["rows"] if x["name"] == n) for n in ("parking", "market"))
    assert parking["ytd_rp"] == 700_000 + 1_000_000 + 2_000_000  # not 2025's last hour
    assert parking["mtd_rp"] == 2_000_000
    assert parking["realised"] == pytest.approx(3_700_000 / 365_000_000)
    assert parking["missing_rp"] == 361_300_000
    assert parking["pace_rp"] == 1_196_358  # 361.300.000 / 302 = 1.196.357,6, rounded up
    assert parking["month_target_rp"] == 31_000_000  # 365 M spread over the days: March's 31
    assert parking["month_realised"] == pytest.approx(2_000_000 / 31_000_000)
    assert market["per_district"] and market["target_rp"] == 150_000_000
    assert [
        (d["name"], d["target_rp"], d["ytd_rp"], d["pace_rp"]) for d in market["districts"]
    ] == [
        ("Kota", 50_000_000, 0, -(-50_000_000 // 302)),
        ("Utara", 100_000_000, 400_000, -(-99_600_000 // 302)),
    ]
    total = r["total"]
    assert (total["target_rp"], total["ytd_rp"]) == (515_000_000, 4_100_000)
    assert total["pace_rp"] == -(-(515_000_000 - 4_100_000) // 302)
    assert r["data_from"] is None  # 2025's hours exist: the data covers the whole year
    # A past year is counted whole: nothing left to pace, no target there.
    past = queries.realisation(engine, now=_at(date(2026, 3, 5), 10), year=2025)
    assert past["days_left"] == 0 and past["as_of_day"] == date(2025, 12, 31)
    assert [(x["name"], x["ytd_rp"], x["target_rp"], x["pace_rp"]) for x in past["rows"]] == [
        ("parking", 5_000_000, None, None)
    ]
    assert past["total"]["target_rp"] is None and past["untargeted_ytd_rp"] == 5_000_000


def test_realisation_of_a_met_target_needs_no_pace(engine):
    plant_known_hours(engine)
    set_target(engine, 2026, "parking", "", "3000000", actor="test")
    row = queries.realisation(engine, now=_at(date(2026, 3, 5), 10))["rows"][-1]
    assert row["name"] == "parking" and row["missing_rp"] == 0 and row["pace_rp"] is None
    assert row["realised"] == pytest.approx(3_700_000 / 3_000_000)


# ----------------------------------------------------------------------------- over HTTP


def vary_cash(engine) -> None:
    """The seed takes 60% cash everywhere; here the parking lot stays at 90%, the hotel is at
    20%, and the market moved to QRIS two weeks ago (40% cash since)."""
    since = datetime.combine(TODAY - timedelta(days=14), time(0), tzinfo=TZ)
    cash = hour_aggregates.c.cash_amount
    gross = hour_aggregates.c.gross_paid
    with engine.begin() as connection:
        for point_id, tenths, after in (("PKR-001", 9, None), ("HTL-004", 2, None),
                                        ("PSR-002", 4, since)):  # fmt: skip
            query = update(hour_aggregates).where(hour_aggregates.c.point_id == point_id)
            if after is not None:
                query = query.where(hour_aggregates.c.hour_start >= after)
            connection.execute(query.values({cash: gross * tenths / 10}))


def plant_drop(engine) -> None:
    """The restaurant took half its usual in the last complete week."""
    monday = TODAY - timedelta(days=TODAY.weekday() + 7)
    begin = datetime.combine(monday, time(0), tzinfo=TZ)
    gross, cash = hour_aggregates.c.gross_paid, hour_aggregates.c.cash_amount
    with engine.begin() as connection:
        connection.execute(
            update(hour_aggregates)
            .where(hour_aggregates.c.point_id == "RST-003")
            .where(hour_aggregates.c.hour_start >= begin)
            .where(hour_aggregates.c.hour_start < begin + timedelta(weeks=1))
            .values({gross: gross / 2, cash: cash / 2})
        )


@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("review-leaders") / "eincome.db"
    engine = connect(f"sqlite:///{path}")
    seed(engine, today=TODAY)
    ensure_demo_users(engine)
    targets = path.parent / "targets.csv"
    targets.write_text(
        "year,revenue_type,district,target_rp\n"
        "2026,parking,,1.200.000.000\n2026,market,Utara,900000000\n2026,market,Kota,100000000\n"
    )
    load_targets(engine, targets, actor="test")
    vary_cash(engine)
    plant_drop(engine)
    cookies = role_cookies(create_app(engine, SETTINGS))
    engine.dispose()
    return path, cookies


@pytest.fixture
def site(template_db, tmp_path):
    path, cookies = template_db
    copy = tmp_path / "eincome.db"
    shutil.copy(path, copy)
    engine = connect(f"sqlite:///{copy}")
    app = create_app(engine, SETTINGS)
    app.state.role_cookies = cookies
    yield app, engine
    engine.dispose()


def _seeded_revenue(engine, begin: date, end: date) -> dict[str, int]:
    """Revenue per type in [begin, end) local days, summed here from the rows themselves."""
    totals: dict[str, int] = {}
    with engine.connect() as connection:
        rows = connection.execute(
            select(hour_aggregates.c.hour_start, hour_aggregates.c.gross_paid, points.c.revenue_type)
            .join(points, points.c.point_id == hour_aggregates.c.point_id)
        ).all()  # fmt: skip
    for start, gross, revenue_type in rows:
        if begin <= start.astimezone(TZ).date() < end:
            totals[revenue_type] = totals.get(revenue_type, 0) + gross
    return totals


def _cell(page: str, row_id: str) -> list[str]:
    """A table row's cells as read: the full amount of a money cell (its title; the cell itself
    shows the short form, 'Rp 1,2 M'), the text of the others."""
    row = re.search(rf"<tr[^>]*{row_id}[^>]*>(.*?)</tr>", page, re.S).group(1)
    cells = []
    for attributes, body in re.findall(r"<t[dh]([^>]*)>(.*?)</t[dh]>", row, re.S):
        title = re.search(r'title="([^"]*)"', attributes)
        cells.append(title.group(1) if title else re.sub(r"<[^>]+>|\s+", " ", body).strip())
    return cells


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_realisation_and_the_numbers_add_up(site, role):
    app, engine = site
    client, _ = as_role(app, role)
    page = client.get("/realisation")
    assert page.status_code == 200
    ytd = _seeded_revenue(engine, date(2026, 1, 1), TODAY)
    mtd = _seeded_revenue(engine, date(2026, 3, 1), TODAY)
    parking = _cell(page.text, 'data-type="parking"')
    assert parking[1:5] == [
        "Rp 1.200.000.000",
        f"Rp {ytd['parking']:,}".replace(",", "."),
        f"{100 * ytd['parking'] / 1.2e9:.1f}%".replace(".", ","),
        f"Rp {mtd['parking']:,}".replace(",", "."),
    ]
    pace = -(-(1_200_000_000 - ytd["parking"]) // 302)
    assert parking[6] == f"Rp {pace:,}".replace(",", ".")
    assert "Dihitung sampai 4 Mar 2026" in page.text and "sisa 302 hari" in page.text
    assert 'data-district="Utara"' in page.text  # the market's targets are per district
    # Only a supervisor sees the form and the trail.
    assert ('id="target-form"' in page.text) is (role == "supervisor")
    assert ('id="target-trail"' in page.text) is (role == "supervisor")


def test_anonymous_is_sent_to_sign_in(site):
    app, engine = site
    client = client_for(app)
    response = client.get("/realisation")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    token = csrf_token(client, "/login")  # even with a token of an anonymous session
    form = {"csrf_token": token, "year": "2026", "revenue_type": "hotel_tax", "target_rp": "5"}
    response = client.post("/realisation/targets", data=form)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert len(year_targets(engine, 2026)) == 3


@pytest.mark.parametrize("role", ["viewer", "auditor", "ops"])
def test_only_a_supervisor_sets_or_removes_targets(site, role):
    app, engine = site
    client, token = as_role(app, role)
    form = {
        "csrf_token": token,
        "year": "2026",
        "revenue_type": "hotel_tax",
        "target_rp": "5000000",
    }
    assert client.post("/realisation/targets", data=form).status_code == 403
    form = {"csrf_token": token, "year": "2026", "revenue_type": "parking", "district": ""}
    assert client.post("/realisation/targets/remove", data=form).status_code == 403
    assert len(year_targets(engine, 2026)) == 3


def test_a_supervisor_sets_and_removes_a_target_recorded_in_the_trail(site):
    app, engine = site
    client, token = as_role(app, "supervisor")
    form = {"csrf_token": token, "year": "2026", "revenue_type": "hotel_tax", "district": "",
            "target_rp": "Rp 750.000.000"}  # fmt: skip
    response = client.post("/realisation/targets", data=form)
    assert response.status_code == 303 and response.headers["location"] == "/realisation?year=2026"
    page = client.get("/realisation?year=2026").text
    assert "Target 2026 pajak hotel seluruh kabupaten ditetapkan." in page
    assert _cell(page, 'data-type="hotel_tax"')[1] == "Rp 750.000.000"
    event = target_trail(engine)[0]
    assert (event.actor, event.action, event.after_rp) == ("supervisor", "set", 750_000_000)
    form = {"csrf_token": token, "year": "2026", "revenue_type": "hotel_tax", "district": ""}
    assert client.post("/realisation/targets/remove", data=form).status_code == 303
    assert target_trail(engine)[0].action == "remove"
    assert "hotel_tax" not in {t.revenue_type for t in year_targets(engine, 2026)}


@pytest.mark.parametrize(
    "form, status, said",
    [
        ({"year": "2026", "revenue_type": "parking", "target_rp": "1,5"}, 400,
         "target_rp &#39;1,5&#39; bukan rupiah bulat di atas nol"),
        ({"year": "dua ribu", "revenue_type": "parking", "target_rp": "5"}, 400,
         "tahun &#39;dua ribu&#39; bukan tahun dari 2000 sampai 2099"),
        ({"year": "2026", "revenue_type": "market", "target_rp": "5"}, 400,
         "punya target untuk seluruh kabupaten dan target per kecamatan"),
        ({"year": "2026", "revenue_type": "parking", "district": "Atlantis", "target_rp": "5"},
         400, "kecamatan &#39;Atlantis&#39; bukan kecamatan di daftar titik"),
    ],
)  # fmt: skip
def test_an_unusable_target_is_a_400_naming_the_value(site, form, status, said):
    app, engine = site
    client, token = as_role(app, "supervisor")
    response = client.post("/realisation/targets", data={"csrf_token": token, **form})
    assert response.status_code == status and said in response.text, response.text[-2000:]
    assert len(year_targets(engine, 2026)) == 3


def test_removing_a_missing_target_is_a_404_and_a_bad_year_a_400(site):
    app, _ = site
    client, token = as_role(app, "supervisor")
    form = {"csrf_token": token, "year": "2026", "revenue_type": "hotel_tax", "district": ""}
    assert client.post("/realisation/targets/remove", data=form).status_code == 404
    assert client.get("/realisation?year=19").status_code == 400
    assert "Belum ada target untuk tahun ini." in client.get("/realisation?year=2027").text


# ----------------------------------------------------------------------------- cashless progress


def _case(connection, point_id, start, hours, *, origin="detector", kind="under_reporting",
          status="open", shortfall=0):  # fmt: skip
    now = datetime.now(UTC)
    connection.execute(
        cases.insert().values(
            origin=origin,
            point_id=point_id,
            start_at=start,
            end_at=start + timedelta(hours=hours),
            kind=kind,
            score=0.8,
            severity="high",
            reasons="r",
            shortfall_rp=shortfall,
            status=status,
            created_at=now,
            updated_at=now,
        )  # fmt: skip
    )


def plant_cash_weeks(engine) -> None:
    """Two weeks of revenue (the week of 23 Feb 2026 and the running week of 2 March) with known
    cash parts, and cases at the points: counted, settled, outside the weeks."""
    plant_known_hours_points(engine)
    with engine.begin() as connection:
        connection.execute(
            hour_aggregates.insert(),
            [
                _hour("PK", _at(date(2026, 2, 23), 9), 1_000_000, 900_000),
                _hour("PK", _at(date(2026, 3, 4), 12), 1_000_000, 500_000),
                _hour("MU", _at(date(2026, 2, 24), 10), 2_000_000, 2_000_000),
                _hour("MU", _at(date(2026, 3, 3), 10), 2_000_000, 1_800_000),
                _hour("MK", _at(date(2026, 3, 2), 10), 500_000, 0),
            ],
        )
        _case(connection, "PK", _at(date(2026, 2, 25), 10), 3, shortfall=300_000)
        _case(connection, "PK", _at(date(2026, 2, 26), 10), 2, shortfall=999_999,
              status="false_alarm")  # fmt: skip
        _case(connection, "PK", _at(date(2026, 1, 2), 10), 2, shortfall=777_000)  # before
        _case(connection, "MU", _at(date(2026, 3, 1), 0), 24, origin="reconciliation",
              kind="declared_below_recorded", shortfall=5_000_000)  # fmt: skip
        _case(connection, "MU", _at(date(2026, 3, 3), 9), 1, shortfall=100_000, status="confirmed")


def test_cashless_shares_per_week_district_and_point_and_the_cash_heavy_ranking(engine):
    plant_cash_weeks(engine)
    c = queries.cashless(engine, now=_at(date(2026, 3, 5), 10))
    # The weeks before any data are left out; the running week is marked.
    assert [(w["start"], w["partial"]) for w in c["weeks"]] == [
        (date(2026, 2, 23), False),
        (date(2026, 3, 2), True),
    ]
    regency = c["regency"]
    assert regency["revenue_rp"] == [3_000_000, 3_500_000]
    assert regency["cash_rp"] == [2_900_000, 2_300_000]
    assert regency["shares"] == pytest.approx([100_000 / 3_000_000, 1_200_000 / 3_500_000])
    assert regency["share"] == pytest.approx(1_300_000 / 6_500_000)
    kota, utara = (next(r for r in c["by_district"] if r["name"] == n) for n in ("Kota", "Utara"))
    assert kota["shares"] == pytest.approx([0.1, 1_000_000 / 1_500_000])
    assert kota["change_pts"] == pytest.approx(100 * (1_000_000 / 1_500_000 - 0.1))
    assert utara["shares"] == pytest.approx([0.0, 0.1])
    market = next(r for r in c["by_type"] if r["name"] == "market")
    assert market["revenue_rp"] == [2_000_000, 2_500_000] and market["cash_rp"] == [
        2_000_000,
        1_800_000,
    ]
    # Mostly cash: PK (70%) and MU (95%); MK is all non-cash. PK's open case (Rp 300.000) ranks
    # it above MU (Rp 100.000 confirmed; its reconciliation gap is counted, not added); the false
    # alarm and the case before the weeks count for nothing.
    assert [
        (p["point_id"], p["cash_share"], p["flagged_rp"], p["cases"]) for p in c["cash_heavy"]
    ] == [
        ("PK", pytest.approx(0.7), 300_000, 1),
        ("MU", pytest.approx(0.95), 100_000, 2),
    ]
    assert c["cash_heavy_count"] == 2
    assert [p["point_id"] for p in c["points"]] == ["MU", "PK", "MK"]  # least cashless first


def test_cashless_on_an_empty_database_is_an_empty_page_not_an_error(engine):
    c = queries.cashless(engine, now=_at(date(2026, 3, 5), 10))
    assert c["regency"] is None and c["points"] == [] and c["cash_heavy"] == []


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_cashless_progress_without_case_details(site, role):
    app, engine = site
    client, _ = as_role(app, role)
    page = client.get("/cashless")
    assert page.status_code == 200
    # The regency's share over the weeks shown, summed here from the seeded hours themselves.
    weeks = re.findall(r'<div class="bars" id="c-weeks">(.*?)</div>\s*</section>', page.text, re.S)
    assert weeks
    with engine.connect() as connection:
        rows = connection.execute(
            select(hour_aggregates.c.hour_start, hour_aggregates.c.gross_paid,
                   hour_aggregates.c.cash_amount)
        ).all()  # fmt: skip
    first_monday = TODAY - timedelta(days=TODAY.weekday() + 7 * 7)
    shown = [r for r in rows if first_monday <= r.hour_start.astimezone(TZ).date() < TODAY]
    gross, cash = sum(r.gross_paid for r in shown), sum(r.cash_amount for r in shown)
    expected = f"{100 * (gross - cash) / gross:.1f}%".replace(".", ",")
    assert re.search(r'id="c-share">([^<]+)<', page.text).group(1) == expected
    heavy = re.findall(r'<tr data-point="([^"]+)">', page.text.split('id="t-cash-heavy"')[1])
    assert heavy[:2] == ["PKR-001", "PSR-002"]  # mostly cash, the largest open shortfalls first
    assert "/cases/" not in page.text  # counts only: no link to a case, whoever reads it


def test_anonymous_is_sent_from_the_cashless_page_to_sign_in(site):
    app, _ = site
    response = client_for(app).get("/cashless")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


# ----------------------------------------------------------------------------- trends, drill-down


def plant_weekly_revenue(engine) -> None:
    """Six local weeks from Monday 26 January 2026 (the first hour of data) to the running week
    of 2 March, one hour a week per point with known revenue; a case in the week of 23 Feb."""
    plant_known_hours_points(engine)
    weekly = {  # point -> revenue in the weeks of 26 Jan, 2, 9, 16, 23 Feb
        "PK": (1_000_000, 1_000_000, 1_200_000, 800_000, 600_000),
        "MU": (2_000_000, 2_000_000, 2_000_000, 2_000_000, 2_200_000),
        "MK": (0, 0, 400_000, 400_000, 100_000),
    }
    rows = [
        _hour(point_id, _at(date(2026, 1, 26) + timedelta(weeks=i), 10), rp, rp)
        for point_id, values in weekly.items()
        for i, rp in enumerate(values)
        if rp
    ]
    rows.append(_hour("PK", _at(date(2026, 3, 4), 12), 500_000, 0))  # the running week
    with engine.begin() as connection:
        connection.execute(hour_aggregates.insert(), rows)
        _case(connection, "PK", _at(date(2026, 2, 25), 10), 3, shortfall=300_000)
        _case(connection, "PK", _at(date(2026, 2, 26), 10), 2, status="false_alarm")
        _case(connection, "MU", _at(date(2026, 3, 3), 9), 1, shortfall=100_000)  # running week


def test_trends_compare_the_last_complete_week_with_the_four_before(engine):
    plant_weekly_revenue(engine)
    t = queries.trends(engine, now=_at(date(2026, 3, 5), 10))
    assert [w["start"] for w in t["weeks"]] == [
        date(2026, 1, 26) + timedelta(weeks=i) for i in range(6)
    ]
    assert t["weeks"][-1]["partial"] and t["last_week"]["start"] == date(2026, 2, 23)
    assert t["week_values"] == [3_000_000, 3_000_000, 3_600_000, 3_200_000, 2_900_000, 500_000]
    total = t["total"]
    assert (total["last_rp"], total["usual_rp"], total["usual_weeks"]) == (2_900_000, 3_200_000, 4)
    assert total["change"] == pytest.approx(-300_000 / 3_200_000)
    assert total["cases"] == 1  # PK's open case that week; not the false alarm, not next week's
    kota = next(r for r in t["by_district"] if r["name"] == "Kota")
    assert (kota["last_rp"], kota["usual_rp"], kota["points"]) == (700_000, 1_200_000, 2)
    # Biggest drops first: MK (-50% of its usual 200.000, zero weeks included), then PK (-40%).
    assert [(p["point_id"], p["usual_rp"], p["change"], p["cases"]) for p in t["drops"]] == [
        ("MK", 200_000, pytest.approx(-0.5), 0),
        ("PK", 1_000_000, pytest.approx(-0.4), 1),
    ]


def test_trends_drill_down_to_a_district_or_a_type(engine):
    plant_weekly_revenue(engine)
    now = _at(date(2026, 3, 5), 10)
    kota = queries.trends(engine, now=now, district="Kota")
    assert [p["point_id"] for p in kota["points"]] == ["MK", "PK"]
    assert [r["name"] for r in kota["by_district"]] == ["Kota"]
    assert kota["total"]["last_rp"] == 700_000 and kota["total"]["usual_rp"] == 1_200_000
    market = queries.trends(engine, now=now, revenue_type="market")
    assert {p["point_id"] for p in market["points"]} == {"MU", "MK"}
    assert market["week_values"][:5] == [2_000_000, 2_000_000, 2_400_000, 2_400_000, 2_300_000]


def test_a_usual_needs_two_whole_weeks_of_data(engine):
    plant_known_hours_points(engine)
    with engine.begin() as connection:  # data begins on a Wednesday: that week is not usual
        connection.execute(
            hour_aggregates.insert(),
            [_hour("PK", _at(date(2026, 2, 11), 10), 1_000_000, 0),
             _hour("PK", _at(date(2026, 2, 17), 10), 1_000_000, 0),
             _hour("PK", _at(date(2026, 3, 1), 10), 500_000, 0)],
        )  # fmt: skip
    t = queries.trends(engine, now=_at(date(2026, 3, 2), 10))  # Monday: last complete 23 Feb
    assert t["last_week"]["start"] == date(2026, 2, 23)
    assert t["total"]["usual_rp"] is None and t["drops"] == []  # only 16 Feb is a whole week


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("query", ["", "?district=Kota", "?type=market"])
def test_every_role_reads_the_trends_and_their_drill_down(site, role, query):
    app, _ = site
    client, _ = as_role(app, role)
    page = client.get("/trends" + query)
    assert page.status_code == 200
    assert "/cases/" not in page.text  # case counts, never a case
    rows = re.findall(r'<tr data-point="([^"]+)">', page.text)
    if query == "?district=Kota":
        assert set(rows) == {"PKR-001", "RST-003"} and "Tren · Kota" in page.text
    if query == "?type=market":
        assert set(rows) == {"PSR-002"}
    if not query:  # the planted drop of the restaurant leads the drops
        assert rows[0] == "RST-003"
        assert (
            'href="/trends?district=Kota"' in page.text
            and 'href="/trends?type=parking"' in page.text
        )


def test_the_trends_numbers_add_up_to_the_seeded_hours(site):
    app, engine = site
    client, _ = as_role(app, "viewer")
    page = client.get("/trends").text
    last_monday = TODAY - timedelta(days=TODAY.weekday() + 7)  # the last complete week
    with engine.connect() as connection:
        rows = connection.execute(
            select(hour_aggregates.c.hour_start, hour_aggregates.c.gross_paid)
        ).all()
    week = sum(
        g
        for at, g in rows
        if last_monday <= at.astimezone(TZ).date() < last_monday + timedelta(days=7)
    )
    assert re.search(r'id="tr-last">([^<]+)<', page).group(1) == f"Rp {week:,}".replace(",", ".")


@pytest.mark.parametrize(
    "query, said",
    [
        ("?type=casino", "type=&#39;casino&#39;"),
        ("?district=Atlantis", "district=&#39;Atlantis&#39;"),
    ],
)
def test_a_drill_down_to_nothing_known_is_a_400_naming_it(site, query, said):
    app, _ = site
    client, _ = as_role(app, "viewer")
    response = client.get("/trends" + query)
    assert response.status_code == 400 and said in response.text


def test_anonymous_is_sent_from_the_trends_to_sign_in(site):
    app, _ = site
    response = client_for(app).get("/trends?district=Kota")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_cashless_lists_the_first_points_and_says_how_many_there_are(engine, monkeypatch):
    plant_cash_weeks(engine)
    monkeypatch.setattr("pipeline.review.queries._cashless.SHOWN_POINTS", 1)
    c = queries.cashless(engine, now=_at(date(2026, 3, 5), 10))
    assert [p["point_id"] for p in c["points"]] == ["MU"] and c["points_count"] == 3
    assert [p["point_id"] for p in c["cash_heavy"]] == ["PK"] and c["cash_heavy_count"] == 2
