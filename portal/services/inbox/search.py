"""The inbox search box: a query's terms as conditions on threads.

What a search matches (both databases): the query is split on whitespace into at
most MAX_TERMS terms, all of which must match (AND), each in the thread's subject,
buyer name, buyer address, order ID or the text of any of its messages except
internal notes. A term matches whole words and word prefixes, case- and (SQLite)
accent-insensitively: "refund" finds "refunded"; "111-2222222" finds order
111-2222222-3333333, "3333333" finds it too, as does "buyer12" for the alias
buyer12@marketplace.amazon.de. On PostgreSQL any substring (3+ characters) of the
four thread fields matches as well. Punctuation splits words and is otherwise
ignored; a term with no letter or digit is dropped. User text never reaches the
FTS or tsquery parser as syntax: each term is a quoted phrase.

SQLite: FTS5 tables messages_fts and threads_fts (migrations 5e4a1c7d9b20 and
4f7b2c9e8d15). A term that matches more than DENSE_MATCHES rows falls back to the
substring LIKE scan in activity order, which finds a page of a common word among
the newest threads sooner than the FTS set could be built. PostgreSQL:
threads.search_document (tsvector, 'simple' configuration, GIN) and one pg_trgm
index on the four fields joined by spaces (_search_fields, migration 8b5e1f3a7c29).
The database objects are named in portal/models/search.py.

Like the filters, a search has a shape (each term's kind of match, `search_kinds`),
which decides the SQL, and values (the terms, the SQLite matches), which are
named parameters.
"""

from __future__ import annotations

import functools

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Text,
    TextClause,
    bindparam,
    column,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.sql.elements import BindParameter

from portal.extensions import db
from portal.models import Message, Thread

MAX_TERMS = 5
DENSE_MATCHES = 2000


def search_kinds(q: str, params: dict, dialect: str) -> tuple[str, ...]:
    """Each term's kind of match: "ids", "like", "tsquery" or "tsquery+trigram".

    The terms' values go into `params` (like_N, ids_N, term_N). On SQLite this runs
    the terms' FTS lookups, in one statement.
    """
    terms = _search_terms(q)
    if not terms:
        return ()
    for number, term in enumerate(terms):
        params[f"like_{number}"] = f"%{_escape_like(term)}%"
    if dialect == "sqlite":
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


def search_conditions(kinds: tuple[str, ...]) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a search of `kinds` (search_kinds), one per term."""
    conditions = []
    for number, kind in enumerate(kinds):
        like = bindparam(f"like_{number}", type_=String)
        if kind == "like":
            conditions.append(_like_term(like))
        elif kind == "ids":
            conditions.append(_listed_ids(bindparam(f"ids_{number}", type_=String)))
        else:
            term = bindparam(f"term_{number}", type_=String)
            conditions.append(_tsquery_term(term, like, trigrams=kind == "tsquery+trigram"))
    return conditions


def _search_terms(q: str) -> list[str]:
    terms = [t.lower() for t in q.split() if any(c.isalnum() for c in t)]
    return terms[:MAX_TERMS]


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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


# --- SQLite: FTS5 ---------------------------------------------------------------------


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
    # (bench/README.md), and neither Python nor SQLAlchemy handles the ids one by one.
    listed = func.json_each(thread_ids)
    return Thread.id.in_(select(column("value", Integer)).select_from(listed))


# --- PostgreSQL: tsvector and trigrams ------------------------------------------------


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
