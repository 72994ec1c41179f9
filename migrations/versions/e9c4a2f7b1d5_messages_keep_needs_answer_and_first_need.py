"""buyer messages keep whether they need an answer, and which is their thread's first

Revision ID: e9c4a2f7b1d5
Revises: d4b8e1f2a6c3
Create Date: 2026-12-06 23:45:00

Issue 22 (Speed): every report query looked up, per message, whether it was marked "no
response needed" (no_response_marks) and, for a thread's first response time, whether
an earlier message on its thread needed an answer. Now each message keeps both:
`needs_answer` (portal/services/reports.py's definition: inbound, not an internal
note, auto-reply, bounce, Amazon notification or Seller Central copy, not quarantined,
not marked) and `first_need` (it needs an answer and no message of its thread that
needs one came before it, by created_at then id).

Triggers keep both, as for the answer (migration b7e2c4a9d1f3): a message stored,
re-flagged, re-dated, moved or deleted, a mark added or removed, whatever does it. The
application never writes them. A thread's flag is recomputed from the thread's first
message needing an answer (one indexed read of the thread), writing only rows that
change.

PostgreSQL: a new message gets both in a BEFORE INSERT trigger (no second row
version); when it claims to be the first, an AFTER INSERT trigger recomputes its thread
(one statement may insert several messages of a thread, in any order). SQLite: an AFTER
INSERT trigger, only for a message that needs an answer.
"""

# ruff: noqa: S608 (the SQL is built from this module's constants only, no input)

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "e9c4a2f7b1d5"
down_revision = "d4b8e1f2a6c3"
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
    """Whether `message` needs an answer: reports.py's definition."""
    flags = " AND ".join(f"NOT {message}.{flag}" for flag in _FLAGS)
    return (
        f"({message}.direction = 'in' AND {flags} AND {message}.quarantine_reason IS NULL"
        f" AND NOT EXISTS (SELECT 1 FROM no_response_marks k WHERE k.message_id = {message}.id))"
    )


def _first_of(thread: str) -> str:
    """The id of the first message needing an answer on thread `thread`: reports.py's
    order (created_at, then id)."""
    return (
        f"(SELECT e.id FROM messages e WHERE e.thread_id = {thread} AND e.needs_answer"
        " ORDER BY e.created_at, e.id LIMIT 1)"
    )


def _refresh_first(thread: str, distinct: str) -> str:
    """Sets first_need on the messages of thread `thread`, writing only those that
    change. (A scalar subquery without correlation: evaluated once per statement.)"""
    first = f"(id = coalesce({_first_of(thread)}, 0))"
    return (
        f"UPDATE messages SET first_need = {first}"
        f" WHERE thread_id = {thread} AND first_need {distinct} {first}"
    )


def _refresh_needs(message_id: str, distinct: str) -> str:
    """Sets needs_answer on message `message_id` when it changed."""
    return (
        f"UPDATE messages SET needs_answer = {_needs('messages')}"
        f" WHERE id = {message_id} AND needs_answer {distinct} {_needs('messages')}"
    )


#: A message taken off its thread (its thread deleted without the database's cascade)
#: is no thread's first.
_UNTHREADED = (
    "UPDATE messages SET first_need = false"
    " WHERE id = {0}.id AND {0}.thread_id IS NULL AND first_need"
)

_WATCHED = ("direction", *_FLAGS, "quarantine_reason", "thread_id", "created_at")
_CHANGED = " OR ".join(f"old.{c} IS NOT new.{c}" for c in _WATCHED)


def _message_thread(message_id: str) -> str:
    return f"(SELECT m.thread_id FROM messages m WHERE m.id = {message_id})"


def _sqlite_triggers() -> dict[str, str]:
    def refresh_thread(thread: str) -> str:
        return _refresh_first(thread, "IS NOT") + ";"

    def refresh_message(message_id: str) -> str:
        return (
            _refresh_needs(message_id, "IS NOT")
            + ";\n        "
            + refresh_thread(_message_thread(message_id))
        )

    return {
        "messages_needs_answer_ai": f"""CREATE TRIGGER messages_needs_answer_ai
    AFTER INSERT ON messages WHEN {_needs("new")} BEGIN
        UPDATE messages SET needs_answer = 1 WHERE id = new.id;
        {refresh_thread("new.thread_id")}
    END""",
        "messages_needs_answer_au": f"""CREATE TRIGGER messages_needs_answer_au
    AFTER UPDATE OF {", ".join(_WATCHED)} ON messages WHEN {_CHANGED} BEGIN
        {_refresh_needs("new.id", "IS NOT")};
        {_UNTHREADED.format("new")};
        {refresh_thread("old.thread_id")}
        {refresh_thread("new.thread_id")}
    END""",
        "messages_needs_answer_ad": f"""CREATE TRIGGER messages_needs_answer_ad
    AFTER DELETE ON messages WHEN old.first_need BEGIN
        {refresh_thread("old.thread_id")}
    END""",
        "no_response_marks_ai": f"""CREATE TRIGGER no_response_marks_ai
    AFTER INSERT ON no_response_marks BEGIN
        {refresh_message("new.message_id")}
    END""",
        "no_response_marks_au": f"""CREATE TRIGGER no_response_marks_au
    AFTER UPDATE OF message_id ON no_response_marks BEGIN
        {refresh_message("old.message_id")}
        {refresh_message("new.message_id")}
    END""",
        "no_response_marks_ad": f"""CREATE TRIGGER no_response_marks_ad
    AFTER DELETE ON no_response_marks BEGIN
        {refresh_message("old.message_id")}
    END""",
    }


_PG_FUNCTIONS = (
    f"""CREATE FUNCTION messages_needs_answer_new_trg() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        NEW.needs_answer := {_needs("NEW")};
        NEW.first_need := NEW.needs_answer AND NEW.thread_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM messages e WHERE e.thread_id = NEW.thread_id AND e.needs_answer
            AND (e.created_at, e.id) < (NEW.created_at, NEW.id));
        RETURN NEW;
    END $$""",
    f"""CREATE FUNCTION messages_first_need_trg() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            {_refresh_needs("NEW.id", "IS DISTINCT FROM")};
            {_UNTHREADED.format("NEW")};
        END IF;
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            {_refresh_first("OLD.thread_id", "IS DISTINCT FROM")};
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            {_refresh_first("NEW.thread_id", "IS DISTINCT FROM")};
        END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION no_response_marks_trg() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        marked integer;
    BEGIN
        FOR marked IN SELECT DISTINCT unnest(ARRAY[
            CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN OLD.message_id END,
            CASE WHEN TG_OP IN ('UPDATE', 'INSERT') THEN NEW.message_id END])
        LOOP
            CONTINUE WHEN marked IS NULL;
            {_refresh_needs("marked", "IS DISTINCT FROM")};
            {_refresh_first(_message_thread("marked"), "IS DISTINCT FROM")};
        END LOOP;
        RETURN NULL;
    END $$""",
)
_PG_CHANGED = (
    _CHANGED.replace(" IS NOT ", " IS DISTINCT FROM ")
    .replace("old.", "OLD.")
    .replace("new.", "NEW.")
)
_PG_TRIGGERS = {
    "messages_needs_answer_bi": """CREATE TRIGGER messages_needs_answer_bi
    BEFORE INSERT ON messages FOR EACH ROW
    EXECUTE FUNCTION messages_needs_answer_new_trg()""",
    "messages_first_need_ai": """CREATE TRIGGER messages_first_need_ai
    AFTER INSERT ON messages FOR EACH ROW WHEN (NEW.first_need)
    EXECUTE FUNCTION messages_first_need_trg()""",
    "messages_needs_answer_au": f"""CREATE TRIGGER messages_needs_answer_au
    AFTER UPDATE OF {", ".join(_WATCHED)} ON messages
    FOR EACH ROW WHEN ({_PG_CHANGED})
    EXECUTE FUNCTION messages_first_need_trg()""",
    "messages_first_need_ad": """CREATE TRIGGER messages_first_need_ad
    AFTER DELETE ON messages FOR EACH ROW WHEN (OLD.first_need)
    EXECUTE FUNCTION messages_first_need_trg()""",
    "no_response_marks_aiud": """CREATE TRIGGER no_response_marks_aiud
    AFTER INSERT OR UPDATE OF message_id OR DELETE ON no_response_marks
    FOR EACH ROW EXECUTE FUNCTION no_response_marks_trg()""",
}

#: Sets both on every message (the backfill): first needs_answer, then first_need.
_BACKFILL = (
    f"UPDATE messages SET needs_answer = {_needs('messages')}",
    "UPDATE messages SET first_need = (id = coalesce("
    + _first_of("messages.thread_id")
    + ", 0)) WHERE needs_answer AND thread_id IS NOT NULL",
)


def upgrade():
    # Plain ALTER TABLE on both databases: a batch rebuild of messages on SQLite would
    # drop the search, snippet and answer triggers.
    op.add_column(
        "messages",
        sa.Column("needs_answer", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "messages",
        sa.Column("first_need", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    for statement in _BACKFILL:
        op.execute(statement)
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in _sqlite_triggers().values():
            op.execute(statement)
    elif dialect == "postgresql":
        for statement in _PG_FUNCTIONS:
            op.execute(statement)
        for statement in _PG_TRIGGERS.values():
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name in _PG_TRIGGERS:
            table = "no_response_marks" if name.startswith("no_response") else "messages"
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for function in (
            "no_response_marks_trg",
            "messages_first_need_trg",
            "messages_needs_answer_new_trg",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    else:
        for name in _sqlite_triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    # Plain ALTER TABLE (SQLite 3.35+): no rebuild, the other triggers stay.
    op.execute("ALTER TABLE messages DROP COLUMN first_need")
    op.execute("ALTER TABLE messages DROP COLUMN needs_answer")
