"""The `database://` rate-limit storage: Flask-Limiter's counters in the app's database.

`memory://` counts in each process, so with several gunicorn workers every worker
allows a client the whole limit on its own. This storage keeps the counts in one table
(`RateLimitCounter`) that every worker, and every host on the same database, shares:
production needs no extra service. Redis stays possible (RATELIMIT_STORAGE_URI=redis://…).

Fixed windows only, Flask-Limiter's default strategy: a counter starts at its first hit
and counts until it expires; the next hit after that starts a new window. Importing this
module registers the `database` scheme with the `limits` package.

This module commits on its own: each call is one short transaction on a connection of
the current app's engine, never the request's session, so a view's rollback cannot undo
a counted attempt and a count cannot commit a view's half-done work.
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

from limits.storage import Storage
from sqlalchemy import case, delete, select, text
from sqlalchemy.exc import SQLAlchemyError

from portal.extensions import db
from portal.models.ratelimits import KEY_LENGTH, RateLimitCounter
from portal.sqltypes import UPSERT_INSERTS, upsert_insert

#: One write in this many also deletes every expired counter, so the table stays as
#: small as the number of clients seen in the longest window (an hour for login).
CLEANUP_ONE_IN = 100

_TABLE = RateLimitCounter.__table__


class DatabaseStorage(Storage):
    """Fixed-window counters in the `rate_limit_counters` table of the app's database."""

    STORAGE_SCHEME = ["database"]

    def __init__(
        self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any
    ) -> None:
        # Nothing to connect to here: every call uses the engine of the app it runs in.
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add `amount` hits to the key's window (a new one if none is running); the total."""
        now = time.time()
        dialect = db.engine.dialect.name
        if dialect not in UPSERT_INSERTS:
            raise RuntimeError(f"the database:// rate-limit storage does not support {dialect}")
        insert = upsert_insert(dialect, _TABLE).values(
            key=_row_key(key), hits=amount, expires_at=now + expiry
        )
        # One statement, so two workers counting the same client at once cannot lose a hit:
        # the database serialises the insert-or-update of one row.
        expired = _TABLE.c.expires_at <= now
        upsert = insert.on_conflict_do_update(
            index_elements=[_TABLE.c.key],
            set_={
                "hits": case(
                    (expired, insert.excluded.hits), else_=_TABLE.c.hits + insert.excluded.hits
                ),
                "expires_at": case(
                    (expired, insert.excluded.expires_at), else_=_TABLE.c.expires_at
                ),
            },
        ).returning(_TABLE.c.hits)
        with db.engine.begin() as conn:
            hits = conn.execute(upsert).scalar_one()
        if random.random() < 1 / CLEANUP_ONE_IN:  # noqa: S311 (a sampling rate, not a secret)
            self.delete_expired()
        return hits

    def get(self, key: str) -> int:
        with db.engine.connect() as conn:
            hits = conn.execute(
                select(_TABLE.c.hits).where(
                    _TABLE.c.key == _row_key(key), _TABLE.c.expires_at > time.time()
                )
            ).scalar()
        return hits or 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        with db.engine.connect() as conn:
            expires_at = conn.execute(
                select(_TABLE.c.expires_at).where(
                    _TABLE.c.key == _row_key(key), _TABLE.c.expires_at > now
                )
            ).scalar()
        # As `limits`' own storages: a key with no running window resets now.
        return expires_at if expires_at is not None else now

    def check(self) -> bool:
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with db.engine.begin() as conn:
            return conn.execute(delete(_TABLE)).rowcount

    def clear(self, key: str) -> None:
        with db.engine.begin() as conn:
            conn.execute(delete(_TABLE).where(_TABLE.c.key == _row_key(key)))

    def delete_expired(self) -> int:
        """Delete the counters whose window has ended; how many."""
        with db.engine.begin() as conn:
            return conn.execute(delete(_TABLE).where(_TABLE.c.expires_at <= time.time())).rowcount


def _row_key(key: str) -> str:
    # The client's address is part of the key, and with TRUSTED_PROXIES set but no proxy
    # in front it is whatever X-Forwarded-For a client sent: keep a long key's start for
    # reading and make it unique with a hash.
    if len(key) <= KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: KEY_LENGTH - len(digest) - 1]}#{digest}"
