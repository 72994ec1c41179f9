"""Per mailbox: fetch new mail, parse it, store it (`services.inbound`), commit, checkpoint.

Exactly once: a batch's messages and the mailbox checkpoint are committed in one
transaction, and only after that commit is the mail flagged \\Seen (or moved) on
the server. A crash before the commit loses nothing (the batch is fetched again);
a crash after it stores nothing twice (UID and content de-duplication).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from ingest.mail.imap import ImapSource
from ingest.mail.maildir import MaildirSource
from ingest.mail.parse import ParsedMessage
from ingest.mail.parse_result import Unparsed, parse_inbound, unparsed
from ingest.mail.source import FetchedMail, SourceSettings
from ingest.mail.tls import describe_tls_error
from ingest.parse_workers import ParseWorkers, fetch_ahead, give_back_free_memory
from portal.extensions import db, use_worker_caches
from portal.models import Mailbox
from portal.services import buyer_data, leases, mailbox_tokens
from portal.services import mailboxes as mailbox_service
from portal.services.inbound import InboundMail, Outcome, store_inbound
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

BATCH_COUNT = 100
#: The raw bytes of mail in hand at once, which bounds the worker's memory: a batch is
#: held raw, parsed and as rows being written at the same time, several times this in
#: all. With parse workers two batches are in hand (one stored, the next being parsed),
#: so each gets half. At 32 MB a mailbox of 1.3 MB photos peaked at 274 MB; at 6 MB the
#: whole ingest (parse worker included) stays under 200 MB (bench/README.md).
BATCH_BYTES = 6 * 1024 * 1024
#: Parse in worker processes, while this process stores the batch before, when a poll
#: finds at least this many messages waiting (starting a worker costs about 0.15 s of
#: CPU); fewer, such as the few mails an IDLE wake-up brings, are parsed right here.
PARSE_WORKERS_MIN_MESSAGES = 300
#: Renew the mailbox lease once this share of INGEST_LEASE_SECONDS has gone by.
LEASE_RENEW_AFTER = 0.5
#: Mailboxes a pass polls at once. A poll of a few new mails mostly waits for the IMAP
#: server and the database, so one after another a pass over many mailboxes takes the
#: sum of those waits (bench/mailboxes.py). On SQLite, which has one writer at a time,
#: a pass polls one mailbox after another.
POLL_CONCURRENCY = 4
#: How many parse worker processes; None: one per CPU beyond the first (which stores),
#: at most 2. 0: never.
PARSE_WORKERS: int | None = None
_PARSE_WORKERS_IN_USE = threading.Lock()


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
    parse_seconds: float | None = None,
) -> Outcome:
    """Store one raw message (no commit): threaded, unrouted or quarantined; or skip a duplicate."""
    (outcome,) = ingest_batch(
        [(uid, raw)],
        mailbox=mailbox,
        uidvalidity=uidvalidity,
        inbound_domain=inbound_domain,
        max_attachment_bytes=max_attachment_bytes,
        now=now,
        parse_seconds=parse_seconds,
    )
    db.session.flush()
    return outcome


def ingest_batch(
    mails: Sequence[tuple[int | None, bytes]],
    *,
    mailbox: Mailbox | None,
    uidvalidity: int | None,
    inbound_domain: str,
    max_attachment_bytes: int,
    now: datetime,
    parsed: Sequence[ParsedMessage | Unparsed | None] | None = None,
    parse_seconds: float | None = None,
) -> list[Outcome]:
    """Parse a batch of (UID, raw bytes) and store it in order with `store_inbound` (no commit).

    `parsed`, when given, holds what the parse workers made of each mail (None: the
    worker was lost, so it is parsed here). A mail whose parsing takes more than
    `parse_seconds` is quarantined as too slow to parse.
    """
    inbound = [
        InboundMail(
            raw, _parsed(raw, parsed and parsed[i], max_attachment_bytes, parse_seconds), uid
        )
        for i, (uid, raw) in enumerate(mails)
    ]
    results = store_inbound(
        inbound, mailbox=mailbox, uidvalidity=uidvalidity, inbound_domain=inbound_domain, now=now
    )
    return [result.outcome for result in results]


def _parsed(
    raw: bytes,
    by_worker: ParsedMessage | Unparsed | None,
    max_attachment_bytes: int,
    parse_seconds: float | None,
) -> ParsedMessage | Unparsed:
    if by_worker is not None:
        return by_worker
    return parse_inbound(raw, max_attachment_bytes=max_attachment_bytes, time_limit=parse_seconds)


# --- parsing in worker processes --------------------------------------------------------


@contextlib.contextmanager
def _parse_workers(
    messages: int, *, max_attachment_bytes: int, parse_seconds: float | None
) -> Iterator[ParseWorkers | None]:
    """Parse workers for a poll of `messages`, or None when parsing here is as good."""
    count = PARSE_WORKERS
    if count is None:
        count = min(2, _cpus() - 1)
    if count <= 0 or messages < PARSE_WORKERS_MIN_MESSAGES:
        yield None
        return
    # One poll at a time has them: polls side by side (POLL_CONCURRENCY) would
    # otherwise start a set each, more processes than CPUs and their memory on top.
    if not _PARSE_WORKERS_IN_USE.acquire(blocking=False):
        yield None
        return
    try:
        try:
            workers = ParseWorkers(
                count, max_attachment_bytes=max_attachment_bytes, time_limit=parse_seconds
            )
        except OSError:
            log.warning("Could not start parse workers; parsing in this process", exc_info=True)
            yield None
            return
        try:
            yield workers
        finally:
            workers.close()
    finally:
        _PARSE_WORKERS_IN_USE.release()


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may run on
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _open_source(settings: SourceSettings) -> ImapSource | MaildirSource:
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
            "parse_seconds": config["INGEST_PARSE_SECONDS"],
        }
        #: Set by poll_mailbox when worker processes parse the batches ahead.
        self.workers: ParseWorkers | None = None

    def _ingest(
        self,
        batch: list[FetchedMail],
        parsed: Sequence[ParsedMessage | Unparsed | None] | None = None,
    ) -> list[Outcome]:
        return ingest_batch(
            [(mail.uid, mail.raw) for mail in batch],
            mailbox=self.mailbox,
            uidvalidity=self.uidvalidity,
            now=utcnow(),
            parsed=parsed,
            **self.options,
        )

    def _advance(self, mail: FetchedMail) -> None:
        if mail.uid is not None and mail.uid > self.mailbox.last_uid:
            self.mailbox.last_uid = mail.uid

    def store(self, batch: list[FetchedMail]) -> list[FetchedMail]:
        """Commit the batch and the checkpoint together; returns the mail now safely stored."""
        parsed = self.workers.results(batch) if self.workers is not None else None
        try:
            outcomes = self._ingest(batch, parsed)
            del parsed
            for mail in batch:
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
                (outcome,) = self._ingest([mail])
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
                outcome = self._quarantine(mail, f"processing failed: {type(exc).__name__}: {exc}")
                self._advance(mail)
                db.session.commit()
            self.summary.count(outcome)
            done.append(mail)
        return done

    def _quarantine(self, mail: FetchedMail, reason: str) -> Outcome:
        (result,) = store_inbound(
            [InboundMail(mail.raw, unparsed(reason, mail.raw), mail.uid)],
            mailbox=self.mailbox,
            uidvalidity=self.uidvalidity,
            inbound_domain=self.options["inbound_domain"],
            now=utcnow(),
        )
        return result.outcome


def _lease_renewal(lease_ttl: timedelta) -> float:
    # Until it expires the lease is ours alone, so it is renewed (a commit, and on
    # SQLite a sync to disk) only once LEASE_RENEW_AFTER of it has gone by, not after
    # every batch.
    return time.monotonic() + lease_ttl.total_seconds() * LEASE_RENEW_AFTER


def _database_unavailable(exc: Exception) -> bool:
    """True for errors of the database itself rather than of the data sent to it."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    # PostgreSQL's class 54 (program limit exceeded, e.g. a row too big) is about the
    # message: retrying it would stop the mailbox for good.
    return not str(getattr(exc.orig, "sqlstate", None) or "").startswith("54")


def _follow_uidvalidity(mailbox: Mailbox, uidvalidity: int | None) -> None:
    """A new UIDVALIDITY makes every UID new: start the checkpoint again (committed)."""
    if uidvalidity is None or mailbox.uidvalidity == uidvalidity:
        return
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


def _remove_erased(mailbox: Mailbox, source: ImapSource | MaildirSource) -> None:
    """Delete from the source the mail erased in the portal since the last connection
    (services/buyer_data.py queues it), so it cannot come back; committed."""
    removals = buyer_data.pending_source_removals(mailbox.id)
    if not removals:
        return
    uids = [
        r.uid
        for r in removals
        if r.uid is not None
        and source.uidvalidity is not None
        and r.uidvalidity == source.uidvalidity
    ]
    removed = source.remove_erased(
        uids=uids, contents=[(r.message_id, r.content_hash) for r in removals]
    )
    buyer_data.source_removals_done(removals)
    db.session.commit()
    log.info(
        "Mailbox %s: %d erased message(s) deleted at the source (%d asked)",
        mailbox.name,
        removed,
        len(removals),
    )


def poll_mailbox(
    mailbox: Mailbox, summary: PollSummary, *, owner: str, lease_ttl: timedelta
) -> PollSummary:
    """Fetch and store everything new in `mailbox`, counting into `summary` as it goes
    (so a pass that fails halfway still reports what it stored). The caller holds the lease.
    """
    # A connected (OAuth) mailbox may refresh its access token here, which commits.
    settings = mailbox_tokens.connection_settings(mailbox, current_app.config, now=utcnow())
    mailbox.last_poll_started_at = utcnow()
    db.session.commit()
    with _open_source(settings) as source:
        uidvalidity = source.uidvalidity
        _follow_uidvalidity(mailbox, uidvalidity)
        _remove_erased(mailbox, source)
        # Committed by an earlier pass that ended before flagging (or moving) it.
        leftover = source.unprocessed(mailbox.last_uid)
        if leftover:
            log.info("Flagging %d message(s) stored by an earlier pass", len(leftover))
            source.mark_processed(leftover)
        keys = source.pending(mailbox.last_uid)
        renew_at = _lease_renewal(lease_ttl)
        batch_store = _Batch(mailbox, uidvalidity, summary)
        with _parse_workers(
            len(keys),
            max_attachment_bytes=batch_store.options["max_attachment_bytes"],
            parse_seconds=batch_store.options["parse_seconds"],
        ) as workers:
            batch_store.workers = workers
            max_bytes = BATCH_BYTES if workers is None else BATCH_BYTES // 2
            batches = source.batches(keys, max_count=BATCH_COUNT, max_bytes=max_bytes)
            for batch in fetch_ahead(batches, workers):
                summary.fetched += len(batch)
                stored = batch_store.store(batch)
                source.mark_processed([mail.key for mail in stored])
                # Let go of this batch before more mail is fetched.
                del batch, stored
                give_back_free_memory()
                if time.monotonic() >= renew_at:
                    if not leases.acquire_lease(mailbox, owner, ttl=lease_ttl):
                        log.warning("Lost the lease on %s; stopping this poll", mailbox.name)
                        break
                    renew_at = _lease_renewal(lease_ttl)
        # What is still waiting beyond the checkpoint: mail that arrived meanwhile, or
        # the rest of a poll cut short. Shown on the admins' health page.
        mailbox.backlog = source.backlog(mailbox.last_uid)
    return summary


def _sync_configured_mailbox(url: str) -> None:
    """Create or update the MAIL_SOURCE mailbox row, committed.

    Two workers starting at once may both find no row and both insert one: the
    second insert fails on the unique name. The row is there then, made by the
    other worker, so read it again and update it like any existing one.
    """
    try:
        mailbox_service.sync_configured_mailbox(url)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        log.info("Another worker added the configured mailbox meanwhile; using that one")
        mailbox_service.sync_configured_mailbox(url)
        db.session.commit()


def settle_worker_process() -> None:
    """Call once the ingest process has started: what it has loaded by then (modules,
    the app, the mappers: most of its objects, and they live as long as it does) is left
    out of the garbage collector's full passes, which walk every object each time. In a
    large poll those passes were about 5% of the ingest process's time (bench/ingest.py).
    Its SQLite connections get small caches (extensions.use_worker_caches).
    """
    use_worker_caches(db.engine)
    gc.freeze()


def poll_all(*, force: bool = False) -> PollSummary:
    """One pass over every enabled mailbox; one failing mailbox never stops the others.

    A pass polls up to POLL_CONCURRENCY mailboxes at once (not on SQLite), and skips a
    mailbox that another worker or an IDLE fetch polled after the pass began.
    """
    config = current_app.config
    total = PollSummary()
    try:
        _sync_configured_mailbox(config["MAIL_SOURCE"])
    except mailbox_service.MailSourceError as exc:
        db.session.rollback()
        log.error("MAIL_SOURCE is unusable: %s", exc)
        total.errors += 1
    except Exception as exc:  # the database, say: the mailboxes already known still get polled
        db.session.rollback()
        log.error("Could not update the configured mailbox: %s", exc, exc_info=True)
        total.errors += 1
    owner = leases.worker_identity()
    began = utcnow()
    mailboxes = db.session.scalars(
        select(Mailbox)
        .where(
            Mailbox.is_enabled,
            # Posted to, not polled (services/http_ingress.py).
            Mailbox.source_url.not_like(f"{mailbox_service.HTTP_INGRESS_SCHEME}:%"),
        )
        .order_by(Mailbox.id)
    ).all()
    due = []
    # Names read now: after a failed transaction, reading one could fail again.
    for mailbox, name in [(m, m.name) for m in mailboxes]:
        if not force and not mailbox_service.is_due(mailbox, began):
            log.info("Mailbox %s is backing off until %s", name, mailbox.next_attempt_at)
            continue
        due.append((mailbox, name))
    threads = min(POLL_CONCURRENCY, len(due))
    if threads <= 1 or db.engine.dialect.name == "sqlite":
        for mailbox, name in due:
            total.add(_poll_in_pass(mailbox, name, owner=owner, began=began))
        return total
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def poll(mailbox_id: int, name: str) -> PollSummary:
        # Each thread has its own app context, so its own session and connection.
        with app.app_context():
            mailbox = db.session.get(Mailbox, mailbox_id)
            if mailbox is None or not mailbox.is_enabled:  # removed or disabled meanwhile
                return PollSummary()
            return _poll_in_pass(mailbox, name, owner=owner, began=began)

    ids = [(mailbox.id, name) for mailbox, name in due]
    db.session.rollback()  # the threads commit; this session must not hold old rows
    with ThreadPoolExecutor(threads, thread_name_prefix="poll") as pool:
        for summary in pool.map(lambda item: poll(*item), ids):
            total.add(summary)
    db.session.expire_all()  # what the threads stored, for whoever reads it next here
    return total


def _poll_in_pass(mailbox: Mailbox, name: str, *, owner: str, began: datetime) -> PollSummary:
    """poll_one for a pass that began at `began`; what escapes it is counted and logged."""
    summary = PollSummary()
    try:
        if not poll_one(mailbox, summary, owner=owner, unless_polled_since=began):
            log.info(
                "Mailbox %s is being processed by %s (lease until %s); skipping",
                name,
                mailbox.lease_owner,
                mailbox.lease_expires_at,
            )
    except Exception as exc:
        # Taking or giving back the lease, or recording the outcome, failed (the
        # database is locked or away): count it and go on with the next mailbox.
        with contextlib.suppress(Exception):
            db.session.rollback()
        log.error("Mailbox %s: %s", name, exc, exc_info=True)
        summary.errors += 1
    return summary


def _describe_failure(exc: Exception) -> str:
    if isinstance(exc, mailbox_tokens.MailboxAuthError):
        return str(exc)  # already a sentence for the health page
    return describe_tls_error(exc) or f"{type(exc).__name__}: {exc}"


def poll_one(
    mailbox: Mailbox,
    summary: PollSummary,
    *,
    owner: str,
    unless_polled_since: datetime | None = None,
) -> bool:
    """Poll one mailbox under its lease as `owner`, and record the outcome on it.

    Counts into `summary`. Returns False, having done nothing, when another poll
    holds the lease; True, having done nothing, when a poll began at or after
    `unless_polled_since`: that poll fetched whatever had arrived by then. A failed poll is recorded (with backoff) and counted, not
    raised; what escapes is a database failure around it: taking or giving back the
    lease, or recording. `poll_all` and the IDLE watchers both poll through this.
    """
    config = current_app.config
    name = mailbox.name
    # Long enough for a batch; a worker that dies holds the mailbox at most this long.
    lease_ttl = timedelta(seconds=config["INGEST_LEASE_SECONDS"])
    if not leases.acquire_lease(mailbox, owner, ttl=lease_ttl):
        return False
    started = mailbox.last_poll_started_at  # as the lease's commit left it
    if unless_polled_since is not None and started is not None and started >= unless_polled_since:
        leases.release_lease(mailbox, owner)
        return True
    try:
        poll_mailbox(mailbox, summary, owner=owner, lease_ttl=lease_ttl)
    except Exception as exc:
        db.session.rollback()
        log.error("Polling mailbox %s failed: %s", name, exc, exc_info=True)
        refused = mailbox_tokens.explain_login_refused(mailbox, exc, config, now=utcnow())
        mailbox_service.record_poll_failure(
            mailbox,
            refused or _describe_failure(exc),
            poll_seconds=config["POLL_SECONDS"],
            fetched=summary.fetched,
        )
        db.session.commit()
        summary.errors += 1
    else:
        mailbox_service.record_poll_success(mailbox, summary.line(), fetched=summary.fetched)
        db.session.commit()
        if summary.fetched:
            log.info("Mailbox %s: %s", name, summary.line())
    finally:
        try:
            leases.release_lease(mailbox, owner)
        except Exception:
            # After a failed statement the session must be rolled back first; if it
            # fails again, the caller logs it and the lease runs out on its own.
            db.session.rollback()
            leases.release_lease(mailbox, owner)
    return True
