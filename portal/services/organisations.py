"""Read-side queries over organisations, always scoped to what the user may see."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Channel, Organisation, Role, Thread, ThreadStatus, User
from portal.services.scoping import scope_to_user


@dataclass(frozen=True)
class OrganisationSummary:
    organisation: Organisation
    channel_count: int
    open_thread_count: int


def list_visible_organisations(user: User) -> list[OrganisationSummary]:
    """The organisations `user` may see, with channel and open-thread counts."""
    # Counted per organisation shown (correlated), not grouped over every organisation's
    # threads first: a seller's dashboard counts its own threads only.
    n_channels = (
        select(func.count())
        .where(Channel.organisation_id == Organisation.id)
        .correlate(Organisation)
        .scalar_subquery()
    )
    n_open = (
        select(func.count())
        # IN rather than != CLOSED: two ranges of ix_threads_org_status_awaiting, which
        # skip the closed threads, most of an organisation's, rather than read them all.
        .where(
            Thread.organisation_id == Organisation.id,
            Thread.status.in_([ThreadStatus.OPEN, ThreadStatus.PENDING]),
        )
        .correlate(Organisation)
        .scalar_subquery()
    )
    stmt = select(Organisation, n_channels, n_open).order_by(func.lower(Organisation.name))
    stmt = scope_to_user(stmt, Organisation.id, user)
    return [
        OrganisationSummary(org, n_channels, n_open)
        for org, n_channels, n_open in db.session.execute(stmt)
    ]


def visible_organisations(user: User) -> list[Organisation]:
    """The organisations `user` may see, by name, without counting anything (the report
    filters' choices)."""
    stmt = scope_to_user(
        select(Organisation).order_by(func.lower(Organisation.name)), Organisation.id, user
    )
    return list(db.session.scalars(stmt))


def list_team(organisation: Organisation) -> tuple[list[User], list[User]]:
    """The organisation's own users and the agents assigned to it."""
    members = db.session.scalars(
        select(User).where(User.organisation_id == organisation.id).order_by(User.email)
    ).all()
    agents = db.session.scalars(
        select(User)
        .where(User.role == Role.AGENT, User.assigned_organisations.contains(organisation))
        .order_by(User.email)
    ).all()
    return list(members), list(agents)
