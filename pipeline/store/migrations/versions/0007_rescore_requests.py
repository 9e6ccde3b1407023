"""rescore_requests: point-hours that rows reached after the hour was scored

Ingest records the point-hours it stores rows into when scoring has already passed them (a
tapping box offline, synced later); the next scoring run re-scores those hours and the days
they feed, and clears a flag the late sales disprove (``detection.late_data``).

Revision ID: 0007_rescore
Revises: 0006_ingest
"""

import sqlalchemy as sa
from alembic import op

from pipeline.store.schema import UTCDateTime

revision = "0007_rescore"
down_revision = "0006_ingest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rescore_requests",
        sa.Column("point_id", sa.String(length=64), nullable=False),
        sa.Column("hour_start", UTCDateTime(), nullable=False),
        sa.Column("late_rows", sa.Integer(), nullable=False),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["ingest_batches.batch_id"],
            name="fk_rescore_requests_batch_id_ingest_batches",
        ),
        sa.PrimaryKeyConstraint("point_id", "hour_start", name="pk_rescore_requests"),
    )


def downgrade() -> None:
    op.drop_table("rescore_requests")
