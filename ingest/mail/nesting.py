"""How deep either reader reads nested multiparts. Pure: no database, no Flask, no network.

Mail that loops through forwards and lists reaches hundreds of levels whose boundaries
never close. The email package's work per line grows with the depth (and it ends in
RecursionError at a few thousand levels); fast-mail-parser refuses nesting past its own
cap. Both readers therefore read the first MAX_NESTING levels and keep what lies deeper,
unread, as one attachment (NESTED_REST_NAME): one rule, so that a mail reads the same
whichever reader reads it.
"""

from __future__ import annotations

import re

from ingest.mail.parts import MailParts

MAX_NESTING = 100
NESTED_REST_NAME = f"nested-deeper-than-{MAX_NESTING}-levels.txt"

#: A boundary declared (a multipart opens a level), or a delimiter line (which closes
#: the levels opened inside its multipart, and with "--" after it that multipart too).
_NESTING_RE = re.compile(
    rb'(?im)\bboundary[ \t]*=[ \t]*(?:"([^"\n]*)"|([^\s;"]+))|^--([^\n]*?)[ \t]*$'
)


def split_too_deep(data: bytes) -> tuple[bytes, bytes]:
    """The mail up to its first part nested deeper than MAX_NESTING, and the rest from
    there (b"" for mail no deeper than that)."""
    cut = _too_deep_at(data)
    return (data, b"") if cut is None else (data[:cut], data[cut:])


def add_unread_rest(mail: MailParts, rest: bytes, max_attachment_bytes: int) -> None:
    """Keep what split_too_deep left unread as one text attachment."""
    if rest:
        mail.add_leaf(
            ctype="text/plain",
            disposition="attachment",
            filename=NESTED_REST_NAME,
            content_id=None,
            payload=rest,
            charset=None,
            max_attachment_bytes=max_attachment_bytes,
        )


def _too_deep_at(data: bytes) -> int | None:
    """Where the first part nested deeper than MAX_NESTING begins (its parent's
    delimiter line); None for mail no deeper than that."""
    # Every level opens with a boundary parameter: mail that names no more of them than
    # MAX_NESTING cannot be deeper, and counting them is much cheaper than the scan below
    # (a regex tried at every byte of the mail, attachments included).
    if data.lower().count(b"boundary") <= MAX_NESTING:
        return None
    open_boundaries: list[bytes] = []
    for found in _NESTING_RE.finditer(data):
        quoted, bare, delimiter = found.groups()
        if delimiter is None:
            open_boundaries.append(quoted if quoted is not None else bare)
            if len(open_boundaries) > MAX_NESTING:
                line = data.rfind(b"\n--", 0, found.start())
                return line + 1 if line >= 0 else None
        elif delimiter in open_boundaries:
            # A part of that multipart begins: whatever opened inside it has ended.
            del open_boundaries[len(open_boundaries) - open_boundaries[::-1].index(delimiter) :]
        elif delimiter.endswith(b"--") and delimiter[:-2] in open_boundaries:
            del open_boundaries[
                len(open_boundaries) - 1 - open_boundaries[::-1].index(delimiter[:-2]) :
            ]
    return None
