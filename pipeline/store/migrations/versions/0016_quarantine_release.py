"""quarantine_releases and the release columns of quarantine: quarantined rows re-admitted

Once the cause of a quarantine is fixed (the point added to the registry, a time zone known),
ops release the rows: they go through the ingest path again (the same suite, dedupe, lineage)
as a batch of their own; each quarantine row records the release that took it, what became of
it and that batch, and every release is recorded (who, when, what, how many of each outcome).

Revision ID: 0016_release
Revises: 0015_targets
"""

import sqlalchemy as sa
from alembic import op

from pipeline.store.schema import UTCDateTime

revision = "0016_release"
down_revision = "0015_targets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantine_releases",
        sa.Column("release_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("criteria", sa.Text(), nullable=False),
        sa.Column("selected", sa.Integer(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("still_bad", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("release_id", name="pk_quarantine_releases"),
    )
    # batch_alter_table: SQLite adds a column with a foreign key by rebuilding the table.
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("release_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("release_outcome", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("release_batch_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("requarantined_as", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_quarantine_release_id_quarantine_releases",
            "quarantine_releases",
            ["release_id"],
            ["release_id"],
        )
        batch.create_foreign_key(
            "fk_quarantine_release_batch_id_ingest_batches",
            "ingest_batches",
            ["release_batch_id"],
            ["batch_id"],
        )
        batch.create_index("ix_quarantine_release_id", ["release_id"])


def downgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_index("ix_quarantine_release_id")
        batch.drop_constraint("fk_quarantine_release_batch_id_ingest_batches", type_="foreignkey")
        batch.drop_constraint("fk_quarantine_release_id_quarantine_releases", type_="foreignkey")
        batch.drop_column("requarantined_as")
        batch.drop_column("release_batch_id")
        batch.drop_column("release_outcome")
        batch.drop_column("release_id")
    op.drop_table("quarantine_releases")
