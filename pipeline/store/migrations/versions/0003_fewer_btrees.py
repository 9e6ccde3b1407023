"""Fewer B-trees per stored row: the big tables clustered on their key (SQLite), minutes keyed by time

A rowid table keeps each row twice on SQLite: once in the table keyed by a hidden rowid and once
in the primary-key index. Transactions and the minute and hour aggregates are only ever found by
their key or by a secondary index, so clustering them on the key (WITHOUT ROWID) saves one B-tree
insert per row. SQLite cannot alter this in place, so each table is rebuilt: rename, create again,
copy, drop the old one, recreate its indexes.

Minute aggregates are read by time across every point (the live dashboard) and written in time
order, so their key becomes (minute_start, point_id) and their separate time index goes, on both
backends: one B-tree per minute row instead of three (SQLite) or two plus the heap (PostgreSQL).

Revision ID: 0003
Revises: 0002_recon
"""

from alembic import op

revision = "0003"
down_revision = "0002_recon"
branch_labels = None
depends_on = None


def _rebuild(table: str, *, with_rowid: bool) -> None:
    connection = op.get_bind()
    table_sql = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    index_sql = [
        row[0]
        for row in connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL",
            (table,),
        )
    ]
    body = table_sql.rstrip()
    if body.upper().endswith("WITHOUT ROWID"):
        body = body[: -len("WITHOUT ROWID")].rstrip()
    if not with_rowid:
        body += " WITHOUT ROWID"
    old = f"_{table}_rowid_rebuild"
    op.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    op.execute(body)
    op.execute(f'INSERT INTO "{table}" SELECT * FROM "{old}"')
    op.execute(f'DROP TABLE "{old}"')
    for sql in index_sql:
        op.execute(sql)


MINUTES_TIME_FIRST = """CREATE TABLE minute_aggregates (
    point_id VARCHAR(64) NOT NULL,
    txn_count INTEGER NOT NULL,
    gross_paid BIGINT NOT NULL,
    void_count INTEGER NOT NULL,
    void_amount BIGINT NOT NULL,
    refund_count INTEGER NOT NULL,
    refund_amount BIGINT NOT NULL,
    cash_amount BIGINT NOT NULL,
    operators INTEGER NOT NULL,
    max_ticket BIGINT NOT NULL,
    minute_start DATETIME NOT NULL,
    CONSTRAINT pk_minute_aggregates PRIMARY KEY (minute_start, point_id)
) WITHOUT ROWID"""
AGGREGATE_COLUMNS = (
    "point_id, txn_count, gross_paid, void_count, void_amount, refund_count, refund_amount, "
    "cash_amount, operators, max_ticket, minute_start"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_index("ix_minute_aggregates_minute_start", table_name="minute_aggregates")
        op.drop_constraint("pk_minute_aggregates", "minute_aggregates", type_="primary")
        op.create_primary_key(
            "pk_minute_aggregates", "minute_aggregates", ["minute_start", "point_id"]
        )
        return
    for table in ("transactions", "hour_aggregates"):
        _rebuild(table, with_rowid=False)
    op.execute('ALTER TABLE minute_aggregates RENAME TO "_minute_aggregates_old"')
    op.execute(MINUTES_TIME_FIRST)
    op.execute(
        f"INSERT INTO minute_aggregates ({AGGREGATE_COLUMNS}) "
        f'SELECT {AGGREGATE_COLUMNS} FROM "_minute_aggregates_old"'
    )
    op.execute('DROP TABLE "_minute_aggregates_old"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("pk_minute_aggregates", "minute_aggregates", type_="primary")
        op.create_primary_key(
            "pk_minute_aggregates", "minute_aggregates", ["point_id", "minute_start"]
        )
        op.create_index("ix_minute_aggregates_minute_start", "minute_aggregates", ["minute_start"])
        return
    for table in ("transactions", "hour_aggregates"):
        _rebuild(table, with_rowid=True)
    op.execute('ALTER TABLE minute_aggregates RENAME TO "_minute_aggregates_new"')
    op.execute(
        MINUTES_TIME_FIRST.replace(") WITHOUT ROWID", ")").replace(
            "PRIMARY KEY (minute_start, point_id)", "PRIMARY KEY (point_id, minute_start)"
        )
    )
    op.execute(
        f"INSERT INTO minute_aggregates ({AGGREGATE_COLUMNS}) "
        f'SELECT {AGGREGATE_COLUMNS} FROM "_minute_aggregates_new"'
    )
    op.execute('DROP TABLE "_minute_aggregates_new"')
    op.create_index("ix_minute_aggregates_minute_start", "minute_aggregates", ["minute_start"])
