"""Tenant scoping of queries: which organisations' rows a user may see.

Services narrow their statements with these, so a forgotten filter cannot leak
another seller's data. Nothing here reads the request or the logged-in user: the
user is an argument, and the web guards (portal/security.py) build on this module.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Select, bindparam, false, select
from sqlalchemy.orm import InstrumentedAttribute

from portal.extensions import db
from portal.models import Organisation, Role, User, agent_assignments

#: The parameters a statement built by scope_by_kind takes, by name.
SCOPE_USER_ID = "scope_user_id"
SCOPE_ORGANISATION_ID = "scope_organisation_id"


def scope_kind(user: User) -> str:
    """Which rule scopes `user`: "all" (admins), "assigned" (agents), "own" or "none" (sellers)."""
    if user.role == Role.ADMIN:
        return "all"
    if user.role == Role.AGENT:
        return "assigned"
    return "own" if user.organisation_id is not None else "none"


def scope_parameters(user: User) -> dict[str, int | None]:
    """The values for the parameters of scope_by_kind(…, scope_kind(user))."""
    return {SCOPE_USER_ID: user.id, SCOPE_ORGANISATION_ID: user.organisation_id}


def _visible_ids(kind: str, user_id: Any, organisation_id: Any) -> Select | None:
    if kind == "all":
        return None
    if kind == "assigned":
        return select(agent_assignments.c.organisation_id).where(
            agent_assignments.c.user_id == user_id
        )
    if kind == "own":
        return select(Organisation.id).where(Organisation.id == organisation_id)
    return select(Organisation.id).where(false())


def visible_organisation_ids(user: User) -> Select | None:
    """A subquery of the organisation ids `user` may see; None means all (admins)."""
    return _visible_ids(scope_kind(user), user.id, user.organisation_id)


def scope_to_user(stmt: Select, org_column: InstrumentedAttribute, user: User) -> Select:
    """Restrict `stmt` to rows whose `org_column` is an organisation `user` may see."""
    if scope_kind(user) == "own":
        # A seller: their organisation by equality, not IN (a subquery). SQLite's planner
        # cannot tell how many rows a subquery gives, and with it preferred an index
        # without the organisation (the dashboard's overdue threads: every
        # organisation's read and filtered; figures: bench/README.md).
        return stmt.where(org_column == user.organisation_id)
    visible = visible_organisation_ids(user)
    if visible is None:
        return stmt
    return stmt.where(org_column.in_(visible))


def scope_by_kind(stmt: Select, org_column: InstrumentedAttribute, kind: str) -> Select:
    """scope_to_user for any user of `kind`, the user's values left as named parameters.

    For statements built once and run for many users: execute them with
    scope_parameters(user). A parameter left out is an error, never an unscoped query.
    """
    visible = _visible_ids(
        kind,
        bindparam(SCOPE_USER_ID, type_=Integer, required=True),
        bindparam(SCOPE_ORGANISATION_ID, type_=Integer, required=True),
    )
    if visible is None:
        return stmt
    return stmt.where(org_column.in_(visible))


def can_manage_organisation(user: User, organisation_id: int | None) -> bool:
    """Whether `user` may manage `organisation_id`: its channels, tokens, Amazon
    authorisation, members and settings. Its owners may, and admins for any; members
    and agents may not."""
    if user.role == Role.ADMIN:
        return True
    return user.is_owner and organisation_id is not None and user.organisation_id == organisation_id


def can_see_organisation(user: User, organisation_id: int | None) -> bool:
    """Whether `user` may see rows of `organisation_id` (None: only admins may)."""
    if organisation_id is None:
        return user.role == Role.ADMIN
    visible = visible_organisation_ids(user)
    if visible is None:
        return True
    found = db.session.scalar(
        select(Organisation.id).where(
            Organisation.id == organisation_id, Organisation.id.in_(visible)
        )
    )
    return found is not None
