"""Per mailbox: fetch new mail, parse, route to a channel, match a thread, record, commit, checkpoint.

Exactly once: a batch's messages and the mailbox checkpoint are committed in one
transaction, and only after that commit is the mail flagged \\Seen (or moved) on
the server. A crash before the commit loses nothing (the batch is fetched again);
a crash after it stores nothing twice (UID and content de-duplication).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from ingest.imap import FetchedMail, ImapSource
from ingest.maildir import MaildirSource
from ingest.matching import find_thread
from ingest.parse import UnparseableMessage, content_hash, parse_message
from portal.extensions import db
from portal.models import Mailbox
from portal.services import mailboxes as mailbox_service
from portal.services import threads as thread_service
from portal.services.channels import find_channel_for_addresses
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

BATCH_COUNT = 100
BATCH_BYTES = 32 * 1024 * 1024


class Outcome(enum.StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    UNROUTED = "unrouted"
    QUARANTINED = "quarantined"


@dataclass
class PollSummary:
    fetched: int = 0
    stored: int = 0
    duplicate: int = 0
    unrouted: int = 0
    quarantined: int = 0
    errors: int = 0

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    def add(self, other: PollSummary) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def line(self) -> str:
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


def ingest_raw(
    raw: bytes,
    *,
    mailbox: Mailbox | None,
    uidvalidity: int | None,
    uid: int | None,
    inbound_domain: str,
    max_attachment_bytes: int,
    now: datetime,
) -> Outcome:
    """Store one raw message (no commit): threaded, unrouted or quarantined; or skip a duplicate."""
    if thread_service.is_duplicate(mailbox=mailbox, uidvalidity=uidvalidity, uid=uid):
        return Outcome.DUPLICATE
    try:
        parsed = parse_message(raw, max_attachment_bytes=max_attachment_bytes)
    except Exception as exc:  # any parser failure: keep the bytes, flag them, go on
        reason = str(exc) if isinstance(exc, UnparseableMessage) else f"{type(exc).__name__}: {exc}"
        digest = content_hash(raw)
        message_id = f"<{digest[:40]}@quarantine.sellerdesk>"
        if thread_service.is_duplicate(mailbox=mailbox, message_id=message_id, content_hash=digest):
            return Outcome.DUPLICATE
        thread_service.record_quarantined_message(
            raw,
            reason,
            message_id=message_id,
            content_hash=digest,
            mailbox=mailbox,
            uidvalidity=uidvalidity,
            uid=uid,
        )
        return Outcome.QUARANTINED
    if thread_service.is_duplicate(
        mailbox=mailbox, message_id=parsed.message_id, content_hash=parsed.content_hash
    ):
        return Outcome.DUPLICATE
    channel = find_channel_for_addresses(parsed.delivery_addresses, inbound_domain=inbound_domain)
    if channel is None:
        thread_service.record_unrouted_message(
            parsed, raw, mailbox=mailbox, uidvalidity=uidvalidity, uid=uid
        )
        return Outcome.UNROUTED
    thread = find_thread(channel, parsed, now=now) or thread_service.create_thread(channel, parsed)
    thread_service.record_inbound_message(
        parsed,
        raw,
        channel=channel,
        thread=thread,
        mailbox=mailbox,
        uidvalidity=uidvalidity,
        uid=uid,
        delivered_to=channel.helpdesk_address,
    )
    return Outcome.STORED


def _open_source(settings: mailbox_service.SourceSettings) -> ImapSource | MaildirSource:
    if settings.kind == "maildir":
        return MaildirSource(settings)
    return ImapSource(settings)


class _Batch:
    """Stores one fetched batch; falls back to one transaction per message on errors."""

    def __init__(self, mailbox: Mailbox, uidvalidity: int | None, summary: PollSummary) -> None:
        config = current_app.config
        self.mailbox = mailbox
        self.uidvalidity = uidvalidity
        self.summary = summary
        self.options = {
            "inbound_domain": config["INBOUND_DOMAIN"],
            "max_attachment_bytes": config["MAX_ATTACHMENT_BYTES"],
        }

    def _ingest(self, mail: FetchedMail) -> Outcome:
        return ingest_raw(
            mail.raw,
            mailbox=self.mailbox,
            uidvalidity=self.uidvalidity,
            uid=mail.uid,
            now=utcnow(),
            **self.options,
        )

    def _advance(self, mail: FetchedMail) -> None:
        if mail.uid is not None and mail.uid > self.mailbox.last_uid:
            self.mailbox.last_uid = mail.uid

    def store(self, batch: list[FetchedMail]) -> list[FetchedMail]:
        """Commit the batch and the checkpoint together; returns the mail now safely stored."""
        outcomes = []
        try:
            for mail in batch:
                outcomes.append(self._ingest(mail))
                self._advance(mail)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.warning(
                "Batch failed on mailbox %s; storing one by one", self.mailbox.name, exc_info=True
            )
            return self._store_one_by_one(batch)
        for outcome in outcomes:
            self.summary.count(outcome)
        return batch

    def _store_one_by_one(self, batch: list[FetchedMail]) -> list[FetchedMail]:
        done = []
        for mail in batch:
            try:
                outcome = self._ingest(mail)
                self._advance(mail)
                db.session.commit()
            except IntegrityError:
                # Stored meanwhile by someone else: it is there once, which is what counts.
                db.session.rollback()
                outcome = Outcome.DUPLICATE
                self._advance(mail)
                db.session.commit()
            except Exception as exc:
                db.session.rollback()
                if _database_unavailable(exc):
                    # Not this message's fault (disk full, lock timeout, connection
                    # lost): quarantining it would keep good mail out of its thread for
                    # good. End the pass with the checkpoint before it; the next pass
                    # stores it.
                    raise
                log.exception(
                    "Could not store message %s of mailbox %s", mail.key, self.mailbox.name
                )
                self.summary.errors += 1
                # Keep it raw for an admin rather than retry it forever; if even that
                # fails (database down), stop here with the checkpoint before it.
                digest = content_hash(mail.raw)
                thread_service.record_quarantined_message(
                    mail.raw,
                    f"processing failed: {type(exc).__name__}: {exc}",
                    message_id=f"<{digest[:40]}@quarantine.sellerdesk>",
                    content_hash=digest,
                    mailbox=self.mailbox,
                    uidvalidity=self.uidvalidity,
                    uid=mail.uid,
                )
                self._advance(mail)
                db.session.commit()
                outcome = Outcome.QUARANTINED
            self.summary.count(outcome)
            done.append(mail)
        return done


def _database_unavailable(exc: Exception) -> bool:
    """True for errors of the database itself rather than of the data sent to it."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    # PostgreSQL's class 54 (program limit exceeded, e.g. a row too big) is about the
    # message: retrying it would stop the mailbox for good.
    return not str(getattr(exc.orig, "sqlstate", None) or "").startswith("54")


def poll_mailbox(
    mailbox: Mailbox, summary: PollSummary, *, owner: str, lease_ttl: timedelta
) -> PollSummary:
    """Fetch and store everything new in `mailbox`, counting into `summary` as it goes
    (so a pass that fails halfway still reports what it stored). The caller holds the lease.
    """
    settings = mailbox_service.source_settings(mailbox)
    mailbox.last_poll_started_at = utcnow()
    db.session.commit()
    with _open_source(settings) as source:
        uidvalidity = source.uidvalidity
        if uidvalidity is not None and mailbox.uidvalidity != uidvalidity:
            if mailbox.uidvalidity is not None:
                log.warning(
                    "UIDVALIDITY of %s changed from %s to %s: rescanning (duplicates are skipped)",
                    mailbox.name,
                    mailbox.uidvalidity,
                    uidvalidity,
                )
            mailbox.uidvalidity = uidvalidity
            mailbox.last_uid = 0
            db.session.commit()
        # Committed by an earlier pass that ended before flagging (or moving) it.
        leftover = source.unprocessed(mailbox.last_uid)
        if leftover:
            log.info("Flagging %d message(s) stored by an earlier pass", len(leftover))
            source.mark_processed(leftover)
        keys = source.pending(mailbox.last_uid)
        batch_store = _Batch(mailbox, uidvalidity, summary)
        for batch in source.batches(keys, max_count=BATCH_COUNT, max_bytes=BATCH_BYTES):
            summary.fetched += len(batch)
            stored = batch_store.store(batch)
            source.mark_processed([mail.key for mail in stored])
            if not mailbox_service.acquire_lease(mailbox, owner, ttl=lease_ttl):
                log.warning("Lost the lease on %s; stopping this poll", mailbox.name)
                break
        # What is still waiting beyond the checkpoint: mail that arrived meanwhile, or
        # the rest of a poll cut short. Shown on the admins' health page.
        mailbox.backlog = source.backlog(mailbox.last_uid)
    return summary


def poll_all(*, force: bool = False) -> PollSummary:
    """One pass over every enabled mailbox; one failing mailbox never stops the others."""
    config = current_app.config
    total = PollSummary()
    try:
        mailbox_service.sync_configured_mailbox(config["MAIL_SOURCE"])
        db.session.commit()
    except mailbox_service.MailSourceError as exc:
        db.session.rollback()
        log.error("MAIL_SOURCE is unusable: %s", exc)
        total.errors += 1
    owner = mailbox_service.worker_identity()
    # Long enough for a batch; a worker that dies holds the mailbox at most this long.
    lease_ttl = timedelta(seconds=config["INGEST_LEASE_SECONDS"])
    now = utcnow()
    mailboxes = db.session.scalars(
        select(Mailbox).where(Mailbox.is_enabled).order_by(Mailbox.id)
    ).all()
    for mailbox in mailboxes:
        if not force and not mailbox_service.is_due(mailbox, now):
            log.info("Mailbox %s is backing off until %s", mailbox.name, mailbox.next_attempt_at)
            continue
        if not mailbox_service.acquire_lease(mailbox, owner, ttl=lease_ttl):
            log.info(
                "Mailbox %s is being processed by %s (lease until %s); skipping",
                mailbox.name,
                mailbox.lease_owner,
                mailbox.lease_expires_at,
            )
            continue
        summary = PollSummary()
        try:
            poll_mailbox(mailbox, summary, owner=owner, lease_ttl=lease_ttl)
        except Exception as exc:
            db.session.rollback()
            log.error("Polling mailbox %s failed: %s", mailbox.name, exc, exc_info=True)
            mailbox_service.record_poll_failure(
                mailbox,
                f"{type(exc).__name__}: {exc}",
                poll_seconds=config["POLL_SECONDS"],
                fetched=summary.fetched,
            )
            db.session.commit()
            summary.errors += 1
            total.add(summary)
        else:
            mailbox_service.record_poll_success(mailbox, summary.line(), fetched=summary.fetched)
            db.session.commit()
            total.add(summary)
            if summary.fetched:
                log.info("Mailbox %s: %s", mailbox.name, summary.line())
        finally:
            mailbox_service.release_lease(mailbox, owner)
    return total
