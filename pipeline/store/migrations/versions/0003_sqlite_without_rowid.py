"""SQLite: the three largest tables clustered on their primary key (WITHOUT ROWID)

A rowid table keeps each row twice on SQLite: once in the table keyed by a hidden rowid and once
in the primary-key index. Transactions and the minute and hour aggregates are only ever found by
their key or by a secondary index, so clustering them on the key saves one B-tree insert per row:
about a quarter of the write cost of an ingest. PostgreSQL has no such choice; nothing changes
there.

SQLite cannot alter this in place, so each table is rebuilt from its own DDL: rename, create
again WITHOUT ROWID, copy, drop the old one, recreate its indexes.

Revision ID: 0003
Revises: 0002_recon
"""

from alembic import op

revision = "0003"
down_revision = "0002_recon"
branch_labels = None
depends_on = None

TABLES = ("transactions", "minute_aggregates", "hour_aggregates")


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


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        _rebuild(table, with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        _rebuild(table, with_rowid=True)
