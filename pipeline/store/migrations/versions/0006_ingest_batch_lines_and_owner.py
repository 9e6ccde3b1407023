"""ingest_batches: the file's physical line count, the process that runs a batch, an index by status

``lines_read`` is checked against header + blank + record lines when a file batch finishes, so
a line swallowed by a parser cannot go unnoticed. ``owner`` (host, pid, process start) lets the
next ingest or the ops page tell a batch whose process was killed - left ``running`` forever -
from one still at work; the status index makes that look-up cheap.

Revision ID: 0006_ingest
Revises: 0005_review_sec
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_ingest"
down_revision = "0005_review_sec"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_batches") as batch:
        batch.add_column(sa.Column("lines_read", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("owner", sa.String(length=200), nullable=True))
    op.create_index("ix_ingest_batches_status", "ingest_batches", ["status"])


def downgrade() -> None:
    op.drop_index("ix_ingest_batches_status", table_name="ingest_batches")
    with op.batch_alter_table("ingest_batches") as batch:
        batch.drop_column("owner")
        batch.drop_column("lines_read")
