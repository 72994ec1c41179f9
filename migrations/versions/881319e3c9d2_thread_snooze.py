"""Snoozed threads (threads.snoozed_until)

Revision ID: 881319e3c9d2
Revises: edc315298e0d
Create Date: 2026-12-05 16:35:00

Issue 21: "pending until" a date and time; the worker opens the thread again then.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "881319e3c9d2"
down_revision = "edc315298e0d"
branch_labels = None
depends_on = None


def upgrade():
    # Not in batch mode (here and in the downgrade): on SQLite that recreates `threads`
    # and drops its search and snippet triggers. SQLite adds (and, from 3.35, drops)
    # such a column itself.
    op.add_column("threads", sa.Column("snoozed_until", sa.DateTime(), nullable=True))
    op.create_index(op.f("ix_threads_snoozed_until"), "threads", ["snoozed_until"])


def downgrade():
    op.drop_index(op.f("ix_threads_snoozed_until"), table_name="threads")
    op.drop_column("threads", "snoozed_until")
