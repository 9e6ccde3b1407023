"""feed_freshness: the newest transaction time per point and per ingest source

The ops page lists, per point and per source (the feed has no device id; the source a batch
came by tells a point's devices apart), when its newest sale happened, and which points fell
silent during open hours. Read from ``transactions`` that needs max(occurred_at) grouped by
point and by the batch's source: no index serves it (none on batch_id) and on PostgreSQL the
grouping walks every row. Ingest now keeps the figure per (point, source) in the batch's own
transaction; this revision fills it once from the rows already stored.

Revision ID: 0013_freshness
Revises: 0012_push
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from pipeline.store.schema import UTCDateTime

revision = "0013_freshness"
down_revision = "0012_push"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_freshness",
        sa.Column("point_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("last_occurred_at", UTCDateTime(), nullable=False),
        sa.Column("last_batch_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["last_batch_id"],
            ["ingest_batches.batch_id"],
            name="fk_feed_freshness_last_batch_id_ingest_batches",
        ),
        sa.PrimaryKeyConstraint("point_id", "source", name="pk_feed_freshness"),
    )
    # One pass over what is stored (the last time it is needed); both sides keep times in the
    # same column type, so max() over SQLite's text compares like times.
    op.get_bind().execute(
        sa.text(
            "INSERT INTO feed_freshness"
            " (point_id, source, last_occurred_at, last_batch_id, updated_at)"
            " SELECT t.point_id, b.source, max(t.occurred_at), max(t.batch_id), :now"
            " FROM transactions t JOIN ingest_batches b ON b.batch_id = t.batch_id"
            " GROUP BY t.point_id, b.source"
        ).bindparams(sa.bindparam("now", datetime.now(UTC), type_=UTCDateTime()))
    )


def downgrade() -> None:
    op.drop_table("feed_freshness")
