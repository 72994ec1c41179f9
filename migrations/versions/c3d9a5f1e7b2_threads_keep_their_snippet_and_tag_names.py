"""threads keep their newest snippet and their tag names, for the inbox's rows

Revision ID: c3d9a5f1e7b2
Revises: 8b5e1f3a7c29
Create Date: 2026-11-27 21:45:00

threads.snippet is the snippet of the thread's newest message that is not an internal
note (by created_at, then id: the thread page's order); threads.tag_names its tags'
names joined by U+001F (portal.models.threads.TAG_NAMES_SEPARATOR), in no set order. The
inbox read both with a correlated subquery per row, which on PostgreSQL was half the
page statement's execution and much of its planning. Triggers keep them: whatever
stores, moves, re-dates or deletes a message, or tags, untags or renames a tag, in
application code or by hand. The application never writes them.

PostgreSQL: a new message already updates its thread row (the search document,
migration 5e4a1c7d9b20); that function now sets the snippet in the same UPDATE, so a
message costs no second row version. SQLite: triggers of their own, which a later
`batch_alter_table` on `messages`, `threads`, `thread_tags` or `tags` would drop
(tests/test_migrations.py checks they exist at head).
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "c3d9a5f1e7b2"
down_revision = "8b5e1f3a7c29"
branch_labels = None
depends_on = None

# The thread being updated is `threads` (correlated), so one text serves every trigger.
_SQLITE_SNIPPET = (
    "(SELECT m.snippet FROM messages m WHERE m.thread_id = threads.id"
    " AND m.is_internal_note = 0 ORDER BY m.created_at DESC, m.id DESC LIMIT 1)"
)
_SQLITE_TAG_NAMES = (
    "(SELECT group_concat(t.name, char(31)) FROM thread_tags tt JOIN tags t ON t.id = tt.tag_id"
    " WHERE tt.thread_id = threads.id)"
)
_SQLITE_TRIGGERS = {
    "threads_snippet_ai": f"""CREATE TRIGGER threads_snippet_ai AFTER INSERT ON messages
    WHEN new.thread_id IS NOT NULL AND new.is_internal_note = 0 BEGIN
        UPDATE threads SET snippet = {_SQLITE_SNIPPET} WHERE id = new.thread_id;
    END""",
    "threads_snippet_ad": f"""CREATE TRIGGER threads_snippet_ad AFTER DELETE ON messages
    WHEN old.thread_id IS NOT NULL AND old.is_internal_note = 0 BEGIN
        UPDATE threads SET snippet = {_SQLITE_SNIPPET} WHERE id = old.thread_id;
    END""",
    "threads_snippet_au": f"""CREATE TRIGGER threads_snippet_au
    AFTER UPDATE OF thread_id, is_internal_note, snippet, created_at ON messages BEGIN
        UPDATE threads SET snippet = {_SQLITE_SNIPPET}
        WHERE id IN (old.thread_id, new.thread_id);
    END""",
    "threads_tag_names_ai": f"""CREATE TRIGGER threads_tag_names_ai AFTER INSERT ON thread_tags
    BEGIN
        UPDATE threads SET tag_names = {_SQLITE_TAG_NAMES} WHERE id = new.thread_id;
    END""",
    "threads_tag_names_ad": f"""CREATE TRIGGER threads_tag_names_ad AFTER DELETE ON thread_tags
    BEGIN
        UPDATE threads SET tag_names = {_SQLITE_TAG_NAMES} WHERE id = old.thread_id;
    END""",
    "threads_tag_names_au": f"""CREATE TRIGGER threads_tag_names_au AFTER UPDATE ON thread_tags
    BEGIN
        UPDATE threads SET tag_names = {_SQLITE_TAG_NAMES}
        WHERE id IN (old.thread_id, new.thread_id);
    END""",
    "tags_name_au": f"""CREATE TRIGGER tags_name_au AFTER UPDATE OF name ON tags BEGIN
        UPDATE threads SET tag_names = {_SQLITE_TAG_NAMES}
        WHERE id IN (SELECT thread_id FROM thread_tags WHERE tag_id = new.id);
    END""",
}

_PG_FUNCTIONS = (
    """CREATE FUNCTION thread_snippet(t_id integer) RETURNS varchar
    LANGUAGE sql STABLE AS $$
        SELECT m.snippet FROM messages m
        WHERE m.thread_id = t_id AND NOT m.is_internal_note
        ORDER BY m.created_at DESC, m.id DESC LIMIT 1
    $$""",
    """CREATE FUNCTION thread_tag_names(t_id integer) RETURNS text
    LANGUAGE sql STABLE AS $$
        SELECT string_agg(t.name, chr(31)) FROM thread_tags tt JOIN tags t ON t.id = tt.tag_id
        WHERE tt.thread_id = t_id
    $$""",
    # 5e4a1c7d9b20's function, which now sets the snippet in the same UPDATE.
    """CREATE OR REPLACE FUNCTION messages_search_insert_trg() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        BEGIN
            UPDATE threads
            SET search_document = coalesce(search_document, ''::tsvector)
                    || to_tsvector('simple', left(coalesce(NEW.text_body, ''), 300000)),
                snippet = thread_snippet(NEW.thread_id)
            WHERE id = NEW.thread_id;
        EXCEPTION WHEN program_limit_exceeded THEN
            -- The thread's document is full: the message is stored, only unsearchable.
            RAISE WARNING 'thread % search document is full', NEW.thread_id;
            UPDATE threads SET snippet = thread_snippet(NEW.thread_id) WHERE id = NEW.thread_id;
        END;
        RETURN NULL;
    END $$""",
    # 5e4a1c7d9b20's function (a message edited, moved or deleted), likewise.
    """CREATE OR REPLACE FUNCTION messages_search_rebuild_trg() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE threads
        SET search_document = thread_search_document(
                id, subject, buyer_name, buyer_address, order_id),
            snippet = thread_snippet(id)
        WHERE id IN (OLD.thread_id, CASE WHEN TG_OP = 'UPDATE' THEN NEW.thread_id END);
        RETURN NULL;
    END $$""",
    # A message's new snippet or date (5e4a1c7d9b20's update trigger leaves them alone).
    """CREATE FUNCTION messages_snippet_trg() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE threads SET snippet = thread_snippet(id) WHERE id = NEW.thread_id;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION thread_tags_tag_names_trg() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE threads SET tag_names = thread_tag_names(id) WHERE id = OLD.thread_id;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            UPDATE threads SET tag_names = thread_tag_names(id) WHERE id = NEW.thread_id;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION tags_tag_names_trg() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE threads SET tag_names = thread_tag_names(id)
        WHERE id IN (SELECT thread_id FROM thread_tags WHERE tag_id = NEW.id);
        RETURN NULL;
    END $$""",
)

_PG_TRIGGERS = {
    "messages_snippet_au": """CREATE TRIGGER messages_snippet_au
    AFTER UPDATE OF snippet, created_at ON messages
    FOR EACH ROW WHEN (OLD.snippet IS DISTINCT FROM NEW.snippet
                       OR OLD.created_at IS DISTINCT FROM NEW.created_at)
    EXECUTE FUNCTION messages_snippet_trg()""",
    "thread_tags_tag_names": """CREATE TRIGGER thread_tags_tag_names
    AFTER INSERT OR UPDATE OR DELETE ON thread_tags
    FOR EACH ROW EXECUTE FUNCTION thread_tags_tag_names_trg()""",
    "tags_tag_names_au": """CREATE TRIGGER tags_tag_names_au AFTER UPDATE OF name ON tags
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION tags_tag_names_trg()""",
}

# 5e4a1c7d9b20's functions as they were, for the downgrade.
_PG_OLD_FUNCTIONS = (
    """CREATE OR REPLACE FUNCTION messages_search_insert_trg() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        BEGIN
            UPDATE threads
            SET search_document = coalesce(search_document, ''::tsvector)
                || to_tsvector('simple', left(coalesce(NEW.text_body, ''), 300000))
            WHERE id = NEW.thread_id;
        EXCEPTION WHEN program_limit_exceeded THEN
            -- The thread's document is full: the message is stored, only unsearchable.
            RAISE WARNING 'thread % search document is full', NEW.thread_id;
        END;
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION messages_search_rebuild_trg() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE threads
        SET search_document = thread_search_document(
            id, subject, buyer_name, buyer_address, order_id)
        WHERE id IN (OLD.thread_id, CASE WHEN TG_OP = 'UPDATE' THEN NEW.thread_id END);
        RETURN NULL;
    END $$""",
)


def upgrade():
    # add_column is a plain ALTER TABLE on both databases (no SQLite table rebuild,
    # which would drop the search triggers).
    op.execute("ALTER TABLE threads ADD COLUMN snippet VARCHAR(300)")
    op.execute("ALTER TABLE threads ADD COLUMN tag_names TEXT")
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            f"UPDATE threads SET snippet = {_SQLITE_SNIPPET}, tag_names = {_SQLITE_TAG_NAMES}"
        )
        for statement in _SQLITE_TRIGGERS.values():
            op.execute(statement)
    elif dialect == "postgresql":
        for statement in _PG_FUNCTIONS:
            op.execute(statement)
        op.execute(
            "UPDATE threads SET snippet = thread_snippet(id), tag_names = thread_tag_names(id)"
        )
        for statement in _PG_TRIGGERS.values():
            op.execute(statement)


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS messages_snippet_au ON messages")
        op.execute("DROP TRIGGER IF EXISTS thread_tags_tag_names ON thread_tags")
        op.execute("DROP TRIGGER IF EXISTS tags_tag_names_au ON tags")
        for statement in _PG_OLD_FUNCTIONS:
            op.execute(statement)
        for name in (
            "messages_snippet_trg()",
            "thread_tags_tag_names_trg()",
            "tags_tag_names_trg()",
            "thread_snippet(integer)",
            "thread_tag_names(integer)",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {name}")
    op.execute("ALTER TABLE threads DROP COLUMN tag_names")
    op.execute("ALTER TABLE threads DROP COLUMN snippet")
