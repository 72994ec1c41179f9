"""Each user's time zone (users.time_zone)

Revision ID: c5e1f7a3b9d2
Revises: e7062e0940da
Create Date: 2026-12-05 17:15:00

Issue 21: times are shown in the user's own zone (the browser's, taken at the first
login, then their choice on /account), UTC on hover. NULL until known: UTC meanwhile.
A plain ADD/DROP COLUMN, not a batch: on SQLite a batch would recreate users, which
other tables refer to.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c5e1f7a3b9d2"
down_revision = "e7062e0940da"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("time_zone", sa.String(length=64), nullable=True))


def downgrade():
    op.drop_column("users", "time_zone")
