"""ix_threads_org_status_awaiting: open and waiting threads per organisation from the index

Revision ID: c7e3a1f5d2b9
Revises: a3c7e5f1d9b2
Create Date: 2026-12-07 03:40:00

Issue 22 (Speed): the dashboard counts each visible organisation's open and pending
threads; through the organisation's activity index it read every thread of it, closed
ones included (most of them), from the table. Its answers due (threads waiting for an
answer, by deadline) read the waiting threads of every organisation by the status index
and then each one's organisation from the table.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "c7e3a1f5d2b9"
down_revision = "a3c7e5f1d9b2"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_threads_org_status_awaiting",
        "threads",
        ["organisation_id", "status", "awaiting_reply_since"],
        unique=False,
    )


def downgrade():
    op.drop_index("ix_threads_org_status_awaiting", table_name="threads")
