"""Working the quarantine on real SQLite and PostgreSQL: listing and exporting across batches
with filters, and releasing rows once their cause is fixed, through the ingest path itself."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from pipeline.core.errors import UnusableInputError
from pipeline.intake.ingest import ingest_file
from pipeline.intake.quarantine import (
    QuarantineFilter,
    export_quarantine_csv,
    list_quarantine,
    recent_releases,
    release_quarantine,
)
from pipeline.store.schema import feed_freshness, ingest_batches, quarantine, transactions
from tests.helpers.registry import register

NOW = datetime(2026, 3, 2, tzinfo=UTC)
HEADER = "txn_id,point_id,occurred_at,amount,payment_method,status,operator_id\n"
FEED = (
    "T1,P1,2026-03-01T10:00:00+07:00,1000,cash,paid,op1\n"
    "N1,P9,2026-03-01T10:05:00+07:00,2000,qris,paid,op1\n"  # P9 not registered yet
    "B1,P1,2026-03-01T10:10:00+07:00,-5,cash,paid,op1\n"  # negative: bad for good
    "Z1,P1,2026-03-01T10:15:00,3000,cash,paid,op1\n"  # no offset
    "C1,P1,this,line,has,too,many,fields,for,a,row\n"  # malformed: not a row
)


def feed(tmp_path, name="week.csv", body=FEED):
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def stored(engine) -> dict:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                transactions.c.point_id,
                transactions.c.txn_id,
                transactions.c.occurred_at,
                transactions.c.batch_id,
            )  # fmt: skip
        ).all()
    return {(r.point_id, r.txn_id): r for r in rows}


def quarantined(engine) -> list:
    with engine.connect() as connection:
        return connection.execute(select(quarantine).order_by(quarantine.c.quarantine_id)).all()


def test_a_row_for_a_point_loaded_later_is_released_once_and_still_bad_rows_keep_a_reason(
    engine, tmp_path
):
    register(engine, "P1")
    first = ingest_file(engine, feed(tmp_path), source="landing:kota", now=NOW)
    assert (first.accepted, first.quarantined) == (1, 4)
    # Too early: P9 is still unknown, so its row is quarantined again with today's reason.
    early = release_quarantine(engine, QuarantineFilter(point_id="P9"), actor="ops", now=NOW)
    assert (early.selected, early.stored, early.still_bad) == (1, 0, 1)
    register(engine, "P9")
    result = release_quarantine(engine, QuarantineFilter(), actor="ops", now=NOW)
    assert (result.selected, result.stored, result.duplicates, result.still_bad, result.skipped) == (
        4, 1, 0, 2, 1,
    )  # fmt: skip
    rows = stored(engine)
    assert set(rows) == {("P1", "T1"), ("P9", "N1")}
    # Lineage: the sale belongs to the release's batch, of the source the row first came by,
    # and the quarantine row names that batch.
    (batch_id,) = result.batch_ids
    assert rows[("P9", "N1")].batch_id == batch_id
    with engine.connect() as connection:
        batch = connection.execute(
            select(ingest_batches).where(ingest_batches.c.batch_id == batch_id)
        ).one()
        fresh = (
            connection.execute(
                select(feed_freshness.c.source).where(feed_freshness.c.point_id == "P9")
            )
            .scalars()
            .all()
        )
    assert (batch.source, batch.source_ref) == (
        "landing:kota",
        f"quarantine release {result.release_id}",
    )
    assert (batch.rows_read, batch.accepted, batch.quarantined) == (3, 1, 2)
    assert fresh == ["landing:kota"]
    by_txn = {}
    for q in quarantined(engine):
        by_txn.setdefault(q.txn_id, []).append(q)
    n1 = by_txn["N1"]
    assert [(q.release_outcome, q.batch_id) for q in n1] == [
        ("requarantined", first.batch_id), ("stored", early.batch_ids[0]),
    ]  # fmt: skip
    assert n1[0].requarantined_as == n1[1].quarantine_id and n1[1].release_batch_id == batch_id
    # Still bad: the original is marked, its new open row carries today's reason.
    b1 = by_txn["B1"]
    assert [q.release_outcome for q in b1] == ["requarantined", None]
    assert "negative" in b1[1].reasons and b1[1].batch_id == batch_id
    # The malformed line is no row: left open, as it was.
    (c1,) = [q for q in quarantined(engine) if q.kind == "malformed"]
    assert c1.release_outcome is None and c1.release_id is None

    # Releasing again: nothing of N1 is open, so nothing new is stored, whatever is asked.
    again = release_quarantine(engine, QuarantineFilter(point_id="P9"), actor="ops", now=NOW)
    assert again.release_id is None
    by_id = release_quarantine(
        engine, QuarantineFilter(ids=tuple(q.quarantine_id for q in n1)), actor="ops", now=NOW
    )
    assert by_id.release_id is None
    assert set(stored(engine)) == {("P1", "T1"), ("P9", "N1")}
    # Every release is recorded: who, when, what was asked, what came of it.
    releases = recent_releases(engine)
    assert [(r.release_id, r.actor, r.status, r.selected, r.stored, r.still_bad, r.skipped)
            for r in releases] == [
        (result.release_id, "ops", "done", 4, 1, 2, 1),
        (early.release_id, "ops", "done", 1, 0, 1, 0),
    ]  # fmt: skip
    assert json.loads(releases[1].criteria) == {
        "point_id": "P9", "state": "open", "naive_times_in_point_zone": False,
    }  # fmt: skip


def test_a_time_without_offset_is_read_in_the_points_zone_only_when_asked(engine, tmp_path):
    register(engine, "P1")
    ingest_file(engine, feed(tmp_path), source="file", now=NOW)
    plain = release_quarantine(engine, QuarantineFilter(reason="offset"), actor="ops", now=NOW)
    assert (plain.selected, plain.stored, plain.still_bad) == (1, 0, 1)
    fixed = release_quarantine(
        engine, QuarantineFilter(reason="offset"), actor="ops", now=NOW,
        naive_times_in_point_zone=True,
    )  # fmt: skip
    assert (fixed.selected, fixed.stored) == (1, 1)
    assert stored(engine)[("P1", "Z1")].occurred_at == datetime(2026, 3, 1, 3, 15, tzinfo=UTC)


def test_two_copies_of_a_quarantined_row_are_stored_once_and_counted_as_a_duplicate(
    engine, tmp_path
):
    register(engine, "P1")
    body = "N1,P9,2026-03-01T10:05:00+07:00,2000,qris,paid,op1\n"
    ingest_file(engine, feed(tmp_path, "a.csv", body), source="landing:kota", now=NOW)
    ingest_file(engine, feed(tmp_path, "b.csv", body), source="landing:kota", now=NOW)
    register(engine, "P9")
    result = release_quarantine(engine, QuarantineFilter(point_id="P9"), actor="ops", now=NOW)
    assert (result.selected, result.stored, result.duplicates) == (2, 1, 1)
    assert [q.release_outcome for q in quarantined(engine)] == ["stored", "duplicate"]
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(transactions)).scalar() == 1


def test_listing_and_export_filter_across_batches(engine, tmp_path):
    register(engine, "P1")
    ingest_file(engine, feed(tmp_path, "a.csv"), source="landing:kota", now=NOW)
    ingest_file(engine, feed(tmp_path, "b.csv", FEED.replace("N1", "N2")), source="api:tapbox",
                now=NOW)  # fmt: skip
    assert list_quarantine(engine, QuarantineFilter()).total == 8
    assert list_quarantine(engine, QuarantineFilter(source="api:tapbox")).total == 4
    assert list_quarantine(engine, QuarantineFilter(point_id="P9")).total == 2
    assert list_quarantine(engine, QuarantineFilter(reason="NEGATIVE")).total == 2
    assert list_quarantine(engine, QuarantineFilter(reason="100%_")).total == 0
    later = datetime.now(UTC) + timedelta(days=1)
    assert list_quarantine(engine, QuarantineFilter(start=later)).total == 0
    assert list_quarantine(engine, QuarantineFilter(end=later)).total == 8
    page = list_quarantine(engine, QuarantineFilter(), page=2, page_size=3)
    assert (page.pages, len(page.rows)) == (3, 3)
    register(engine, "P9")
    release_quarantine(engine, QuarantineFilter(point_id="P9"), actor="ops", now=NOW)
    assert list_quarantine(engine, QuarantineFilter(state="released")).total == 2
    assert list_quarantine(engine, QuarantineFilter(point_id="P9")).total == 0
    assert list_quarantine(engine, QuarantineFilter(state="all")).total == 8
    text, n = export_quarantine_csv(engine, QuarantineFilter(state="all", source="api:tapbox"))
    assert n == 4
    rows = list(csv.DictReader(io.StringIO(text.decode("utf-8-sig"))))
    assert len(rows) == 4 and {r["source"] for r in rows} == {"api:tapbox"}
    n2 = [r for r in rows if r["txn_id"] == "N2"]
    assert n2[0]["state"] == "released" and json.loads(n2[0]["raw"])["point_id"] == "P9"


@pytest.mark.parametrize("bad", [{"state": "closed"}, {"ids": (0,)}, {"ids": (2**31,)}])
def test_unusable_filters_are_refused_with_the_value(bad):
    with pytest.raises(UnusableInputError) as caught:
        QuarantineFilter(**bad)
    assert str(next(iter(bad.values()))).strip("(),") in str(caught.value)


def test_only_open_rows_can_be_released(engine):
    with pytest.raises(UnusableInputError, match="only open rows"):
        release_quarantine(engine, QuarantineFilter(state="all"), actor="ops")
