"""The POS-table source against real POS databases: a SQLite file and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select, text

from pipeline.core.errors import UnusableInputError
from pipeline.intake.sources import SecretRef, SqlSource, pull_source
from pipeline.intake.sources.sql_table import pull_sql
from pipeline.intake.sources.watermarks import get_watermark
from pipeline.store.schema import transactions
from tests.helpers.sources_helpers import load_points, sqlite_store, stored_txn_ids


@pytest.fixture
def sqlite_engine(sqlite_url):
    yield from sqlite_store(sqlite_url)


COLUMNS = {
    "txn_id": "receipt_no",
    "occurred_at": "sold_at",
    "amount": "total_rp",
    "payment_method": "method",
    "status": "state",
    "operator_id": "cashier",
}


def _config(**overrides):
    options = dict(
        name="pos-hotel",
        url=SecretRef(env="POS_URL"),
        table="sales",
        watermark_column="updated_at",
        key_column="receipt_no",
        columns=COLUMNS,
        constants={"point_id": "HTL-003"},
        timezone="Asia/Jakarta",
        batch_rows=4,
    )
    options.update(overrides)
    return SqlSource(**options)


def _pos_rows(start, count, *, updated):
    """Receipts sold at naive Jakarta times (as many POS systems store them)."""
    sold = datetime(2026, 11, 20, 10, 0)
    return [
        {
            "receipt_no": f"R{i:05d}",
            "sold_at": sold + timedelta(minutes=i),
            "total_rp": 150_000 + i,
            "method": "card" if i % 2 else "cash",
            "state": "paid",
            "cashier": "KSR1",
            "updated_at": updated,
        }
        for i in range(start, start + count)
    ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def pos_url(request, tmp_path):
    """An empty POS database of each kind with a `sales` table."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'pos.db'}"
        stamp = "TIMESTAMP"
    else:
        url = request.getfixturevalue("postgres_url")
        stamp = "TIMESTAMPTZ"
    pos = create_engine(url)
    with pos.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE sales (receipt_no VARCHAR(20) PRIMARY KEY, sold_at TIMESTAMP NOT NULL, "
                f"total_rp BIGINT NOT NULL, method VARCHAR(10), state VARCHAR(10), cashier VARCHAR(10), "
                f"updated_at {stamp} NOT NULL)"
            )
        )
    pos.dispose()
    return url


def _insert(url, rows):
    pos = create_engine(url)
    with pos.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sales VALUES (:receipt_no, :sold_at, :total_rp, :method, :state, :cashier, :updated_at)"
            ),
            rows,
        )
    pos.dispose()


def test_incremental_pull_with_ties_at_slice_boundaries(sqlite_engine, tmp_path, pos_url):
    load_points(sqlite_engine, tmp_path)
    t1 = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
    # 10 rows with ONE watermark value: slices of 4 must not lose rows sharing it.
    _insert(pos_url, _pos_rows(0, 10, updated=t1))

    results = pull_sql(sqlite_engine, _config(), url=pos_url)

    assert [r.rows_read for r in results] == [4, 4, 2]
    assert stored_txn_ids(sqlite_engine) == [f"R{i:05d}" for i in range(10)]
    with sqlite_engine.connect() as connection:
        first = connection.execute(
            select(transactions.c.occurred_at, transactions.c.point_id).where(
                transactions.c.txn_id == "R00000"
            )
        ).one()
    # 10:00 naive Jakarta time is 03:00 UTC.
    assert first == (datetime(2026, 11, 20, 3, 0, tzinfo=UTC), "HTL-003")

    # Later: new rows, and an old receipt updated (same content: counted as a duplicate, not twice).
    t2 = t1 + timedelta(minutes=5)
    _insert(pos_url, _pos_rows(10, 3, updated=t2))
    pos = create_engine(pos_url)
    with pos.begin() as connection:
        connection.execute(
            text("UPDATE sales SET updated_at = :t WHERE receipt_no = 'R00001'"), {"t": t2}
        )
    pos.dispose()

    results = pull_sql(sqlite_engine, _config(), url=pos_url)

    assert sum(r.rows_read for r in results) == 4
    assert sum(r.accepted for r in results) == 3
    assert sum(r.duplicates for r in results) == 1
    assert len(stored_txn_ids(sqlite_engine)) == 13
    # Nothing new: nothing read.
    assert pull_sql(sqlite_engine, _config(), url=pos_url) == []
    assert '"key": {"t": "plain", "v": "R00012"}' in get_watermark(sqlite_engine, "sql:pos-hotel")


def test_pull_source_resolves_the_pos_url_from_the_environment(sqlite_engine, tmp_path, pos_url):
    load_points(sqlite_engine, tmp_path)
    _insert(pos_url, _pos_rows(0, 3, updated=datetime(2026, 11, 20, 4, 0, tzinfo=UTC)))
    results = pull_source(
        sqlite_engine, _config(), secrets=lambda ref: {"POS_URL": pos_url}[ref.env]
    )
    assert sum(r.accepted for r in results) == 3


def test_wrong_table_is_a_clear_error(sqlite_engine, pos_url):
    with pytest.raises(UnusableInputError, match=r"pos-hotel: cannot read salez \(\$POS_URL\)"):
        pull_sql(sqlite_engine, _config(table="salez"), url=pos_url)
    assert get_watermark(sqlite_engine, "sql:pos-hotel") is None


def test_unusable_pos_url_names_where_it_came_from_not_the_url(sqlite_engine):
    with pytest.raises(
        UnusableInputError, match=r"pos-hotel: the database URL in \$POS_URL cannot be used"
    ):
        pull_sql(sqlite_engine, _config(), url="nosuchdb://user:hunter2@host/db")
    try:
        pull_sql(sqlite_engine, _config(), url="nosuchdb://user:hunter2@host/db")
    except UnusableInputError as exc:
        assert "hunter2" not in str(exc)


def test_the_pos_sqlite_file_is_not_switched_to_wal(sqlite_engine, tmp_path):
    import sqlite3

    pos = tmp_path / "pos.db"
    with sqlite3.connect(pos) as connection:
        connection.execute("CREATE TABLE sales (receipt_no TEXT, updated_at TEXT)")
    with pytest.raises(UnusableInputError):  # no sold_at column: a config problem
        pull_sql(sqlite_engine, _config(), url=f"sqlite:///{pos}")
    with sqlite3.connect(pos) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
