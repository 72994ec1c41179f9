"""Raw RFC 5322 bytes -> ParsedMessage: the parser's entry point. Pure: no database, no
Flask, no network.

The MIME structure is read by fast-mail-parser (fast_reader.py); mail it refuses or
cannot represent is read by the standard library's `email` package instead
(email_reader.py), as all mail was before. Both readers fill the same MailParts
(parts.py), and everything after that is one code path, here: Message-IDs, addresses
and the date (headers.py), the body text (bodies.py), Amazon's relay metadata
(amazon.py), the classification of automatic mail (classify.py), and text a database
takes (charsets.py). tests/ingest/mail/test_parse_readers.py parses every fixture, the
benchmark's mix and MIME edge cases both ways, and lists where the two readers differ
and which one the RFCs side with.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from datetime import datetime

from ingest.mail import amazon, classify
from ingest.mail.bodies import html_to_text, strip_quoted
from ingest.mail.charsets import storable
from ingest.mail.deadline import Deadline, TooSlowToParse
from ingest.mail.dsn import BounceReport, read_bounce
from ingest.mail.email_reader import read_email
from ingest.mail.fast_reader import read_fast
from ingest.mail.headers import (
    header_addresses,
    message_id_as_written,
    parse_date,
    references_as_written,
)
from ingest.mail.parts import MailParts, ParsedAttachment

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
#: How much of the text and of the HTML body is kept as text, in characters (mail
#: clients clip far sooner: Gmail at about 100 KB). Longer bodies are mail looping
#: through lists, logs or dumps pasted in; the whole mail stays in the raw copy, which
#: agents can download. It bounds what one mail costs ingest in memory, and matches
#: what PostgreSQL's search document indexes of a message.
MAX_BODY_CHARS = 300_000
#: A cut body ends at a line break when one is this close before the limit.
_CUT_AT_LINE = 2_000

#: Where the address a message was delivered to is found, most reliable first; then To, Cc.
_DELIVERY_HEADERS = ("delivered-to", "x-original-to", "envelope-to")


@dataclass
class ParsedMessage:
    """A mail as the inbound service stores it: its headers, text and attachments,
    Amazon's relay metadata, and whether it is automatic."""

    message_id: str
    in_reply_to: str | None
    references: list[str]
    subject: str
    from_name: str
    from_address: str
    to_addresses: list[str]
    cc_addresses: list[str]
    #: Candidate delivery addresses, most reliable first (Delivered-To … Cc).
    delivery_addresses: list[str]
    sent_at: datetime | None
    text: str
    html: str | None
    visible_text: str
    attachments: list[ParsedAttachment]
    #: What identifies the mail: the hash of its bytes without the fields added on the
    #: way (`content_hash`); and of all its bytes, as earlier versions hashed it.
    content_hash: str
    size: int
    raw_hash: str = ""
    order_id: str | None = None
    buyer_name: str = ""
    relay_alias: str | None = None
    buyer_text: str | None = None
    is_autoreply: bool = False
    is_bounce: bool = False
    is_amazon_notification: bool = False
    is_seller_central_copy: bool = False
    #: For a bounce: which message it returns and why (one of our replies, maybe).
    bounce: BounceReport | None = None
    #: Whether the text or the HTML body was cut at MAX_BODY_CHARS.
    body_cut: bool = False

    @property
    def is_automatic(self) -> bool:
        """Mail that must never open a conversation or trigger mail of ours."""
        return (
            self.is_autoreply
            or self.is_bounce
            or self.is_amazon_notification
            or self.is_seller_central_copy
        )

    @property
    def snippet(self) -> str:
        return _collapsed_prefix(self.buyer_text or self.visible_text or self.text, _SNIPPET_CHARS)


_SNIPPET_CHARS = 200
#: What `str.split()` splits on is what `\s` matches (both are Unicode whitespace).
_WORD = re.compile(r"\S+")


def _collapsed_prefix(text: str, limit: int) -> str:
    """`" ".join(text.split())[:limit]`, reading only the words it keeps.

    Splitting a whole text made a list of all its words: for a text of a million
    characters, some ten times its size in memory at once, in the ingest process
    and the parse worker alike, only to keep the first `limit` characters.
    """
    words: list[str] = []
    length = -1  # the separators come between words
    for word in _WORD.finditer(text):
        words.append(word.group())
        length += 1 + len(words[-1])
        if length >= limit:
            break
    return " ".join(words)[:limit]


class UnparseableMessage(ValueError):
    """The bytes are not an e-mail we can make sense of; keep them raw, quarantined."""


def synthetic_message_id(digest: str) -> str:
    """The Message-ID given to mail without one: stable, from its content hash."""
    return f"<{digest[:40]}@synthetic.sellerdesk>"


#: Header fields added to a mail on its way (trace, delivery, authentication results,
#: a mailbox's own flags): two copies of one mail, delivered along two ways (two
#: mailboxes, IMAP and HTTP, a redelivery), differ in these alone. Every X- field is
#: left out too: the way adds most of them (X-Original-To, X-SES-…, X-Mailgun-…,
#: X-MS-Exchange-…, spam verdicts).
_TRANSPORT_FIELDS = frozenset(
    {
        b"received",
        b"return-path",
        b"delivered-to",
        b"envelope-to",
        b"received-spf",
        b"authentication-results",
        b"dkim-signature",
        b"status",
        b"content-length",
        b"lines",
    }
)
_TRANSPORT_PREFIXES = (b"x-", b"arc-")


def content_hash(raw: bytes) -> str:
    """The SHA-256 of the mail as its sender wrote it, whatever its line ends and the
    fields added on the way: what identifies a stored mail."""
    # Line endings differ between stores (IMAP hands back CRLF for mail appended
    # with LF), so hash a normalised form: the same mail hashes the same anywhere.
    return _hash_normalised(_lf_endings(raw))


def raw_hash(raw: bytes) -> str:
    """The SHA-256 of all the mail's bytes (LF line ends): its content hash in versions
    that hashed the fields added on the way too, which dedup still recognises."""
    return hashlib.sha256(_lf_endings(raw)).hexdigest()


def _lf_endings(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def _hash_normalised(data: bytes) -> str:
    """The SHA-256 of `data` (LF line ends) without the header fields added on the way,
    and with one line end at the end (a form post or an MTA may add or drop the last).

    Hashed piece by piece: the body is a view of `data`, not a copy, so a mail of a few
    MB costs the parse worker no extra copies of it (three, when this joined the
    pieces first)."""
    digest = hashlib.sha256()
    end = data.find(b"\n\n")
    body_start = len(data) if end < 0 else end + 1
    keep = True
    for line in data[:body_start].splitlines(keepends=True):
        if line[:1] not in (b" ", b"\t"):  # a new field; else a continuation of the last
            name = line.split(b":", 1)[0].strip().lower()
            keep = name not in _TRANSPORT_FIELDS and not name.startswith(_TRANSPORT_PREFIXES)
        if keep:
            digest.update(line)
    body_end = len(data)
    while body_end > body_start and data[body_end - 1] == _LF:  # the body's last line ends
        body_end -= 1
    digest.update(memoryview(data)[body_start:body_end])
    digest.update(b"\n")
    return digest.hexdigest()


_LF = ord("\n")


def parse_message(
    raw: bytes,
    *,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    time_limit: float | None = None,
) -> ParsedMessage:
    """Parse raw mail bytes. Raises UnparseableMessage for bytes that are not mail, and
    TooSlowToParse when parsing them takes more than `time_limit` seconds."""
    return _parse(raw, max_attachment_bytes, fast=True, deadline=Deadline(time_limit))


def _parse(
    raw: bytes, max_attachment_bytes: int, *, fast: bool, deadline: Deadline | None = None
) -> ParsedMessage:
    """parse_message, with fast-mail-parser (then the email package where it refuses
    the mail) or, with fast=False, the email package alone (what the tests compare)."""
    deadline = deadline or Deadline(None)
    if not raw.strip():
        raise UnparseableMessage("empty message")
    # IMAP servers hand out CRLF line endings; decoded text would keep the CR, so
    # markers such as Amazon's "Begin message" would not match. The same normalised
    # bytes are what content_hash hashes: convert them once.
    data = _lf_endings(raw)
    mail = read_fast(data, max_attachment_bytes, deadline) if fast else None
    if mail is None:
        try:
            mail = read_email(data, max_attachment_bytes, deadline)
        except TooSlowToParse:
            raise
        except Exception as exc:  # even without structured headers: not mail we can read
            raise UnparseableMessage(f"{type(exc).__name__}: {exc}") from exc
    deadline.check()
    parsed = _parsed(mail, _hash_normalised(data), len(raw), deadline)
    parsed.raw_hash = hashlib.sha256(data).hexdigest()
    if parsed.is_bounce:
        parsed.bounce = read_bounce(data)
        deadline.check()
    _clean_strings(parsed)
    return parsed


def _parsed(mail: MailParts, digest: str, size: int, deadline: Deadline) -> ParsedMessage:
    if not any(h in mail.headers for h in ("from", "to", "date", "message-id", "subject")):
        raise UnparseableMessage("no From, To, Date, Subject or Message-ID header: not an e-mail")
    first = {name: values[0] for name, values in mail.headers.items()}
    message_id = message_id_as_written(first.get("message-id", ""))
    subject = mail.header("Subject")
    from_name, from_address = mail.from_[0] if mail.from_ else ("", "")
    text, text_cut = _cut("\n\n".join(p for p in mail.text_parts if p.strip()))
    html, html_cut = _cut("\n".join(mail.html_parts)) if mail.html_parts else (None, False)
    if not text and html:
        text = html_to_text(html)
        deadline.check()
    buyer_text = amazon.buyer_text(text)
    # The reply heuristic below is the costliest step for long text.
    deadline.check()
    return ParsedMessage(
        message_id=message_id or synthetic_message_id(digest),
        in_reply_to=message_id_as_written(first.get("in-reply-to", "")),
        references=references_as_written(first.get("references", "")),
        subject=subject,
        from_name=from_name,
        from_address=from_address,
        to_addresses=[a for _, a in mail.to],
        cc_addresses=[a for _, a in mail.cc],
        delivery_addresses=_delivery_addresses(mail),
        sent_at=parse_date(first.get("date", "")),
        text=text,
        html=html,
        # Amazon's markers already isolate what the buyer wrote; the reply-parser
        # heuristic (the costliest step of parsing) is only needed for other mail.
        visible_text=buyer_text or (strip_quoted(text) if text else ""),
        attachments=mail.attachments,
        content_hash=digest,
        size=size,
        order_id=amazon.order_id_in(f"{subject}\n{text}"),
        buyer_name=amazon.buyer_name(subject, from_name),
        relay_alias=amazon.relay_alias(from_address),
        buyer_text=buyer_text,
        is_autoreply=classify.is_autoreply(mail),
        is_bounce=classify.is_bounce(mail, from_address),
        is_amazon_notification=classify.is_amazon_notification(mail),
        is_seller_central_copy=classify.is_seller_central_copy(from_address),
        body_cut=text_cut or html_cut,
    )


def _cut(body: str) -> tuple[str, bool]:
    """The body's first MAX_BODY_CHARS characters, at a line break where one is near;
    and whether anything was cut."""
    if len(body) <= MAX_BODY_CHARS:
        return body, False
    end = body.rfind("\n", MAX_BODY_CHARS - _CUT_AT_LINE, MAX_BODY_CHARS)
    return body[: end + 1 if end >= 0 else MAX_BODY_CHARS], True


def _delivery_addresses(mail: MailParts) -> list[str]:
    delivered = [header_addresses(mail.headers, name) for name in _DELIVERY_HEADERS]
    # A dict keeps the first place of each address: a list's `in` made a To header of
    # thousands of addresses cost their square.
    return list(
        dict.fromkeys(addr for pairs in (*delivered, mail.to, mail.cc) for _, addr in pairs)
    )


_TEXT_FIELDS = tuple(f.name for f in fields(ParsedMessage) if f.type.startswith("str"))
_LIST_FIELDS = tuple(f.name for f in fields(ParsedMessage) if f.type == "list[str]")


def _clean_strings(parsed: ParsedMessage) -> None:
    for name in _TEXT_FIELDS:
        value = getattr(parsed, name)
        if value is not None:
            setattr(parsed, name, storable(value))
    for name in _LIST_FIELDS:
        setattr(parsed, name, [storable(v) for v in getattr(parsed, name)])
    for attachment in parsed.attachments:
        attachment.filename = storable(attachment.filename)
        attachment.content_type = storable(attachment.content_type)
        if attachment.content_id is not None:
            attachment.content_id = storable(attachment.content_id)
