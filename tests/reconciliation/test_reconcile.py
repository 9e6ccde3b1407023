"""Reconciliation rules: each pattern, each tolerance, idempotent reruns, decided cases kept."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import func, insert, select, update

from pipeline.casework import audit
from pipeline.casework.users import User, add_user
from pipeline.core.errors import UnusableInputError
from pipeline.reconciliation.reconcile import (
    ReconConfig,
    business_days_late,
    deposit_period,
    find_gaps,
    reconcile,
)
from pipeline.store import connect
from pipeline.store.schema import case_events, cases
from tests.helpers.recon_books import Books

MARCH = (date(2026, 3, 1), date(2026, 4, 1))
AFTER_DUE = date(2026, 5, 1)  # March tax is due Fri 10 April 2026
DUE = date(2026, 4, 10)


@pytest.fixture
def books(sqlite_url):
    engine = connect(sqlite_url)
    yield Books(engine)
    engine.dispose()


def kinds(result):
    return sorted(g.kind for g in result.gaps)


def restaurant(books, *, recorded=10_000_000, point="R1"):
    books.point(point, "restaurant_tax")
    for offset in range(10):  # spread over the month so it is not one big day
        books.sales(point, date(2026, 3, 2 + offset * 3), recorded // 10)
    return books


# --- calendar -----------------------------------------------------------------------------------


def test_business_days_late_rolls_over_weekend():
    config = ReconConfig(public_holidays=False)
    friday = date(2026, 4, 10)
    assert business_days_late(friday, friday, config) == 0
    assert business_days_late(friday, date(2026, 4, 13), config) == 1  # Monday
    assert business_days_late(date(2026, 4, 11), date(2026, 4, 13), config) == 0  # due Sat -> Mon
    assert business_days_late(friday, date(2026, 4, 15), config) == 3


def test_public_holiday_is_not_a_business_day():
    # 19 March 2026 (Nyepi) is a Thursday holiday: money due that day may land on Friday.
    config = ReconConfig()
    assert business_days_late(date(2026, 3, 19), date(2026, 3, 20), config) == 0
    assert (
        business_days_late(date(2026, 3, 19), date(2026, 3, 20), ReconConfig(public_holidays=False))
        == 1
    )


def test_closed_days_from_config_are_not_business_days(tmp_path):
    # Cuti bersama: Mon 23 and Tue 24 March 2026 declared bank closures, not in the holiday list.
    path = tmp_path / "recon.json"
    path.write_text('{"closed_days": ["2026-03-23", "2026-03-24"]}')
    config = ReconConfig.from_file(path)
    assert business_days_late(date(2026, 3, 20), date(2026, 3, 25), config) == 1
    assert business_days_late(date(2026, 3, 20), date(2026, 3, 25), ReconConfig()) == 3
    path.write_text('{"closed_days": ["23/03/2026"]}')
    with pytest.raises(UnusableInputError, match="not a date"):
        ReconConfig.from_file(path)


def test_deposit_period_from_reference_or_booking_month():
    assert deposit_period("SSPD R1 2026-03", date(2026, 5, 2)) == date(2026, 3, 1)
    assert deposit_period("PBJT masa 03/2026", date(2026, 5, 2)) == date(2026, 3, 1)
    assert deposit_period("setoran", date(2026, 4, 9)) == date(2026, 3, 1)


# --- taxpayer points ------------------------------------------------------------------------------


def test_clean_period_has_no_gap(books):
    restaurant(books).tax_return("R1", "2026-03", 10_000_000, 1_000_000)
    books.bank(DUE, 1_000_000, point_id="R1", reference="SSPD R1 2026-03")
    assert find_gaps(books.engine, *MARCH, as_of=AFTER_DUE).gaps == []


def test_declared_below_recorded(books):
    restaurant(books).tax_return("R1", "2026-03", 7_000_000, 700_000)
    books.bank(DUE, 700_000, point_id="R1", reference="SSPD R1 2026-03")
    result = find_gaps(books.engine, *MARCH, as_of=AFTER_DUE)
    assert kinds(result) == ["declared_below_recorded"]
    gap = result.gaps[0]
    assert (gap.recorded, gap.declared, gap.deposited) == (10_000_000, 7_000_000, 700_000)
    assert gap.difference_rp == 3_000_000 and gap.shortfall_rp == 300_000


def test_rounding_within_tolerance_is_no_gap(books):
    # Declared rounded down to the thousand; tax rounded too: within the rounding tolerance.
    restaurant(books, recorded=10_000_700).tax_return("R1", "2026-03", 10_000_000, 1_000_000)
    books.bank(DUE, 1_000_000, point_id="R1", reference="SSPD R1 2026-03")
    assert find_gaps(books.engine, *MARCH, as_of=AFTER_DUE).gaps == []


def test_beyond_rounding_tolerance_is_a_gap(books):
    restaurant(books).tax_return("R1", "2026-03", 9_900_000, 990_000)
    books.bank(DUE, 990_000, point_id="R1", reference="SSPD R1 2026-03")
    assert kinds(find_gaps(books.engine, *MARCH, as_of=AFTER_DUE)) == ["declared_below_recorded"]


def test_non_filer_is_declared_below_recorded_after_the_deadline(books):
    restaurant(books)
    assert find_gaps(books.engine, *MARCH, as_of=date(2026, 4, 5)).gaps == []
    result = find_gaps(books.engine, *MARCH, as_of=AFTER_DUE)
    assert kinds(result) == ["declared_below_recorded"]
    assert result.gaps[0].declared is None and "no return" in result.gaps[0].reasons


def test_window_starting_mid_month_still_reconciles_that_months_tax(books):
    # Regression: a window from the first day of data (the 3rd) skipped the whole month.
    restaurant(books).tax_return("R1", "2026-03", 7_000_000, 700_000)
    books.bank(DUE, 700_000, point_id="R1", reference="SSPD R1 2026-03")
    result = find_gaps(books.engine, date(2026, 3, 3), date(2026, 4, 1), as_of=AFTER_DUE)
    assert kinds(result) == ["declared_below_recorded"]


def test_deposit_below_declared(books):
    restaurant(books).tax_return("R1", "2026-03", 10_000_000, 1_000_000)
    books.bank(DUE, 600_000, point_id="R1", reference="SSPD R1 2026-03")
    result = find_gaps(books.engine, *MARCH, as_of=AFTER_DUE)
    assert kinds(result) == ["deposit_below_declared"]
    assert result.gaps[0].shortfall_rp == 400_000


def test_bank_fee_within_tolerance_is_no_gap(books):
    restaurant(books).tax_return("R1", "2026-03", 10_000_000, 1_000_000)
    books.bank(DUE, 1_000_000 - 6_500, point_id="R1", reference="SSPD R1 2026-03")
    assert find_gaps(books.engine, *MARCH, as_of=AFTER_DUE).gaps == []
    # With no fee allowed, the same deposit is short.
    strict = ReconConfig(bank_fee_rp=0)
    assert kinds(find_gaps(books.engine, *MARCH, as_of=AFTER_DUE, config=strict)) == [
        "deposit_below_declared"
    ]


def test_no_deposit_only_once_overdue(books):
    restaurant(books).tax_return("R1", "2026-03", 10_000_000, 1_000_000)
    assert find_gaps(books.engine, *MARCH, as_of=DUE).gaps == []  # not due yet: pending
    result = find_gaps(books.engine, *MARCH, as_of=AFTER_DUE)
    assert kinds(result) == ["no_deposit"] and result.gaps[0].shortfall_rp == 1_000_000


def test_deposit_one_day_late_over_a_weekend_is_no_gap(books):
    # Due Friday 10 April; booked Monday 13 April: one business day, within the allowance.
    restaurant(books).tax_return("R1", "2026-03", 10_000_000, 1_000_000)
    books.bank(date(2026, 4, 13), 1_000_000, point_id="R1", reference="SSPD R1 2026-03")
    assert find_gaps(books.engine, *MARCH, as_of=AFTER_DUE).gaps == []


def test_deposit_beyond_allowed_days_is_late(books):
    restaurant(books).tax_return("R1", "2026-03", 10_000_000, 1_000_000)
    books.bank(date(2026, 4, 15), 1_000_000, point_id="R1", reference="SSPD R1 2026-03")
    result = find_gaps(books.engine, *MARCH, as_of=AFTER_DUE)
    assert kinds(result) == ["late_deposit"]
    assert result.gaps[0].refs["figures"]["business_days_late"] == 3
    relaxed = ReconConfig(allowed_days_late=3)
    assert find_gaps(books.engine, *MARCH, as_of=AFTER_DUE, config=relaxed).gaps == []


def test_entertainment_rate_is_configurable(books):
    books.point("E1", "entertainment_tax").sales("E1", date(2026, 3, 5), 10_000_000)
    books.tax_return("E1", "2026-03", 10_000_000, 3_500_000)
    books.bank(DUE, 3_500_000, point_id="E1", reference="SSPD E1 2026-03")
    config = ReconConfig(point_tax_rates={"E1": 0.35})
    result = find_gaps(books.engine, *MARCH, as_of=AFTER_DUE, config=config)
    assert result.gaps == []


# --- collectors -----------------------------------------------------------------------------------


def parking(books):
    books.point("K1", "parking")
    return books


def test_collector_clean_days_and_rounding(books):
    parking(books)
    for day in range(2, 6):
        books.sales("K1", date(2026, 3, day), 452_500, operator="C1", method="cash", count=5)
        books.handed_in("C1", date(2026, 3, day), 452_000)  # rounded down to the thousand
    assert find_gaps(books.engine, date(2026, 3, 2), date(2026, 3, 6), as_of=AFTER_DUE).gaps == []


def test_collector_deposit_below_recorded_days_form_one_case(books):
    parking(books)
    for day in range(2, 6):
        books.sales("K1", date(2026, 3, day), 500_000, operator="C1", method="cash", count=5)
        books.handed_in("C1", date(2026, 3, day), 300_000 if day in (3, 4) else 500_000)
    result = reconcile(books.engine, date(2026, 3, 2), date(2026, 3, 6), as_of=AFTER_DUE)
    assert kinds(result) == ["deposit_below_recorded"]  # two short days in a row: one gap
    with books.engine.connect() as connection:
        rows = connection.execute(select(cases)).mappings().all()
    assert len(rows) == 1
    case = rows[0]
    assert case["kind"] == "deposit_below_recorded" and case["operators"] == "C1"
    assert case["point_id"] == "K1" and case["shortfall_rp"] == 400_000
    details = json.loads(case["details"])
    assert sorted(details["days"]) == ["2026-03-03", "2026-03-04"]
    assert details["recorded_rp"] == 1_000_000 and details["deposited_rp"] == 600_000


def test_collector_no_deposit(books):
    parking(books).sales("K1", date(2026, 3, 3), 400_000, operator="C1", method="cash")
    assert (
        find_gaps(books.engine, date(2026, 3, 3), date(2026, 3, 4), as_of=date(2026, 3, 4)).gaps
        == []
    )
    result = find_gaps(books.engine, date(2026, 3, 3), date(2026, 3, 4), as_of=AFTER_DUE)
    assert kinds(result) == ["no_deposit"] and result.gaps[0].collector_id == "C1"


def test_collector_friday_cash_handed_in_monday_is_on_time(books):
    friday = date(2026, 3, 6)
    parking(books).sales("K1", friday, 400_000, operator="C1", method="cash")
    books.handed_in("C1", friday, 400_000, on=date(2026, 3, 9))
    assert find_gaps(books.engine, friday, friday + timedelta(days=1), as_of=AFTER_DUE).gaps == []


def test_collector_cash_handed_in_beyond_allowed_days_is_late(books):
    friday = date(2026, 3, 6)
    parking(books).sales("K1", friday, 400_000, operator="C1", method="cash")
    books.handed_in("C1", friday, 400_000, on=date(2026, 3, 11))  # Wednesday: 2 business days
    result = find_gaps(books.engine, friday, friday + timedelta(days=1), as_of=AFTER_DUE)
    assert kinds(result) == ["late_deposit"]


def test_flat_deposits_while_recorded_cash_varies(books):
    parking(books)
    start = date(2026, 3, 2)
    for i in range(14):
        day = start + timedelta(days=i)
        books.sales("K1", day, 400_000 + (i % 5) * 120_000, operator="C1", method="cash", count=4)
        books.handed_in("C1", day, 350_000)
    result = reconcile(books.engine, start, start + timedelta(days=14), as_of=AFTER_DUE)
    # The setoran days are one flat case, not also fourteen "short" days.
    assert set(kinds(result)) == {"flat_deposits"}
    with books.engine.connect() as connection:
        rows = connection.execute(select(cases)).mappings().all()
    assert [r["kind"] for r in rows] == ["flat_deposits"]
    details = json.loads(rows[0]["details"])
    assert len(details["days"]) == 14 and details["deposited_rp"] == 14 * 350_000


def test_varying_deposits_that_match_are_not_flat(books):
    parking(books)
    start = date(2026, 3, 2)
    for i in range(14):
        day = start + timedelta(days=i)
        amount = 400_000 + (i % 5) * 120_000
        books.sales("K1", day, amount, operator="C1", method="cash", count=4)
        books.handed_in("C1", day, amount)
    assert find_gaps(books.engine, start, start + timedelta(days=14), as_of=AFTER_DUE).gaps == []


# --- bank credits that match nothing -------------------------------------------------------------


def test_unmatched_deposits(books):
    restaurant(books).tax_return("R1", "2026-03", 10_000_000, 1_000_000)
    books.bank(DUE, 1_000_000, point_id="R1", reference="SSPD R1 2026-03")
    books.point("R2", "restaurant_tax")
    stray = books.bank(date(2026, 4, 8), 250_000, reference="TRF DARI ANONIM")
    ghost = books.bank(date(2026, 4, 8), 90_000, point_id="NOPE", reference="SSPD NOPE 2026-03")
    idle = books.bank(date(2026, 4, 9), 120_000, point_id="R2", reference="SSPD R2 2026-03")
    nobody = books.bank(date(2026, 4, 9), 80_000, collector_id="C9", channel="cash_collector")
    result = find_gaps(books.engine, date(2026, 4, 1), date(2026, 5, 1), as_of=AFTER_DUE)
    assert kinds(result) == ["unmatched_deposit"] * 4
    assert {g.subject for g in result.gaps} == {f"line:{x}" for x in (stray, ghost, idle, nobody)}


def test_collector_bank_credit_matches_recent_hand_in(books):
    parking(books).sales("K1", date(2026, 3, 3), 400_000, operator="C1", method="cash")
    books.handed_in("C1", date(2026, 3, 3), 400_000)
    books.bank(date(2026, 3, 4), 400_000, collector_id="C1", channel="cash_collector")
    result = find_gaps(books.engine, date(2026, 3, 3), date(2026, 3, 5), as_of=AFTER_DUE)
    assert result.gaps == []


# --- cases: idempotent, decided cases kept ------------------------------------------------------


def _cases(engine):
    with engine.connect() as connection:
        return connection.execute(select(cases).order_by(cases.c.case_id)).mappings().all()


def test_rerun_does_not_duplicate_cases(engine):
    books = Books(engine)
    restaurant(books).tax_return("R1", "2026-03", 7_000_000, 700_000)
    parking(books).sales("K1", date(2026, 3, 3), 400_000, operator="C1", method="cash")
    first = reconcile(engine, *MARCH, as_of=AFTER_DUE)
    assert first.cases_created == 3  # declared below, no tax deposit, no collector deposit
    before = _cases(engine)
    second = reconcile(engine, *MARCH, as_of=AFTER_DUE)
    assert (second.cases_created, second.cases_updated, second.cases_cleared) == (0, 0, 0)
    after = _cases(engine)
    assert [dict(r) for r in after] == [dict(r) for r in before]
    details = json.loads(after[0]["details"])
    assert {"recorded_rp", "declared_rp", "deposited_rp", "difference_rp", "refs"} <= set(details)
    assert all(r["origin"] == "reconciliation" and r["status"] == "open" for r in after)


def test_decided_case_is_never_changed_or_erased(engine):
    books = Books(engine)
    restaurant(books).tax_return("R1", "2026-03", 10_000_000, 1_000_000)
    reconcile(engine, *MARCH, as_of=AFTER_DUE)
    (case,) = _cases(engine)
    assert case["kind"] == "no_deposit"
    with engine.begin() as connection:
        connection.execute(
            update(cases).where(cases.c.case_id == case["case_id"]).values(status="confirmed")
        )
    # The money turns up: the gap is gone, yet the auditor's decision stays exactly as it was.
    books.bank(DUE, 1_000_000, point_id="R1", reference="SSPD R1 2026-03")
    result = reconcile(engine, *MARCH, as_of=AFTER_DUE)
    (kept,) = _cases(engine)
    assert dict(kept) == {**dict(case), "status": "confirmed"}
    assert result.cases_cleared == 0


def test_open_case_cleared_when_the_gap_goes_away(books):
    restaurant(books).tax_return("R1", "2026-03", 10_000_000, 1_000_000)
    reconcile(books.engine, *MARCH, as_of=AFTER_DUE)
    assert len(_cases(books.engine)) == 1
    books.bank(DUE, 1_000_000, point_id="R1", reference="SSPD R1 2026-03")
    result = reconcile(books.engine, *MARCH, as_of=AFTER_DUE)
    assert result.cases_cleared == 1 and _cases(books.engine) == []


def test_open_case_with_audit_trail_is_not_cleared(books):
    restaurant(books).tax_return("R1", "2026-03", 10_000_000, 1_000_000)
    reconcile(books.engine, *MARCH, as_of=AFTER_DUE)
    (case,) = _cases(books.engine)
    with books.engine.begin() as connection:
        connection.execute(
            insert(case_events).values(
                case_id=case["case_id"], at=case["created_at"], actor="ani", action="assign"
            )
        )
    books.bank(DUE, 1_000_000, point_id="R1", reference="SSPD R1 2026-03")
    reconcile(books.engine, *MARCH, as_of=AFTER_DUE)
    assert len(_cases(books.engine)) == 1


def test_daily_reruns_grow_one_collector_case(books):
    parking(books)
    for day in range(2, 7):
        books.sales("K1", date(2026, 3, day), 500_000, operator="C1", method="cash")
        books.handed_in("C1", date(2026, 3, day), 200_000)
    for day in range(2, 7):  # as the daily DAG does: one day at a time, each twice
        for _ in range(2):
            reconcile(books.engine, date(2026, 3, day), date(2026, 3, day + 1), as_of=AFTER_DUE)
    (case,) = _cases(books.engine)
    assert case["shortfall_rp"] == 5 * 300_000
    assert len(json.loads(case["details"])["days"]) == 5


def test_config_rejects_unknown_option_and_bad_value():
    with pytest.raises(UnusableInputError, match="unknown option"):
        ReconConfig.from_mapping({"rounding": 5})
    with pytest.raises(UnusableInputError, match="rounding_rp"):
        ReconConfig.from_mapping({"rounding_rp": "lots"})
    assert ReconConfig.from_mapping({"rounding_rp": "5000"}).rounding_rp == 5000


def test_config_file_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "recon.yml"
    path.write_text("tax_rates:\n  entertainment_tax: 0.25\nallowed_days_late: 2\n")
    config = ReconConfig.from_file(path)
    assert config.rate_for("E1", "entertainment_tax") == 0.25
    assert config.rate_for("R1", "restaurant_tax") == 0.10
    assert config.allowed_days_late == 2 and config.rounding_rp == 1_000
    assert ReconConfig.from_file(None) == ReconConfig()
    with pytest.raises(UnusableInputError, match="cannot open"):
        ReconConfig.from_file(tmp_path / "missing.yml")


def test_empty_window_is_refused(books):
    with pytest.raises(UnusableInputError, match="empty"):
        find_gaps(books.engine, date(2026, 3, 2), date(2026, 3, 2), as_of=AFTER_DUE)


def test_cases_are_ordinary_rows_to_the_review_queue(books):
    # The review queue counts and filters cases with SQL; reconciliation cases must be plain rows.
    restaurant(books).tax_return("R1", "2026-03", 7_000_000, 700_000)
    reconcile(books.engine, *MARCH, as_of=AFTER_DUE)
    with books.engine.connect() as connection:
        count = connection.execute(
            select(func.count()).select_from(cases).where(cases.c.origin == "reconciliation")
        ).scalar()
    assert count == 2


def test_a_gap_day_bridging_two_open_collector_cases_joins_them(books):
    parking(books)
    for day in range(2, 7):
        books.sales("K1", date(2026, 3, day), 500_000, operator="C1", method="cash")
        books.handed_in("C1", date(2026, 3, day), 200_000)
    reconcile(books.engine, date(2026, 3, 2), date(2026, 3, 4), as_of=AFTER_DUE)
    reconcile(books.engine, date(2026, 3, 5), date(2026, 3, 7), as_of=AFTER_DUE)
    assert len(_cases(books.engine)) == 2
    reconcile(books.engine, date(2026, 3, 4), date(2026, 3, 5), as_of=AFTER_DUE)
    (case,) = _cases(books.engine)
    details = json.loads(case["details"])
    assert sorted(details["days"]) == [f"2026-03-0{d}" for d in range(2, 7)]
    assert details["refs"]["collector_deposits"]["days"] == sorted(details["days"])
    assert case["shortfall_rp"] == 5 * 300_000


# --- people's work survives reruns (casework.case_store.ACTED_ON) --------------------------------

AUDITOR = User("ani", "auditor")


def _row(engine, case_id):
    with engine.connect() as connection:
        return dict(
            connection.execute(select(cases).where(cases.c.case_id == case_id)).mappings().one()
        )


def test_noted_open_case_survives_a_rerun_with_its_note(engine):
    books = Books(engine)
    restaurant(books).tax_return("R1", "2026-03", 7_000_000, 700_000)
    books.bank(DUE, 700_000, point_id="R1", reference="SSPD R1 2026-03")
    reconcile(engine, *MARCH, as_of=AFTER_DUE)
    (case,) = _cases(engine)
    assert case["kind"] == "declared_below_recorded"
    audit.add_note(engine, case["case_id"], AUDITOR, "asked the restaurant for its till rolls")
    before = _row(engine, case["case_id"])
    books.sales("R1", date(2026, 3, 20), 1_000_000)  # a late device file: the gap grows
    rerun = reconcile(engine, *MARCH, as_of=AFTER_DUE)
    assert (rerun.cases_kept, rerun.cases_updated, rerun.cases_created) == (1, 0, 0)
    assert _row(engine, case["case_id"]) == before
    assert [e.note for e in audit.trail(engine, case["case_id"])] == [
        "asked the restaurant for its till rolls"
    ]


def test_assigned_open_case_is_neither_rewritten_nor_cleared(engine):
    books = Books(engine)
    restaurant(books).tax_return("R1", "2026-03", 10_000_000, 1_000_000)
    reconcile(engine, *MARCH, as_of=AFTER_DUE)
    (case,) = _cases(engine)
    add_user(engine, "budi", "auditor", "a-long-password", actor="test")
    audit.assign(engine, case["case_id"], User("sri", "supervisor"), "budi")
    before = _row(engine, case["case_id"])
    books.bank(DUE, 1_000_000, point_id="R1", reference="SSPD R1 2026-03")
    result = reconcile(engine, *MARCH, as_of=AFTER_DUE)
    assert result.cases_cleared == 0 and _row(engine, case["case_id"]) == before


def test_noted_collector_case_is_not_deleted_when_a_gap_day_bridges_it(books):
    # The bridging day used to join the two open cases by deleting one: with a note on it, the
    # foreign key from case_events aborted the run.
    parking(books)
    for day in range(2, 7):
        books.sales("K1", date(2026, 3, day), 500_000, operator="C1", method="cash")
        books.handed_in("C1", date(2026, 3, day), 200_000)
    reconcile(books.engine, date(2026, 3, 2), date(2026, 3, 4), as_of=AFTER_DUE)
    reconcile(books.engine, date(2026, 3, 5), date(2026, 3, 7), as_of=AFTER_DUE)
    first, second = _cases(books.engine)
    audit.add_note(books.engine, second["case_id"], AUDITOR, "collector was ill on the 5th")
    noted = _row(books.engine, second["case_id"])
    reconcile(books.engine, date(2026, 3, 4), date(2026, 3, 5), as_of=AFTER_DUE)
    grown, kept = _cases(books.engine)
    assert dict(kept) == noted
    assert sorted(json.loads(grown["details"])["days"]) == [
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
    ]
    assert grown["case_id"] == first["case_id"]
    assert [e.note for e in audit.trail(books.engine, second["case_id"])] == [
        "collector was ill on the 5th"
    ]
