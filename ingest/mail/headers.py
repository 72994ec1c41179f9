"""Header values as the parser keeps them: the (display name, address) pairs of an
address header, Message-IDs, the date, and RFC 2047 encoded words. Both readers hand
these functions the header text as written, so the two readings agree. Pure: no
database, no Flask, no network.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

from ingest.mail.charsets import storable

_ADDR_SPEC_RE = re.compile(r"^[^@\s\"<>(),;]+@[^@\s\"<>(),;]+$")


def decode_words(text: str) -> str:
    """RFC 2047 encoded words decoded (left as they are if broken)."""
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except Exception:
        return text


def header_addresses(headers: dict[str, list[str]], name: str) -> list[tuple[str, str]]:
    """(display name, lower-case address) pairs of an address header, from its raw text.

    `getaddresses` rather than the policy's address parser: that one builds a full
    token tree per header, and gave the same pairs on the benchmark corpus and every
    fixture.
    """
    return [
        pair
        for value in headers.get(name, [])
        # Cached: the same few values (a channel's address, a buyer's relay alias) come
        # back in mail after mail, and getaddresses is most of what reading them costs.
        # Long ones are not: a worker would keep a thousand of them after their mail.
        for pair in (_cached_addresses if len(value) <= 512 else _addresses_of)(value)
    ]


def _addresses_of(value: str) -> tuple[tuple[str, str], ...]:
    pairs = getaddresses([value])
    return tuple(_address_pairs([(decode_words(display), addr) for display, addr in pairs]))


_cached_addresses = lru_cache(maxsize=1024)(_addresses_of)


def _address_pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # Folding and tabs left in a display name become single spaces, as in MailParts.header.
    return [
        (" ".join(display.split()), storable(addr).lower())
        for display, addr in pairs
        if _ADDR_SPEC_RE.match(addr)
    ]


def message_ids(value: str) -> list[str]:
    """The `<…>` Message-IDs in a header value (Message-ID, In-Reply-To, References)."""
    # Cleaned first: 8-bit header bytes arrive as surrogates, which \s does not match,
    # so "<NBSP>" (bytes C2 A0) would pass as an id and only become whitespace later.
    return re.findall(r"<[^<>\s]+>", storable(value))


#: The longest header line RFC 5322 allows, and the column's length.
MAX_MESSAGE_ID = 998


def message_id_as_written(value: str) -> str | None:
    """A Message-ID or In-Reply-To header's id: the first `<…>` one, else the value as
    written (trimmed, white space folded), else None where it holds no id at all.

    Some senders write their Message-ID without brackets or with one missing; the
    replies to them cite it the same way, so keeping it as written is what lets a reply
    find its thread (a made-up id in its place never would)."""
    ids = message_ids(value)
    if ids:
        return ids[0]
    written = " ".join(storable(value).split())
    return written[:MAX_MESSAGE_ID] if written.strip("<> ") else None


def references_as_written(value: str) -> list[str]:
    """A References header's ids: the `<…>` ones, else each word as written."""
    return message_ids(value) or [
        word[:MAX_MESSAGE_ID] for word in storable(value).split() if word.strip("<>")
    ]


def parse_date(value: str) -> datetime | None:
    """A Date header as an aware UTC datetime (UTC assumed where it names no zone);
    None where it is missing or not a date."""
    if not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
