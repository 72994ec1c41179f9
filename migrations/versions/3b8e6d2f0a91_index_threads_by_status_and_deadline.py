"""index threads by status and awaiting_reply_since for the inbox's urgent sort

Revision ID: 3b8e6d2f0a91
Revises: 9c2f7a4e1b63
Create Date: 2026-11-27 13:40:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "3b8e6d2f0a91"
down_revision = "9c2f7a4e1b63"
branch_labels = None
depends_on = None


def upgrade():
    # Not batch_alter_table: on SQLite that would recreate `threads` and drop the
    # search triggers of 5e4a1c7d9b20. CREATE INDEX needs no table rebuild.
    op.create_index(
        "ix_threads_status_awaiting",
        "threads",
        ["status", "awaiting_reply_since", "id"],
        unique=False,
    )


def downgrade():
    op.drop_index("ix_threads_status_awaiting", table_name="threads")
