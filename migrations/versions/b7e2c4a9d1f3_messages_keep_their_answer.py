"""buyer messages keep their answer (answer_id, answered_at), for the reports

Revision ID: b7e2c4a9d1f3
Revises: a4d7f2c9e1b8
Create Date: 2026-12-06 20:45:00

Issue 22 (Speed): a buyer message is answered by the first reply sent on its thread at
or after it (portal/services/reports.py). The reports looked that reply up per message
with a correlated subquery, at every request; now each inbound message keeps it
(answer_id) and when it went out (answered_at), and the reports read one row per
message.

Triggers keep both, as for the snippet (migration c3d9a5f1e7b2): a reply marked sent
(the outbox's UPDATE), failed or bounced, a message stored, moved, re-dated or deleted,
whatever does it, in application code or by hand. The application never writes them.
A thread's inbound messages are recomputed whole; a thread has few.

PostgreSQL: a new inbound message gets its answer in a BEFORE INSERT trigger (no second
row version; usually there is no later reply). SQLite: an AFTER INSERT trigger that
only writes when a sent reply at or after it exists.
"""

# ruff: noqa: S608 (the SQL is built from this module's constants only, no input)

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b7e2c4a9d1f3"
down_revision = "a4d7f2c9e1b8"
branch_labels = None
depends_on = None


# send_status through coalesce() everywhere: as an expression it keeps SQLite (without
# statistics) off the send_status index, through which it walked every sent reply for
# each message instead of the thread's few messages (reports.py had the same trap).


def _first_reply(column: str, message: str) -> str:
    """The id (or the sent_at) of the first reply sent on `message`'s thread at or
    after it: reports.py's definition of the answer."""
    what, order = (
        ("r.id", " ORDER BY r.sent_at, r.id LIMIT 1") if column == "id" else ("min(r.sent_at)", "")
    )
    return (
        f"(SELECT {what} FROM messages r"
        f" WHERE r.thread_id = {message}.thread_id AND r.direction = 'out'"
        " AND NOT r.is_internal_note AND coalesce(r.send_status, '') = 'sent'"
        " AND r.sent_at IS NOT NULL"
        f" AND r.sent_at >= {message}.created_at{order})"
    )


#: Sets the answer of the inbound rows of `messages` that the WHERE that follows keeps.
_REFRESH = (
    f"UPDATE messages SET answer_id = {_first_reply('id', 'messages')},"
    f" answered_at = {_first_reply('sent_at', 'messages')}"
)
_IS_SENT_REPLY = (
    "{0}.direction = 'out' AND NOT {0}.is_internal_note AND coalesce({0}.send_status, '') = 'sent'"
    " AND {0}.sent_at IS NOT NULL AND {0}.thread_id IS NOT NULL"
)
_CHANGED = " OR ".join(
    f"old.{c} IS NOT new.{c}"
    for c in ("thread_id", "direction", "is_internal_note", "send_status", "sent_at", "created_at")
)
_WATCHED = "thread_id, direction, is_internal_note, send_status, sent_at, created_at"

_SQLITE_TRIGGERS = {
    "messages_answer_in_ai": f"""CREATE TRIGGER messages_answer_in_ai AFTER INSERT ON messages
    WHEN new.direction = 'in' AND new.thread_id IS NOT NULL
        AND EXISTS (SELECT 1 FROM messages r WHERE r.thread_id = new.thread_id
            AND {_IS_SENT_REPLY.format("r")} AND r.sent_at >= new.created_at) BEGIN
        {_REFRESH} WHERE id = new.id;
    END""",
    "messages_answer_out_ai": f"""CREATE TRIGGER messages_answer_out_ai AFTER INSERT ON messages
    WHEN {_IS_SENT_REPLY.format("new")} BEGIN
        {_REFRESH} WHERE thread_id = new.thread_id AND direction = 'in';
    END""",
    "messages_answer_au": f"""CREATE TRIGGER messages_answer_au
    AFTER UPDATE OF {_WATCHED} ON messages WHEN {_CHANGED} BEGIN
        {_REFRESH} WHERE thread_id IN (old.thread_id, new.thread_id) AND direction = 'in';
    END""",
    "messages_answer_ad": f"""CREATE TRIGGER messages_answer_ad AFTER DELETE ON messages
    WHEN {_IS_SENT_REPLY.format("old")} BEGIN
        {_REFRESH} WHERE thread_id = old.thread_id AND direction = 'in';
    END""",
}

_PG_FUNCTIONS = (
    f"""CREATE FUNCTION messages_answer_new_trg() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.answer_id := {_first_reply("id", "NEW")};
        NEW.answered_at := {_first_reply("sent_at", "NEW")};
        RETURN NEW;
    END $$""",
    f"""CREATE FUNCTION messages_answer_refresh_trg() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        {_REFRESH} WHERE direction = 'in' AND thread_id IN (
            CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN OLD.thread_id END,
            CASE WHEN TG_OP IN ('UPDATE', 'INSERT') THEN NEW.thread_id END);
        RETURN NULL;
    END $$""",
)
_PG_CHANGED = _CHANGED.replace(" IS NOT ", " IS DISTINCT FROM ").replace("old.", "OLD.")
_PG_TRIGGERS = {
    "messages_answer_bi": """CREATE TRIGGER messages_answer_bi BEFORE INSERT ON messages
    FOR EACH ROW WHEN (NEW.direction = 'in' AND NEW.thread_id IS NOT NULL)
    EXECUTE FUNCTION messages_answer_new_trg()""",
    "messages_answer_out_ai": f"""CREATE TRIGGER messages_answer_out_ai AFTER INSERT ON messages
    FOR EACH ROW WHEN ({_IS_SENT_REPLY.format("NEW")})
    EXECUTE FUNCTION messages_answer_refresh_trg()""",
    "messages_answer_au": f"""CREATE TRIGGER messages_answer_au
    AFTER UPDATE OF {_WATCHED} ON messages
    FOR EACH ROW WHEN ({_PG_CHANGED.replace("new.", "NEW.")})
    EXECUTE FUNCTION messages_answer_refresh_trg()""",
    "messages_answer_ad": f"""CREATE TRIGGER messages_answer_ad AFTER DELETE ON messages
    FOR EACH ROW WHEN ({_IS_SENT_REPLY.format("OLD")})
    EXECUTE FUNCTION messages_answer_refresh_trg()""",
}


def upgrade():
    # Plain ALTER TABLE on both databases: a batch rebuild of messages on SQLite would
    # drop the search and snippet triggers.
    # No foreign key: SQLite adds one only by rebuilding messages, which with foreign
    # keys on would delete every attachment (their cascade) and drop the table's
    # triggers. The triggers keep answer_id pointing at a reply of the thread: deleting
    # a sent reply recomputes its thread, and a thread's deletion takes all its messages.
    op.add_column("messages", sa.Column("answer_id", sa.Integer()))
    op.add_column("messages", sa.Column("answered_at", sa.DateTime()))
    op.execute(f"{_REFRESH} WHERE direction = 'in' AND thread_id IS NOT NULL")
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in _SQLITE_TRIGGERS.values():
            op.execute(statement)
    elif dialect == "postgresql":
        for statement in _PG_FUNCTIONS:
            op.execute(statement)
        for statement in _PG_TRIGGERS.values():
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name in _PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON messages")
        op.execute("DROP FUNCTION IF EXISTS messages_answer_refresh_trg()")
        op.execute("DROP FUNCTION IF EXISTS messages_answer_new_trg()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    # Plain ALTER TABLE (SQLite 3.35+): no rebuild, the other triggers stay.
    op.execute("ALTER TABLE messages DROP COLUMN answered_at")
    op.execute("ALTER TABLE messages DROP COLUMN answer_id")
