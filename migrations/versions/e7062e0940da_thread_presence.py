"""Who has a thread open (thread_presence)

Revision ID: e7062e0940da
Revises: 8361bdde2c76
Create Date: 2026-12-05 17:00:00

Issue 21: the thread page's heartbeat says who else has the thread open and who is
writing a reply.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "e7062e0940da"
down_revision = "8361bdde2c76"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "thread_presence",
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.Column("is_writing", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.id"],
            name=op.f("fk_thread_presence_thread_id_threads"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_thread_presence_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("thread_id", "user_id", name=op.f("pk_thread_presence")),
    )
    op.create_index(op.f("ix_thread_presence_user_id"), "thread_presence", ["user_id"])


def downgrade():
    op.drop_index(op.f("ix_thread_presence_user_id"), table_name="thread_presence")
    op.drop_table("thread_presence")
