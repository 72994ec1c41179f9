"""The one rule for characters that have no place in a name.

A name (an organisation's, a person's, a tag, a mailbox, a canned reply's title, an
attachment's file name) is one line of visible text. Control characters break that:
CR and LF end a mail header (a business name is the From name of every reply), NUL
is refused by PostgreSQL, and the bidirectional controls reorder what is shown, so
that `invoice<U+202E>fdp.exe` reads as `invoiceexe.pdf`. Names people type are
refused with a message (`portal.validators.NoControlCharacters`); names that arrive
in mail (attachments) are shown and downloaded with these characters removed.

Pure: no Flask, no database.
"""

from __future__ import annotations

import re
import unicodedata

#: C0 controls (CR, LF, TAB and NUL among them), DEL, C1 controls, the Unicode line and
#: paragraph separators, and the bidirectional marks, embeddings, overrides and isolates.
_UNSAFE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def first_unsafe_character(text: str) -> str | None:
    """The first character of `text` that no name may hold, or None."""
    found = _UNSAFE_RE.search(text or "")
    return found.group() if found else None


def strip_unsafe_characters(text: str) -> str:
    """`text` without the characters no name may hold."""
    return _UNSAFE_RE.sub("", text or "")


def describe_character(char: str) -> str:
    """`U+202E (RIGHT-TO-LEFT OVERRIDE)`: how to tell a person which character it is."""
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(char, "control character")
    return f"U+{ord(char):04X} ({name})"


#: unicodedata has no names for the C0/C1 controls; the ones people paste by accident.
_CONTROL_NAMES = {
    "\x00": "NUL",
    "\t": "TAB",
    "\n": "LINE FEED",
    "\r": "CARRIAGE RETURN",
    "\x7f": "DELETE",
    "\x85": "NEXT LINE",
}
