"""The text of a mail's body: a plain rendering of an HTML body, and the new part of a
reply without its quoted history. Pure: no database, no Flask, no network.
"""

from __future__ import annotations

import html as html_lib
import re


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
