"""inbox search on SQLite: message matches keyed by thread, no lookup per match

Revision ID: 4f7b2c9e8d15
Revises: 3b8e6d2f0a91
Create Date: 2026-11-27 19:30:00

SQLite only. messages_fts was an external-content FTS5 table keyed by message id,
so a term's matches had to be looked up one by one to find their threads
(ix_messages_fts_thread): for a rare word on the 100k-thread bench, 418 index
seeks spread over as many pages, most of the search's time. The table is now
contentless and each message's row id is (thread_id << 32) | id, so a match names
its thread (row id >> 32) and the lookup index goes. Message ids must stay below
2**32 and thread ids below 2**31 (the row id is a signed 64-bit integer).

A contentless table keeps no text: a message's entry is removed with the text it
was indexed with, which the triggers take from the old row. Messages without a
thread (unrouted, quarantined) are not indexed until they get one, as the inbox
lists threads only. A later `batch_alter_table` on `messages` drops these triggers
(see 5e4a1c7d9b20): such a migration must recreate them (`SQLITE_TRIGGERS`) and
refill the table. tests/test_migrations.py checks they exist at head.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "4f7b2c9e8d15"
down_revision = "3b8e6d2f0a91"
branch_labels = None
depends_on = None

TOKENIZE = "unicode61 remove_diacritics 2"
_KEY = "(({row}.thread_id << 32) | {row}.id)"
_INDEXED = "{row}.is_internal_note = 0 AND {row}.thread_id IS NOT NULL"

SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages
    WHEN {_INDEXED.format(row="new")} BEGIN
        INSERT INTO messages_fts(rowid, text_body) VALUES ({_KEY.format(row="new")}, new.text_body);
    END""",
    f"""CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages
    WHEN {_INDEXED.format(row="old")} BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text_body)
        VALUES ('delete', {_KEY.format(row="old")}, old.text_body);
    END""",
    f"""CREATE TRIGGER messages_fts_au AFTER UPDATE OF text_body, is_internal_note, thread_id
    ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text_body)
        SELECT 'delete', {_KEY.format(row="old")}, old.text_body WHERE {_INDEXED.format(row="old")};
        INSERT INTO messages_fts(rowid, text_body)
        SELECT {_KEY.format(row="new")}, new.text_body WHERE {_INDEXED.format(row="new")};
    END""",
)

# 5e4a1c7d9b20's table and triggers, for the downgrade.
_PREVIOUS_TRIGGERS = (
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
)


def _drop_message_fts():
    for name in ("messages_fts_ai", "messages_fts_ad", "messages_fts_au"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS messages_fts")


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    _drop_message_fts()
    op.execute("DROP INDEX IF EXISTS ix_messages_fts_thread")
    op.execute(
        "CREATE VIRTUAL TABLE messages_fts USING fts5(text_body, content='', "
        f"tokenize='{TOKENIZE}')"
    )
    op.execute(
        f"INSERT INTO messages_fts(rowid, text_body) SELECT {_KEY.format(row='messages')}, "
        f"text_body FROM messages WHERE {_INDEXED.format(row='messages')}"
    )
    for statement in SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    _drop_message_fts()
    op.execute(
        "CREATE VIRTUAL TABLE messages_fts USING fts5(text_body, content='messages', "
        f"content_rowid='id', tokenize='{TOKENIZE}')"
    )
    op.execute(
        "INSERT INTO messages_fts(rowid, text_body) "
        "SELECT id, text_body FROM messages WHERE is_internal_note = 0"
    )
    for statement in _PREVIOUS_TRIGGERS:
        op.execute(statement)
    op.execute("CREATE INDEX ix_messages_fts_thread ON messages (id, thread_id)")
