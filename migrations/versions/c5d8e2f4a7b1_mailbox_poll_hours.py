"""mailbox_poll_hours and indexes of messages by mailbox or channel and time, for the dashboards

Revision ID: c5d8e2f4a7b1
Revises: c5e8a1f3d7b9
Create Date: 2026-12-06 03:30:00

Issue 22 (admin dashboard): per mailbox, the messages stored per hour and per day and
the failed polls over 7 days. A mailbox row keeps only its latest outcome, so the worker
now adds each poll to an hourly row (portal/services/mailboxes.count_poll), pruned after
8 days; the messages are counted through (mailbox_id, created_at), and the seller
dashboard's 7-day volume per channel through (channel_id, direction, created_at).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c5d8e2f4a7b1"
down_revision = "c5e8a1f3d7b9"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "mailbox_poll_hours",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_mailbox_poll_hours_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailbox_id", "hour", name=op.f("pk_mailbox_poll_hours")),
    )
    op.create_index(
        "ix_messages_mailbox_created", "messages", ["mailbox_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_messages_channel_created",
        "messages",
        ["channel_id", "direction", "created_at"],
        unique=False,
    )


def downgrade():
    op.drop_index("ix_messages_channel_created", table_name="messages")
    op.drop_index("ix_messages_mailbox_created", table_name="messages")
    op.drop_table("mailbox_poll_hours")
