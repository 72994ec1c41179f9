"""The inbox: threads a user may see, filtered, searched and paged by keyset.

Keyset pagination (WHERE (sort key, id) beyond the last row seen) keeps a deep page
as cheap as the first one; OFFSET would scan every skipped row.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    String,
    Subquery,
    Text,
    TextClause,
    bindparam,
    case,
    column,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.sql.elements import BindParameter

from portal.extensions import db
from portal.marketplaces import get_marketplace
from portal.models import (
    Channel,
    Message,
    Organisation,
    Tag,
    Thread,
    ThreadStatus,
    User,
    thread_tags,
)
from portal.services.scoping import scope_by_kind, scope_kind, scope_parameters
from portal.services.threads import STATUS_BADGES, answer_due, response_deadline, utcnow
from portal.sqltypes import MAX_ID

PAGE_SIZE = 50
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


@dataclass(slots=True)
class InboxRow:
    """One line of the inbox: plain values, read as columns rather than ORM objects.

    The display values (labels, the status badge, the answer-due badge) are plain
    strings computed here once, so the template only interpolates them and
    autoescapes them like any other value.
    """

    id: int
    subject: str | None
    buyer_name: str | None
    buyer_address: str | None
    order_id: str | None
    status: ThreadStatus
    last_message_at: datetime
    awaiting_reply_since: datetime | None
    marketplace: str  # the channel's marketplace name ("Germany")
    organisation: str
    assignee: str | None  # display name
    snippet: str
    deadline: datetime | None
    tags: tuple[str, ...] = ()
    buyer_label: str = "Unknown"
    subject_label: str = "(no subject)"
    status_class: str = ""  # "badge thread-open"
    status_label: str = ""  # "Open"
    due_class: str = "deadline none"  # "deadline", "deadline soon", "deadline overdue"
    due_title: str = ""  # "Due 27 Nov 2026, 09:51 UTC"
    due_text: str = "—"  # "5 h 12 min left", "Overdue by 7 min"
    is_overdue: bool = False


@dataclass
class InboxPage:
    rows: list[InboxRow] = field(default_factory=list)
    next_cursor: str | None = None


def _encode_cursor(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, datetime | None, int] | None:
    """The (rank, time, thread id) of a cursor `_cursor_after` made; None for anything
    else, which shows the first page: the cursor is in the URL, for anyone to edit."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        rank, when, thread_id = json.loads(base64.urlsafe_b64decode(padded))
        when = datetime.fromisoformat(when) if when is not None else None
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
    if (
        type(rank) is not int
        or rank not in (0, 1)
        or type(thread_id) is not int
        or not 0 < thread_id <= MAX_ID
        or (when is not None and when.utcoffset() is None)
    ):
        return None
    return rank, when, thread_id


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


class _Shape(NamedTuple):
    """What decides the page statement's SQL; every other value is a named parameter.

    list_inbox builds one statement per shape and keeps it (_page_statement):
    building a statement and its cache key per request took SQLAlchemy longer than
    SQLite takes to run it, and a kept statement keeps its cache key.
    """

    dialect: str
    scope: str  # scoping.scope_kind
    status: str | None  # "open", "pending" or "closed"; None for all
    channel: bool
    marketplace: bool
    organisation: bool
    assignee: str  # "anyone", "me" or "unassigned"
    tag: bool
    search: tuple[str, ...]  # per term: "ids", "like", "tsquery" or "tsquery+trigram"
    sort: str  # "activity" or "urgent"
    cursor: str | None  # activity: "after" or "none"; urgent: "waiting" or "rest"
    limit: int


def _filtered(stmt: Select, shape: _Shape) -> Select:
    """`stmt` (a select from threads) narrowed to what `shape` asks for."""
    stmt = scope_by_kind(stmt, Thread.organisation_id, shape.scope)
    if shape.status:
        stmt = stmt.where(Thread.status == ThreadStatus(shape.status))
    if shape.channel:
        stmt = stmt.where(Thread.channel_id == bindparam("channel_id", type_=Integer))
    if shape.marketplace:
        code = bindparam("marketplace", type_=Channel.marketplace.type)
        stmt = stmt.where(
            Thread.channel_id.in_(select(Channel.id).where(Channel.marketplace == code))
        )
    if shape.organisation:
        stmt = stmt.where(Thread.organisation_id == bindparam("organisation_id", type_=Integer))
    if shape.assignee == "me":
        stmt = stmt.where(Thread.assignee_id == bindparam("assignee_id", type_=Integer))
    elif shape.assignee == "unassigned":
        stmt = stmt.where(Thread.assignee_id.is_(None))
    if shape.tag:
        stmt = stmt.where(
            exists().where(
                thread_tags.c.thread_id == Thread.id,
                thread_tags.c.tag_id == Tag.id,
                Tag.name == bindparam("tag", type_=Tag.name.type),
            )
        )
    return _searched(stmt, shape.search)


# --- search ------------------------------------------------------------------------
#
# What a search matches (both databases): the query is split on whitespace into at
# most MAX_TERMS terms, all of which must match (AND), each in the thread's subject,
# buyer name, buyer address, order ID or the text of any of its messages except
# internal notes. A term matches whole words and word prefixes, case- and (SQLite)
# accent-insensitively: "refund" finds "refunded"; "111-2222222" finds order
# 111-2222222-3333333, "3333333" finds it too, as does "buyer12" for the alias
# buyer12@marketplace.amazon.de. On PostgreSQL any substring (3+ characters) of the
# four thread fields matches as well. Punctuation splits words and is otherwise
# ignored; a term with no letter or digit is dropped. User text never reaches the
# FTS or tsquery parser as syntax: each term is a quoted phrase.
#
# SQLite: FTS5 tables messages_fts and threads_fts (migrations 5e4a1c7d9b20 and
# 4f7b2c9e8d15). A term that matches more than DENSE_MATCHES rows falls back to the
# substring LIKE scan in activity order, which finds a page of a common word among
# the newest threads sooner than the FTS set could be built. PostgreSQL:
# threads.search_document (tsvector, 'simple' configuration, GIN) and one pg_trgm
# index on the four fields joined by spaces (_search_fields, migration 8b5e1f3a7c29).

MAX_TERMS = 5
DENSE_MATCHES = 2000


def _search_fields() -> ColumnElement[str]:
    """subject || ' ' || buyer_name || ' ' || buyer_address || ' ' || coalesce(order_id, ''):
    the expression ix_threads_search_fields_trgm indexes (migration 8b5e1f3a7c29), which
    the planner uses only for the same expression, so the spaces are SQL literals, not
    parameters. A term holds no whitespace: it cannot match across two fields."""
    space = literal_column("' '", type_=Text)
    fields = [
        Thread.subject,
        Thread.buyer_name,
        Thread.buyer_address,
        func.coalesce(Thread.order_id, literal_column("''", type_=Text)),
    ]
    joined = fields[0]
    for field_ in fields[1:]:
        joined = joined.op("||")(space).op("||")(field_)
    return joined


def _search_terms(q: str) -> list[str]:
    terms = [t.lower() for t in q.split() if any(c.isalnum() for c in t)]
    return terms[:MAX_TERMS]


def _search_parameters(q: str, params: dict, dialect: str) -> tuple[str, ...]:
    """Each term's kind of match; its values go into `params` (like_N, ids_N, term_N)."""
    terms = _search_terms(q)
    if not terms:
        return ()
    for number, term in enumerate(terms):
        params[f"like_{number}"] = f"%{_escape_like(term)}%"
    if dialect == "sqlite":
        # Every term's FTS lookup in one statement, one round trip.
        found = db.session.connection().execute(
            _fts_thread_ids(len(terms)),
            {"dense": DENSE_MATCHES}
            | {f"q{number}": _fts5_phrase(term) for number, term in enumerate(terms)},
        )
        kinds = []
        for number, thread_ids in enumerate(found.one()):
            params[f"ids_{number}"] = thread_ids
            kinds.append("like" if thread_ids is None else "ids")
        return tuple(kinds)
    if dialect == "postgresql":
        trigrams = _trigram_indexes()
        for number, term in enumerate(terms):
            params[f"term_{number}"] = term
        return tuple("tsquery+trigram" if trigrams and len(t) >= 3 else "tsquery" for t in terms)
    return ("like",) * len(terms)


def _searched(stmt: Select, kinds: tuple[str, ...]) -> Select:
    for number, kind in enumerate(kinds):
        like = bindparam(f"like_{number}", type_=String)
        if kind == "like":
            stmt = stmt.where(_like_term(like))
        elif kind == "ids":
            stmt = stmt.where(_listed_ids(bindparam(f"ids_{number}", type_=String)))
        else:
            term = bindparam(f"term_{number}", type_=String)
            stmt = stmt.where(_tsquery_term(term, like, trigrams=kind == "tsquery+trigram"))
    return stmt


def _like_term(like: BindParameter) -> ColumnElement[bool]:
    return or_(
        func.lower(Thread.subject).like(like, escape="\\"),
        func.lower(Thread.buyer_name).like(like, escape="\\"),
        func.lower(Thread.buyer_address).like(like, escape="\\"),
        func.lower(Thread.order_id).like(like, escape="\\"),
        exists().where(
            Message.thread_id == Thread.id,
            Message.is_internal_note.is_(False),
            func.lower(Message.text_body).like(like, escape="\\"),
        ),
    )


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fts5_phrase(term: str) -> str:
    """One user term as an FTS5 prefix phrase: quoted, so no character is syntax."""
    return '"' + term.replace('"', '""') + '"*'


#: One term's part of _fts_thread_ids: the term's matching threads as a JSON array
#: of ids, or NULL when the term is dense, with more than :dense matching messages or
#: threads (each part is cut there, so a dense term costs no more than that to find
#: out about). A message's row id in messages_fts carries its thread id in the high
#: 32 bits (migration 4f7b2c9e8d15): no lookup per matching message.
_FTS_TERM_CTES = (
    "m{n} AS (SELECT rowid >> 32 AS id FROM messages_fts WHERE messages_fts MATCH :q{n}"
    " LIMIT :dense + 1),"
    " t{n} AS (SELECT rowid AS id FROM threads_fts WHERE threads_fts MATCH :q{n} LIMIT :dense + 1)"
)
_FTS_TERM_COLUMN = (
    "CASE WHEN (SELECT count(*) FROM m{n}) <= :dense AND (SELECT count(*) FROM t{n}) <= :dense"
    " THEN (SELECT json_group_array(id) FROM (SELECT id FROM m{n} UNION SELECT id FROM t{n})) END"
)


@functools.cache
def _fts_thread_ids(terms: int) -> TextClause:
    """Every term's part in one statement: a column per term, the term as :q0, :q1, …"""
    ctes = ", ".join(_FTS_TERM_CTES.format(n=n) for n in range(terms))
    columns = ", ".join(_FTS_TERM_COLUMN.format(n=n) for n in range(terms))
    # Only term numbers are formatted in; the terms themselves are parameters.
    return text("WITH " + ctes + " SELECT " + columns)


def _listed_ids(thread_ids: BindParameter) -> ColumnElement[bool]:
    # A rare term's threads come back from SQLite as one JSON array, which the page
    # query reads with json_each: SQLite looks those threads up by rowid and sorts
    # them, where an `IN (subquery)` of the FTS sets cost it several times as much
    # (149 threads of a rare word: 0.8 ms against 0.1 ms), and neither Python nor
    # SQLAlchemy handles the ids one by one.
    listed = func.json_each(thread_ids)
    return Thread.id.in_(select(column("value", Integer)).select_from(listed))


def _trigram_indexes() -> bool:
    """Whether the migration could create the pg_trgm index (cached per database)."""
    engine = db.session.get_bind()
    key = engine.url.render_as_string(hide_password=True)
    if key not in _TRIGRAMS:
        _TRIGRAMS[key] = bool(
            db.session.scalar(
                text(
                    "SELECT count(*) FROM pg_indexes"
                    " WHERE indexname = 'ix_threads_search_fields_trgm'"
                )
            )
        )
    return _TRIGRAMS[key]


_TRIGRAMS: dict[str, bool] = {}


def _prefix_tsquery(term: BindParameter) -> ColumnElement:
    """`term` as a tsquery whose last word is a prefix, or NULL if the parser leaves nothing.

    The term goes through the same parser as the documents (phraseto_tsquery), so no
    character of it is tsquery syntax; NULLIF keeps an empty result from becoming a
    syntax error. All in the page query itself: no round trip per search.
    """
    phrase = func.phraseto_tsquery("simple", term).cast(Text)
    return func.to_tsquery("simple", func.nullif(phrase, "", type_=Text) + ":*")


def _tsquery_term(
    term: BindParameter, like: BindParameter, *, trigrams: bool
) -> ColumnElement[bool]:
    tsquery = _prefix_tsquery(term)
    matched = literal_column("threads.search_document").op("@@")(tsquery)
    if trigrams:
        # A term the parser reduces to nothing matches through this alone.
        return or_(matched, _search_fields().ilike(like, escape="\\"))
    # A term the parser reduces to nothing is dropped. PostgreSQL folds the IS NULL to
    # a constant for the given term, so the GIN index still serves the match.
    return or_(matched, tsquery.is_(None))


#: Statuses in which a thread can await an answer (every one but closed), as a list:
#: `status IN (…)` lets SQLite seek ix_threads_status_awaiting, `!= 'closed'` does not.
_ANSWERABLE = [status for status in ThreadStatus if status != ThreadStatus.CLOSED]


def _waiting(threads) -> ColumnElement[bool]:
    """Awaiting an answer: the rows the urgent sort puts first."""
    return threads.awaiting_reply_since.is_not(None) & threads.status.in_(_ANSWERABLE)


def _sort_keys(threads, sort: str) -> list[ColumnElement]:
    """ORDER BY for `sort`, over Thread or over a subquery with the same column names."""
    if sort == "urgent":
        # Threads awaiting an answer first, earliest deadline first; then the rest.
        rank = case((_waiting(threads), 0), else_=1)
        return [rank, threads.awaiting_reply_since, threads.id]
    return [threads.last_message_at.desc(), threads.id.desc()]


def _after_cursor(stmt: Select, shape: _Shape) -> Select:
    """The activity sort's rows after the cursor."""
    if shape.cursor == "none":  # a cursor without a time: nothing comes after it
        return stmt.where(false())
    if shape.cursor == "after":
        # A row-value comparison, so both databases seek the (last_message_at, id)
        # index instead of filtering every newer row.
        return stmt.where(
            tuple_(Thread.last_message_at, Thread.id)
            < tuple_(_cursor_when(Thread.last_message_at), _CURSOR_ID)
        )
    return stmt


#: The cursor's values, parameters of the page statement.
_CURSOR_ID = bindparam("cursor_id", type_=Integer)


def _cursor_when(sort_column) -> BindParameter:
    return bindparam("cursor_when", type_=sort_column.type)


def _urgent_ids(stmt: Select, shape: _Shape) -> Subquery:
    # No index orders by "waiting first, then deadline": one ORDER BY over both
    # kinds sorts every matching thread. Instead the waiting ones by deadline and
    # the rest by id, each part index-ordered and cut at `limit`; list_inbox orders
    # the union and cuts it again. With a status filter the conditions reduce to
    # awaiting_reply_since alone, which ix_threads_status_awaiting serves.
    rest_order = [Thread.id]
    if shape.status == "closed":
        waiting, rest = None, true()
    elif shape.status in ("open", "pending"):
        waiting = Thread.awaiting_reply_since.is_not(None)
        rest = Thread.awaiting_reply_since.is_(None)
        # The same order as by id (every awaiting_reply_since here is NULL), said so
        # that PostgreSQL sees the index order too: it does not treat IS NULL as
        # equality, and would otherwise walk the primary key past every thread.
        rest_order = [Thread.awaiting_reply_since, Thread.id]
    else:
        waiting = _waiting(Thread)
        rest = ~waiting
    rest_ids = stmt.where(rest).order_by(*rest_order)
    if shape.cursor == "rest":  # already among the rest
        return rest_ids.where(Thread.id > _CURSOR_ID).limit(shape.limit).subquery("page")
    if shape.cursor == "waiting":
        stmt = stmt.where(
            tuple_(Thread.awaiting_reply_since, Thread.id)
            > tuple_(_cursor_when(Thread.awaiting_reply_since), _CURSOR_ID)
        )
    if waiting is None:
        return rest_ids.limit(shape.limit).subquery("page")
    waiting_ids = stmt.where(waiting).order_by(Thread.awaiting_reply_since, Thread.id)
    parts = [part.limit(shape.limit).subquery() for part in (waiting_ids, rest_ids)]
    return union_all(*(select(part.c.id) for part in parts)).subquery("page")


def _cursor_parameters(query: InboxQuery, params: dict) -> str | None:
    """The cursor's kind for the shape; its time and id go into `params`."""
    cursor = _decode_cursor(query.cursor) if query.cursor else None
    if not cursor:
        return None
    rank, params["cursor_when"], params["cursor_id"] = cursor
    if query.sort == "urgent":
        return "rest" if rank != 0 or params["cursor_when"] is None else "waiting"
    return "none" if params["cursor_when"] is None else "after"


def _cursor_after(row: InboxRow, query: InboxQuery) -> str:
    if query.sort == "urgent":
        if row.deadline is not None:  # awaiting an answer, not closed
            return _encode_cursor([0, row.awaiting_reply_since.isoformat(), row.id])
        return _encode_cursor([1, None, row.id])
    return _encode_cursor([0, row.last_message_at.isoformat(), row.id])


#: Joins a thread's tag names in threads.tag_names (the triggers of migration
#: c3d9a5f1e7b2); str.split() treats it as whitespace, so clean_tag_name never lets
#: it into a name.
_TAG_SEPARATOR = "\x1f"

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


def list_inbox(
    user: User,
    query: InboxQuery,
    *,
    options: FilterOptions | None = None,
    page_size: int = PAGE_SIZE,
    now: datetime | None = None,
) -> InboxPage:
    """One page of the threads `user` may see, matching `query`, in one query.

    `options` is filter_options(user), if the caller has it already. `now` (default:
    the current time) is what the answer-due badges count from.
    """
    params: dict = scope_parameters(user)
    dialect = db.session.get_bind().dialect.name
    shape = _Shape(
        dialect=dialect,
        scope=scope_kind(user),
        status=query.status if query.status in ("open", "pending", "closed") else None,
        channel=bool(query.channel_id),
        marketplace=bool(query.marketplace),
        organisation=bool(query.organisation_id),
        assignee=query.assignee if query.assignee in ("me", "unassigned") else "anyone",
        tag=bool(query.tag),
        search=_search_parameters(query.q, params, dialect),
        sort="urgent" if query.sort == "urgent" else "activity",
        cursor=_cursor_parameters(query, params),
        limit=page_size + 1,
    )
    params["channel_id"] = query.channel_id
    params["marketplace"] = query.marketplace.upper() if query.marketplace else None
    params["organisation_id"] = query.organisation_id
    params["assignee_id"] = user.id
    params["tag"] = query.tag.lower() if query.tag else None
    # Core execution on the session's connection: plain rows, none of the ORM's
    # loading machinery, which the columns do not need.
    found = db.session.connection().execute(_page_statement(shape), params).all()
    rows = found[:page_size]
    channels = _channel_names(rows, options or filter_options(user)) if rows else {}
    now = now or utcnow()
    page = InboxPage()
    page.rows = [_inbox_row(values, channels, now) for values in rows]
    if len(found) > page_size:
        page.next_cursor = _cursor_after(page.rows[-1], query)
    return page


@functools.lru_cache(maxsize=512)
def _page_statement(shape: _Shape) -> Select:
    if shape.sort == "urgent":
        # The page's ids from _urgent_ids' two index-ordered parts.
        page_ids = _urgent_ids(_filtered(select(Thread.id), shape), shape)
    elif "ids" in shape.search:
        # SQLite's search matches come as a list of ids to sort: sort the ids, then
        # read the page's rows. Sorting whole rows, SQLite's sorter copied every
        # column of every match (149 threads of a rare word: 0.33 against 0.19 ms).
        page_ids = (
            _after_cursor(_filtered(select(Thread.id), shape), shape)
            .order_by(*_sort_keys(Thread, shape.sort))
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
        rows = _after_cursor(_filtered(rows.select_from(Thread), shape), shape)
    return (
        rows.outerjoin(User, User.id == Thread.assignee_id)
        .order_by(*_sort_keys(Thread, shape.sort))
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


def _inbox_row(values: Row, channels: dict[int, ChannelOption], now: datetime) -> InboxRow:
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
    status_class, status_label = STATUS_BADGES[status]
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
        tags=tuple(sorted(tags.split(_TAG_SEPARATOR))) if tags else (),
        buyer_label=buyer_name or buyer_address or "Unknown",
        subject_label=subject or "(no subject)",
        status_class=status_class,
        status_label=status_label,
    )
    # From the row built, not from `values`: it has the status and awaiting_reply_since
    # response_deadline reads, as plain attributes (a Row's are slower to read).
    row.deadline = response_deadline(row)
    row.due_class, row.due_title, row.due_text, row.is_overdue = answer_due(row.deadline, now)
    return row


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
