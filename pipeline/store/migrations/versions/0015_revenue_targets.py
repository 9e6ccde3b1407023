"""revenue_targets and revenue_target_events: yearly PAD targets for the leaders' realisation view

Targets per revenue type (optionally per district) and year, loaded from a file or set by a
supervisor in the app; every change is appended to revenue_target_events, which the database
refuses to change or delete (as user_events, migration 0005).

Revision ID: 0015_targets
Revises: 0014_alerts
"""

import sqlalchemy as sa
from alembic import op

from pipeline.store.schema import UTCDateTime

revision = "0015_targets"
down_revision = "0014_alerts"
branch_labels = None
depends_on = None

MESSAGE = (
    "revenue_target_events is append-only: the trail of changes to targets cannot be changed"
    " or deleted"
)


def upgrade() -> None:
    op.create_table(
        "revenue_targets",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("revenue_type", sa.String(32), nullable=False),
        sa.Column("district", sa.String(100), nullable=False),
        sa.Column("target_rp", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("year", "revenue_type", "district", name="pk_revenue_targets"),
    )
    op.create_table(
        "revenue_target_events",
        sa.Column("event_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("revenue_type", sa.String(32), nullable=False),
        sa.Column("district", sa.String(100), nullable=False),
        sa.Column("before_rp", sa.BigInteger()),
        sa.Column("after_rp", sa.BigInteger()),
        sa.Column("source", sa.Text()),
        sa.PrimaryKeyConstraint("event_id", name="pk_revenue_target_events"),
    )
    op.create_index("ix_revenue_target_events_year", "revenue_target_events", ["year"])
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER revenue_target_events_no_{action.lower()} BEFORE {action} "
                f"ON revenue_target_events BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION revenue_target_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    op.execute(
        "CREATE TRIGGER revenue_target_events_no_change BEFORE UPDATE OR DELETE "
        "ON revenue_target_events FOR EACH ROW EXECUTE FUNCTION revenue_target_events_append_only()"
    )
    op.execute(
        "CREATE TRIGGER revenue_target_events_no_truncate BEFORE TRUNCATE ON revenue_target_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION revenue_target_events_append_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP TRIGGER IF EXISTS revenue_target_events_no_truncate ON revenue_target_events"
        )
        op.execute(
            "DROP TRIGGER IF EXISTS revenue_target_events_no_change ON revenue_target_events"
        )
        op.execute("DROP FUNCTION IF EXISTS revenue_target_events_append_only()")
    op.drop_index("ix_revenue_target_events_year", table_name="revenue_target_events")
    op.drop_table("revenue_target_events")
    op.drop_table("revenue_targets")
