"""One page of the inbox in one statement, and the filter options beside it.

The page statement is built once per shape (_Shape: what decides its SQL) and
kept; every other value is a named parameter. Building a statement and its cache
key per request took SQLAlchemy longer than SQLite takes to run it, and a kept
statement keeps its cache key. Rows are read as Core rows, not ORM objects.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import Row, Select, select

from portal.extensions import db
from portal.marketplaces import get_marketplace
from portal.models import (
    Channel,
    Organisation,
    Thread,
    User,
)
from portal.models.threads import TAG_NAMES_SEPARATOR
from portal.services.inbox.filters import InboxQuery, active_filters, filter_conditions
from portal.services.inbox.paging import (
    after_cursor,
    cursor_after,
    cursor_kind,
    sort_keys,
    urgent_ids,
)
from portal.services.inbox.row import InboxRow
from portal.services.inbox.search import search_conditions, search_kinds
from portal.services.scoping import scope_by_kind, scope_kind, scope_parameters
from portal.services.threads import response_deadline

PAGE_SIZE = 50


@dataclass
class InboxPage:
    rows: list[InboxRow] = field(default_factory=list)
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelOption:
    id: int
    marketplace: str  # the marketplace name ("Germany")
    marketplace_code: str
    organisation: str


@dataclass(frozen=True, slots=True)
class FilterOptions:
    """What the inbox filters offer: the organisations and channels a user may see."""

    organisations: list[tuple[int, str]]  # (id, name), by name
    channels: list[ChannelOption]  # by organisation id, then marketplace code


class _Shape(NamedTuple):
    """What decides the page statement's SQL; every other value is a named parameter."""

    dialect: str
    scope: str  # scoping.scope_kind
    filters: tuple[tuple[str, Hashable], ...]  # filters.active_filters
    search: tuple[str, ...]  # search.search_kinds
    sort: str  # "activity" or "urgent"
    cursor: str | None  # paging.cursor_kind
    limit: int

    @property
    def status(self) -> str | None:
        """The status filter's status, if any: the urgent sort's index depends on it."""
        return dict(self.filters).get("status")


def list_inbox(
    user: User,
    query: InboxQuery,
    *,
    options: FilterOptions | None = None,
    page_size: int = PAGE_SIZE,
) -> InboxPage:
    """One page of the threads `user` may see, matching `query`, in one query.

    `options` is filter_options(user), if the caller has it already.
    """
    params: dict = scope_parameters(user)
    dialect = db.session.get_bind().dialect.name
    shape = _Shape(
        dialect=dialect,
        scope=scope_kind(user),
        filters=active_filters(query, user, params),
        search=search_kinds(query.q, params, dialect),
        sort="urgent" if query.sort == "urgent" else "activity",
        cursor=cursor_kind(query, params),
        limit=page_size + 1,
    )
    # Core execution on the session's connection: plain rows, none of the ORM's
    # loading machinery, which the columns do not need.
    found = db.session.connection().execute(_page_statement(shape), params).all()
    rows = found[:page_size]
    channels = _channel_names(rows, options or filter_options(user)) if rows else {}
    page = InboxPage()
    page.rows = [_inbox_row(values, channels) for values in rows]
    if len(found) > page_size:
        page.next_cursor = cursor_after(page.rows[-1], shape.sort)
    return page


#: The thread columns a row needs; list_inbox selects these and nothing else.
_ROW_COLUMNS = (
    Thread.id,
    Thread.subject,
    Thread.buyer_name,
    Thread.buyer_address,
    Thread.order_id,
    Thread.status,
    Thread.last_message_at,
    Thread.awaiting_reply_since,
    Thread.channel_id,
    Thread.assignee_id,
)

#: What list_inbox selects for each row of the page: the thread's columns, its
#: newest snippet and tag names (kept on the row by triggers, so no subquery per
#: row) and the assignee. The channel's marketplace and organisation come from the
#: filter options the page loads anyway (_channel_names), not from two more joins,
#: which cost PostgreSQL more to plan than to run.
_PAGE_COLUMNS = (
    *_ROW_COLUMNS,
    Thread.snippet,
    Thread.tag_names,
    User.name.label("assignee_name"),
    User.email.label("assignee_email"),
)


def _filtered(stmt: Select, shape: _Shape) -> Select:
    """`stmt` (a select from threads) narrowed to what `shape` asks for."""
    stmt = scope_by_kind(stmt, Thread.organisation_id, shape.scope)
    for condition in (*filter_conditions(shape.filters), *search_conditions(shape.search)):
        stmt = stmt.where(condition)
    return stmt


@functools.lru_cache(maxsize=512)
def _page_statement(shape: _Shape) -> Select:
    if shape.sort == "urgent":
        # The page's ids from urgent_ids' two index-ordered parts.
        page_ids = urgent_ids(
            _filtered(select(Thread.id), shape),
            status=shape.status,
            cursor=shape.cursor,
            limit=shape.limit,
        )
    elif "ids" in shape.search:
        # SQLite's search matches come as a list of ids to sort: sort the ids, then
        # read the page's rows. Sorting whole rows, SQLite's sorter copied every
        # column of every match (bench/README.md).
        page_ids = (
            after_cursor(_filtered(select(Thread.id), shape), shape.cursor)
            .order_by(*sort_keys(Thread, shape.sort))
            .limit(shape.limit)
            .subquery("page")
        )
    else:
        page_ids = None
    rows = select(*_PAGE_COLUMNS)
    if page_ids is not None:
        rows = rows.select_from(page_ids).join(Thread, Thread.id == page_ids.c.id)
    else:
        # One index-ordered scan of threads, cut at the limit: the row columns are
        # all on the thread row, so nothing is done per match the scan passes over.
        rows = after_cursor(_filtered(rows.select_from(Thread), shape), shape.cursor)
    return (
        rows.outerjoin(User, User.id == Thread.assignee_id)
        .order_by(*sort_keys(Thread, shape.sort))
        .limit(shape.limit)
    )


def _channel_names(rows: list[Row], options: FilterOptions) -> dict[int, ChannelOption]:
    """The rows' channels by id, from `options`: every channel of the organisations
    the user may see. A row's channel missing there (a thread in another organisation
    than its channel's, which the app never makes) is read from the database rather
    than fail the page."""
    channels = {channel.id: channel for channel in options.channels}
    missing = {row.channel_id for row in rows} - channels.keys()
    if missing:
        found = db.session.execute(
            select(Channel.id, Channel.marketplace, Organisation.name)
            .join(Organisation, Organisation.id == Channel.organisation_id)
            .where(Channel.id.in_(sorted(missing)))
        )
        for channel_id, code, organisation in found:
            channels[channel_id] = ChannelOption(
                channel_id, _marketplace_name(code), code, organisation
            )
    return channels


def _inbox_row(values: Row, channels: dict[int, ChannelOption]) -> InboxRow:
    (
        thread_id,
        subject,
        buyer_name,
        buyer_address,
        order_id,
        status,
        last_message_at,
        awaiting_reply_since,
        channel_id,
        assignee_id,
        snippet,
        tags,
        assignee_name,
        assignee_email,
    ) = values
    channel = channels[channel_id]
    row = InboxRow(
        id=thread_id,
        subject=subject,
        buyer_name=buyer_name,
        buyer_address=buyer_address,
        order_id=order_id,
        status=status,
        last_message_at=last_message_at,
        awaiting_reply_since=awaiting_reply_since,
        marketplace=channel.marketplace,
        organisation=channel.organisation,
        assignee=(assignee_name or assignee_email) if assignee_id else None,
        snippet=snippet or "",
        deadline=None,
        tags=tuple(sorted(tags.split(TAG_NAMES_SEPARATOR))) if tags else (),
    )
    # From the row built, not from `values`: it has the status and awaiting_reply_since
    # response_deadline reads, as plain attributes (a Row's are slower to read).
    row.deadline = response_deadline(row)
    return row


def filter_options(user: User) -> FilterOptions:
    """The organisations and channels `user` may filter the inbox by, in one query."""
    stmt = _filter_statement(scope_kind(user))
    # Unpacked by position: reading a Row's attributes by name costs several times as
    # much, for every organisation and channel on every inbox page.
    rows = db.session.connection().execute(stmt, scope_parameters(user)).all()
    organisations = list(dict.fromkeys((org_id, name) for org_id, name, _, _ in rows))
    channels = [
        ChannelOption(channel_id, _marketplace_name(code), code, name)
        for org_id, name, channel_id, code in sorted(
            (r for r in rows if r[2] is not None), key=lambda r: (r[0], r[3])
        )
    ]
    return FilterOptions(organisations, channels)


@functools.cache
def _filter_statement(scope: str) -> Select:
    # Built once per kind of user, as the page statement is (_Shape).
    stmt = select(
        Organisation.id, Organisation.name, Channel.id.label("channel_id"), Channel.marketplace
    ).outerjoin(Channel, Channel.organisation_id == Organisation.id)
    return scope_by_kind(stmt, Organisation.id, scope).order_by(Organisation.name, Organisation.id)


@functools.lru_cache(maxsize=64)
def _marketplace_name(code: str) -> str:
    # Cached: a fixed table (portal.marketplaces), asked for every row of a page.
    marketplace = get_marketplace(code)
    return marketplace.name if marketplace else code
