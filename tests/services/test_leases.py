"""Mailbox leases commit: another worker sees a lease the moment it is taken or given up."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from portal.extensions import db
from portal.models import Mailbox
from portal.services.leases import acquire_lease, release_lease


def _owner_seen_elsewhere(mailbox_id: int) -> str | None:
    # A connection of its own, as another worker's would be.
    with db.engine.connect() as other:
        return other.execute(
            text("SELECT lease_owner FROM mailboxes WHERE id = :id"), {"id": mailbox_id}
        ).scalar()


def test_a_lease_is_visible_to_other_workers_at_once_and_exclusive(app):
    mailbox = Mailbox(name="leased", source_url="maildir:/nonexistent")
    db.session.add(mailbox)
    db.session.commit()
    assert acquire_lease(mailbox, "host:1", ttl=timedelta(minutes=5))
    assert _owner_seen_elsewhere(mailbox.id) == "host:1"
    assert not acquire_lease(mailbox, "host:2", ttl=timedelta(minutes=5))
    assert acquire_lease(mailbox, "host:1", ttl=timedelta(minutes=5))  # a renewal
    release_lease(mailbox, "host:2")  # not its lease: nothing happens
    assert _owner_seen_elsewhere(mailbox.id) == "host:1"
    release_lease(mailbox, "host:1")
    assert _owner_seen_elsewhere(mailbox.id) is None
    assert acquire_lease(mailbox, "host:2", ttl=timedelta(minutes=5))


def test_an_expired_lease_can_be_taken_over(app):
    mailbox = Mailbox(name="expired", source_url="maildir:/nonexistent")
    db.session.add(mailbox)
    db.session.commit()
    assert acquire_lease(mailbox, "host:1", ttl=timedelta(seconds=-1))
    assert acquire_lease(mailbox, "host:2", ttl=timedelta(minutes=5))
    assert _owner_seen_elsewhere(mailbox.id) == "host:2"
