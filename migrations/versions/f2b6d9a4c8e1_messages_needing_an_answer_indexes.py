"""indexes of the messages needing an answer and of each thread's first, for the reports

Revision ID: f2b6d9a4c8e1
Revises: e9c4a2f7b1d5
Create Date: 2026-12-06 23:50:00

Issue 22 (Speed): with needs_answer and first_need stored (migration e9c4a2f7b1d5),
each report query reads a period's messages needing an answer (or threads' first
ones) of some channels with their answer. Partial indexes hold only those rows, by
channel and arrival, with the thread, the answer and the flag beside them, so both
databases read them from the index alone; the closed threads' first messages are
found by thread, in a third, small one. The backlog reads the first of them too
(answer_id IS NULL), so the index of the unanswered messages (d4b8e1f2a6c3), which its
query no longer matches, goes.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "f2b6d9a4c8e1"
down_revision = "e9c4a2f7b1d5"
branch_labels = None
depends_on = None

#: (name, columns, flag). The flag itself last: SQLite reads a partial index's WHERE
#: column from the table unless the index holds it (EXPLAIN QUERY PLAN: "USING INDEX",
#: not "COVERING INDEX").
_INDEXES = (
    (
        "ix_messages_needs_answer",
        ["channel_id", "created_at", "thread_id", "answer_id", "answered_at"],
        "needs_answer",
    ),
    (
        "ix_messages_first_need",
        ["channel_id", "created_at", "thread_id", "answer_id", "answered_at"],
        "first_need",
    ),
    ("ix_messages_thread_first_need", ["thread_id", "created_at"], "first_need"),
)


def upgrade():
    # SQLite uses a partial index only when the query repeats its WHERE term: reports.py
    # compares with true(), which SQLite renders as "= 1" and PostgreSQL as "= true".
    for name, columns, flag in _INDEXES:
        op.create_index(
            name,
            "messages",
            [*columns, flag],
            sqlite_where=sa.text(f"{flag} = 1"),
            postgresql_where=sa.text(flag),
        )
    op.drop_index("ix_messages_unanswered", table_name="messages")


def downgrade():
    op.create_index(
        "ix_messages_unanswered",
        "messages",
        ["direction", "created_at"],
        sqlite_where=sa.text("answer_id IS NULL"),
        postgresql_where=sa.text("answer_id IS NULL"),
    )
    for name, _, _ in reversed(_INDEXES):
        op.drop_index(name, table_name="messages")
