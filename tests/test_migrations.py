"""`flask db upgrade` on an empty database gives exactly the models' schema.

It also checks that the triggers of migrations 5e4a1c7d9b20, 4f7b2c9e8d15 (search) and
c3d9a5f1e7b2 (the inbox row's snippet and tags), b7e2c4a9d1f3 (each buyer message's
answer) and e9c4a2f7b1d5 (whether it needs one, and its thread's first) are there at head: on SQLite, `batch_alter_table` on a table recreates it
without its triggers, and search would silently stop seeing new mail, the inbox stop
showing new snippets and tags, the reports stop seeing answers.
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import text

from portal import create_app
from portal.extensions import db
from portal.models.search import include_schema_name
from tests.helpers import app_config_for

#: Triggers every database must have at head.
TRIGGERS = {
    "sqlite": {
        "messages_fts_ai",
        "messages_fts_ad",
        "messages_fts_au",
        "threads_fts_ai",
        "threads_fts_ad",
        "threads_fts_au",
        "threads_snippet_ai",
        "threads_snippet_ad",
        "threads_snippet_au",
        "threads_tag_names_ai",
        "threads_tag_names_ad",
        "threads_tag_names_au",
        "tags_name_au",
        "messages_answer_in_ai",
        "messages_answer_out_ai",
        "messages_answer_au",
        "messages_answer_ad",
        "messages_needs_answer_ai",
        "messages_needs_answer_au",
        "messages_needs_answer_ad",
        "no_response_marks_ai",
        "no_response_marks_au",
        "no_response_marks_ad",
    },
    "postgresql": {
        "threads_search_document_bi",
        "threads_search_document_bu",
        "messages_search_ai",
        "messages_search_au",
        "messages_search_ad",
        "messages_snippet_au",
        "thread_tags_tag_names",
        "tags_tag_names_au",
        "messages_answer_bi",
        "messages_answer_out_ai",
        "messages_answer_au",
        "messages_answer_ad",
        "messages_needs_answer_bi",
        "messages_first_need_ai",
        "messages_needs_answer_au",
        "messages_first_need_ad",
        "no_response_marks_aiud",
    },
}
_TRIGGER_NAMES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'trigger'",
    "postgresql": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal",
}


def _assert_no_drift(url: str, tmp_path) -> None:
    app = create_app(app_config_for(url, tmp_path))
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            dialect = conn.dialect.name
            triggers = set(conn.execute(text(_TRIGGER_NAMES[dialect])).scalars())
        missing = TRIGGERS[dialect] - triggers
        assert not missing, (
            f"triggers missing at head: {sorted(missing)}; a migration that recreates "
            "messages, threads, thread_tags, tags or no_response_marks (SQLite "
            "batch_alter_table) must "
            "recreate them as migrations 4f7b2c9e8d15 and c3d9a5f1e7b2 do, and refill "
            "what they keep"
        )
        with db.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(
                    conn,
                    # As migrations/env.py: the search objects are not in the models.
                    opts={"compare_type": True, "include_name": include_schema_name},
                ),
                db.metadata,
            )
        db.engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_upgrade_matches_models(empty_database_url, tmp_path):
    _assert_no_drift(empty_database_url, tmp_path)


def test_postgresql_compresses_mail_with_lz4(empty_database_url, tmp_path):
    # pglz, the default, was a large share of the server's work in ingest's INSERTs
    # (migration e6a9c3d7f2b4); a column recreated later would silently go back to it.
    if not empty_database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL setting")
    app = create_app(app_config_for(empty_database_url, tmp_path))
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            methods = dict(
                conn.execute(
                    text(
                        "SELECT c.relname || '.' || a.attname, a.attcompression"
                        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                        " WHERE c.relname IN ('messages', 'attachments', 'threads')"
                        " AND a.attname IN ('raw', 'text_body', 'html_body', 'visible_text',"
                        " 'data', 'search_document')"
                    )
                ).all()
            )
        db.engine.dispose()
    assert methods == {
        name: "l"
        for name in (
            "messages.raw",
            "messages.text_body",
            "messages.html_body",
            "messages.visible_text",
            "attachments.data",
            "threads.search_document",
        )
    }
