"""Yearly revenue targets: a file loads whole or not at all, every bad row is named with its line
and value, a type's target is regency-wide or per district (never both), and every change is in
an append-only trail (the database refuses to rewrite it) — on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from pipeline.core.errors import NotFoundError, UnusableInputError
from pipeline.reference.targets import (
    load_targets,
    remove_target,
    set_target,
    target_trail,
    year_targets,
)
from pipeline.review.formats import phrase_text
from pipeline.store.schema import revenue_target_events, revenue_targets
from tests.helpers.registry import register

GOOD = (
    "year,revenue_type,district,target_rp\n"
    "2026,parking,,1.200.000.000\n"
    "2026,market,Kota,900000000\n"
    "2026,market,Utara,100000000\n"
    "2025,parking,,1000000000\n"
)


@pytest.fixture
def regency(engine):
    register(engine, "P1")  # district Kota
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO points (point_id, name, revenue_type, district, open_hours, timezone,"
                " updated_at) VALUES ('M1', 'Pasar', 'market', 'Utara', '05:00-17:00',"
                " 'Asia/Jakarta', '2026-01-01 00:00:00')"
            )
        )
    return engine


def _count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar()


def test_a_file_loads_and_a_reload_replaces_only_its_years(regency, tmp_path):
    path = tmp_path / "targets.csv"
    path.write_text(GOOD)
    result = load_targets(regency, path, actor="command line")
    assert (result.years, result.targets, result.changed) == ((2025, 2026), 4, 4)
    assert [(t.revenue_type, t.district, t.target_rp) for t in year_targets(regency, 2026)] == [
        ("market", "Kota", 900_000_000),
        ("market", "Utara", 100_000_000),
        ("parking", "", 1_200_000_000),
    ]
    # A corrected plan for 2026 alone: parking raised, the market split dropped for one row.
    path.write_text(
        "year,revenue_type,target_rp,district\n2026,parking,1300000000,\n2026,market,1000000000,\n"
    )
    result = load_targets(regency, path, actor="siti")
    assert (result.years, result.targets, result.changed) == ((2026,), 2, 4)
    assert {(t.revenue_type, t.district): t.target_rp for t in year_targets(regency, 2026)} == {
        ("parking", ""): 1_300_000_000,
        ("market", ""): 1_000_000_000,
    }
    assert [t.target_rp for t in year_targets(regency, 2025)] == [1_000_000_000]  # untouched
    trail = target_trail(regency)
    assert len(trail) == 8 and {e.actor for e in trail[:4]} == {"siti"}
    changes = {(e.revenue_type, e.district): (e.before_rp, e.after_rp) for e in trail[:4]}
    assert changes == {
        ("parking", ""): (1_200_000_000, 1_300_000_000),
        ("market", ""): (None, 1_000_000_000),
        ("market", "Kota"): (900_000_000, None),
        ("market", "Utara"): (100_000_000, None),
    }
    assert all(e.action == "load" and e.source == str(path) for e in trail)


def test_bad_rows_are_named_with_line_and_value_and_nothing_is_loaded(regency, tmp_path):
    path = tmp_path / "targets.csv"
    path.write_text(GOOD)
    load_targets(regency, path, actor="test")
    before = _count(regency, revenue_target_events)
    path.write_text(
        "year,revenue_type,district,target_rp\n"
        "2026,parking,,1500000000\n"  # fine on its own
        "20x6,parking,,100\n"
        "2026,casino,,100\n"
        "2026,market,Atlantis,100\n"
        "2026,hotel_tax,,-5000\n"
        "2026,hotel_tax,,1,5\n"
        "2026,parking,,9\n"
    )
    with pytest.raises(UnusableInputError) as caught:
        load_targets(regency, path, actor="test")
    message = str(caught.value)
    for expected in (
        "line 3: year '20x6' is not a year from 2000 to 2099",
        "line 4: revenue_type 'casino' is not one of parking, market",
        "line 5: district 'Atlantis' is not a district of the point registry (Kota, Utara)",
        "line 6: target_rp '-5000' is not whole rupiah above zero",
        "line 7: more fields than the header names",
        "line 8: 2026 parking - is already on line 2",
    ):
        assert expected in message, (expected, message)
    assert message.startswith(f"targets {path}: ")
    # Said in Indonesian too, every problem in it.
    said = phrase_text(caught.value.phrase, "id")
    assert "baris 3: tahun '20x6' bukan tahun dari 2000 sampai 2099" in said
    assert "baris 8: 2026 parkir - sudah ada di baris 2" in said
    # Nothing half-loaded: 2026 parking still at the first file's value, no new trail rows.
    assert {t.revenue_type: t.target_rp for t in year_targets(regency, 2026)}["parking"] == (
        1_200_000_000
    )
    assert _count(regency, revenue_target_events) == before


@pytest.mark.parametrize(
    "content, expected",
    [
        ("year,revenue_type\n2026,parking\n", "missing column(s) target_rp"),
        ("year,revenue_type,target_rp\n", "no targets in the file"),
        (
            "year,revenue_type,district,target_rp\n2026,market,,5\n2026,market,Kota,5\n",
            "2026 market has a target for the whole regency and targets per district",
        ),
    ],
)
def test_unusable_files_are_refused_whole(regency, tmp_path, content, expected):
    path = tmp_path / "targets.csv"
    path.write_text(content)
    with pytest.raises(UnusableInputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_targets(regency, path, actor="test")
    assert _count(regency, revenue_targets) == 0


def test_a_missing_file_is_named(regency, tmp_path):
    with pytest.raises(UnusableInputError, match="nothere.csv: cannot open"):
        load_targets(regency, tmp_path / "nothere.csv", actor="test")


def test_one_target_set_changed_and_removed_each_in_the_trail(regency):
    set_target(regency, "2026", "parking", "", "Rp 1.500.000", actor="siti")
    set_target(regency, 2026, "parking", "", "2.000.000", actor="siti")
    set_target(regency, 2026, "parking", "", "2000000", actor="siti")  # no change, no event
    set_target(regency, 2026, "market", "Utara", "700000", actor="siti")
    with pytest.raises(UnusableInputError, match="whole regency and targets per district"):
        set_target(regency, 2026, "market", "", "1000000", actor="siti")
    with pytest.raises(UnusableInputError, match="target_rp '0' is not whole rupiah above zero"):
        set_target(regency, 2026, "parking", "", "0", actor="siti")
    remove_target(regency, 2026, "parking", "", actor="siti")
    with pytest.raises(NotFoundError, match="no target for 2026 parking"):
        remove_target(regency, 2026, "parking", "", actor="siti")
    assert [(t.revenue_type, t.target_rp) for t in year_targets(regency, 2026)] == [
        ("market", 700_000)
    ]
    assert [(e.action, e.revenue_type, e.before_rp, e.after_rp) for e in target_trail(regency)] == [
        ("remove", "parking", 2_000_000, None),
        ("set", "market", None, 700_000),
        ("set", "parking", 1_500_000, 2_000_000),
        ("set", "parking", None, 1_500_000),
    ]


def test_the_target_trail_refuses_update_and_delete_in_the_database(regency):
    set_target(regency, 2026, "parking", "", "1000000", actor="siti")
    with pytest.raises(DBAPIError, match="append-only"), regency.begin() as connection:
        connection.execute(update(revenue_target_events).values(actor="someone else"))
    with pytest.raises(DBAPIError, match="append-only"), regency.begin() as connection:
        connection.execute(delete(revenue_target_events))
    assert _count(regency, revenue_target_events) == 1
