"""An organisation's owner can require two-factor sign-in of all its sellers

Revision ID: 3c9e2b7d4f10
Revises: 7b7e44a34cb2
Create Date: 2026-12-06 00:30:00

Issue 23: admins and agents always need a second factor; sellers only when their
organisation's owner turns this on (off for every organisation there was).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "3c9e2b7d4f10"
down_revision = "7b7e44a34cb2"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not a batch: on SQLite a batch copies the table, and dropping the
# old organisations table would fail (or cascade) on the rows that refer to it.
def upgrade():
    op.add_column(
        "organisations",
        sa.Column("requires_two_factor", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade():
    op.drop_column("organisations", "requires_two_factor")
