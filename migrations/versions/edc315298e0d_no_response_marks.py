"""Buyer messages marked "no response needed" (no_response_marks)

Revision ID: edc315298e0d
Revises: d8f3b6a1c4e9
Create Date: 2026-12-05 16:30:00

Issue 21: an agent's mark, per buyer message, that it needs no answer; Sellerdesk's
clock stops for it and the reports of issue 22 count the marks. A table of its own
rather than columns on `messages`: on SQLite a foreign key added to `messages` would
recreate that table and drop its search and snippet triggers.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "edc315298e0d"
down_revision = "d8f3b6a1c4e9"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "no_response_marks",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("marked_by_id", sa.Integer(), nullable=True),
        sa.Column("marked_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_no_response_marks_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.id"],
            name=op.f("fk_no_response_marks_thread_id_threads"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["marked_by_id"],
            ["users.id"],
            name=op.f("fk_no_response_marks_marked_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_no_response_marks")),
    )
    op.create_index(
        op.f("ix_no_response_marks_thread_id"), "no_response_marks", ["thread_id"]
    )


def downgrade():
    op.drop_index(op.f("ix_no_response_marks_thread_id"), table_name="no_response_marks")
    op.drop_table("no_response_marks")
