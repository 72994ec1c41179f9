"""Lockout per account: after FREE_ATTEMPTS failed logins for an e-mail address, each
further attempt waits a delay that doubles, up to MAX_DELAY, until a login succeeds.

The per-IP rate limit on /login stops one client guessing fast; this stops many clients
(a botnet's addresses) guessing one account's password. It is kept in the database, so
every gunicorn worker applies it, and counted per address whether or not the address has
an account, so neither the refusal nor its wording tells anyone which addresses do.
Like every service it flushes and never commits.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select

from portal.extensions import db
from portal.models import LoginLockout, User
from portal.services.audit import record_event
from portal.services.users import find_user_by_email, normalise_email
from portal.sqltypes import upsert_insert

FREE_ATTEMPTS = 5
FIRST_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=1)
#: Failures further apart than this start the count again.
FORGET_AFTER = timedelta(days=1)
#: One failure in this many also deletes the counts nobody added to for FORGET_AFTER.
CLEANUP_ONE_IN = 100


def locked_until(email: str, *, now: datetime) -> datetime | None:
    """When logins for `email` may be tried again; None when they may now."""
    until = db.session.scalar(
        select(LoginLockout.locked_until).where(LoginLockout.key == _key(email))
    )
    return until if until is not None and until > now else None


def record_failure(email: str, *, now: datetime) -> datetime | None:
    """Count a failed login for `email`; when its logins are refused until, if now locked.

    One INSERT … ON CONFLICT statement counts it, so failures in two workers at once are
    both counted.
    """
    table = LoginLockout.__table__
    insert = upsert_insert(db.session.get_bind().dialect.name, table)
    fresh = table.c.last_failure_at >= now - FORGET_AFTER
    count = insert.values(key=_key(email), failures=1, last_failure_at=now).on_conflict_do_update(
        index_elements=[table.c.key],
        set_={
            "failures": case((fresh, table.c.failures + 1), else_=1),
            "last_failure_at": now,
        },
    )
    failures = db.session.execute(count.returning(table.c.failures)).scalar_one()
    if random.random() < 1 / CLEANUP_ONE_IN:  # noqa: S311 (a sampling rate, not a secret)
        forget_old(now=now)
    if failures < FREE_ATTEMPTS:
        return None
    until = now + min(FIRST_DELAY * 2 ** (failures - FREE_ATTEMPTS), MAX_DELAY)
    row = db.session.get(LoginLockout, _key(email), populate_existing=True)
    row.locked_until = until
    db.session.flush()
    if failures == FREE_ATTEMPTS:
        _audit_lockout(email, until)
    return until


def clear(email: str) -> None:
    """A login succeeded: the count starts again."""
    db.session.execute(delete(LoginLockout).where(LoginLockout.key == _key(email)))


def forget_old(*, now: datetime) -> int:
    """Delete counts whose last failure is older than FORGET_AFTER (and whose lockout has
    ended); the number deleted."""
    result = db.session.execute(
        delete(LoginLockout).where(
            LoginLockout.last_failure_at < now - FORGET_AFTER,
            (LoginLockout.locked_until.is_(None)) | (LoginLockout.locked_until < now),
        )
    )
    return result.rowcount or 0


def _audit_lockout(email: str, until: datetime) -> None:
    """Admins see in the audit log that an account's logins are being refused."""
    user: User | None = find_user_by_email(email)
    if user is None:
        return
    record_event(
        "user.locked_out",
        actor=None,
        organisation_id=user.organisation_id,
        target=user,
        details={"failures": FREE_ATTEMPTS, "until": until.isoformat()},
    )


def _key(email: str) -> str:
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()
