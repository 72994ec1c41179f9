"""Maildir mailboxes watched with inotify (watchdog): a message delivered into `new/`
is fetched within about a second instead of at the next interval poll.

One observer (one inotify instance) serves every Maildir mailbox of the worker; each
mailbox has a thread that waits for its `new/` to change and then fetches through the
same leased path as IDLE (`idle.fetch_announced`). The interval poll stays as the
safety net: a filesystem without inotify (NFS, say) or a watch that failed only means
the mail waits for it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime

from flask import Flask
from watchdog.events import (
    DirModifiedEvent,
    FileClosedNoWriteEvent,
    FileDeletedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from ingest.idle import LEASE_RETRY_SECONDS, WatcherSet, fetch_announced
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

#: A fetch waits until `new/` has had no event for this long. A message written in
#: place (cp, an editor) keeps producing events until it is closed, so the wait keeps
#: the fetch from reading half a file; one renamed in from tmp/, the Maildir way, is
#: whole at once and costs only this delay.
QUIET_SECONDS = 0.25

#: Events that do not announce mail: our own reads (open, close without writing), our
#: own moves of fetched files to cur/ (seen here as deletions), and the directory's
#: own change notices that accompany each file event.
_NOT_MAIL = (FileOpenedEvent, FileClosedNoWriteEvent, FileDeletedEvent, DirModifiedEvent)


def maildir_path(source_url: str) -> str | None:
    return source_url[len("maildir:") :] if source_url.startswith("maildir:") else None


class MaildirWatcher(FileSystemEventHandler):
    """Fetches one Maildir mailbox whenever its `new/` changes and then falls quiet."""

    def __init__(self, app: Flask, mailbox_id: int, name: str, source_url: str, owner: str):
        self.app = app
        self.mailbox_id = mailbox_id
        self.name = name
        self.source_url = source_url
        self.owner = owner
        self.new_dir = os.path.join(os.path.expanduser(maildir_path(source_url) or ""), "new")
        #: Fetches this watcher ran (for tests and the log).
        self.polls = 0
        self.on_stored: Callable[[], None] | None = None
        self.watch: ObservedWatch | None = None
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._last_event: datetime | None = None
        self._thread = threading.Thread(target=self.run, name=f"maildir-{name}", daemon=True)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, _NOT_MAIL) or event.is_directory:
            return
        self._last_event = utcnow()
        self._changed.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def run(self) -> None:
        while True:
            self._changed.wait()
            if not self._settled():
                return
            announced = self._last_event or utcnow()
            while not fetch_announced(self, announced, label="Maildir watch"):
                if self._stop.wait(LEASE_RETRY_SECONDS):
                    return
            self.polls += 1

    def _settled(self) -> bool:
        """Wait until no event came for QUIET_SECONDS; False once stopped."""
        while True:
            self._changed.clear()
            if self._stop.wait(QUIET_SECONDS):
                return False
            if not self._changed.is_set():
                return True


class MaildirWatchers(WatcherSet[MaildirWatcher]):
    """One watch per enabled Maildir mailbox, all on one observer."""

    def __init__(self, app: Flask, owner: str) -> None:
        super().__init__(app)
        self.owner = owner
        self._observer: BaseObserver | None = None

    def wants(self, source_url: str) -> bool:
        return maildir_path(source_url) is not None

    def start_watcher(self, mailbox_id: int, name: str, source_url: str) -> MaildirWatcher | None:
        watcher = MaildirWatcher(self.app, mailbox_id, name, source_url, self.owner)
        watcher.on_stored = self._stored
        try:
            os.makedirs(watcher.new_dir, exist_ok=True)
            if self._observer is None:
                self._observer = Observer()
                self._observer.daemon = True
                self._observer.start()
            watcher.watch = self._observer.schedule(watcher, watcher.new_dir, recursive=False)
        except OSError as exc:  # no inotify here, its limits reached, the folder unreadable
            log.warning(
                "Mailbox %s: cannot watch %s (%s); it is polled every %s s",
                name,
                watcher.new_dir,
                exc,
                self.app.config["POLL_SECONDS"],
            )
            return None
        watcher.start()
        log.info("Mailbox %s: watching %s for new mail", name, watcher.new_dir)
        return watcher

    def stop_watcher(self, watcher: MaildirWatcher) -> None:
        if self._observer is not None and watcher.watch is not None:
            self._observer.unschedule(watcher.watch)
        watcher.stop()

    def stopped(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(10.0)
