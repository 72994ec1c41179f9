"""Recording audit events."""

from __future__ import annotations

import logging
from typing import Any

from portal.extensions import db
from portal.models import AuditEvent, User

log = logging.getLogger(__name__)


def record_event(
    kind: str,
    *,
    actor: User | None,
    organisation_id: int | None = None,
    target: Any = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event for `kind` (e.g. "channel.added"); never put secrets in `details`."""
    event = AuditEvent(
        kind=kind,
        actor_id=actor.id if actor is not None else None,
        organisation_id=organisation_id,
        target_type=type(target).__name__.lower() if target is not None else None,
        target_id=getattr(target, "id", None),
        details=details or {},
    )
    db.session.add(event)
    db.session.flush()
    log.info(
        "audit %s actor=%s org=%s target=%s:%s",
        kind,
        event.actor_id,
        organisation_id,
        event.target_type,
        event.target_id,
    )
    return event
