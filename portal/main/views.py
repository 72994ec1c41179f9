import hashlib
import os
from datetime import timedelta
from functools import lru_cache

from flask import Blueprint, current_app, jsonify, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from portal.extensions import csrf, db, limiter
from portal.inbox.badges import answer_due
from portal.models import Mailbox
from portal.services import dashboard as dashboard_service
from portal.services import report_snapshots
from portal.services import reports as report_service
from portal.services.mailboxes import polled
from portal.services.organisations import list_visible_organisations
from portal.services.threads import response_deadline
from portal.sqltypes import utcnow

bp = Blueprint("main", __name__)


@bp.route("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    return redirect(url_for("auth.login"))


@bp.route("/dashboard")
@login_required
def dashboard():
    now = utcnow()
    summaries = list_visible_organisations(current_user)
    rates = channels = None
    if current_user.organisation_id is not None:
        # Kept figures while fresh (services/report_snapshots.py): 90 days of messages.
        rates = report_snapshots.figures(
            report_snapshots.rates_params(organisation_id=current_user.organisation_id),
            now=now,
            fresh_seconds=current_app.config["REPORTS_FRESH_SECONDS"],
        )
        if rates.written:  # a commit otherwise only expires what the page goes on to read
            db.session.commit()
        channels = dashboard_service.channel_overview(
            organisation_ids=[current_user.organisation_id], now=now
        )
    due = dashboard_service.answers_due(current_user, now=now)
    return render_template(
        "main/dashboard.html",
        summaries=summaries,
        rates=rates,
        periods=report_service.AMAZON_PERIODS,
        target=report_service.AMAZON_TARGET_PCT,
        channels=channels,
        setup_steps=dashboard_service.SETUP_STEPS,
        due=due,
        overdue=[(t, answer_due(response_deadline(t), now)) for t in due.overdue],
        soon=[(t, answer_due(response_deadline(t), now)) for t in due.soon],
    )


@bp.route("/healthz")
@csrf.exempt
@limiter.exempt
def healthz():
    """For a load balancer or monitor: 200 when the database answers and ingestion is
    fresh (a successful poll within 3 x POLL_SECONDS), else 503 with the reason.

    No login; it says nothing a stranger could use (no names, hosts or errors).
    """
    max_age = 3 * current_app.config["POLL_SECONDS"]
    body = {"status": "ok", "database": "ok", "max_poll_age_seconds": max_age}
    try:
        db.session.execute(text("SELECT 1"))
        last_success, mailboxes = db.session.execute(
            select(func.max(Mailbox.last_success_at), func.count()).where(
                Mailbox.is_enabled, polled()
            )
        ).one()
    except SQLAlchemyError:
        db.session.rollback()
        current_app.logger.warning("Health check: the database does not answer", exc_info=True)
        body.update(status="error", database="unreachable", reason="database unreachable")
        return _health_response(body, 503)
    now = utcnow()
    body["mailboxes"] = mailboxes
    # Enabled mailboxes whose last poll failed (a refused OAuth sign-in among them): an
    # admin's job, reported here for a monitor, never a reason for 503.
    body["failing_mailboxes"] = db.session.scalar(
        select(func.count()).where(Mailbox.is_enabled, Mailbox.consecutive_failures > 0)
    )
    if last_success is None:
        body.update(status="error", last_poll_age_seconds=None, reason="no successful poll yet")
        return _health_response(body, 503)
    age = max(0.0, (now - last_success).total_seconds())
    body["last_poll_age_seconds"] = round(age, 1)
    if age > max_age:
        body.update(status="error", reason=f"last successful poll {age:.0f} s ago")
        return _health_response(body, 503)
    stale = db.session.scalar(
        select(func.count()).where(
            Mailbox.is_enabled,
            polled(),
            (Mailbox.last_success_at.is_(None))
            | (Mailbox.last_success_at < now - timedelta(seconds=max_age)),
        )
    )
    # One mailbox with a wrong password is an admin's job (its health page), not a
    # reason to take the site out of a load balancer: reported, still 200.
    body["stale_mailboxes"] = stale
    return _health_response(body, 200)


def _health_response(body: dict, status: int):
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


# --- static files: a content hash in every URL, so they can be cached for a year --------


@bp.app_url_defaults
def static_cache_buster(endpoint: str, values: dict) -> None:
    """`url_for('static', filename=F)` becomes `/static/F?v=<hash of F's content>`."""
    if endpoint != "static" or "v" in values or "filename" not in values:
        return
    static_folder = current_app.static_folder
    if static_folder is None:
        return
    path = os.path.join(static_folder, values["filename"])
    try:
        stat = os.stat(path)
    except OSError:
        return
    values["v"] = _content_hash(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _content_hash(path: str, mtime_ns: int, size: int) -> str:
    # Keyed by mtime and size too: an edited file (development) gets a new hash.
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:12]
