"""review: audit trail append-only at the database level; minute aggregates indexed by time

The review app never edits ``case_events``; these triggers make sure nothing else does either
(a script, a console session), on SQLite and on PostgreSQL. The live dashboard reads one day of
minute aggregates across every point, hence an index on ``minute_start`` alone.

Revision ID: 0002_review
Revises: 0001
"""

from alembic import op

revision = "0002_review"
down_revision = "0001"
branch_labels = None
depends_on = None

MESSAGE = "case_events is append-only: the audit trail cannot be changed or deleted"


def upgrade() -> None:
    op.create_index(
        "ix_minute_aggregates_minute_start", "minute_aggregates", ["minute_start"], unique=False
    )
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER case_events_no_{action.lower()} BEFORE {action} ON case_events "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION case_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    op.execute(
        "CREATE TRIGGER case_events_no_change BEFORE UPDATE OR DELETE ON case_events "
        "FOR EACH ROW EXECUTE FUNCTION case_events_append_only()"
    )
    # TRUNCATE bypasses row triggers; it gets its own statement-level trigger.
    op.execute(
        "CREATE TRIGGER case_events_no_truncate BEFORE TRUNCATE ON case_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION case_events_append_only()"
    )


def downgrade() -> None:
    op.drop_index("ix_minute_aggregates_minute_start", table_name="minute_aggregates")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS case_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS case_events_no_delete")
        return
    op.execute("DROP TRIGGER IF EXISTS case_events_no_truncate ON case_events")
    op.execute("DROP TRIGGER IF EXISTS case_events_no_change ON case_events")
    op.execute("DROP FUNCTION IF EXISTS case_events_append_only()")
