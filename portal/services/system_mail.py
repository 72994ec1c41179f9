"""System mail: what the service itself sends to people (password resets, invitations,
alerts), queued in the outbox beside the replies.

A system mail is an outbound Message with no thread and no channel: the worker's
outbox pass (outbox_delivery.py) sends it through SMTP_URL like a reply, with the
same claims and retries, from MAIL_FROM. Its links are built on PUBLIC_URL, never
on the request's host, so the worker and the CLI build the same links as a web
request, and a forged Host header cannot send someone a link to another site.

Its text holds live links (a reset, an invitation): only the MIME bytes keep it, and
the outbox drops them once the mail is out. Nothing here commits.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import current_app

from ingest.mail import compose
from portal.config import mail_from_parts
from portal.extensions import db
from portal.models import Direction, Message, SendStatus
from portal.services.audit import record_event
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)


class SystemMailError(ValueError):
    """A system mail that cannot be built (a malformed address); the message says why."""


def external_url(endpoint: str, **values: Any) -> str:
    """The absolute URL of `endpoint` under PUBLIC_URL; needs an app context, no request."""
    base = urlsplit(current_app.config["PUBLIC_URL"])
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme
    )
    return adapter.build(endpoint, values, force_external=True)


def queue_system_mail(
    to_address: str,
    *,
    subject: str,
    body: str,
    kind: str,
    organisation_id: int | None = None,
    now: datetime | None = None,
) -> Message:
    """Queue a text mail from MAIL_FROM to `to_address` (no commit); the worker sends it.

    `kind` names it in the audit log ("password_reset", "invitation", …); the body is
    never logged or audited.
    """
    now = now or utcnow()
    from_name, from_address = mail_from_parts(current_app.config["MAIL_FROM"])
    try:
        built = compose.build_system_mail(
            from_address=from_address,
            from_name=from_name,
            to_address=to_address,
            subject=subject,
            body=body,
            now=now,
        )
    except compose.MailError as exc:
        raise SystemMailError(str(exc)) from None
    message = Message(
        direction=Direction.OUT,
        thread=None,
        channel=None,
        message_id=built.message_id,
        subject=built.subject,
        from_name=from_name[:200],
        from_address=built.from_address,
        to_addresses=built.to_address,
        content_hash=hashlib.sha256(built.raw.replace(b"\r\n", b"\n")).hexdigest(),
        raw=built.raw,
        size=len(built.raw),
        send_status=SendStatus.PENDING,
        send_attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    db.session.add(message)
    db.session.flush()
    record_event(
        "system_mail.queued",
        actor=None,
        organisation_id=organisation_id,
        target=message,
        details={"kind": kind, "message_id": built.message_id},
    )
    log.info("System mail %s (%s) queued", built.message_id, kind)
    return message
