"""inbox full-text search: FTS5 on SQLite, a tsvector document and trigrams on PostgreSQL

Revision ID: 5e4a1c7d9b20
Revises: db845a1b5fb8
Create Date: 2026-11-27 11:45:00

The models do not describe these objects; migrations/env.py (and the drift test)
leave them out of the autogenerate comparison (portal.models.search.include_schema_name).

SQLite: a later `batch_alter_table` on `messages` or `threads` recreates the table
and drops its triggers: such a migration must recreate them (`_SQLITE_TRIGGERS`)
and rebuild the index, or search silently stops seeing new mail.
tests/test_migrations.py fails when any of these triggers is missing at head.
"""

import logging

from alembic import op

# revision identifiers, used by Alembic.
revision = "5e4a1c7d9b20"
down_revision = "db845a1b5fb8"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

TOKENIZE = "unicode61 remove_diacritics 2"
THREAD_FIELDS = ("subject", "buyer_name", "buyer_address", "order_id")

_SQLITE_TRIGGERS = (
    # Internal notes are never indexed: the delete and update triggers only remove
    # what the insert trigger added (an external-content index must be told the
    # exact old values).
    """CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages
    WHEN new.is_internal_note = 0 BEGIN
        INSERT INTO messages_fts(rowid, text_body) VALUES (new.id, new.text_body);
    END""",
    """CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages
    WHEN old.is_internal_note = 0 BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text_body)
        VALUES ('delete', old.id, old.text_body);
    END""",
    """CREATE TRIGGER messages_fts_au AFTER UPDATE OF text_body, is_internal_note ON messages
    BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text_body)
        SELECT 'delete', old.id, old.text_body WHERE old.is_internal_note = 0;
        INSERT INTO messages_fts(rowid, text_body)
        SELECT new.id, new.text_body WHERE new.is_internal_note = 0;
    END""",
    """CREATE TRIGGER threads_fts_ai AFTER INSERT ON threads BEGIN
        INSERT INTO threads_fts(rowid, subject, buyer_name, buyer_address, order_id)
        VALUES (new.id, new.subject, new.buyer_name, new.buyer_address, new.order_id);
    END""",
    """CREATE TRIGGER threads_fts_ad AFTER DELETE ON threads BEGIN
        INSERT INTO threads_fts(threads_fts, rowid, subject, buyer_name, buyer_address, order_id)
        VALUES ('delete', old.id, old.subject, old.buyer_name, old.buyer_address, old.order_id);
    END""",
    """CREATE TRIGGER threads_fts_au AFTER UPDATE OF subject, buyer_name, buyer_address, order_id
    ON threads BEGIN
        INSERT INTO threads_fts(threads_fts, rowid, subject, buyer_name, buyer_address, order_id)
        VALUES ('delete', old.id, old.subject, old.buyer_name, old.buyer_address, old.order_id);
        INSERT INTO threads_fts(rowid, subject, buyer_name, buyer_address, order_id)
        VALUES (new.id, new.subject, new.buyer_name, new.buyer_address, new.order_id);
    END""",
)

_PG_FUNCTIONS = (
    # One thread's whole document: its fields plus its non-note message texts. The
    # text is capped so that the tsvector stays under PostgreSQL's 1 MB limit.
    """CREATE FUNCTION thread_search_document(
        t_id integer, t_subject text, t_buyer_name text, t_buyer_address text, t_order_id text
    ) RETURNS tsvector LANGUAGE sql STABLE AS $$
        SELECT to_tsvector('simple', concat_ws(' ', t_subject, t_buyer_name, t_buyer_address,
                                                t_order_id))
            || coalesce((SELECT to_tsvector('simple', left(string_agg(m.text_body, ' '
                                                                      ORDER BY m.id), 300000))
                         FROM messages m
                         WHERE m.thread_id = t_id AND NOT m.is_internal_note), ''::tsvector)
    $$""",
    """CREATE FUNCTION threads_search_document_trg() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.search_document := thread_search_document(
            NEW.id, NEW.subject, NEW.buyer_name, NEW.buyer_address, NEW.order_id);
        RETURN NEW;
    END $$""",
    # A new message is appended (cheap); an edited, moved or deleted one rebuilds
    # its thread's document.
    """CREATE FUNCTION messages_search_insert_trg() RETURNS trigger LANGUAGE plpgsql AS $$
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
    """CREATE FUNCTION messages_search_rebuild_trg() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE threads
        SET search_document = thread_search_document(
            id, subject, buyer_name, buyer_address, order_id)
        WHERE id IN (OLD.thread_id, CASE WHEN TG_OP = 'UPDATE' THEN NEW.thread_id END);
        RETURN NULL;
    END $$""",
)

_PG_TRIGGERS = (
    """CREATE TRIGGER threads_search_document_bi BEFORE INSERT ON threads
    FOR EACH ROW EXECUTE FUNCTION threads_search_document_trg()""",
    """CREATE TRIGGER threads_search_document_bu
    BEFORE UPDATE OF subject, buyer_name, buyer_address, order_id ON threads
    FOR EACH ROW EXECUTE FUNCTION threads_search_document_trg()""",
    """CREATE TRIGGER messages_search_ai AFTER INSERT ON messages
    FOR EACH ROW WHEN (NOT NEW.is_internal_note)
    EXECUTE FUNCTION messages_search_insert_trg()""",
    """CREATE TRIGGER messages_search_au
    AFTER UPDATE OF text_body, is_internal_note, thread_id ON messages
    FOR EACH ROW WHEN (OLD.text_body IS DISTINCT FROM NEW.text_body
                       OR OLD.is_internal_note IS DISTINCT FROM NEW.is_internal_note
                       OR OLD.thread_id IS DISTINCT FROM NEW.thread_id)
    EXECUTE FUNCTION messages_search_rebuild_trg()""",
    """CREATE TRIGGER messages_search_ad AFTER DELETE ON messages
    FOR EACH ROW WHEN (NOT OLD.is_internal_note)
    EXECUTE FUNCTION messages_search_rebuild_trg()""",
)


def upgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _upgrade_sqlite()
    elif dialect == "postgresql":
        _upgrade_postgresql()


def _upgrade_sqlite():
    op.execute(
        "CREATE VIRTUAL TABLE messages_fts USING fts5(text_body, content='messages', "
        f"content_rowid='id', tokenize='{TOKENIZE}')"
    )
    op.execute(
        f"CREATE VIRTUAL TABLE threads_fts USING fts5({', '.join(THREAD_FIELDS)}, "
        f"content='threads', content_rowid='id', tokenize='{TOKENIZE}')"
    )
    # Backfill what is already stored, then keep it in step.
    op.execute(
        "INSERT INTO messages_fts(rowid, text_body) "
        "SELECT id, text_body FROM messages WHERE is_internal_note = 0"
    )
    op.execute(
        "INSERT INTO threads_fts(rowid, subject, buyer_name, buyer_address, order_id) "
        "SELECT id, subject, buyer_name, buyer_address, order_id FROM threads"
    )
    for statement in _SQLITE_TRIGGERS:
        op.execute(statement)


def _upgrade_postgresql():
    bind = op.get_bind()
    # pg_trgm needs the right to create it (a superuser, or a trusted extension on
    # PostgreSQL 13+); without it, search still works, only substrings of order IDs
    # and aliases inside a word are not found (portal.services.inbox.search checks).
    has_trgm = False
    savepoint = bind.begin_nested()
    try:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        savepoint.commit()
        has_trgm = True
    except Exception as exc:  # noqa: BLE001 - any failure means: go on without it
        savepoint.rollback()
        log.warning("pg_trgm unavailable, inbox search goes without trigram indexes: %s", exc)

    op.execute("ALTER TABLE threads ADD COLUMN search_document tsvector")
    for statement in _PG_FUNCTIONS:
        op.execute(statement)
    op.execute(
        "UPDATE threads SET search_document = "
        "thread_search_document(id, subject, buyer_name, buyer_address, order_id)"
    )
    for statement in _PG_TRIGGERS:
        op.execute(statement)
    op.execute("CREATE INDEX ix_threads_search_document ON threads USING gin (search_document)")
    if has_trgm:
        for name in THREAD_FIELDS:
            op.execute(
                f"CREATE INDEX ix_threads_{name}_trgm ON threads USING gin ({name} gin_trgm_ops)"
            )
    # Statistics for the new column now, not at autovacuum's next visit: the planner
    # needs them to choose between the GIN bitmap and the activity index.
    op.execute("ANALYZE threads")


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in (
            "messages_fts_ai",
            "messages_fts_ad",
            "messages_fts_au",
            "threads_fts_ai",
            "threads_fts_ad",
            "threads_fts_au",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS messages_fts")
        op.execute("DROP TABLE IF EXISTS threads_fts")
    elif dialect == "postgresql":
        for name in THREAD_FIELDS:
            op.execute(f"DROP INDEX IF EXISTS ix_threads_{name}_trgm")
        op.execute("DROP INDEX IF EXISTS ix_threads_search_document")
        op.execute("DROP TRIGGER IF EXISTS threads_search_document_bi ON threads")
        op.execute("DROP TRIGGER IF EXISTS threads_search_document_bu ON threads")
        for name in ("messages_search_ai", "messages_search_au", "messages_search_ad"):
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON messages")
        for name in (
            "messages_search_insert_trg()",
            "messages_search_rebuild_trg()",
            "threads_search_document_trg()",
            "thread_search_document(integer, text, text, text, text)",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {name}")
        op.execute("ALTER TABLE threads DROP COLUMN IF EXISTS search_document")
