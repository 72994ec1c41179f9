"""an index of the messages not answered, for the reports' backlog

Revision ID: d4b8e1f2a6c3
Revises: b7e2c4a9d1f3
Create Date: 2026-12-06 21:00:00

Issue 22 (Speed): the backlog counts every message needing an answer and not answered
yet, over all of history. With the answer stored (migration b7e2c4a9d1f3), a partial
index holds only the unanswered messages (and replies, which a direction term skips),
so the backlog reads what is open rather than every message ever received.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "d4b8e1f2a6c3"
down_revision = "b7e2c4a9d1f3"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_messages_unanswered",
        "messages",
        ["direction", "created_at"],
        sqlite_where=sa.text("answer_id IS NULL"),
        postgresql_where=sa.text("answer_id IS NULL"),
    )


def downgrade():
    op.drop_index("ix_messages_unanswered", table_name="messages")
