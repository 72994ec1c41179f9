"""IMAP IDLE: one watcher thread per IMAP mailbox fetches mail as soon as the server announces it.

The interval poll (`scheduler.poll_job`) stays as the safety net. A watcher that
cannot IDLE (no capability, a read error, the server away) says so in the log,
leaves the mailbox to the interval poll meanwhile, and reconnects with backoff.

A watcher keeps one read-only (EXAMINE) session in IDLE and fetches through
`pipeline.poll_one` on a second connection while the first stays in IDLE: mail
that arrives during a fetch is announced too, so nothing waits for the next poll.
Each fetch runs in its own app context under the mailbox lease, with its own owner
name (`host:pid/idle`), so it never overlaps a poll of this worker or of another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy import select

from ingest.mail.imap import ImapSource
from ingest.pipeline import PollSummary, poll_one
from portal.extensions import db
from portal.models import Mailbox
from portal.services import leases, mailbox_tokens
from portal.services import mailboxes as mailbox_service
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

#: RFC 2177 asks to re-issue IDLE within 29 minutes; NAT boxes and firewalls often
#: drop a silent connection sooner. DONE + IDLE is one cheap round trip.
IDLE_RENEW_SECONDS = 300.0
#: While someone else holds the mailbox lease, ask again this often.
LEASE_RETRY_SECONDS = 2.0
#: Reconnect after 1, 2, 4, … seconds, at most this long.
MAX_RECONNECT_SECONDS = 60.0


class AnnouncedMail(Protocol):
    """What `fetch_announced` needs of a watcher."""

    app: Flask
    mailbox_id: int
    name: str
    owner: str
    on_stored: Callable[[], None] | None


def watcher_owner() -> str:
    """The lease owner name of this process's IDLE watchers."""
    return f"{leases.worker_identity()}/idle"


def is_imap_source(source_url: str) -> bool:
    return urlsplit(source_url).scheme in mailbox_service.IMAP_SCHEMES


def poll_mailbox_by_id(
    mailbox_id: int, *, owner: str, unless_polled_since: datetime | None = None
) -> PollSummary | None:
    """`pipeline.poll_one` for a mailbox id; None when another poll holds the lease.

    Needs an app context. IDLE fetches whenever mail arrives, backoff or not: the
    server just proved it is there. A poll that began at or after `unless_polled_since`
    (the announcement) fetched that mail already: then nothing is polled again.
    """
    mailbox = db.session.get(Mailbox, mailbox_id)
    summary = PollSummary()
    if mailbox is None or not mailbox.is_enabled:
        return summary
    if not poll_one(mailbox, summary, owner=owner, unless_polled_since=unless_polled_since):
        log.debug(
            "Mailbox %s is being processed by %s; the IDLE watcher tries again shortly",
            mailbox.name,
            mailbox.lease_owner,
        )
        return None
    return summary


class MailboxWatcher:
    """A thread that keeps one mailbox in IDLE and fetches whenever mail is announced."""

    def __init__(self, app: Flask, mailbox_id: int, name: str, source_url: str) -> None:
        self.app = app
        self.mailbox_id = mailbox_id
        self.name = name
        self.source_url = source_url
        self.owner = watcher_owner()
        #: None until the server answered; False when it has no IDLE (the thread ends).
        self.supported: bool | None = None
        #: Failed sessions in a row (reset once IDLE works again), and ever.
        self.failures = 0
        self.errors = 0
        #: Fetches this watcher ran (for tests and the log).
        self.polls = 0
        #: Called after a fetch that stored mail (see IdleWatchers.on_stored).
        self.on_stored: Callable[[], None] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name=f"idle-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def run(self) -> None:
        """Watch until stopped; any error falls back to the interval poll and reconnects."""
        while not self._stop.is_set():
            try:
                self._session()
            except Exception as exc:  # any IDLE error: poll meanwhile, reconnect later
                self.failures += 1
                self.errors += 1
                delay = min(2.0 ** min(self.failures - 1, 10), MAX_RECONNECT_SECONDS)
                log.warning(
                    "IDLE on mailbox %s failed (%s: %s); it is polled every %s s meanwhile; "
                    "reconnecting in %.0f s",
                    self.name,
                    type(exc).__name__,
                    exc,
                    self.app.config["POLL_SECONDS"],
                    delay,
                )
                log.debug("IDLE failure on mailbox %s", self.name, exc_info=True)
                self._stop.wait(delay)
            else:
                return  # stopped, or the server cannot IDLE

    def _session(self) -> None:
        with self.app.app_context():
            mailbox = db.session.get(Mailbox, self.mailbox_id)
            if mailbox is None or not mailbox.is_enabled:
                self._stop.set()  # gone meanwhile; IdleWatchers.reconcile drops us
                return
            settings = mailbox_tokens.connection_settings(mailbox, self.app.config, now=utcnow())
        with ImapSource(settings, readonly=True) as source:
            if not source.supports_idle():
                self.supported = False
                log.info(
                    "Mailbox %s: the server does not offer IDLE; it is polled every %s s",
                    self.name,
                    self.app.config["POLL_SECONDS"],
                )
                return
            self.supported = True
            source.start_idle()
            log.info("Mailbox %s: waiting for new mail with IDLE", self.name)
            # Whatever arrived before the watch began is fetched now, while it watches.
            # `announced`: the mail pending had all arrived by then, so a poll (another
            # worker's, say, whose watcher heard the same announcement) that began
            # later has fetched it. Both times come from the hosts' clocks.
            pending, announced = True, utcnow()
            renew_at = time.monotonic() + IDLE_RENEW_SECONDS
            while not self._stop.is_set():
                if pending:
                    pending = not self._poll(announced)
                wait = LEASE_RETRY_SECONDS if pending else renew_at - time.monotonic()
                if source.wait_for_mail(wait, stop=self._stop):
                    pending, announced = True, utcnow()
                self.failures = 0
                if time.monotonic() >= renew_at:
                    if source.stop_idle():
                        pending, announced = True, utcnow()
                    source.start_idle()
                    renew_at = time.monotonic() + IDLE_RENEW_SECONDS

    def _poll(self, announced: datetime) -> bool:
        """Fetch now unless a poll began after `announced`; False when the lease is
        taken (retry soon)."""
        fetched = fetch_announced(self, announced, label="IDLE")
        if fetched:
            self.polls += 1
        return fetched


def fetch_announced(watcher: AnnouncedMail, announced: datetime, *, label: str) -> bool:
    """Fetch a mailbox whose new mail was announced (by IDLE, or by inotify for a
    Maildir), in its own app context, unless a poll began after `announced`; False
    when another poll holds the lease (the caller retries soon)."""
    with watcher.app.app_context():
        try:
            summary = poll_mailbox_by_id(
                watcher.mailbox_id, owner=watcher.owner, unless_polled_since=announced
            )
        except Exception:  # the database is away, say: the interval poll retries
            log.exception("Fetching mailbox %s after %s failed", watcher.name, label)
            return True
    if summary is None:
        return False
    if summary.stored and watcher.on_stored is not None:
        watcher.on_stored()
    if summary.fetched or summary.errors:
        log.info("Mailbox %s (%s): %s", watcher.name, label, summary.line())
    return True


class Watcher(AnnouncedMail, Protocol):
    """A thread that fetches one mailbox as its mail arrives."""

    source_url: str

    def stop(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


W = TypeVar("W", bound=Watcher)


class WatcherSet(Generic[W]):
    """One watcher per enabled mailbox of a kind, kept in step with the mailboxes table;
    IdleWatchers for IMAP, maildir_watch.MaildirWatchers for Maildir."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._watchers: dict[int, W] = {}
        self._lock = threading.Lock()
        self._closed = False
        #: Called (from a watcher's thread) after a fetch stored mail; the worker sets it
        #: to wake its orders pass.
        self.on_stored: Callable[[], None] | None = None

    @property
    def watchers(self) -> dict[int, W]:
        with self._lock:
            return dict(self._watchers)

    def wants(self, source_url: str) -> bool:
        raise NotImplementedError

    def start_watcher(self, mailbox_id: int, name: str, source_url: str) -> W | None:
        """A started watcher, or None when this mailbox cannot be watched (polled only)."""
        raise NotImplementedError

    def stop_watcher(self, watcher: W) -> None:
        watcher.stop()

    def is_finished(self, watcher: W) -> bool:
        """A watcher that stopped by itself and should be started afresh."""
        return False

    def reconcile(self) -> None:
        """Start watchers for new mailboxes, stop those removed, disabled or moved.
        Needs an app context."""
        rows = db.session.execute(
            select(Mailbox.id, Mailbox.name, Mailbox.source_url).where(Mailbox.is_enabled)
        ).all()
        wanted = {row.id: row for row in rows if self.wants(row.source_url)}
        with self._lock:
            if self._closed:
                return
            for mailbox_id, watcher in list(self._watchers.items()):
                row = wanted.get(mailbox_id)
                if row is None or row.source_url != watcher.source_url:
                    self.stop_watcher(watcher)
                    del self._watchers[mailbox_id]
                elif self.is_finished(watcher):
                    del self._watchers[mailbox_id]  # start afresh below
            for mailbox_id, row in wanted.items():
                if mailbox_id not in self._watchers:
                    watcher = self.start_watcher(mailbox_id, row.name, row.source_url)
                    if watcher is not None:
                        self._watchers[mailbox_id] = watcher

    def _stored(self) -> None:
        if self.on_stored is not None:
            self.on_stored()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every watcher; waits up to `timeout` s in all for fetches under way."""
        with self._lock:
            self._closed = True
            watchers = list(self._watchers.values())
            self._watchers.clear()
        for watcher in watchers:
            watcher.stop()
        self.stopped()
        deadline = time.monotonic() + timeout
        for watcher in watchers:
            watcher.join(max(0.0, deadline - time.monotonic()))

    def stopped(self) -> None:
        """Called once every watcher is told to stop (release what they share)."""


class IdleWatchers(WatcherSet[MailboxWatcher]):
    """One IDLE watcher per enabled IMAP mailbox. A mailbox whose server has no IDLE
    keeps its finished watcher, so it is not asked again until its source changes."""

    def wants(self, source_url: str) -> bool:
        return is_imap_source(source_url)

    def start_watcher(self, mailbox_id: int, name: str, source_url: str) -> MailboxWatcher:
        watcher = MailboxWatcher(self.app, mailbox_id, name, source_url)
        watcher.on_stored = self._stored
        watcher.start()
        return watcher

    def is_finished(self, watcher: MailboxWatcher) -> bool:
        return not watcher.is_alive() and watcher.supported is not False
