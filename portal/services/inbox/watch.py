"""Long polling for the live inbox and thread pages: one watcher per web process.

A live request that asks to wait (?wait=N) and finds nothing new for its user is held
until something may have changed or the wait ends. Held requests do not query: one
watcher thread per process (started by the first wait) reads a single unscoped signal
about once a second (global_signal: the newest threads.updated_at, how many threads
changed within live.WINDOW before it, the newest message id), and only while requests
wait. When the signal moves it bumps a generation and wakes them all through one
threading.Condition; each then re-runs its own scoped check, so a user never learns
of a thread they cannot open: another organisation's change only wakes the request,
which finds the same answer and waits again.

Needs a threaded server (Flask's, or gunicorn's gthread workers): a sync worker would
be blocked by one held request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask

from portal.extensions import db
from portal.services.inbox.live import global_signal

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The longest wait a request may ask for, in seconds: well below gunicorn's timeout
#: and graceful stop (30 s) and the proxy's read timeout (deploy/nginx-sellerdesk.conf).
MAX_WAIT = 25
#: How often the watcher reads the signal while requests wait, in seconds.
CHECK_SECONDS = 1.0


class Watcher:
    """Reads global_signal while requests wait; wakes them when it changes."""

    def __init__(self, app: Flask, check_seconds: float = CHECK_SECONDS) -> None:
        self._app = app
        self._check_seconds = check_seconds
        self._cond = threading.Condition()
        self._generation = 0
        self._waiting = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def generation(self) -> int:
        with self._cond:
            return self._generation

    def wait(self, generation: int, timeout: float) -> int:
        """Block until the generation differs from `generation` or `timeout` seconds
        pass; returns the generation then."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._stop.is_set():
                return self._generation
            self._start()
            self._waiting += 1
            self._cond.notify_all()  # the watcher may be resting: it has work now
            try:
                while self._generation == generation and not self._stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                return self._generation
            finally:
                self._waiting -= 1

    def _start(self) -> None:
        # Called with the lock held. Lazily, so that nothing starts at import or in
        # create_app, and a process that never holds a request never has the thread.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="live-watcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End held requests at once (each answers with what it has) and the thread.

        For a process, or a test, done with the app: a watcher left running keeps
        the app, and so its pooled database connections, alive for good."""
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        last: tuple[Any, ...] | None = None
        while True:
            with self._cond:
                while self._waiting == 0 and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
            signal = self._read()
            # The first read counts as a change: a request may have checked before it.
            if signal is not None and signal != last:
                with self._cond:
                    self._generation += 1
                    self._cond.notify_all()
            if signal is not None:
                last = signal
            if self._stop.wait(self._check_seconds):  # rests; only stop() cuts it short
                return

    def _read(self) -> tuple[Any, ...] | None:
        try:
            with self._app.app_context():
                try:
                    return global_signal()
                finally:
                    db.session.remove()
        except Exception:  # the database restarting: held requests end at their wait
            log.exception("live watcher: reading the change signal failed")
            return None


_lock = threading.Lock()


def watcher_for(app: Flask) -> Watcher:
    """The process's watcher for `app` (one per app, created on first use)."""
    with _lock:
        watcher = app.extensions.get("live_watcher")
        if watcher is None:
            watcher = app.extensions["live_watcher"] = Watcher(app)
        return watcher


def stop_watcher(app: Flask) -> None:
    """Stop `app`'s watcher, if it has one; the next wait starts a new one."""
    with _lock:
        watcher = app.extensions.pop("live_watcher", None)
    if watcher is not None:
        watcher.stop()


def parse_wait(value: str | None) -> float:
    """?wait= as seconds to hold, 0 (answer at once) for none or junk, at most MAX_WAIT."""
    try:
        seconds = float(value or 0)
    except ValueError:
        return 0.0
    if not seconds > 0:  # also NaN
        return 0.0
    return min(seconds, MAX_WAIT)


def check_and_hold(
    app: Flask, wait: float, check: Callable[[], T], unchanged: Callable[[T], bool]
) -> T:
    """Run `check` (the caller's scoped check); while `unchanged` of its answer, hold
    the request up to `wait` seconds and run it again each time the watcher sees a
    change. Returns the last answer. The session's connection goes back to the pool
    while waiting, and every check after the first runs in a new transaction (so it
    sees what was committed meanwhile)."""
    if wait <= 0:
        return check()
    watcher = watcher_for(app)
    # Before the check: a change committed after it moves the generation past this one.
    generation = watcher.generation
    answer = check()
    deadline = time.monotonic() + wait
    while unchanged(answer):
        db.session.rollback()
        left = deadline - time.monotonic()
        if left <= 0:
            break
        new = watcher.wait(generation, left)
        if new == generation:
            break  # the wait ended
        generation = new
        answer = check()
    return answer
