"""What a user can ask the inbox for: InboxQuery, and the filters it turns into.

A new filter is a field of InboxQuery and one entry in FILTERS; nothing else in the
inbox changes. The listing builds its statement once per shape (listing._Shape),
so a filter says apart what decides the SQL (its key) and what is only a value
(a named parameter, set per request).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Integer, bindparam, exists, select

from portal.models import Channel, Tag, Thread, ThreadStatus, User, thread_tags

SORTS = ("activity", "urgent")
ASSIGNEE_FILTERS = ("anyone", "me", "unassigned")
STATUS_FILTERS = ("open", "pending", "closed", "all")


@dataclass(frozen=True)
class InboxQuery:
    status: str = "open"
    channel_id: int | None = None
    marketplace: str | None = None
    organisation_id: int | None = None
    assignee: str = "anyone"
    tag: str | None = None
    q: str = ""
    sort: str = "activity"
    cursor: str | None = None


def _no_values(query: InboxQuery, user: User) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Filter:
    """One inbox filter.

    `key(query)` is falsy when the filter is off, else what its SQL depends on: part
    of the statement's cache key, so it takes a few values (True, a status). Given
    the key, `condition` is the WHERE clause, with named parameters for the user's
    values, which `values(query, user)` supplies.
    """

    key: Callable[[InboxQuery], Hashable]
    condition: Callable[[Any], ColumnElement[bool]]
    values: Callable[[InboxQuery, User], dict[str, Any]] = _no_values


def _marketplace(_key: bool) -> ColumnElement[bool]:
    code = bindparam("marketplace", type_=Channel.marketplace.type)
    return Thread.channel_id.in_(select(Channel.id).where(Channel.marketplace == code))


def _assignee(assignee: str) -> ColumnElement[bool]:
    if assignee == "me":
        return Thread.assignee_id == bindparam("assignee_id", type_=Integer)
    return Thread.assignee_id.is_(None)


def _tag(_key: bool) -> ColumnElement[bool]:
    return exists().where(
        thread_tags.c.thread_id == Thread.id,
        thread_tags.c.tag_id == Tag.id,
        Tag.name == bindparam("tag", type_=Tag.name.type),
    )


#: The filters, in the order their conditions appear in the statement.
FILTERS: dict[str, Filter] = {
    # The status is in the SQL, not a parameter: the urgent sort picks its index
    # by it (paging.urgent_ids).
    "status": Filter(
        key=lambda query: query.status if query.status in ("open", "pending", "closed") else None,
        condition=lambda status: Thread.status == ThreadStatus(status),
    ),
    "channel": Filter(
        key=lambda query: bool(query.channel_id),
        condition=lambda _key: Thread.channel_id == bindparam("channel_id", type_=Integer),
        values=lambda query, user: {"channel_id": query.channel_id},
    ),
    "marketplace": Filter(
        key=lambda query: bool(query.marketplace),
        condition=_marketplace,
        values=lambda query, user: {"marketplace": query.marketplace.upper()},
    ),
    "organisation": Filter(
        key=lambda query: bool(query.organisation_id),
        condition=lambda _key: (
            Thread.organisation_id == bindparam("organisation_id", type_=Integer)
        ),
        values=lambda query, user: {"organisation_id": query.organisation_id},
    ),
    "assignee": Filter(
        key=lambda query: query.assignee if query.assignee in ("me", "unassigned") else None,
        condition=_assignee,
        values=lambda query, user: {"assignee_id": user.id},
    ),
    "tag": Filter(
        key=lambda query: bool(query.tag),
        condition=_tag,
        values=lambda query, user: {"tag": query.tag.lower()},
    ),
}


def active_filters(query: InboxQuery, user: User, params: dict) -> tuple[tuple[str, Hashable], ...]:
    """The filters `query` turns on, as (name, key) pairs; their values go into `params`."""
    active = []
    for name, filter_ in FILTERS.items():
        key = filter_.key(query)
        if key:
            active.append((name, key))
            params.update(filter_.values(query, user))
    return tuple(active)


def filter_conditions(active: tuple[tuple[str, Hashable], ...]) -> list[ColumnElement[bool]]:
    """The WHERE clauses of the `active` filters (active_filters)."""
    return [FILTERS[name].condition(key) for name, key in active]
