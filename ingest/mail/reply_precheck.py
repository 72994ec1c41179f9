"""Proof, before the reply heuristic reads a text, that it would cut nothing from it.

mailparser_reply's EmailMessage splits a text at headers of quoted mail ("On … wrote:",
"From: …/Sent: …", "-----Original Message-----"), then cuts signatures and disclaimers
from each part. Its header pattern, one alternation of every language's patterns, is
tried at every position of the text; that scan is most of the heuristic's cost, and its
"From:/Sent:" alternatives the dearest part of it. Such a block needs a line that
starts with one of its field names and a colon, which one anchored pattern finds
cheaply; the other header patterns are the library's own. Signatures and disclaimers
are looked for the same way: first a coarse pattern, then the library's own.

The patterns are built from the library's pattern lists for the message's languages,
once the library's patterns are seen to have the shape this proof assumes; if a version
of it changes that shape, nothing is skipped any more (tests/ingest/mail/test_bodies.py
fails then, so the proof gets made again). Pure: no database, no Flask, no network.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailparser_reply import EmailMessage

#: Matches every text: what a check is when the library's patterns are not of the shape
#: this module knows, so that the heuristic always runs.
ALWAYS = re.compile("")


def cuts_nothing(message: EmailMessage, *, whole: bool) -> bool:
    """Whether the heuristic provably finds no header in the message's (normalized) text
    and, for a whole text rather than its first part, no signature or disclaimer either."""
    text, languages = message.text, tuple(message.languages)
    if header_pattern(languages).search(text):
        return False
    if not whole:
        return True
    # The coarse patterns let through more than the library's own, which then decide;
    # those cost a fraction of its header scan, and read a text only if it could match.
    signature, disclaimer = tail_patterns(languages)
    if signature.search(text) and message.SIGNATURE_REGEX.search(text):
        return False
    return not (disclaimer.search(text) and message.DISCLAIMERS_REGEX.search(text))


@functools.cache
def header_pattern(languages: tuple[str, ...]) -> re.Pattern[str]:
    """What some header pattern of these languages needs, as one pattern: the library's
    "wrote" lines and separator, and the first line of a "From:/Sent:" block."""
    from mailparser_reply import EmailMessage
    from mailparser_reply.constants import GENERIC_MAIL_SEPARATOR, QUOTED_MATCH_INCLUDE

    wrote, blocks = _listed(languages, "wrote_header"), _listed(languages, "from_header")
    header = EmailMessage(text="", languages=list(languages)).HEADER_REGEX.pattern
    if header != "|".join([*wrote, *blocks, f"({GENERIC_MAIL_SEPARATOR})"]):
        return ALWAYS
    names = []
    for block in blocks:
        found = _FIELD_NAMES.search(block)
        first_line = r"((?:(?:^|\n|\n" + QUOTED_MATCH_INCLUDE + r")[* ]*(?:"
        if found is None or not block.startswith(f"{first_line}{found[1]}):"):
            return ALWAYS
        names.append(found[1])
    field_line = rf"^[>* ]*(?:{'|'.join(names)}):"
    return re.compile("|".join([*wrote, GENERIC_MAIL_SEPARATOR, field_line]), _FLAGS)


#: In a "From:/Sent:" pattern: the field names, after the optional stars and spaces.
_FIELD_NAMES = re.compile(r"\[\* \]\*\(\?:([^()]*)\):")


@functools.cache
def tail_patterns(languages: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """What every signature pattern of these languages needs, and every disclaimer one.

    Every signature starts a line: after quote marks, a signature line ("-- ", "-Jane"),
    a "Sent from my …" or a closing phrase ("Best regards"); or a line of underscores or
    hyphens after a blank one. Every disclaimer is followed by the word "mail".
    """
    from mailparser_reply import EmailMessage
    from mailparser_reply.constants import (
        DEFAULT_SIGNATURE_REGEX,
        OPTIONAL_LINEBREAK,
        OUTLOOK_MAIL_SEPARATOR,
        QUOTED_MATCH_INCLUDE,
        SENTENCE_START,
        SINGLE_SPACE_VARIATIONS,
    )

    quoted = QUOTED_MATCH_INCLUDE
    sent_from = "|".join(_listed(languages, "sent_from"))
    closings = "|".join(_listed(languages, "signatures"))
    phrases = "|".join(_listed(languages, "disclaimers")).replace(" ", SINGLE_SPACE_VARIATIONS)
    message = EmailMessage(text="", languages=list(languages))
    signature = message.SIGNATURE_REGEX.pattern
    signature_line = DEFAULT_SIGNATURE_REGEX.removeprefix(rf"\s*^{quoted}")
    separator_line = OUTLOOK_MAIL_SEPARATOR.removeprefix(r"(\n{2,}")
    disclaimer = message.DISCLAIMERS_REGEX.pattern
    disclaimer_start = f"{SENTENCE_START}(?:{phrases})(?:{OPTIONAL_LINEBREAK}"
    extension, _, rest = disclaimer.removeprefix(disclaimer_start).partition("?(?:mail)")
    if not (
        signature_line != DEFAULT_SIGNATURE_REGEX
        and separator_line != OUTLOOK_MAIL_SEPARATOR
        and signature.startswith(f"(({DEFAULT_SIGNATURE_REGEX}|{OUTLOOK_MAIL_SEPARATOR}|")
        and f"|\\s*^{quoted}(?:{sent_from}) ?" in signature
        and signature.endswith(f"|(?<!\\A)^{quoted}(?:{closings}))(.|\\s)*)")
        and disclaimer.startswith(disclaimer_start)
        and re.fullmatch(r"\[[^][]*\]\*", extension)
        and rest == f"{extension}){{1,2}}"
    ):
        return ALWAYS, ALWAYS
    # An empty list of phrases is an empty alternative, in the library's patterns as here.
    lines = rf"^{quoted}(?:{signature_line}|(?:{sent_from})|(?:{closings}))|^({separator_line}"
    return re.compile(lines, _FLAGS), re.compile("mail", _FLAGS)


_FLAGS = re.MULTILINE | re.IGNORECASE  # the library's, for all its patterns


def _listed(languages: tuple[str, ...], key: str) -> list[str]:
    """The library's non-empty patterns of one kind for these languages.

    A language without the key adds nothing: English is always among a message's
    languages, and then the library falls back to no pattern.
    """
    from mailparser_reply.constants import MAIL_LANGUAGES

    def each(value: str | list[str]) -> Iterator[str]:
        yield from filter(None, [value] if isinstance(value, str) else value)

    return [
        p for language in languages for p in each(MAIL_LANGUAGES.get(language, {}).get(key) or [])
    ]
