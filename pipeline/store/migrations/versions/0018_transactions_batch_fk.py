"""transactions.batch_id: no foreign key on PostgreSQL (its per-row check was most of the store)

PostgreSQL checks a foreign key with a row trigger: every stored transaction ran one
``SELECT 1 FROM ingest_batches WHERE batch_id = $1 FOR KEY SHARE``, so a load of a million rows
ran a million of them, all finding the same batch. Measured (docs/bench.md, 2026-12-01
23:06 UTC, ADBC COPY binary of 1M rows sorted by point and time, medians of 3 rounds): 34.5 s
into today's table, 21.5 s without the key; the primary key and the (point_id, occurred_at)
index together cost 17 s over a bare table's 4.3 s, the check 13 s on top of them.

What it guarded holds by construction: ingest (``intake.ingest``, the one writer of
``transactions``) commits the batch's row before any of its data, writes the batch's own id
into every row, and keeps all of the batch's rows in one transaction; no code deletes a batch
or changes a stored row's batch_id. ``tests/intake/test_ingest_lineage.py`` pins it on both
databases. SQLite keeps the key: its check is an index probe that costs no measurable time
there, and dropping it would rebuild the whole table.

Revision ID: 0018_txn_batch_fk
Revises: 0017_evidence
"""

from alembic import op

revision = "0018_txn_batch_fk"
down_revision = "0017_evidence"
branch_labels = None
depends_on = None

NAME = "fk_transactions_batch_id_ingest_batches"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(NAME, "transactions", type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(NAME, "transactions", "ingest_batches", ["batch_id"], ["batch_id"])
