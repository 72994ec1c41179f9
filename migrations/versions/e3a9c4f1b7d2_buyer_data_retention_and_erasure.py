"""Buyer data retention and erasure: threads.closed_at, threads/messages.erased_at

Revision ID: e3a9c4f1b7d2
Revises: b6f2d8e4c913
Create Date: 2026-12-06 00:30:00

Issue 23: buyer data is kept no longer than needed. The worker deletes the raw mail and
attachments of threads closed for a while, later their texts, counting from when a thread
was closed (threads.closed_at; the threads closed before this revision count from their
last message). An erased thread or message stays as a tombstone without content
(erased_at set), so the reports keep their counts and ingest its dedup keys.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "e3a9c4f1b7d2"
down_revision = "b6f2d8e4c913"
branch_labels = None
depends_on = None


def upgrade():
    # Not in batch mode (here and in the downgrade): on SQLite that recreates `threads`
    # and `messages` and drops their search and snippet triggers.
    op.add_column("threads", sa.Column("closed_at", sa.DateTime(), nullable=True))
    op.add_column("threads", sa.Column("erased_at", sa.DateTime(), nullable=True))
    op.create_index(op.f("ix_threads_closed_at"), "threads", ["closed_at"])
    op.add_column("messages", sa.Column("erased_at", sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE threads SET closed_at = last_message_at WHERE status = 'closed' AND closed_at IS NULL"
    )


def downgrade():
    op.drop_column("messages", "erased_at")
    op.drop_index(op.f("ix_threads_closed_at"), table_name="threads")
    op.drop_column("threads", "erased_at")
    op.drop_column("threads", "closed_at")
