"""mailbox_removals: erased mail to remove from its source mailbox

Revision ID: b7d2e9f4a6c1
Revises: a1f4c7e2d9b3
Create Date: 2026-12-06 03:30:00

Issue 23: erasing a buyer also removes their mail from the mailbox it was fetched
from, so it does not come back; the worker does it on its next connection to that
mailbox (ingest/pipeline.py) from these rows, then deletes them.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b7d2e9f4a6c1"
down_revision = "a1f4c7e2d9b3"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "mailbox_removals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("uid", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailboxes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_mailbox_removals_mailbox_id"), "mailbox_removals", ["mailbox_id"], unique=False
    )


def downgrade():
    op.drop_index(op.f("ix_mailbox_removals_mailbox_id"), table_name="mailbox_removals")
    op.drop_table("mailbox_removals")
