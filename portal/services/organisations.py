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
    channels = (
        select(Channel.organisation_id, func.count().label("n"))
        .group_by(Channel.organisation_id)
        .subquery()
    )
    open_threads = (
        select(Thread.organisation_id, func.count().label("n"))
        .where(Thread.status != ThreadStatus.CLOSED)
        .group_by(Thread.organisation_id)
        .subquery()
    )
    stmt = (
        select(
            Organisation,
            func.coalesce(channels.c.n, 0),
            func.coalesce(open_threads.c.n, 0),
        )
        .outerjoin(channels, channels.c.organisation_id == Organisation.id)
        .outerjoin(open_threads, open_threads.c.organisation_id == Organisation.id)
        .order_by(func.lower(Organisation.name))
    )
    stmt = scope_to_user(stmt, Organisation.id, user)
    return [
        OrganisationSummary(org, n_channels, n_open)
        for org, n_channels, n_open in db.session.execute(stmt)
    ]


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
