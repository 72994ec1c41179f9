"""The search objects the migrations add and the models do not describe.

Migrations 5e4a1c7d9b20, 4f7b2c9e8d15 and 8b5e1f3a7c29 create them
(SQLite's FTS5 tables, PostgreSQL's tsvector column and GIN indexes) and database
triggers keep them; the inbox search (portal/services/inbox/search.py) reads them.
Autogenerate (migrations/env.py, tests/test_migrations.py) leaves them out of its
comparison through `include_schema_name`, or it would drop them.
"""

from __future__ import annotations

SEARCH_TABLE_PREFIXES = ("messages_fts", "threads_fts")
SEARCH_COLUMNS = {("threads", "search_document")}
SEARCH_INDEXES = {"ix_threads_search_document", "ix_threads_search_fields_trgm"}


def include_schema_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic `include_name` hook: False for the search objects of the migrations."""
    if type_ == "table":
        return not (name or "").startswith(SEARCH_TABLE_PREFIXES)
    if type_ == "column":
        return (parent_names.get("table_name"), name) not in SEARCH_COLUMNS
    if type_ == "index":
        return name not in SEARCH_INDEXES
    return True
