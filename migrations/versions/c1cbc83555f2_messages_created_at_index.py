"""messages.created_at indexed, for the reports' periods

Revision ID: c1cbc83555f2
Revises: c5e8b2a7f041
Create Date: 2026-12-06 03:40:00

Issue 22 (reports): every figure of a report starts from the messages received in its
period (portal/services/reports.py); without an index that is a scan of every message
ever stored, with one a range of the index.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "c1cbc83555f2"
down_revision = "c5e8b2a7f041"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_messages_created_at", "messages", ["created_at"])


def downgrade():
    op.drop_index("ix_messages_created_at", table_name="messages")
