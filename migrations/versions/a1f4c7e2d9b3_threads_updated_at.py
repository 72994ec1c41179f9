"""threads.updated_at, for the live inbox's change check

Revision ID: a1f4c7e2d9b3
Revises: e3a9c4f1b7d2
Create Date: 2026-12-06 00:30:00

Issue 21 (live inbox): an open inbox asks every two seconds whether anything it may
see has changed; the answer is the newest threads.updated_at in the user's scope, one
index lookup (portal/services/inbox/live.py). The application sets it on every UPDATE
of a thread through the ORM and for every message ingest stores. Existing rows start
at their last activity.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "a1f4c7e2d9b3"
down_revision = "e3a9c4f1b7d2"
branch_labels = None
depends_on = None


def upgrade():
    # Not in batch mode (here and in the downgrade): on SQLite that recreates `threads`
    # and drops its search and snippet triggers. A NOT NULL column added by ALTER TABLE
    # needs a default; PostgreSQL drops it once the rows are filled, SQLite keeps it
    # (it cannot drop a default without recreating the table; the app always sets one).
    op.add_column(
        "threads",
        sa.Column(
            "updated_at", sa.DateTime(), nullable=False, server_default="1970-01-01 00:00:00"
        ),
    )
    op.execute("UPDATE threads SET updated_at = last_message_at")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("threads", "updated_at", server_default=None)
    op.create_index("ix_threads_org_updated", "threads", ["organisation_id", "updated_at"])
    op.create_index("ix_threads_updated", "threads", ["updated_at"])


def downgrade():
    op.drop_index("ix_threads_updated", table_name="threads")
    op.drop_index("ix_threads_org_updated", table_name="threads")
    op.drop_column("threads", "updated_at")
