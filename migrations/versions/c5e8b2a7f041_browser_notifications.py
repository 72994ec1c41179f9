"""Browser notifications: users' choice and cursor, and when a thread was handed over

Revision ID: c5e8b2a7f041
Revises: d4a7f2c9e6b8
Create Date: 2026-12-06 03:30:00

Issue 21: a user who opts in gets browser notifications (a new thread on their channels,
a thread assigned to them, one of theirs 2 hours before its deadline), each once
whatever the number of open tabs: users.notified_through is how far they were given.
threads.handed_over_at says when someone else last assigned the thread to its assignee.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c5e8b2a7f041"
down_revision = "d4a7f2c9e6b8"
branch_labels = None
depends_on = None

# Plain ALTER TABLEs: a batch would copy tables other rows refer to (see 3c9e2b7d4f10).
COLUMNS = [
    (
        "users",
        sa.Column("browser_notifications", sa.Boolean(), nullable=False, server_default=sa.false()),
    ),
    ("users", sa.Column("notified_through", sa.DateTime(), nullable=True)),
    ("threads", sa.Column("handed_over_at", sa.DateTime(), nullable=True)),
]


def upgrade():
    for table, column in COLUMNS:
        op.add_column(table, column)


def downgrade():
    for table, column in reversed(COLUMNS):
        op.drop_column(table, column.name)
