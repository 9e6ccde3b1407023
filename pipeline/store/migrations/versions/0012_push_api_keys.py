"""api_keys and push_requests: devices and vendors push transactions over HTTP

A supervisor issues a key per device or vendor, scoped to points and revocable (only the
secret's SHA-256 is stored). Every authenticated push request is recorded in push_requests: the
durable inbox the push writer ingests from (a request is committed there before it is answered)
and the idempotency record (a request id seen again is answered from there). A pushed batch
is found again by its source_ref on a retry, hence the new index on ingest_batches.

Revision ID: 0012_push
Revises: 0011_attachments
"""

import sqlalchemy as sa
from alembic import op

from pipeline.store.schema import UTCDateTime

revision = "0012_push"
down_revision = "0011_attachments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("point_ids", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
    )
    op.create_table(
        "push_requests",
        sa.Column("push_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("body_sha256", sa.String(length=64), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("group_ref", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.key_id"], name="fk_push_requests_key_id_api_keys"
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["ingest_batches.batch_id"],
            name="fk_push_requests_batch_id_ingest_batches",
        ),
        sa.PrimaryKeyConstraint("push_id", name="pk_push_requests"),
    )
    op.create_index(
        "ux_push_requests_key_request",
        "push_requests",
        ["key_id", "request_id"],
        unique=True,
        sqlite_where=sa.text("status <> 'refused'"),
        postgresql_where=sa.text("status <> 'refused'"),
    )
    op.create_index("ix_push_requests_status", "push_requests", ["status"])
    op.create_index("ix_ingest_batches_source_ref", "ingest_batches", ["source_ref"])


def downgrade() -> None:
    op.drop_index("ix_ingest_batches_source_ref", table_name="ingest_batches")
    op.drop_table("push_requests")
    op.drop_table("api_keys")
