"""The mail as the standard library's `email` package reads it, into a MailParts: slower
than fast_reader.py, and lenient where fast-mail-parser refuses (bad Base64 decoded as
far as it goes, broken headers kept). Pure: no database, no Flask, no network.
"""

from __future__ import annotations

import logging
from email.message import Message
from email.parser import BytesFeedParser
from email.policy import Policy, compat32
from email.policy import default as default_policy
from functools import lru_cache

from ingest.mail.deadline import Deadline, TooSlowToParse
from ingest.mail.headers import decode_words, header_addresses
from ingest.mail.nesting import add_unread_rest, split_too_deep
from ingest.mail.parts import MailParts

log = logging.getLogger(__name__)

#: Headers read as text (RFC 2047 words decoded); the others are read as written.
_TEXT_HEADERS = (
    "subject",
    "auto-submitted",
    "precedence",
    "x-autoreply",
    "x-autorespond",
    "x-auto-response-suppress",
    "x-amazon-mail-relay-type",
)

#: The email package is fed this much at a time (as its BytesParser feeds it), and the
#: deadline is checked in between: reading a long mail is work spread over the feeds.
_FEED_BYTES = 64 * 1024


def read_email(
    data: bytes, max_attachment_bytes: int, deadline: Deadline | None = None
) -> MailParts:
    """The mail read with structured headers, or as plain text where they break the
    email package; raises what the email package raises when even that fails, and
    TooSlowToParse once `deadline` has passed."""
    deadline = deadline or Deadline(None)
    data, rest = split_too_deep(data)
    try:
        mail = _read(data, _remembering_headers(), max_attachment_bytes, deadline)
    except TooSlowToParse:
        raise
    except Exception as exc:
        # The email package's structured header parser raises on some malformed headers
        # (IndexError, ValueError, AttributeError from deep inside it). compat32 keeps
        # every header as plain text and never parses it that way: read the mail again
        # with it rather than quarantine a buyer's message for one broken header.
        log.info("parsing again without structured headers: %s: %s", type(exc).__name__, exc)
        mail = _read(data, compat32, max_attachment_bytes, deadline)
    add_unread_rest(mail, rest, max_attachment_bytes)
    return mail


#: How many parsed header values one mail's reading keeps (see _remembering_headers).
_HEADERS_KEPT = 256


def _remembering_headers() -> Policy:
    """policy.default, with each header value parsed once per mail rather than on every
    read of it.

    The email package reads a part's Content-Type again and again (while it parses the
    part, and then for get_content_type, get_param, get_filename, ...), and under
    policy.default each read builds a new header object through the header registry: on
    mail of hundreds of nested parts that was most of the time. The registry builds the
    same object from the same (name, value) every time, so the first one serves the
    others (header objects are immutable strings). A fresh cache per mail, and a bounded
    one, so that no mail's headers outlive its reading.
    """
    return default_policy.clone(
        header_factory=lru_cache(maxsize=_HEADERS_KEPT)(default_policy.header_factory)
    )


def _read(data: bytes, policy: Policy, max_attachment_bytes: int, deadline: Deadline) -> MailParts:
    """The mail as the email package reads it under `policy`."""
    feed = BytesFeedParser(policy=policy)
    for start in range(0, len(data), _FEED_BYTES):
        feed.feed(data[start : start + _FEED_BYTES])
        deadline.check()
    msg = feed.close()
    headers: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        headers.setdefault(name.lower(), []).append(str(value))
    for name in _TEXT_HEADERS:
        if name in headers:
            headers[name] = [_stdlib_header(msg, name)]
    mail = MailParts(
        headers=headers,
        from_=header_addresses(headers, "from"),
        to=header_addresses(headers, "to"),
        cc=header_addresses(headers, "cc"),
        # The substring first: reading the type parses the header (RFC 3464 reports).
        is_dsn="report" in "".join(headers.get("content-type", [])).lower()
        and msg.get_content_type() == "multipart/report"
        and (msg.get_param("report-type") or "").lower() == "delivery-status",
    )
    for part in msg.walk():
        deadline.check()
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if payload is None:
            inner = part.get_payload()
            payload = inner[0].as_bytes() if isinstance(inner, list) and inner else b""
        content_id = part.get("Content-ID")
        mail.add_leaf(
            ctype=part.get_content_type(),
            disposition=(part.get_content_disposition() or "").lower(),
            filename=part.get_filename() or "",
            content_id=str(content_id).strip().strip("<>") if content_id else None,
            payload=payload,
            charset=part.get_param("charset"),
            max_attachment_bytes=max_attachment_bytes,
        )
    return mail


def _stdlib_header(msg: Message, name: str) -> str:
    """A header as text, tolerant of malformed encodings."""
    try:
        value = msg.get(name)
    except Exception:  # a header the policy cannot parse: fall back to raw text
        value = msg.get_all(name, failobj=[""])[0] if hasattr(msg, "get_all") else ""
    if value is None:
        return ""
    if msg.policy is compat32:  # (see read_email): still encoded
        value = decode_words(str(value))
    return str(value)
