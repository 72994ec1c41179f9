"""PostgreSQL: an INSERT of messages updates each thread's search document once

Revision ID: d8f3b6a1c4e9
Revises: d2b7e4a9c1f6
Create Date: 2026-12-05 12:30:00

Issue 19. The search document's insert trigger (migration 5e4a1c7d9b20, which
c3d9a5f1e7b2 made set the snippet too) ran for each row, so a batch of ingested mail
wrote its thread's row once per message: a new row version, its GIN entries and its
trigram index entries each time. It now runs once per statement, over the statement's
new rows (a transition table), and updates each thread they belong to once: the
document grows by the thread's new texts in id order, exactly as one row at a time
did (a `||` of per-message vectors, folded left by the aggregate `tsvector_agg`), and
the snippet is read once, after all of them are in.

A document that would pass PostgreSQL's 1 MB limit takes, as before, the thread's new
messages one at a time until one does not fit; those are stored unsearchable, with a
warning, and the snippet still follows. SQLite is unchanged (its FTS5 triggers write
one index entry per message whichever way).
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "d8f3b6a1c4e9"
down_revision = "d2b7e4a9c1f6"
branch_labels = None
depends_on = None

# `a || b` shifts b's positions past a's last: folding it left in id order gives the
# document that appending one message at a time gave.
_AGGREGATE = """CREATE AGGREGATE tsvector_agg(tsvector) (
    SFUNC = tsvector_concat, STYPE = tsvector, INITCOND = ''
)"""

_FUNCTION = """CREATE OR REPLACE FUNCTION messages_search_insert_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    added record;
BEGIN
    BEGIN
        UPDATE threads
        SET search_document = coalesce(threads.search_document, ''::tsvector) || fresh.document,
            snippet = thread_snippet(threads.id)
        FROM (
            SELECT thread_id,
                   tsvector_agg(to_tsvector('simple', left(coalesce(text_body, ''), 300000))
                                ORDER BY id) AS document
            FROM new_rows
            WHERE thread_id IS NOT NULL AND NOT is_internal_note
            GROUP BY thread_id
        ) AS fresh
        WHERE threads.id = fresh.thread_id;
    EXCEPTION WHEN program_limit_exceeded THEN
        -- Some thread's document is full: every thread of the statement again, one
        -- message at a time, as the row trigger did.
        FOR added IN
            SELECT id, thread_id, text_body FROM new_rows
            WHERE thread_id IS NOT NULL AND NOT is_internal_note
            ORDER BY thread_id, id
        LOOP
            BEGIN
                UPDATE threads
                SET search_document = coalesce(search_document, ''::tsvector)
                    || to_tsvector('simple', left(coalesce(added.text_body, ''), 300000))
                WHERE id = added.thread_id;
            EXCEPTION WHEN program_limit_exceeded THEN
                -- The thread's document is full: the message is stored, only unsearchable.
                RAISE WARNING 'thread % search document is full', added.thread_id;
            END;
        END LOOP;
        UPDATE threads SET snippet = thread_snippet(id)
        WHERE id IN (SELECT thread_id FROM new_rows WHERE NOT is_internal_note);
    END;
    RETURN NULL;
END $$"""

_TRIGGER = """CREATE TRIGGER messages_search_ai AFTER INSERT ON messages
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION messages_search_insert_trg()"""

# c3d9a5f1e7b2's function and 5e4a1c7d9b20's trigger, for the downgrade.
_OLD_FUNCTION = """CREATE OR REPLACE FUNCTION messages_search_insert_trg() RETURNS trigger
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
END $$"""

_OLD_TRIGGER = """CREATE TRIGGER messages_search_ai AFTER INSERT ON messages
FOR EACH ROW WHEN (NOT NEW.is_internal_note)
EXECUTE FUNCTION messages_search_insert_trg()"""


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER messages_search_ai ON messages")
    op.execute(_AGGREGATE)
    op.execute(_FUNCTION)
    op.execute(_TRIGGER)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER messages_search_ai ON messages")
    op.execute(_OLD_FUNCTION)
    op.execute(_OLD_TRIGGER)
    op.execute("DROP AGGREGATE tsvector_agg(tsvector)")
