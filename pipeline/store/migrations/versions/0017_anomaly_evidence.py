"""anomalies.evidence: what kind of evidence a flagged hour carries (device | pattern | volume)

Issue 13 part 4: a flag whose only evidence is revenue or sales down (tickets, payment mix and
operators ordinary) stays a flag but opens a case only once its incident is seen on three local
days (``casework.incidents.raises_case``); a device off or a pattern's own signal opens one at once.
The case rule reads the stored flags, so the flag records which it was. NULL for flags stored
before: they count as they did before (any may open a case).

Revision ID: 0017_evidence
Revises: 0016_release
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_evidence"
down_revision = "0016_release"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("anomalies", sa.Column("evidence", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("anomalies") as batch:
        batch.drop_column("evidence")
