"""Flask extensions, created unbound and bound to an app in `create_app`."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine

from portal.sqltypes import Base

db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    # SQLite ignores foreign keys unless asked, and without WAL + a busy timeout the
    # web process and the ingest worker would fail with "database is locked".
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA journal_mode=WAL")
    # SQLite's default page cache (2 MB) is smaller than what one inbox search reads
    # on a 100k-thread database: its FTS matches' index pages evict the pages the
    # page query then needs, which come back from the OS (1 ms of a 2.8 ms search).
    # The cache grows only as pages are read: at most 16 MB per pooled connection.
    cursor.execute("PRAGMA cache_size=-16000")
    # Copy the WAL into the database every 40 MB rather than 4: a large poll writes
    # several MB per batch, and at 4 MB nearly every batch commit also checkpointed,
    # copying pages the next batch changes again (bench/README.md).
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.close()


#: The ingest worker's page cache per SQLite connection (negative: KiB), SQLite's default.
WORKER_PAGE_CACHE = -2000
#: The ingest worker's prepared statements kept per SQLite connection (Python's default
#: is 128). A batch runs about 15 statements: about nine are the same every batch and
#: stay cached; the rest are lookups whose IN lists have the batch's length, so their
#: text differs from batch to batch and they are hardly ever run again.
WORKER_STATEMENT_CACHE = 32


def use_worker_caches(engine: Engine) -> None:
    """For the ingest worker: its SQLite connections keep SQLite's default page cache
    rather than the web process's 16 MB (above), and fewer prepared statements.

    The worker writes new pages and reads few of them twice, and up to 16 MB per pooled
    connection was most of what its resident size had above the same worker's on
    PostgreSQL. With Python's 128 statements, the cache filled with the lookups of
    earlier batches (each compiled with its IN list, tens of KB) and the worker's
    resident size grew with the number of batches it stored (bench/README.md). The
    connections already open are closed, so every one gets both."""
    if engine.dialect.name != "sqlite":
        return
    event.listen(engine, "do_connect", _worker_statement_cache)
    event.listen(engine, "connect", _worker_page_cache)
    engine.dispose()


def _worker_statement_cache(dialect, connection_record, cargs, cparams) -> None:
    # sqlite3.connect's argument: set before the connection is made (returning nothing
    # lets SQLAlchemy make it).
    cparams["cached_statements"] = WORKER_STATEMENT_CACHE


def _worker_page_cache(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA cache_size={WORKER_PAGE_CACHE}")
    cursor.close()
