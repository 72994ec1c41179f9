"""PostgreSQL: stored mail, its texts and attachments, and the search documents compressed with lz4

Revision ID: e6a9c3d7f2b4
Revises: b8d4f6a2c1e7
Create Date: 2026-12-07 07:20:00

Issue 19 (speed on PostgreSQL): every message's raw mail, texts and attachments, and
each thread's search document on every new message, go through TOAST compression, by
default pglz, which compresses a few times slower than lz4 and decompresses slower too.
On the real-world ingest benchmark pglz was about a third of the server's time for the
batch INSERTs (bench/README.md). lz4 compresses a little less; mail is mostly Base64
and already-compressed attachments, where neither gains much.

Only values written from now on use it (PostgreSQL reads both), so this rewrites
nothing. PostgreSQL built without lz4 (it is a build option) keeps pglz: the upgrade
says so and goes on. SQLite has no such setting.
"""

import logging

from alembic import op
from sqlalchemy import text

# revision identifiers, used by Alembic.
revision = "e6a9c3d7f2b4"
down_revision = "b8d4f6a2c1e7"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

_COLUMNS = (
    ("messages", "raw"),
    ("messages", "text_body"),
    ("messages", "html_body"),
    ("messages", "visible_text"),
    ("attachments", "data"),
    ("threads", "search_document"),
)


def _has_lz4() -> bool:
    # The setting's allowed values are the methods this server was built with; before
    # PostgreSQL 14 there is neither the setting nor per-column compression.
    values = op.get_bind().scalar(
        text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
    )
    return bool(values) and "lz4" in values


def _set(method: str) -> None:
    for table, column in _COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    if not _has_lz4():
        log.warning(
            "PostgreSQL has no lz4 (built without it, or older than 14):"
            " stored mail stays compressed with pglz"
        )
        return
    _set("lz4")


def downgrade():
    # Where the upgrade changed nothing, nor does this (and before 14 it could not).
    if op.get_bind().dialect.name != "postgresql" or not _has_lz4():
        return
    _set("default")
