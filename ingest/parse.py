"""Raw RFC 5322 bytes -> ParsedMessage. Pure: no database, no Flask, no network."""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import secrets
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.headerregistry import UnstructuredHeader
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import EmailPolicy, Policy, compat32
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024

ORDER_ID_RE = re.compile(r"\b((?:\d{3}|D\d{2})-\d{7}-\d{7})\b")
ASIN_RE = re.compile(r"\bASIN:\s*([A-Z0-9]{10})\b")
COMM_TOKEN_RE = re.compile(r"\[commMgrTok:([^\]\s]+)\]")
# Amazon's Begin/End message markers, in every language: a line of dashes around words.
MARKER_LINE_RE = re.compile(r"^[ \t]*-{5,}[ \t]*\S.*?-{5,}[ \t]*$", re.MULTILINE)
RELAY_DOMAIN_RE = re.compile(r"@marketplace\.amazon\.([a-z.]+)$", re.IGNORECASE)
SUBJECT_BUYER_RE = re.compile(r"(?:customer|Kunde|client|cliente|klant|kund)\s+(.+?)\s*\(", re.I)
FROM_SUFFIX_RE = re.compile(r"\s*-\s*(?:Amazon\s+)?Marketplace\s*$", re.IGNORECASE)

#: Amazon top-level domains -> marketplace codes of the catalogue.
AMAZON_TLD_MARKETPLACE = {
    "com": "US",
    "ca": "CA",
    "com.mx": "MX",
    "com.br": "BR",
    "co.uk": "UK",
    "de": "DE",
    "fr": "FR",
    "it": "IT",
    "es": "ES",
    "nl": "NL",
    "se": "SE",
    "pl": "PL",
    "com.tr": "TR",
    "eg": "EG",
    "ae": "AE",
    "in": "IN",
    "sa": "SA",
    "co.jp": "JP",
    "com.au": "AU",
    "sg": "SG",
}

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
    has_real_message_id: bool
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
    asins: list[str] = field(default_factory=list)
    buyer_name: str = ""
    relay_alias: str | None = None
    marketplace: str | None = None
    buyer_text: str | None = None
    comm_token: str | None = None
    is_autoreply: bool = False
    is_bounce: bool = False
    is_amazon_notification: bool = False
    is_seller_central_copy: bool = False
    defects: list[str] = field(default_factory=list)

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
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    if not isinstance(payload, bytes):  # pragma: no cover - defensive
        payload = str(payload).encode("utf-8", "replace")
    return decode_bytes(payload, part.get_param("charset"))


# --- headers -------------------------------------------------------------------------


def _header(msg: Message, headers: _RawHeaders, name: str) -> str:
    """A header as text, tolerant of malformed encodings."""
    if name.lower() not in headers:
        return ""  # (msg.get would compare the name with every header's to say so)
    raw = headers[name.lower()][0]
    if raw.isascii() and "=?" not in raw and _unstructured(msg.policy, name):
        # Nothing for the header parser to decode: its text is the raw text (and the
        # email package parses it anew on every get).
        return " ".join(raw.split())
    try:
        value = msg.get(name)
    except Exception:  # a header the policy cannot parse: fall back to raw text
        value = msg.get_all(name, failobj=[""])[0] if hasattr(msg, "get_all") else ""
    if value is None:
        return ""
    if not isinstance(msg.policy, EmailPolicy):  # compat32 (see parse_message): still encoded
        value = _decode_words(str(value))
    return " ".join(str(value).split())


def _unstructured(policy: Policy, name: str) -> bool:
    return policy is _POLICY and _unstructured_name(name.lower())


@lru_cache(maxsize=64)
def _unstructured_name(name: str) -> bool:
    # Cached: the registry builds a new class on every lookup.
    return issubclass(_POLICY.header_factory[name], UnstructuredHeader)


#: A message's headers as written, by lower-case name: looked up a dozen times per
#: message, which scanning all of them each time (as Message.get does) made costly.
_RawHeaders = dict[str, list[str]]


def _raw_headers(msg: Message) -> _RawHeaders:
    headers: _RawHeaders = {}
    for name, value in msg.raw_items():
        headers.setdefault(name.lower(), []).append(str(value))
    return headers


def _raw_header(headers: _RawHeaders, name: str) -> str:
    values = headers.get(name.lower())
    return values[0] if values else ""


#: Where the address a message was delivered to is found, most reliable first; then To, Cc.
_DELIVERY_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To")
_ADDR_SPEC_RE = re.compile(r"^[^@\s\"<>(),;]+@[^@\s\"<>(),;]+$")


def _decode_words(text: str) -> str:
    """RFC 2047 encoded words decoded (left as they are if broken)."""
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except Exception:
        return text


def _addresses(headers: _RawHeaders, name: str) -> list[tuple[str, str]]:
    """(display name, lower-case address) pairs of an address header.

    From the raw text with `getaddresses`, not the policy's address parser: that
    one builds a full token tree per header, about a fifth of all parsing time, and
    gave the same pairs on the benchmark corpus and every fixture.
    """
    raw = headers.get(name.lower(), [])
    return [
        # Folding and tabs left in a display name become single spaces, as in _header.
        (" ".join(_decode_words(display).split()), _clean(addr).lower())
        for display, addr in getaddresses(raw)
        if _ADDR_SPEC_RE.match(addr)
    ]


def _message_ids(value: str) -> list[str]:
    # Cleaned first: 8-bit header bytes arrive as surrogates, which \s does not match,
    # so "<NBSP>" (bytes C2 A0) would pass as an id and only become whitespace later.
    return re.findall(r"<[^<>\s]+>", _clean(value))


def _date(headers: _RawHeaders) -> datetime | None:
    raw = _raw_header(headers, "Date")
    if not raw:
        return None
    try:
        value = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# --- bodies and attachments ------------------------------------------------------------


def _walk_bodies(
    msg: EmailMessage, max_attachment_bytes: int
) -> tuple[str, str | None, list[ParsedAttachment]]:
    text_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[ParsedAttachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            (text_parts if ctype == "text/plain" else html_parts).append(_part_text(part))
            continue
        if ctype == "message/delivery-status" or ctype.startswith("multipart/"):
            continue
        payload = part.get_payload(decode=True)
        if payload is None:
            inner = part.get_payload()
            payload = inner[0].as_bytes() if isinstance(inner, list) and inner else b""
        content_id = part.get("Content-ID")
        size = len(payload)
        attachments.append(
            ParsedAttachment(
                filename=_safe_filename(filename, ctype, len(attachments) + 1),
                content_type=ctype,
                size=size,
                content_id=str(content_id).strip().strip("<>") if content_id else None,
                is_inline=disposition == "inline"
                or (bool(content_id) and disposition != "attachment"),
                data=payload if size <= max_attachment_bytes else None,
            )
        )
    text = "\n\n".join(p for p in text_parts if p.strip())
    html = "\n".join(html_parts) if html_parts else None
    return text, html, attachments


def _safe_filename(name: str | None, ctype: str, index: int) -> str:
    name = (name or "").replace("\x00", "")
    name = re.sub(r"[\r\n\t/\\]+", "_", name).strip(" .")
    if not name:
        subtype = ctype.split("/")[-1] if "/" in ctype else "bin"
        name = f"attachment-{index}.{re.sub(r'[^a-z0-9]+', '', subtype.lower()) or 'bin'}"
    return name[:200]


def html_to_text(html: str) -> str:
    """A plain-text rendering of an HTML body, for search and snippets."""
    import html as html_lib

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
    parsed.asins = list(dict.fromkeys(ASIN_RE.findall(parsed.text)))
    token = COMM_TOKEN_RE.search(parsed.text)
    parsed.comm_token = token.group(1) if token else None
    relay = RELAY_DOMAIN_RE.search(parsed.from_address)
    if relay:
        parsed.relay_alias = parsed.from_address
        parsed.marketplace = AMAZON_TLD_MARKETPLACE.get(relay.group(1).lower())
    markers = list(MARKER_LINE_RE.finditer(parsed.text))
    if len(markers) >= 2:
        parsed.buyer_text = parsed.text[markers[0].end() : markers[1].start()].strip()
    buyer = SUBJECT_BUYER_RE.search(parsed.subject)
    if buyer:
        parsed.buyer_name = buyer.group(1).strip()
    elif parsed.from_name:
        parsed.buyer_name = FROM_SUFFIX_RE.sub("", parsed.from_name).strip()


def _classify(msg: Message, headers: _RawHeaders, parsed: ParsedMessage) -> None:
    auto_submitted = _header(msg, headers, "Auto-Submitted").lower()
    precedence = _header(msg, headers, "Precedence").lower()
    parsed.is_autoreply = bool(
        (auto_submitted and not auto_submitted.startswith("no"))
        or _header(msg, headers, "X-Autoreply")
        or _header(msg, headers, "X-Autorespond")
        or _header(msg, headers, "X-Auto-Response-Suppress")
        or precedence in _BULK_PRECEDENCE
    )
    sender_local = parsed.from_address.split("@")[0]
    return_path = _raw_header(headers, "Return-Path").strip()
    is_dsn = (
        # The substring first: reading the type parses the header (its boundary unique).
        "report" in _raw_header(headers, "Content-Type").lower()
        and msg.get_content_type() == "multipart/report"
        and (msg.get_param("report-type") or "").lower() == "delivery-status"
    )
    empty_return_path = "return-path" in headers and return_path in ("<>", "")
    parsed.is_bounce = (
        is_dsn or sender_local in ("mailer-daemon", "postmaster") or empty_return_path
    )
    relay_type = _header(msg, headers, "X-AMAZON-MAIL-RELAY-TYPE").lower()
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


class _CachingPolicy(EmailPolicy):
    """policy.default, remembering parsed header values within one message.

    The email package re-parses a structured header on every access (the parser
    itself asks for each part's Content-Type several times); that was most of the
    time spent parsing. Header objects are immutable, so reusing one is safe.
    """

    def header_fetch_parse(self, name, value):  # type: ignore[no-untyped-def]
        if len(value) > _CACHED_VALUE_MAX:
            # The cache holds its values after the message is gone: 2,048 huge headers
            # would keep gigabytes alive in a long-running worker. Rare: parse them anew.
            return EmailPolicy.header_fetch_parse(self, name, value)
        return _parse_header(self, name, value)


_CACHED_VALUE_MAX = 4096


# Small: the hits that count are the re-reads within one message. Some headers (DKIM,
# ARC, Received) run to kilobytes, and at 2,048 entries the cache held some 40 MB.
@lru_cache(maxsize=256)
def _parse_header(policy_: EmailPolicy, name: str, value: str):  # type: ignore[no-untyped-def]
    return EmailPolicy.header_fetch_parse(policy_, name, value)


_POLICY = _CachingPolicy()


# --- bodies kept out of the feedparser -------------------------------------------------
#
# The email package splits every body into lines, checks each line against the
# boundaries of all enclosing multiparts and scans each part's text again for its last
# line end: for attachments, photos and long HTML that was most of the parsing time.
# None of it is needed to find a leaf's payload, which is all of its body's lines. So
# before parsing, each leaf body of some size is replaced by a one-line stub (a random
# token: mail cannot forge it), and after parsing each stub is swapped for the body's
# own text, cut exactly as the feedparser cuts it. A stub can be neither a boundary
# nor a header line, so the parser sees the same structure: same parts, same headers,
# same defects. The bodies are found by walking the mail the way the feedparser does;
# wherever this walk might not agree with it (a lone CR, a header block the feedparser
# would end early, digests, message parts, a repeated close delimiter) it leaves the mail
# as it is, and if any stub does not come back exactly once the mail is parsed whole.
#
# The top-level header fields, bar the Content-* ones the feedparser reads, go the
# same way: each run of them is one stub field for the feedparser, and the fields are
# put back in its place after, as the feedparser would have stored them. Relayed mail
# carries kilobytes of Received, DKIM and ARC fields, which the feedparser would split
# into lines and every header lookup while parsing would compare.
#
# The same walk renames each multipart's boundary, in its Content-Type header and on
# every delimiter line, to one of a fixed set of names that occur nowhere in the mail,
# and puts the header's own text back after parsing. The feedparser compiles a regular
# expression per multipart from its boundary (0.1 ms, a tenth of a message's parsing):
# mail has a unique boundary each, the fixed names are compiled once per process.

# feedparser.headerRE, over a whole header block.
_HEADER_BLOCK_RE = re.compile(rb"(?:(?:From |[\041-\071\073-\176]*:|[\t ])[^\n]*\n)*")
# The first Content-Type header with its continuation lines: all get_content_type()
# and get_boundary() read.
_CONTENT_TYPE_RE = re.compile(rb"(?i)content-type:[^\n]*\n(?:[\t ][^\n]*\n)*")
_DELIMITER_REST_RE = re.compile(rb"(--)?[ \t]*")  # after "--boundary", as feedparser reads it
_STUB_MIN_BODY = 512  # below this the stub saves less than the walk costs
_STUB_MAX_DEPTH = 16


#: The boundaries' stand-ins: letters and digits only (a valid unquoted parameter
#: value), none a prefix of another followed by what a delimiter line allows.
_BOUNDARY_NAMES = tuple(f"sdBq7Zk{n:02d}" for n in range(_STUB_MAX_DEPTH * 4))
_BOUNDARY_NAMES_PREFIX = b"sdBq7Zk"  # absent from the mail: so are the stand-ins


@dataclass
class _Walk:
    """What the walk found: leaf bodies to stub, boundaries to rename."""

    #: (start, end) of each leaf body, and whether it is a part of a multipart
    spans: list[tuple[int, int, bool]] = field(default_factory=list)
    #: the boundaries in walking order; per boundary, where its bytes are: first in
    #: its Content-Type header, then on each delimiter line
    boundaries: list[tuple[str, list[int]]] = field(default_factory=list)
    #: False once a boundary cannot be renamed safely: then none is
    renamable: bool = True
    #: the runs of top-level header fields to stub: (start, end) per field
    header_runs: list[list[tuple[int, int]]] = field(default_factory=list)


@dataclass
class _Stubs:
    data: bytes
    #: stub text -> (start, end) of the body it stands for in `data`, and whether the
    #: feedparser drops the body's last line end (a part of a multipart: RFC 2046).
    bodies: dict[str, tuple[int, int, bool]] = field(default_factory=dict)
    #: stand-in -> the boundary it replaced
    boundaries: dict[str, str] = field(default_factory=dict)
    #: stub field name -> (start, end) in `data` of each header field it stands for
    headers: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(12))


def _stub_bodies(data: bytes) -> tuple[bytes, _Stubs | None]:
    """`data` with its larger leaf bodies and runs of top-level header fields replaced
    by stubs and its boundaries renamed, and what to put back."""
    if b"\r" in data:
        return data, None
    walk = _Walk()
    try:
        _leaf_bodies(data, 0, len(data), 0, walk)
    except Exception:  # a header the policy cannot parse: the parser proper will say so
        return data, None
    stubs = _Stubs(data)
    edits: list[tuple[int, int, bytes]] = []  # (start, end, replacement) in `data`
    for start, end, in_multipart in walk.spans:
        stub = f"{stubs.token}{len(stubs.bodies)}"
        stubs.bodies[stub] = (start, end, in_multipart)
        edits.append((start, end, stub.encode("ascii") + b"\n"))
    for fields_ in walk.header_runs:
        name = f"X-{stubs.token}-{len(stubs.headers)}"
        stubs.headers[name] = fields_
        edits.append((fields_[0][0], fields_[-1][1], name.encode("ascii") + b": 1\n"))
    if walk.renamable and len(walk.boundaries) <= len(_BOUNDARY_NAMES):
        names = _BOUNDARY_NAMES[: len(walk.boundaries)]
        # Distinct boundaries only: a multipart inside one with the same boundary is a
        # case the walk and the feedparser might not agree on.
        distinct = len({b for b, _ in walk.boundaries}) == len(walk.boundaries)
        if distinct and _BOUNDARY_NAMES_PREFIX not in data:
            renames = [
                (at, at + len(boundary.encode("ascii", "surrogateescape")), name.encode())
                for name, (boundary, positions) in zip(names, walk.boundaries, strict=True)
                for at in positions
            ]
            # Two renames of one line ("--a--" delimits both "a" and "a--"): rename none.
            if not _overlapping(sorted(edits + renames)):
                edits += renames
                stubs.boundaries = {n: b for n, (b, _) in zip(names, walk.boundaries, strict=True)}
    if not edits:
        return data, None
    edits.sort()
    out: list[bytes] = []
    pos = 0
    for start, end, replacement in edits:
        out += (data[pos:start], replacement)
        pos = end
    out.append(data[pos:])
    return b"".join(out), stubs


# One header field, its name as the feedparser takes it (up to the first colon).
_FIELD_RE = re.compile(rb"([\041-\071\073-\176]+):[^\n]*\n(?:[\t ][^\n]*\n)*")


def _header_runs(data: bytes, end: int) -> list[list[tuple[int, int]]]:
    """The runs of top-level header fields that can be stubbed, (start, end) per field,
    in the header block data[:end] that _leaf_bodies has checked."""
    runs: list[list[tuple[int, int]]] = []
    run: list[tuple[int, int]] = []
    pos = data.find(b"\n") + 1 if data.startswith(b"From ") else 0  # the envelope line
    while pos < end:
        found = _FIELD_RE.match(data, pos, end)
        if found is None:
            # A "From " line further down, after which the feedparser would add
            # continuation lines to the field before: leave the headers alone.
            return []
        if not found.group(1).lower().startswith(b"content-"):
            run.append(found.span())
        else:  # a field the feedparser reads: kept
            if run:
                runs.append(run)
            run = []
        pos = found.end()
    if run:
        runs.append(run)
    # Small runs cost more to put back than the feedparser spends on them.
    return [run for run in runs if run[-1][1] - run[0][0] >= _STUB_MIN_BODY]


def _overlapping(edits: list[tuple[int, int, bytes]]) -> bool:
    return any(start < end for (_, end, _), (start, _, _) in itertools.pairwise(edits))


def _restore_bodies(msg: Message, stubs: _Stubs) -> bool:
    """Put each body and header field back in place of its stub and each boundary in
    its header; False unless every stub and every stand-in came back once."""
    if stubs.headers and not _restore_headers(msg, stubs):
        return False
    found: list[str] = []
    renamed: list[str] = []
    for part in msg.walk():
        if part.is_multipart():
            name = part.get_boundary()
            if name in stubs.boundaries and _restore_boundary(part, name, stubs.boundaries[name]):
                renamed.append(name)
            continue
        payload = part.get_payload()
        stub = payload.rstrip("\n") if isinstance(payload, str) else None
        span = stubs.bodies.get(stub) if stub else None
        if span is None:
            continue
        start, end, in_multipart = span
        if in_multipart and stubs.data.endswith(b"\n", start, end):
            end -= 1
        part.set_payload(stubs.data[start:end].decode("ascii", "surrogateescape"))
        found.append(stub)
    return len(found) == len(set(found)) == len(stubs.bodies) and sorted(renamed) == sorted(
        stubs.boundaries
    )


def _restore_headers(msg: Message, stubs: _Stubs) -> bool:
    """Each stub field's fields back in its place, as the feedparser would store them."""
    restored: list[tuple[str, str]] = []
    count = 0
    for key, value in msg._headers:  # noqa: SLF001 (see _restore_boundary)
        fields_ = stubs.headers.get(key)
        if fields_ is None:
            restored.append((key, value))
            continue
        if value != "1":
            return False
        count += 1
        for start, end in fields_:
            text = stubs.data[start:end].decode("ascii", "surrogateescape")
            lines = [line + "\n" for line in text.split("\n")[:-1]]
            restored.append(msg.policy.header_source_parse(lines))
    msg._headers = restored  # noqa: SLF001
    return count == len(stubs.headers)


def _restore_boundary(part: Message, name: str, boundary: str) -> bool:
    """The part's first Content-Type header as the mail has it, in its place."""
    # Message keeps its headers as a list of (name, raw value) pairs; the public
    # replace_header would store a parsed header object instead of the raw text the
    # feedparser stores, and set_raw appends at the end.
    headers = part._headers  # noqa: SLF001
    for i, (key, value) in enumerate(headers):
        if key.lower() == "content-type":
            if not isinstance(value, str) or value.count(name) != 1:
                return False
            headers[i] = (key, value.replace(name, boundary))
            return True
    return False


def _content_type(header: bytes) -> tuple[str, str | None]:
    """(content type, boundary) as the feedparser reads them off this Content-Type header."""
    # Every mail has a boundary of its own, so the header as it is would never be
    # found in the cache. A plain boundary parameter (one "boundary"; quoted, letters,
    # digits and RFC 2046's punctuation but no apostrophe, which RFC 2231 reads; or a
    # token without RFC 2045's specials) reads the same as any other: the header is
    # parsed with a placeholder in its place, which the cache then holds once for
    # every mail of that shape. tests/ingest/test_parse_stubs.py compares the two.
    found = _BOUNDARY_PARAM_RE.search(header)
    if found and len(_BOUNDARY_NAME_RE.findall(header)) == 1:
        group = "quoted" if found.group("quoted") else "token"
        value = found.group(group)
        start, end = found.span(group)
        ctype, boundary = _parsed_content_type(header[:start] + _PLACEHOLDER + header[end:])
        if boundary == _PLACEHOLDER.decode():
            return ctype, value.decode("ascii")
    return _parsed_content_type(header)


_BOUNDARY_NAME_RE = re.compile(rb"(?i)boundary")
_BOUNDARY_PARAM_RE = re.compile(
    rb"(?i);[ \t\n]*boundary[ \t\n]*=[ \t\n]*"
    rb"(?:\"(?P<quoted>[A-Za-z0-9+_,./:=?-]+)\"|(?P<token>[A-Za-z0-9+_.-]+))"
    rb"(?=[ \t\n;]|$)"
)
_PLACEHOLDER = b"sdBoundaryPlaceholder"


@lru_cache(maxsize=256)
def _parsed_content_type(header: bytes) -> tuple[str, str | None]:
    part = BytesHeaderParser(policy=_POLICY).parsebytes(header)
    return part.get_content_type(), part.get_boundary()


def _leaf_bodies(data: bytes, start: int, end: int, depth: int, walk: _Walk) -> None:
    """Collect the leaf bodies and boundaries of the entity data[start:end]."""
    blank = data.find(b"\n\n", start, end)
    if data.startswith(b"\n", start, end) or blank < 0:
        return
    if _HEADER_BLOCK_RE.match(data, start, blank + 1).end() != blank + 1:
        return  # the feedparser would end these headers early, at a line that is none
    if depth == 0:
        walk.header_runs = _header_runs(data, blank + 1)
    header = _content_type_header(data, start, blank + 1)
    ctype, boundary = _content_type(header.group()) if header else ("text/plain", None)
    body = blank + 2
    if ctype.startswith("multipart/"):
        # A digest's parts default to message/rfc822: not followed, like message parts.
        if boundary and depth < _STUB_MAX_DEPTH and ctype != "multipart/digest":
            _multipart_bodies(data, body, end, boundary, depth, walk, header)
    elif not ctype.startswith("message/") and end - blank >= _STUB_MIN_BODY:
        walk.spans.append((body, end, depth > 0))


def _content_type_header(data: bytes, start: int, end: int) -> re.Match | None:
    # A search for the lowercased name: a case-insensitive, multi-line regular
    # expression would try every position of kilobytes of transport headers.
    lowered = data[start:end].lower()
    at = lowered.find(b"content-type:")
    while at > 0 and lowered[at - 1] != 0x0A:  # not at the start of a line
        at = lowered.find(b"content-type:", at + 1)
    return _CONTENT_TYPE_RE.match(data, start + at, end) if at >= 0 else None


def _multipart_bodies(
    data: bytes,
    start: int,
    end: int,
    boundary: str,
    depth: int,
    walk: _Walk,
    header: re.Match,
) -> None:
    try:
        name = boundary.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # decoded from RFC 2231: not the bytes of the lines
        walk.renamable = False
        return
    delimiter = b"--" + name
    # The boundary's bytes must be in its header once, as they are (not quoted-pair
    # escaped, not split into RFC 2231 sections), for its stand-in to take their place.
    in_header = header.group().find(name)
    if in_header < 0 or header.group().find(name, in_header + 1) >= 0:
        walk.renamable = False
    positions = [header.start() + in_header]
    walk.boundaries.append((boundary, positions))
    part_start = None
    bodies = True
    after_delimiter = -1  # where the line after the last delimiter line starts
    pos = start
    while True:
        at = data.find(delimiter, pos, end)
        if at < 0:
            break
        line_end = data.find(b"\n", at, end)
        line_end = end if line_end < 0 else line_end
        pos = line_end + 1
        found = _DELIMITER_REST_RE.fullmatch(data, at + len(delimiter), line_end)
        if found is None or (at != start and data[at - 1] != 0x0A):
            continue  # the boundary inside other text, not a delimiter line
        # Renamed, as is every line up to the close that the feedparser checks against
        # this boundary: it makes the same of the renamed line.
        positions.append(at + 2)
        in_run, after_delimiter = at == after_delimiter, pos
        if bodies and part_start is not None and at > part_start:
            _leaf_bodies(data, part_start, at, depth + 1, walk)
        if found.group(1):
            if not in_run:
                return  # the close delimiter: the rest is epilogue, kept as it is
            # A close delimiter right after another delimiter: the feedparser takes it
            # as one of a run of boundaries and reads on. No more bodies stubbed.
            bodies = False
        part_start = min(pos, end)
    if bodies and part_start is not None and part_start < end:
        _leaf_bodies(data, part_start, end, depth + 1, walk)


def parse_message(
    raw: bytes, *, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
) -> ParsedMessage:
    """Parse raw mail bytes. Raises UnparseableMessage for bytes that are not mail."""
    if not raw.strip():
        raise UnparseableMessage("empty message")
    # IMAP servers hand out CRLF line endings; the email package would keep the CR
    # in decoded text, so markers such as Amazon's "Begin message" would not match.
    # The same normalised bytes are what content_hash hashes: convert them once.
    data = _lf_endings(raw)
    digest = _hash_normalised(data)
    try:
        parsed = _parse(data, digest, len(raw), _POLICY, max_attachment_bytes)
    except UnparseableMessage:
        raise
    except Exception as exc:
        # The email package's structured header parser raises on some malformed headers
        # (IndexError, ValueError, AttributeError from deep inside it). compat32 keeps
        # every header as plain text and never parses it that way: read the mail again
        # with it rather than quarantine a buyer's message for one broken header.
        log.info("parsing again without structured headers: %s: %s", type(exc).__name__, exc)
        try:
            parsed = _parse(data, digest, len(raw), compat32, max_attachment_bytes)
        except UnparseableMessage:
            raise
        except Exception as again:
            raise UnparseableMessage(f"{type(again).__name__}: {again}") from again
    _clean_strings(parsed)
    return parsed


def _parse(
    data: bytes, digest: str, size: int, policy: Policy, max_attachment_bytes: int
) -> ParsedMessage:
    msg = _parse_mime(data, policy)
    # Presence only (`in`): msg.get() would parse the header, which can raise (above).
    if not any(h in msg for h in ("From", "To", "Date", "Message-ID", "Subject")):
        raise UnparseableMessage("no From, To, Date, Subject or Message-ID header: not an e-mail")

    headers = _raw_headers(msg)
    ids = _message_ids(_raw_header(headers, "Message-ID"))
    message_id = ids[0] if ids else f"<{digest[:40]}@synthetic.sellerdesk>"
    from_pairs = _addresses(headers, "From")
    from_name, from_address = from_pairs[0] if from_pairs else ("", "")
    to, cc = _addresses(headers, "To"), _addresses(headers, "Cc")
    delivery: list[str] = []
    for pairs in (*(_addresses(headers, n) for n in _DELIVERY_HEADERS), to, cc):
        for _, addr in pairs:
            if addr not in delivery:
                delivery.append(addr)

    text, html, attachments = _walk_bodies(msg, max_attachment_bytes)
    if not text and html:
        text = html_to_text(html)
    parsed = ParsedMessage(
        message_id=message_id,
        has_real_message_id=bool(ids),
        in_reply_to=(_message_ids(_raw_header(headers, "In-Reply-To")) or [None])[0],
        references=_message_ids(_raw_header(headers, "References")),
        subject=_header(msg, headers, "Subject"),
        from_name=from_name,
        from_address=from_address,
        to_addresses=[a for _, a in to],
        cc_addresses=[a for _, a in cc],
        delivery_addresses=delivery,
        sent_at=_date(headers),
        text=text,
        html=html,
        visible_text="",
        attachments=attachments,
        content_hash=digest,
        size=size,
        defects=[type(d).__name__ for d in msg.defects],
    )
    _amazon_metadata(parsed)
    # Amazon's markers already isolate what the buyer wrote; the reply-parser heuristic
    # (the costliest step of parsing) is only needed for other mail.
    if parsed.buyer_text:
        parsed.visible_text = parsed.buyer_text
    elif text:
        parsed.visible_text = strip_quoted(text)
    _classify(msg, headers, parsed)
    return parsed


def _parse_mime(data: bytes, policy: Policy) -> Message:
    fed, stubs = _stub_bodies(data) if policy is _POLICY else (data, None)
    msg = BytesParser(policy=policy).parsebytes(fed)
    if stubs is not None and not _restore_bodies(msg, stubs):
        log.warning(
            "stubs or renamed boundaries did not come back; parsing %s bytes whole", len(data)
        )
        msg = BytesParser(policy=policy).parsebytes(data)
    return msg


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
