"""The text of a mail's body: a plain rendering of an HTML body, and the new part of a
reply without its quoted history. Pure: no database, no Flask, no network.
"""

from __future__ import annotations

import html as html_lib
import re

from ingest.mail import reply_precheck


def html_to_text(html: str) -> str:
    """A plain-text rendering of an HTML body, for search and snippets."""
    text = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", html)
    text = re.sub(r"(?i)<br\s*/?>|</(p|div|tr|li|h\d)>", "\n", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = html_lib.unescape(text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


#: The reply heuristic reads at most about this many characters of a text, since its
#: work grows with the length and the new part of a reply is at the top: in a longer
#: text, quoted history that starts further down stays in the visible part.
QUOTE_SCAN_CHARS = 32_000


#: The languages whose reply headers, signatures and disclaimers the heuristic knows.
REPLY_LANGUAGES = ("en", "de", "fr", "it", "es", "nl", "sv", "pl", "ja")


def strip_quoted(text: str, *, precheck: bool = True) -> str:
    """The new part of a reply: quoted history and "On … wrote:" blocks removed.

    With precheck off the heuristic reads every text; the tests compare both ways.
    """
    from mailparser_reply import EmailMessage, EmailReplyParser

    head = text
    if len(text) > QUOTE_SCAN_CHARS:
        # Cut at a line end, so that no line the heuristic matches is cut short.
        head = text[: text.rfind("\n", 0, QUOTE_SCAN_CHARS) + 1] or text[:QUOTE_SCAN_CHARS]
    try:
        # EmailReplyParser.read(head) is this message: the parser only filters languages.
        languages = EmailReplyParser(languages=list(REPLY_LANGUAGES)).languages
        message = EmailMessage(text=head, languages=languages)
        if precheck and reply_precheck.cuts_nothing(message, whole=head is text):
            # What the heuristic returns then: one part, no header, so in a cut text no
            # history (as below), and in a whole one the text as the library normalized it.
            visible = message.text.strip() if head is text else text
        else:
            replies = message.read().replies
            if head is not text and not _history_found(replies):
                visible = text  # no quoted history in the part read: all of it is new
            else:
                visible = replies[0].body if replies else text
    except Exception:  # the reply parser is a heuristic: never let it lose the text
        visible = text
    lines = visible.rstrip().splitlines()
    while lines and (lines[-1].startswith(">") or not lines[-1].strip()):
        lines.pop()
    return "\n".join(lines).strip() or text.strip()


def _history_found(replies: list) -> bool:
    """Whether the reply parser found the header of a quoted mail ("On … wrote:")."""
    return len(replies) > 1 or any(reply.headers for reply in replies)
