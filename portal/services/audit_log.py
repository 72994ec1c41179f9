"""Reading the audit log: filtered, newest first, paginated by id (keyset)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.models import AuditEvent, Organisation, User

PAGE_SIZE = 50
#: The actor filter value that selects what the system did (no user).
SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class AuditFilters:
    organisation_id: int | None = None
    #: A user id, SYSTEM_ACTOR, or None for anyone.
    actor: int | str | None = None
    kind: str | None = None
    #: Inclusive UTC dates.
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    organisation_names: dict[int, str] = field(default_factory=dict)
    #: Pass as `after` for the next newer page, `before` for the next older one.
    newer_cursor: int | None = None
    older_cursor: int | None = None


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _filtered(stmt: Select, filters: AuditFilters) -> Select:
    if filters.organisation_id is not None:
        stmt = stmt.where(AuditEvent.organisation_id == filters.organisation_id)
    if filters.actor == SYSTEM_ACTOR:
        stmt = stmt.where(AuditEvent.actor_id.is_(None))
    elif filters.actor is not None:
        stmt = stmt.where(AuditEvent.actor_id == filters.actor)
    if filters.kind:
        stmt = stmt.where(AuditEvent.kind == filters.kind)
    if filters.since is not None:
        stmt = stmt.where(AuditEvent.created_at >= _start_of(filters.since))
    # Up to the end of `until`; the last day a date can name (9999-12-31) has no next day.
    if filters.until is not None and filters.until < date.max:
        stmt = stmt.where(AuditEvent.created_at < _start_of(filters.until + timedelta(days=1)))
    return stmt


def _any(filters: AuditFilters, condition) -> bool:
    return bool(
        db.session.scalar(
            select(exists(_filtered(select(AuditEvent.id), filters).where(condition)))
        )
    )


def list_audit_events(
    filters: AuditFilters,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = PAGE_SIZE,
) -> AuditPage:
    """One page of events, newest first: older than `before`, or just newer than `after`."""
    stmt = _filtered(select(AuditEvent), filters).options(selectinload(AuditEvent.actor))
    if after is not None:
        rows = list(
            db.session.scalars(
                stmt.where(AuditEvent.id > after).order_by(AuditEvent.id.asc()).limit(limit + 1)
            )
        )
        rows = rows[:limit][::-1]
    else:
        if before is not None:
            stmt = stmt.where(AuditEvent.id < before)
        rows = list(db.session.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit + 1)))
        rows = rows[:limit]
    if not rows:
        return AuditPage(events=[])
    newest, oldest = rows[0].id, rows[-1].id
    org_ids = {e.organisation_id for e in rows if e.organisation_id is not None}
    names = dict(
        db.session.execute(
            select(Organisation.id, Organisation.name).where(Organisation.id.in_(org_ids))
        ).all()
    )
    return AuditPage(
        events=rows,
        organisation_names=names,
        newer_cursor=newest if _any(filters, AuditEvent.id > newest) else None,
        older_cursor=oldest if _any(filters, AuditEvent.id < oldest) else None,
    )


def event_kinds(*, organisation_id: int | None = None) -> list[str]:
    """The distinct event kinds recorded (for one organisation), for the type filter."""
    stmt = select(AuditEvent.kind).distinct().order_by(AuditEvent.kind)
    if organisation_id is not None:
        stmt = stmt.where(AuditEvent.organisation_id == organisation_id)
    return list(db.session.scalars(stmt))


def actor_choices() -> list[tuple[int, str]]:
    """(id, e-mail) of every user, for the actor filter."""
    rows = db.session.execute(select(User.id, User.email).order_by(func.lower(User.email)))
    return [(user_id, email) for user_id, email in rows]
