"""SQLite: a new message's needs_answer and first_need are taken from its INSERT when right

Revision ID: b8d4f6a2c1e7
Revises: c7e3a1f5d2b9
Create Date: 2026-12-07 07:20:00

Issue 19 (memory): SQLite has no BEFORE INSERT trigger that can set a column, so
migration e9c4a2f7b1d5's AFTER INSERT trigger set needs_answer (and, through its
thread's refresh, first_need) with an UPDATE of the row just inserted. An UPDATE
rewrites the whole row, raw mail included: for a multi-MB message SQLite held several
copies of it at once, which raised the ingest process's peak by about a tenth
(bench/README.md). Ingest now inserts its best reckoning of both flags
(services/inbound.py), and this trigger corrects them only where they are wrong: it
fires for a message that needs an answer, or is said to, or is said to be its thread's
first, and writes only values that differ. Any other writer (the ORM, a script) inserts
both false, as before, and gets them set as before.
"""

# ruff: noqa: S608 (the SQL is built from this module's constants only, no input)

from alembic import op

# revision identifiers, used by Alembic.
revision = "b8d4f6a2c1e7"
down_revision = "c7e3a1f5d2b9"
branch_labels = None
depends_on = None

_FLAGS = (
    "is_internal_note",
    "is_autoreply",
    "is_bounce",
    "is_amazon_notification",
    "is_seller_central_copy",
)


def _needs(message: str) -> str:
    """Whether `message` needs an answer (migration e9c4a2f7b1d5's definition)."""
    flags = " AND ".join(f"NOT {message}.{flag}" for flag in _FLAGS)
    return (
        f"({message}.direction = 'in' AND {flags} AND {message}.quarantine_reason IS NULL"
        f" AND NOT EXISTS (SELECT 1 FROM no_response_marks k WHERE k.message_id = {message}.id))"
    )


def _refresh_thread(thread: str) -> str:
    """first_need on the thread's messages, written only where it changes."""
    first = (
        f"(id = coalesce((SELECT e.id FROM messages e WHERE e.thread_id = {thread}"
        " AND e.needs_answer ORDER BY e.created_at, e.id LIMIT 1), 0))"
    )
    return f"UPDATE messages SET first_need = {first} WHERE thread_id = {thread} AND first_need IS NOT {first};"


_BEFORE = f"""CREATE TRIGGER messages_needs_answer_ai
    AFTER INSERT ON messages WHEN {_needs("new")} BEGIN
        UPDATE messages SET needs_answer = 1 WHERE id = new.id;
        {_refresh_thread("new.thread_id")}
    END"""

_AFTER = f"""CREATE TRIGGER messages_needs_answer_ai
    AFTER INSERT ON messages WHEN new.needs_answer OR new.first_need OR {_needs("new")} BEGIN
        UPDATE messages SET needs_answer = {_needs("messages")}
            WHERE id = new.id AND needs_answer IS NOT {_needs("messages")};
        {_refresh_thread("new.thread_id")}
    END"""


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL sets both in a BEFORE INSERT trigger: no second row version
    op.execute("DROP TRIGGER IF EXISTS messages_needs_answer_ai")
    op.execute(_AFTER)


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER IF EXISTS messages_needs_answer_ai")
    op.execute(_BEFORE)
