"""E-mail alerts: users' choices, and what was already alerted

Revision ID: b6f2d8e4c913
Revises: 9e4b7c1d3a58
Create Date: 2026-12-06 01:00:00

Issue 21: each user chooses the alerts they get (a thread assigned to them, a deadline
coming, a daily digest); threads, channels and mailboxes remember what they were alerted
for, so each alert goes once.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b6f2d8e4c913"
down_revision = "9e4b7c1d3a58"
branch_labels = None
depends_on = None

# Plain ALTER TABLEs: a batch would copy tables other rows refer to (see 3c9e2b7d4f10).
COLUMNS = [
    ("users", sa.Column("alert_assigned", sa.Boolean(), nullable=False, server_default=sa.true())),
    ("users", sa.Column("alert_deadline", sa.Boolean(), nullable=False, server_default=sa.true())),
    ("users", sa.Column("alert_digest", sa.Boolean(), nullable=False, server_default=sa.false())),
    ("users", sa.Column("digest_sent_on", sa.Date(), nullable=True)),
    ("threads", sa.Column("deadline_alerted_for", sa.DateTime(), nullable=True)),
    ("channels", sa.Column("silence_alerted_at", sa.DateTime(), nullable=True)),
    ("channels", sa.Column("authorisation_alerted_at", sa.DateTime(), nullable=True)),
    ("mailboxes", sa.Column("failure_alerted_at", sa.DateTime(), nullable=True)),
]


def upgrade():
    for table, column in COLUMNS:
        op.add_column(table, column)


def downgrade():
    for table, column in reversed(COLUMNS):
        op.drop_column(table, column.name)
