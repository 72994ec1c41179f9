"""The ingest worker: an APScheduler job polling every POLL_SECONDS, in its own process."""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from ingest.pipeline import poll_all
from portal.services.outbox import deliver_pending

log = logging.getLogger(__name__)


def poll_job(app: Flask) -> None:
    """One scheduled pass, inside its own app context."""
    with app.app_context():
        try:
            summary = poll_all()
        except Exception:  # the next run must still happen
            log.exception("Ingest pass failed")
            return
        # Quiet passes stay out of the log; anything fetched or failed is worth a line.
        if summary.fetched or summary.errors:
            log.info("Ingest pass: %s", summary.line())
        else:
            log.debug("Ingest pass: %s", summary.line())


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


def build_scheduler(
    app: Flask, scheduler_class: type[BaseScheduler] = BlockingScheduler
) -> BaseScheduler:
    scheduler = scheduler_class(timezone=UTC)
    scheduler.add_job(
        poll_job,
        "interval",
        args=[app],
        seconds=app.config["POLL_SECONDS"],
        id="poll-mailboxes",
        # A slow pass must not overlap the next, and missed runs collapse into one.
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        outbox_job,
        "interval",
        args=[app],
        # Replies the web request could not send go out within seconds, not a poll later.
        seconds=min(app.config.get("OUTBOX_SECONDS", 5), app.config["POLL_SECONDS"]),
        id="send-replies",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    return scheduler


def run_worker(app: Flask) -> None:
    """Block, polling, until SIGINT or SIGTERM."""
    scheduler = build_scheduler(app)
    # APScheduler logs every run at INFO; our own summary line says what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)

    def stop(signum: int, frame: object) -> None:
        log.info("Ingest worker stopping (signal %s)", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    log.info(
        "Ingest worker started: polling every %s s (mail source %s)",
        app.config["POLL_SECONDS"],
        app.config["MAIL_SOURCE"].split("@")[-1],
    )
    try:
        scheduler.start()
    except KeyboardInterrupt:
        scheduler.shutdown(wait=False)
    log.info("Ingest worker stopped")
