"""Messages know when the parser kept only the start of their body (messages.body_cut)

Revision ID: f4b7d2e9a1c6
Revises: e6a9c3d7f2b4
Create Date: 2026-12-07 21:00:00

Issue 19 (memory flat in N): the parser keeps at most MAX_BODY_CHARS characters of a
text or HTML body (ingest/mail/parse.py); the thread page says so where it did, and
offers the raw mail. Messages stored before were kept whole: false for all of them.
A plain column with a constant default: SQLite adds it without recreating `messages`
(which would drop its triggers).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "f4b7d2e9a1c6"
down_revision = "e6a9c3d7f2b4"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "messages",
        sa.Column("body_cut", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade():
    op.drop_column("messages", "body_cut")
