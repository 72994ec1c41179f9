"""Mailbox leases: which worker polls a mailbox. These functions commit.

Unlike the other services, which flush and leave the transaction to their caller,
a lease must be visible to the other workers at once: taking and giving one up
each commit their own short transaction. Call them between units of work, never
inside one, since the commit ends whatever the session holds.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from sqlalchemy import or_, update

from portal.extensions import db
from portal.models import Mailbox
from portal.sqltypes import utcnow


def worker_identity() -> str:
    """This process as a lease owner: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire_lease(mailbox: Mailbox, owner: str, *, ttl: timedelta) -> bool:
    """Take (or renew) the mailbox's lease and commit; one atomic UPDATE, so it works
    on any database. False when another owner holds an unexpired lease."""
    now = utcnow()
    result = db.session.execute(
        update(Mailbox)
        .where(
            Mailbox.id == mailbox.id,
            or_(
                Mailbox.lease_owner.is_(None),
                Mailbox.lease_owner == owner,
                Mailbox.lease_expires_at < now,
            ),
        )
        .values(lease_owner=owner, lease_expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(mailbox)
    return result.rowcount == 1


def release_lease(mailbox: Mailbox, owner: str) -> None:
    """Give up `owner`'s lease on the mailbox, if it still holds it, and commit."""
    db.session.execute(
        update(Mailbox)
        .where(Mailbox.id == mailbox.id, Mailbox.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
