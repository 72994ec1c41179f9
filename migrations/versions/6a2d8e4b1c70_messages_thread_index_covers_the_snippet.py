"""the inbox's newest-snippet lookup reads an index, not the message rows

Revision ID: 6a2d8e4b1c70
Revises: 4f7b2c9e8d15
Create Date: 2026-11-27 19:45:00

ix_messages_thread_created (thread_id, created_at) becomes ix_messages_thread_snippet
(thread_id, created_at, id, is_internal_note, snippet): the same order, and it holds
what each inbox row's snippet subquery reads. Through the table that subquery read
every row up to is_internal_note, stored after the bodies and the raw mail: on SQLite
a walk through the overflow pages of some 30 KB per real message, 50 per page.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "6a2d8e4b1c70"
down_revision = "4f7b2c9e8d15"
branch_labels = None
depends_on = None


def upgrade():
    # Not batch_alter_table: on SQLite that would recreate `messages` and drop the
    # search triggers. CREATE INDEX needs no table rebuild.
    op.create_index(
        "ix_messages_thread_snippet",
        "messages",
        ["thread_id", "created_at", "id", "is_internal_note", "snippet"],
        unique=False,
    )
    op.drop_index("ix_messages_thread_created", table_name="messages")


def downgrade():
    op.create_index(
        "ix_messages_thread_created", "messages", ["thread_id", "created_at"], unique=False
    )
    op.drop_index("ix_messages_thread_snippet", table_name="messages")
