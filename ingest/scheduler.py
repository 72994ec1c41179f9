"""The ingest worker, in its own process: an APScheduler job polling every POLL_SECONDS, one
sending replies, one fetching Amazon orders (with SP-API configured), one opening snoozed
threads whose time has come, one deleting buyer data past its retention, and (IMAP_IDLE) a
thread per IMAP mailbox waiting in IDLE (ingest/idle.py).

With IDLE, mail is fetched within about a second of its arrival; the interval poll
stays as the safety net for mailboxes whose server cannot IDLE or whose IDLE failed.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from ingest.idle import IdleWatchers
from ingest.maildir_watch import MaildirWatchers
from ingest.orders import purge_orders, refresh_orders
from ingest.pipeline import poll_all, settle_worker_process
from ingest.retention import run_offboarding_erasure, run_retention
from portal.extensions import db
from portal.services import alerts, leases, report_snapshots
from portal.services.orders import amazon_api
from portal.services.outbox_delivery import deliver_pending
from portal.services.settings import retention_settings
from portal.services.threads import wake_snoozed
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

#: For the start-up line: what each kind of watcher watches.
WATCHED = (
    ("IMAP mailboxes with IDLE", IdleWatchers),
    ("Maildir folders with inotify", MaildirWatchers),
)

#: How soon a mailbox an admin adds (or changes) gets its IDLE watcher.
WATCH_SECONDS = 60
#: How often the worker looks for orders to fetch (new buyer messages, due refreshes),
#: and how often it purges the details of orders delivered ORDER_DATA_DAYS ago.
ORDERS_SECONDS = 30
PURGE_SECONDS = 3600
#: How often snoozed threads whose time has come are opened again: a snooze ends at
#: most this late.
SNOOZE_SECONDS = 30
#: Deadline warnings go 2 hours ahead: a few minutes late is still ample warning.
ALERTS_SECONDS = 300


class Watchers(Protocol):
    """A set of watchers that fetch mail as it arrives (IDLE, Maildir)."""

    on_stored: Callable[[], None] | None

    def reconcile(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


def poll_job(
    app: Flask,
    watchers: Sequence[Watchers] = (),
    on_stored: Callable[[], None] | None = None,
) -> None:
    """One scheduled pass, inside its own app context; then the watchers are brought
    in step with the mailboxes (the first pass may have created one).
    `on_stored` is called when the pass stored mail (it wakes the orders pass)."""
    with app.app_context():
        try:
            summary = poll_all()
        except Exception:  # the next run must still happen
            log.exception("Ingest pass failed")
        else:
            if summary.stored and on_stored is not None:
                on_stored()
            # Quiet passes stay out of the log; anything fetched or failed is worth a line.
            if summary.fetched or summary.errors:
                log.info("Ingest pass: %s", summary.line())
            else:
                log.debug("Ingest pass: %s", summary.line())
        _reconcile(watchers)


def watch_job(app: Flask, watchers: Sequence[Watchers]) -> None:
    """Start or stop watchers for mailboxes added, changed or disabled meanwhile."""
    with app.app_context():
        _reconcile(watchers)


def _reconcile(watchers: Sequence[Watchers]) -> None:
    for each in watchers:
        try:
            each.reconcile()
        except Exception:  # the database is away, say: the next run tries again
            db.session.rollback()
            log.exception("Could not update the %s", type(each).__name__)


def outbox_job(app: Flask) -> None:
    """Send due replies (first tries and retries), inside its own app context."""
    with app.app_context():
        try:
            summary = deliver_pending()
        except Exception:  # the database is away, say: the next run must still happen
            log.exception("Outbox pass failed")
            return
        if summary.sent or summary.failed or summary.retrying:
            log.info("Outbox pass: %s", summary.line())


def orders_job(app: Flask) -> None:
    """Fetch the orders of new buyer messages and refresh due ones, in its own app context."""
    with app.app_context():
        api = amazon_api(app.config, app.extensions)
        if api is None:  # SP-API is not configured (or no longer): nothing to ask
            return
        try:
            summary = refresh_orders(api, now=utcnow())
        except Exception:  # the database is away, say: the next run must still happen
            db.session.rollback()
            log.exception("Orders pass failed")
            return
        if summary.fetched or summary.failed:
            log.info("Orders pass: %s", summary.line())


class OrdersPass:
    """The orders job as the worker schedules it. Stored mail wakes it (`wake`), so the
    order of a new buyer message is fetched within seconds, not up to ORDERS_SECONDS
    later, and the agent who opens the thread finds the panel filled. A wake during a
    pass runs the pass once more when it ends (the pass may have listed its orders
    before the new message was stored), rather than asking the scheduler to start a
    second instance it would refuse."""

    JOB_ID = "fetch-orders"

    def __init__(self, scheduler: BaseScheduler) -> None:
        self.scheduler = scheduler
        self._lock = threading.Lock()
        self._running = False
        self._again = False

    def __call__(self, app: Flask) -> None:
        with self._lock:
            self._running, self._again = True, False
        try:
            orders_job(app)
        finally:
            with self._lock:
                self._running, again = False, self._again
        if again:
            self.wake()

    def wake(self) -> None:
        """Run the pass now (or once more after the one under way)."""
        with self._lock:
            if self._running:
                self._again = True
                return
        with contextlib.suppress(JobLookupError):  # the scheduler is shutting down
            self.scheduler.modify_job(self.JOB_ID, next_run_time=datetime.now(UTC))


def purge_job(app: Flask) -> None:
    """Reduce orders delivered ORDER_DATA_DAYS ago to ID and status, in its own app context;
    scheduled whether or not SP-API is configured, since stored data must go either way."""
    with app.app_context():
        try:
            purged = purge_orders(now=utcnow(), days=app.config["ORDER_DATA_DAYS"])
        except Exception:  # the database is away, say: the next run must still happen
            db.session.rollback()
            log.exception("Order data purge failed")
            return
        if purged:
            log.info("Order data purged: %d orders reduced to ID and status", purged)


def retention_job(app: Flask) -> None:
    """Delete the buyer data of threads closed as long ago as the retention settings say
    (the admins', else RAW_/TEXT_RETENTION_DAYS: ingest/retention.py), in its own app
    context."""
    with app.app_context():
        try:
            periods = retention_settings(app.config)
            counts = run_retention(
                now=utcnow(), raw_days=periods.raw_days, text_days=periods.text_days
            )
        except Exception:  # the database is away, say: the next run must still happen
            db.session.rollback()
            log.exception("Buyer data retention pass failed")
            return
        if counts.total:
            log.info("Buyer data retention: %s", counts.as_details())
        try:
            finished = run_offboarding_erasure(now=utcnow())
        except Exception:  # as above
            db.session.rollback()
            log.exception("Erasing closed organisations' data failed")
            return
        if finished:
            log.info("Closed organisations' data erased: %d organisations", finished)


def snooze_job(app: Flask) -> None:
    """Open the pending threads whose snooze ran out, inside its own app context."""
    with app.app_context():
        try:
            woken = wake_snoozed(now=utcnow())
            db.session.commit()
        except Exception:  # the database is away, say: the next run must still happen
            db.session.rollback()
            log.exception("Snooze pass failed")
            return
        if woken:
            log.info("Snooze pass: %d threads open again", woken)


def alerts_job(app: Flask) -> None:
    """Queue the due e-mail alerts (deadlines, digests, channels, mailboxes) in their own
    app context; the outbox job sends them."""
    with app.app_context():
        try:
            sent = alerts.send_due_alerts(now=utcnow())
            db.session.commit()
        except Exception:  # the database is away, say: the next run must still happen
            db.session.rollback()
            log.exception("Alerts pass failed")
            return
        if any(sent.values()):
            log.info("Alerts queued: %s", ", ".join(f"{kind}={n}" for kind, n in sent.items() if n))


def reports_job(app: Flask) -> None:
    """Recompute the report snapshots read lately before pages find them stale, in its
    own app context (services/report_snapshots.py)."""
    with app.app_context():
        try:
            done = report_snapshots.refresh(
                now=utcnow(), fresh_seconds=app.config["REPORTS_FRESH_SECONDS"], clock=utcnow
            )
        except Exception:  # the database is away, say: the next run must still happen
            db.session.rollback()
            log.exception("Report snapshots pass failed")
            return
        if done:
            log.info("Report snapshots recomputed: %d", done)


def build_scheduler(
    app: Flask,
    scheduler_class: type[BaseScheduler] = BlockingScheduler,
    *,
    watchers: Watchers | Sequence[Watchers] = (),
) -> BaseScheduler:
    scheduler = scheduler_class(timezone=UTC)

    def every(seconds: float, job_id: str, job: Any, *args: Any, start_now: bool = True) -> None:
        # A slow pass must not overlap the next, and missed runs collapse into one.
        scheduler.add_job(
            job,
            "interval",
            args=[app, *args],
            seconds=seconds,
            id=job_id,
            max_instances=1,
            coalesce=True,
            **({"next_run_time": datetime.now(UTC)} if start_now else {}),
        )

    if not isinstance(watchers, Sequence):
        watchers = (watchers,)
    on_stored = None
    if amazon_api(app.config, app.extensions) is not None:
        orders_pass = OrdersPass(scheduler)
        every(ORDERS_SECONDS, OrdersPass.JOB_ID, orders_pass, start_now=False)
        on_stored = orders_pass.wake
        for each in watchers:
            each.on_stored = on_stored
    every(app.config["POLL_SECONDS"], "poll-mailboxes", poll_job, watchers, on_stored)
    # Replies the web request could not send go out within seconds, not a poll later.
    outbox_seconds = min(app.config.get("OUTBOX_SECONDS", 5), app.config["POLL_SECONDS"])
    every(outbox_seconds, "send-replies", outbox_job)
    every(PURGE_SECONDS, "purge-order-data", purge_job)
    every(PURGE_SECONDS, "buyer-data-retention", retention_job)
    every(SNOOZE_SECONDS, "wake-snoozed", snooze_job)
    every(ALERTS_SECONDS, "send-alerts", alerts_job)
    if app.config.get("REPORTS_FRESH_SECONDS", 0) > 0:
        # A quarter of the freshness: a snapshot is recomputed at half of it, so pages
        # find the ones read lately fresh.
        every(max(30, app.config["REPORTS_FRESH_SECONDS"] // 4), "report-snapshots", reports_job)
    if watchers:
        # Each poll also updates the watchers; this covers a long POLL_SECONDS.
        watch_seconds = min(WATCH_SECONDS, app.config["POLL_SECONDS"])
        every(watch_seconds, "idle-watchers", watch_job, watchers, start_now=False)
    return scheduler


def run_worker(app: Flask) -> None:
    """Block, polling (and watching with IDLE and inotify), until SIGINT or SIGTERM."""
    watchers: list[Watchers] = []
    if app.config.get("IMAP_IDLE", True):
        watchers.append(IdleWatchers(app))
    if app.config.get("MAILDIR_WATCH", True):
        watchers.append(MaildirWatchers(app, owner=f"{leases.worker_identity()}/watch"))
    scheduler = build_scheduler(app, watchers=watchers)
    # APScheduler logs every run at INFO; our own summary line says what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)

    def stop(signum: int, frame: object) -> None:
        log.info("Ingest worker stopping (signal %s)", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    with app.app_context():
        settle_worker_process()
    log.info(
        "Ingest worker started: polling every %s s%s (mail source %s)",
        app.config["POLL_SECONDS"],
        "".join(
            f", {what} watched"
            for what, kind in WATCHED
            if any(isinstance(w, kind) for w in watchers)
        ),
        app.config["MAIL_SOURCE"].split("@")[-1],
    )
    try:
        scheduler.start()
    except KeyboardInterrupt:
        scheduler.shutdown(wait=False)
    finally:
        for each in watchers:
            each.stop()
    log.info("Ingest worker stopped")
