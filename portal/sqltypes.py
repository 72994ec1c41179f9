"""Declarative base and column types shared by all models.

Kept outside `portal.models` so `portal.extensions` can import it without
loading the models (which themselves import `db` from extensions).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Enum, MetaData
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Named constraints, so migrations can drop and alter them (SQLite batch mode needs names).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


#: INSERT statements with ON CONFLICT, by dialect: one statement lets the database decide
#: between two workers writing the same row (the databases we run on both have it).
UPSERT_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def upsert_insert(dialect: str, table: Any) -> Any:
    """An INSERT of `table` that can take .on_conflict_do_update/_nothing on `dialect`."""
    try:
        return UPSERT_INSERTS[dialect](table)
    except KeyError:
        raise RuntimeError(f"INSERT … ON CONFLICT is not supported on {dialect}") from None


class UTCDateTime(TypeDecorator):
    """Stores UTC as a naive timestamp and hands back aware datetimes.

    SQLite keeps no time zone and PostgreSQL's `timestamptz` converts on the way
    out; a naive UTC column behaves the same on both.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def str_enum(enum_cls: type[enum.Enum], length: int = 32) -> Enum:
    """A portable enum column: VARCHAR + CHECK, storing the members' values."""
    return Enum(
        enum_cls,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


#: The largest id an INTEGER primary key holds on PostgreSQL (and SQLite's int range).
MAX_ID = 2**31 - 1


def parse_id(value: object) -> int | None:
    """An id from a query string, or None: a bigger number would overflow the database."""
    text = str(value or "")
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def coerce_id(value: object) -> int:
    """A select's id choice (WTForms `coerce=`): an int as it is, text through parse_id;
    ValueError for anything else, which the field reports as an invalid choice."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = parse_id(value)
    if number is None:
        raise ValueError(f"not an id: {value!r}")
    return number
