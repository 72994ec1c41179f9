"""Raw RFC 5322 bytes -> ParsedMessage. Pure: no database, no Flask, no network.

The MIME structure is read by fast-mail-parser (Rust, PyPI); mail it refuses (bad
Base64, a header block it cannot split, nesting past its cap) or cannot represent
(bare CR line ends, header names and boundaries the RFCs do not allow) is read by
the standard library's `email` package instead, as all mail was before. Both
readers fill the same `_Mail`, and everything after that (Message-IDs, dates,
charsets, Amazon's metadata, classification) is one code path.
tests/ingest/mail/test_parse_readers.py parses every fixture, the benchmark's mix and MIME
edge cases both ways, and lists where the two readers differ and which one the RFCs
side with.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import logging
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.policy import Policy, compat32
from email.policy import default as default_policy
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

import fast_mail_parser

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024

ORDER_ID_RE = re.compile(r"\b((?:\d{3}|D\d{2})-\d{7}-\d{7})\b")
# Amazon's Begin/End message markers, in every language: a line of dashes around words.
MARKER_LINE_RE = re.compile(r"^[ \t]*-{5,}[ \t]*\S.*?-{5,}[ \t]*$", re.MULTILINE)
RELAY_DOMAIN_RE = re.compile(r"@marketplace\.amazon\.[a-z.]+$", re.IGNORECASE)
SUBJECT_BUYER_RE = re.compile(r"(?:customer|Kunde|client|cliente|klant|kund)\s+(.+?)\s*\(", re.I)
FROM_SUFFIX_RE = re.compile(r"\s*-\s*(?:Amazon\s+)?Marketplace\s*$", re.IGNORECASE)

_BULK_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}


@dataclass
class ParsedAttachment:
    filename: str
    content_type: str
    size: int
    content_id: str | None = None
    is_inline: bool = False
    #: None when the attachment was over the size limit (recorded, bytes not kept).
    data: bytes | None = None

    @property
    def is_skipped(self) -> bool:
        return self.data is None


@dataclass
class ParsedMessage:
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
    content_hash: str
    size: int
    order_id: str | None = None
    buyer_name: str = ""
    relay_alias: str | None = None
    buyer_text: str | None = None
    is_autoreply: bool = False
    is_bounce: bool = False
    is_amazon_notification: bool = False
    is_seller_central_copy: bool = False

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
        return " ".join((self.buyer_text or self.visible_text or self.text).split())[:200]


class UnparseableMessage(ValueError):
    """The bytes are not an e-mail we can make sense of; keep them raw, quarantined."""


# --- decoding ------------------------------------------------------------------------


def _jis_to_sjis(j1: int, j2: int) -> bytes:
    # JIS X 0208 row/cell -> Shift_JIS, so cp932 can decode Microsoft's extensions
    # (circled digits, ㈱ …) that the strict iso-2022-jp codec rejects.
    s1 = (j1 + 1) // 2 + (0x70 if j1 <= 0x5E else 0xB0)
    s2 = j2 + (0x1F if j1 % 2 else 0x7E)
    if j1 % 2 and s2 >= 0x7F:
        s2 += 1
    return bytes((s1, s2))


def decode_iso2022jp_ms(data: bytes) -> str:
    """Decode ISO-2022-JP including the CP50220 (`iso-2022-jp-ms`) extensions."""
    out = bytearray()
    mode = "ascii"
    i = 0
    while i < len(data):
        if data[i] == 0x1B and i + 2 < len(data):
            seq = data[i + 1 : i + 3]
            if seq in (b"$B", b"$@"):
                mode, i = "jis", i + 3
                continue
            if seq in (b"(B", b"(J"):
                mode, i = "ascii", i + 3
                continue
            if seq == b"(I":
                mode, i = "kana", i + 3
                continue
        byte = data[i]
        # Only JIS X 0208 byte pairs (0x21-0x7E each) are converted; anything else in
        # broken mail is passed on and decoded (or replaced) like the ASCII around it.
        if (
            mode == "jis"
            and 0x21 <= byte <= 0x7E
            and i + 1 < len(data)
            and 0x21 <= data[i + 1] <= 0x7E
        ):
            out += _jis_to_sjis(byte, data[i + 1])
            i += 2
        elif mode == "kana" and 0x21 <= byte <= 0x5F:
            out.append(byte + 0x80)
            i += 1
        else:
            out.append(byte)
            i += 1
    return out.decode("cp932", errors="replace")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode body bytes by their declared charset, with fallbacks; never raises."""
    charset = (charset or "").strip().strip('"').lower()
    if charset.startswith("iso-2022-jp") or (not charset and b"\x1b$B" in data):
        try:
            return data.decode("iso2022_jp")
        except UnicodeDecodeError:
            return decode_iso2022jp_ms(data)
    if charset in ("iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii", ""):
        # Mail labelled latin-1 or ASCII is very often really windows-1252 (or UTF-8).
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1252", errors="replace")
    if charset in ("shift_jis", "shift-jis", "sjis", "x-sjis"):
        charset = "cp932"
    try:
        return data.decode(charset)
    except LookupError:
        log.info("unknown charset %r; decoding as UTF-8", charset)
    except ValueError:  # undecodable bytes, or a NUL in the charset's name
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


# --- what a reader finds in the mail --------------------------------------------------


@dataclass
class _Mail:
    """The parts of a mail the rest of the parser reads, whichever reader read them."""

    #: Header text by lower-case name, every value in order. RFC 2047 words are decoded
    #: in the headers read as text (Subject, the auto-reply headers); Message-IDs,
    #: dates and delivery addresses are read from these values by the same code for
    #: both readers.
    headers: dict[str, list[str]]
    #: (display name, lower-case address) pairs of From, To and Cc.
    from_: list[tuple[str, str]]
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    text_parts: list[str] = field(default_factory=list)
    html_parts: list[str] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)
    is_dsn: bool = False

    def header(self, name: str) -> str:
        """The first value of a header, its whitespace runs made single spaces."""
        values = self.headers.get(name.lower())
        return " ".join(values[0].split()) if values else ""

    def add_leaf(
        self,
        ctype: str,
        disposition: str,
        filename: str,
        content_id: str | None,
        payload: bytes,
        charset: str | None,
        max_attachment_bytes: int,
    ) -> None:
        """Sort one leaf part: body text, or an attachment (inline or not)."""
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            # Line ends as in the rest of the mail (LF, see parse_message) whatever the
            # transfer encoding held: Base64 text often carries CRLF, and a decoded
            # quoted-printable line break is CRLF (RFC 2045 6.7).
            text = decode_bytes(payload, charset).replace("\r\n", "\n")
            (self.text_parts if ctype == "text/plain" else self.html_parts).append(text)
            return
        if ctype == "message/delivery-status" or ctype.startswith("multipart/"):
            return
        size = len(payload)
        self.attachments.append(
            ParsedAttachment(
                filename=_safe_filename(filename, ctype, len(self.attachments) + 1),
                content_type=ctype,
                size=size,
                content_id=content_id,
                is_inline=disposition == "inline"
                or (content_id is not None and disposition != "attachment"),
                data=payload if size <= max_attachment_bytes else None,
            )
        )


#: Where the address a message was delivered to is found, most reliable first; then To, Cc.
_DELIVERY_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To")
_ADDR_SPEC_RE = re.compile(r"^[^@\s\"<>(),;]+@[^@\s\"<>(),;]+$")


def _address_pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # Folding and tabs left in a display name become single spaces, as in _Mail.header.
    return [
        (" ".join(display.split()), _clean(addr).lower())
        for display, addr in pairs
        if _ADDR_SPEC_RE.match(addr)
    ]


# --- fast-mail-parser ------------------------------------------------------------------


def _read_fast(data: bytes, max_attachment_bytes: int) -> _Mail | None:
    """The mail as fast-mail-parser reads it; None where it refuses the mail."""
    if b"\r" in data:
        # A CR that is not part of a CRLF (converted before): it ends header lines for
        # the email package, while fast-mail-parser keeps it inside the header's value.
        return None
    try:
        root = fast_mail_parser.parse_email_tree(data)
    except fast_mail_parser.ParseError as exc:
        log.debug("fast-mail-parser refused the mail (%s); reading it with email", exc)
        return None
    try:
        return _fast_mail(data, root, max_attachment_bytes)
    except _Refused as exc:
        log.debug("%s; reading the mail with email", exc)
        return None


def _fast_mail(data: bytes, root: fast_mail_parser.PyMimePart, max_attachment_bytes: int) -> _Mail:
    headers = _lower_names(root.headers)
    # The address headers as written: fast-mail-parser's values have their encoded words
    # decoded already (a decoded display name may hold commas and brackets), and its
    # address parser drops a whole header for one bad entry, a nested comment or an
    # empty list element, which RFC 5322 (3.2.2, 4.4) allows and the email package reads.
    addresses = _raw_address_headers(data)
    mail = _Mail(
        headers=headers,
        from_=_stdlib_addresses(addresses, "from"),
        to=_stdlib_addresses(addresses, "to"),
        cc=_stdlib_addresses(addresses, "cc"),
        is_dsn=_content_type(headers) == "multipart/report"
        and _param(headers, "report-type").lower() == "delivery-status",
    )
    for part in fast_mail_parser.walk(root):
        part_headers = headers if part is root else _lower_names(part.headers)
        if part.content is None and not _BOUNDARY_RE.fullmatch(_param(part_headers, "boundary")):
            # RFC 2046 5.1.1: 1 to 70 characters, the last not a space. The two readers
            # split mail with another "boundary" differently; the email package's
            # reading is the one mail of this kind has always had.
            raise _Refused("a multipart boundary RFC 2046 does not allow")
        # Containers carry no bytes of their own; a message/rfc822 part's bytes are the
        # message inside it, whose parts the walk visits next (as email's walk does).
        if part.content is None or part.is_message or part.children:
            continue
        mail.add_leaf(
            ctype=_content_type(part_headers, part.content_type),
            disposition=(part.disposition or "").lower(),
            filename=part.filename,
            content_id=part.content_id.strip().strip("<>") if part.content_id else None,
            payload=part.content,
            charset=_param(part_headers, "charset") or None,
            max_attachment_bytes=max_attachment_bytes,
        )
    return mail


#: The top-level header section: field lines and their continuation lines, up to the
#: first line that is neither (the empty line, or one both readers end the section at).
_HEADER_SECTION_RE = re.compile(rb"(?:(?:[^:\n]*:|[ \t])[^\n]*(?:\n|\Z))*")
_ADDRESS_FIELD_RE = re.compile(rb"(?im)^(from|to|cc)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)")


def _raw_address_headers(data: bytes) -> dict[str, list[str]]:
    """From, To and Cc of the top-level header section, as written (8-bit bytes kept
    as the email package keeps them, as surrogates)."""
    section = _HEADER_SECTION_RE.match(data)
    found: dict[str, list[str]] = {}
    for name, value in _ADDRESS_FIELD_RE.findall(data, 0, section.end() if section else 0):
        text = value.decode("ascii", "surrogateescape").replace("\n", "")
        found.setdefault(name.decode().lower(), []).append(text)
    return found


def _lower_names(headers: dict[str, list[str]]) -> dict[str, list[str]]:
    if headers and not _FIELD_NAMES_RE.fullmatch(":".join(headers)):
        raise _Refused(f"a header line is not a field: {list(headers)!r}")
    lowered: dict[str, list[str]] = {}
    for name, values in headers.items():
        lowered.setdefault(name.lower(), []).extend(values)
    return lowered


#: RFC 5322 3.6.8: a field name is printable ASCII but the colon (so the names are
#: checked at once, joined by colons). fast-mail-parser takes any text before a colon
#: for one ("\x00elivered-To", the "From " line of mbox); the email package ends the
#: header section at such a line, and its reading is kept.
_FIELD_NAMES_RE = re.compile(r"[\x21-\x39\x3b-\x7e]+(?::[\x21-\x39\x3b-\x7e]+)*")


class _Refused(ValueError):
    """Mail whose reading by fast-mail-parser is not the email package's, where the
    email package's reading is kept: it reads the mail instead."""


def _content_type(headers: dict[str, list[str]], read: str = "") -> str:
    """The part's media type; text/plain where it has none or an invalid one (RFC 2045
    5.2), as the email package's get_content_type says."""
    values = headers.get("content-type")
    if not values:
        return "text/plain"
    ctype = (read or values[0].split(";", 1)[0]).strip().lower()
    return ctype if ctype.count("/") == 1 else "text/plain"


_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,./:=? -]{0,69}[0-9A-Za-z'()+_,./:=?-]")


_PARAM_RE = re.compile(r'(?i);\s*([a-z0-9*_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')


def _param(headers: dict[str, list[str]], name: str) -> str:
    """A parameter of the Content-Type header, unquoted; "" if absent."""
    values = headers.get("content-type")
    if not values:
        return ""
    for key, value in _PARAM_RE.findall(values[0]):
        if key.lower() == name:
            return re.sub(r"\\(.)", r"\1", value[1:-1]) if value.startswith('"') else value
    return ""


# --- the email package -----------------------------------------------------------------

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


def _read_stdlib(data: bytes, policy: Policy, max_attachment_bytes: int) -> _Mail:
    """The mail as the email package reads it: slower, and lenient where the other
    reader refuses (bad Base64 decoded as far as it goes, broken headers kept)."""
    msg = BytesParser(policy=policy).parsebytes(data)
    headers: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        headers.setdefault(name.lower(), []).append(str(value))
    for name in _TEXT_HEADERS:
        if name in headers:
            headers[name] = [_stdlib_header(msg, name)]
    mail = _Mail(
        headers=headers,
        from_=_stdlib_addresses(headers, "from"),
        to=_stdlib_addresses(headers, "to"),
        cc=_stdlib_addresses(headers, "cc"),
        # The substring first: reading the type parses the header (RFC 3464 reports).
        is_dsn="report" in "".join(headers.get("content-type", [])).lower()
        and msg.get_content_type() == "multipart/report"
        and (msg.get_param("report-type") or "").lower() == "delivery-status",
    )
    for part in msg.walk():
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
    if msg.policy is compat32:  # (see parse_message): still encoded
        value = _decode_words(str(value))
    return str(value)


def _decode_words(text: str) -> str:
    """RFC 2047 encoded words decoded (left as they are if broken)."""
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except Exception:
        return text


def _stdlib_addresses(headers: dict[str, list[str]], name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header, from its raw text.

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
    return tuple(_address_pairs([(_decode_words(display), addr) for display, addr in pairs]))


_cached_addresses = lru_cache(maxsize=1024)(_addresses_of)


def _message_ids(value: str) -> list[str]:
    # Cleaned first: 8-bit header bytes arrive as surrogates, which \s does not match,
    # so "<NBSP>" (bytes C2 A0) would pass as an id and only become whitespace later.
    return re.findall(r"<[^<>\s]+>", _clean(value))


def _date(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --- bodies --------------------------------------------------------------------------------


def _safe_filename(name: str | None, ctype: str, index: int) -> str:
    name = (name or "").replace("\x00", "")
    name = re.sub(r"[\r\n\t/\\]+", "_", name).strip(" .")
    if not name:
        subtype = ctype.split("/")[-1] if "/" in ctype else "bin"
        name = f"attachment-{index}.{re.sub(r'[^a-z0-9]+', '', subtype.lower()) or 'bin'}"
    return name[:200]


def html_to_text(html: str) -> str:
    """A plain-text rendering of an HTML body, for search and snippets."""
    text = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", html)
    text = re.sub(r"(?i)<br\s*/?>|</(p|div|tr|li|h\d)>", "\n", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = html_lib.unescape(text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def strip_quoted(text: str) -> str:
    """The new part of a reply: quoted history and "On … wrote:" blocks removed."""
    from mailparser_reply import EmailReplyParser

    try:
        replies = (
            EmailReplyParser(languages=["en", "de", "fr", "it", "es", "nl", "sv", "pl", "ja"])
            .read(text)
            .replies
        )
        visible = replies[0].body if replies else text
    except Exception:  # the reply parser is a heuristic: never let it lose the text
        visible = text
    lines = visible.rstrip().splitlines()
    while lines and (lines[-1].startswith(">") or not lines[-1].strip()):
        lines.pop()
    return "\n".join(lines).strip() or text.strip()


# --- Amazon metadata and classification ---------------------------------------------------


def _amazon_metadata(parsed: ParsedMessage) -> None:
    haystack = f"{parsed.subject}\n{parsed.text}"
    order = ORDER_ID_RE.search(haystack)
    parsed.order_id = order.group(1) if order else None
    if RELAY_DOMAIN_RE.search(parsed.from_address):
        parsed.relay_alias = parsed.from_address
    markers = list(MARKER_LINE_RE.finditer(parsed.text))
    if len(markers) >= 2:
        parsed.buyer_text = parsed.text[markers[0].end() : markers[1].start()].strip()
    buyer = SUBJECT_BUYER_RE.search(parsed.subject)
    if buyer:
        parsed.buyer_name = buyer.group(1).strip()
    elif parsed.from_name:
        parsed.buyer_name = FROM_SUFFIX_RE.sub("", parsed.from_name).strip()


def _classify(mail: _Mail, parsed: ParsedMessage) -> None:
    auto_submitted = mail.header("Auto-Submitted").lower()
    precedence = mail.header("Precedence").lower()
    parsed.is_autoreply = bool(
        (auto_submitted and not auto_submitted.startswith("no"))
        or mail.header("X-Autoreply")
        or mail.header("X-Autorespond")
        or mail.header("X-Auto-Response-Suppress")
        or precedence in _BULK_PRECEDENCE
    )
    sender_local = parsed.from_address.split("@")[0]
    empty_return_path = "return-path" in mail.headers and mail.header("Return-Path") in ("<>", "")
    parsed.is_bounce = (
        mail.is_dsn or sender_local in ("mailer-daemon", "postmaster") or empty_return_path
    )
    relay_type = mail.header("X-AMAZON-MAIL-RELAY-TYPE").lower()
    parsed.is_amazon_notification = relay_type == "notification"
    parsed.is_seller_central_copy = bool(
        re.match(r"^donotreply@amazon\.[a-z.]+$", parsed.from_address)
    )


# --- entry point ---------------------------------------------------------------------


def content_hash(raw: bytes) -> str:
    # Line endings differ between stores (IMAP hands back CRLF for mail appended
    # with LF), so hash a normalised form: the same mail hashes the same anywhere.
    return _hash_normalised(_lf_endings(raw))


def _lf_endings(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def _hash_normalised(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_message(
    raw: bytes, *, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
) -> ParsedMessage:
    """Parse raw mail bytes. Raises UnparseableMessage for bytes that are not mail."""
    return _parse(raw, max_attachment_bytes, fast=True)


def _parse(raw: bytes, max_attachment_bytes: int, *, fast: bool) -> ParsedMessage:
    """parse_message, with fast-mail-parser (then the email package where it refuses
    the mail) or, with fast=False, the email package alone (what the tests compare)."""
    if not raw.strip():
        raise UnparseableMessage("empty message")
    # IMAP servers hand out CRLF line endings; decoded text would keep the CR, so
    # markers such as Amazon's "Begin message" would not match. The same normalised
    # bytes are what content_hash hashes: convert them once.
    data = _lf_endings(raw)
    mail = _read_fast(data, max_attachment_bytes) if fast else None
    if mail is None:
        mail = _read_with_email(data, max_attachment_bytes)
    parsed = _parsed(mail, _hash_normalised(data), len(raw))
    _clean_strings(parsed)
    return parsed


def _read_with_email(data: bytes, max_attachment_bytes: int) -> _Mail:
    try:
        return _read_stdlib(data, default_policy, max_attachment_bytes)
    except Exception as exc:
        # The email package's structured header parser raises on some malformed headers
        # (IndexError, ValueError, AttributeError from deep inside it). compat32 keeps
        # every header as plain text and never parses it that way: read the mail again
        # with it rather than quarantine a buyer's message for one broken header.
        log.info("parsing again without structured headers: %s: %s", type(exc).__name__, exc)
        try:
            return _read_stdlib(data, compat32, max_attachment_bytes)
        except Exception as again:
            raise UnparseableMessage(f"{type(again).__name__}: {again}") from again


def _parsed(mail: _Mail, digest: str, size: int) -> ParsedMessage:
    if not any(h in mail.headers for h in ("from", "to", "date", "message-id", "subject")):
        raise UnparseableMessage("no From, To, Date, Subject or Message-ID header: not an e-mail")
    first = {name: values[0] for name, values in mail.headers.items()}
    ids = _message_ids(first.get("message-id", ""))
    from_name, from_address = mail.from_[0] if mail.from_ else ("", "")
    delivery: list[str] = []
    delivered = [_stdlib_addresses(mail.headers, n.lower()) for n in _DELIVERY_HEADERS]
    for pairs in (*delivered, mail.to, mail.cc):
        for _, addr in pairs:
            if addr not in delivery:
                delivery.append(addr)
    text = "\n\n".join(p for p in mail.text_parts if p.strip())
    html = "\n".join(mail.html_parts) if mail.html_parts else None
    if not text and html:
        text = html_to_text(html)
    parsed = ParsedMessage(
        message_id=ids[0] if ids else f"<{digest[:40]}@synthetic.sellerdesk>",
        in_reply_to=(_message_ids(first.get("in-reply-to", "")) or [None])[0],
        references=_message_ids(first.get("references", "")),
        subject=mail.header("Subject"),
        from_name=from_name,
        from_address=from_address,
        to_addresses=[a for _, a in mail.to],
        cc_addresses=[a for _, a in mail.cc],
        delivery_addresses=delivery,
        sent_at=_date(first.get("date", "")),
        text=text,
        html=html,
        visible_text="",
        attachments=mail.attachments,
        content_hash=digest,
        size=size,
    )
    _amazon_metadata(parsed)
    # Amazon's markers already isolate what the buyer wrote; the reply-parser heuristic
    # (the costliest step of parsing) is only needed for other mail.
    if parsed.buyer_text:
        parsed.visible_text = parsed.buyer_text
    elif text:
        parsed.visible_text = strip_quoted(text)
    _classify(mail, parsed)
    return parsed


def _clean(text: str) -> str:
    """Text a database column takes: no NUL characters (PostgreSQL refuses them) and no
    lone surrogates (the email package's stand-ins for undecodable header bytes, which
    no database can encode): those bytes are decoded as UTF-8 where they are, else
    replaced."""
    if text.isascii() and "\x00" not in text:
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", "\ufffd")


_TEXT_FIELDS = tuple(f.name for f in fields(ParsedMessage) if f.type.startswith("str"))
_LIST_FIELDS = tuple(f.name for f in fields(ParsedMessage) if f.type == "list[str]")


def _clean_strings(parsed: ParsedMessage) -> None:
    for name in _TEXT_FIELDS:
        value = getattr(parsed, name)
        if value is not None:
            setattr(parsed, name, _clean(value))
    for name in _LIST_FIELDS:
        setattr(parsed, name, [_clean(v) for v in getattr(parsed, name)])
    for attachment in parsed.attachments:
        attachment.filename = _clean(attachment.filename)
        attachment.content_type = _clean(attachment.content_type)
        if attachment.content_id is not None:
            attachment.content_id = _clean(attachment.content_id)
