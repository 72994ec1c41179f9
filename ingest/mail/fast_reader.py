"""The mail as fast-mail-parser (Rust, PyPI) reads it, into a MailParts; None where it
refuses the mail (bad Base64, a header block it cannot split, nesting past its cap) or
would read it otherwise than the email package, whose reading is kept (bare CR line
ends, header names and boundaries the RFCs do not allow): email_reader.py reads that
mail. One such reading is brought to the email package's here instead (a part's header
block that a line of text ends, see _header_blocks_ended), because the mail that has it
is the mail the email package reads slowest. Pure: no database, no Flask, no network.
"""

from __future__ import annotations

import logging
import re

import fast_mail_parser

from ingest.mail.deadline import Deadline
from ingest.mail.headers import header_addresses
from ingest.mail.nesting import add_unread_rest, split_too_deep
from ingest.mail.parts import MailParts

log = logging.getLogger(__name__)


def read_fast(
    data: bytes, max_attachment_bytes: int, deadline: Deadline | None = None
) -> MailParts | None:
    """The mail as fast-mail-parser reads it; None where it refuses the mail. Raises
    TooSlowToParse once `deadline` has passed."""
    if b"\r" in data:
        # A CR that is not part of a CRLF (converted before): it ends header lines for
        # the email package, while fast-mail-parser keeps it inside the header's value.
        return None
    deadline = deadline or Deadline(None)
    data, rest = split_too_deep(data)
    mail = _read_tree(data, max_attachment_bytes, deadline)
    if mail is not None:
        add_unread_rest(mail, rest, max_attachment_bytes)
    return mail


def _read_tree(data: bytes, max_attachment_bytes: int, deadline: Deadline) -> MailParts | None:
    root = _tree(data)
    if root is None:
        return None
    try:
        return _fast_mail(data, root, max_attachment_bytes, deadline)
    except _Refused as exc:
        refused = str(exc)
    # Outside the handler: the exception's traceback held the parts read so far.
    ended = _header_blocks_ended(data, root, deadline)
    if ended is None:
        log.debug("%s; reading the mail with email", refused)
        return None
    # The address headers are read from `data`: the top-level header section is the
    # same in both. The first tree goes before the second is built: on looping mail
    # each holds several times the mail's size.
    del root
    root = _tree(ended)
    try:
        return _fast_mail(data, root, max_attachment_bytes, deadline) if root else None
    except _Refused as exc:
        log.debug("%s; reading the mail with email", exc)
        return None


def _tree(data: bytes) -> fast_mail_parser.PyMimePart | None:
    try:
        return fast_mail_parser.parse_email_tree(data)
    except fast_mail_parser.ParseError as exc:
        log.debug("fast-mail-parser refused the mail (%s); reading it with email", exc)
        return None


def _fast_mail(
    data: bytes, root: fast_mail_parser.PyMimePart, max_attachment_bytes: int, deadline: Deadline
) -> MailParts:
    headers = _lower_names(root.headers)
    # The address headers as written: fast-mail-parser's values have their encoded words
    # decoded already (a decoded display name may hold commas and brackets), and its
    # address parser drops a whole header for one bad entry, a nested comment or an
    # empty list element, which RFC 5322 (3.2.2, 4.4) allows and the email package reads.
    written = _raw_address_headers(data)
    mail = MailParts(
        headers=headers,
        from_=header_addresses(written, "from"),
        to=header_addresses(written, "to"),
        cc=header_addresses(written, "cc"),
        is_dsn=_content_type(headers) == "multipart/report"
        and _param(headers, "report-type").lower() == "delivery-status",
    )
    for part in fast_mail_parser.walk(root):
        deadline.check()
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


def _header_blocks_ended(
    data: bytes, root: fast_mail_parser.PyMimePart, deadline: Deadline
) -> bytes | None:
    """`data` with an empty line put before each line of text that ends a part's header
    block for the email package; None where there is none to put, or the top-level
    header block is the one (see _lower_names).

    In a part, the email package takes the header block to end at the first line that
    is not a field (nor a continuation, nor a "From " line), and the part's body to
    begin with that line. fast-mail-parser reads on to the empty line and takes such a
    line for a field without a value: the line is lost from the body. Mail that loops
    through forwards and lists has it (a last part that is a bare line of text), and is
    the mail the email package reads slowest: hundreds of levels, each of its lines
    tried against every level's boundary. With the empty line put in, both readers end
    the header block there, and the email package's reading of the mail is unchanged.

    Only lines fast-mail-parser named as fields it should not have are touched, and
    only in a header block after a delimiter line of one of its multiparts: a line of
    body text never is, even one that follows a delimiter-like line.
    """
    if root.headers and not _FIELD_NAMES_RE.fullmatch(":".join(root.headers)):
        return None
    not_fields: set[str] = set()
    boundaries: set[bytes] = set()
    for part in fast_mail_parser.walk(root):
        if part is not root:
            not_fields.update(n for n in part.headers if not _FIELD_NAMES_RE.fullmatch(n))
        boundary = _param(_lower_names_as_read(part.headers), "boundary")
        if part.content is None and boundary.isascii() and boundary:
            boundaries.add(boundary.encode())
    if not not_fields or not boundaries:
        return None
    delimiter = re.compile(
        rb"(?m)^--(?:"
        + b"|".join(re.escape(b) for b in sorted(boundaries, key=len, reverse=True))
        + rb")[ \t]*\n"
    )
    pieces: list[bytes] = []
    done = 0
    for found in delimiter.finditer(data):
        deadline.check()
        line_at = found.end()
        while line_at < len(data):
            line_end = data.find(b"\n", line_at) + 1 or len(data)
            line = data[line_at:line_end]
            # A delimiter line (whose boundary may hold a colon, and look like a field)
            # begins the next part: its own header block is the next match's.
            if line == b"\n" or delimiter.match(line):
                break
            if not _EMAIL_HEADER_LINE_RE.match(line):
                if _name_as_read(line) in not_fields:
                    pieces += (data[done:line_at], b"\n")
                    done = line_at
                break
            line_at = line_end
    if not pieces:
        return None
    pieces.append(data[done:])
    return b"".join(pieces)


#: What the email package takes for a line of a header block (email.feedparser's
#: headerRE): a field (any name, even an empty one), a continuation, a "From " line.
_EMAIL_HEADER_LINE_RE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")


def _name_as_read(line: bytes) -> str:
    """The field name fast-mail-parser makes of a header line: what comes before the
    first colon, or the whole line, as it decodes 8-bit bytes."""
    name = line.rstrip(b"\n").split(b":", 1)[0]
    try:
        return name.decode()
    except UnicodeDecodeError:
        return name.decode("latin-1")


def _lower_names_as_read(headers: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name.lower(): values for name, values in headers.items()}


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
