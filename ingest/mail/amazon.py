"""What Amazon's buyer-seller relay puts into a mail: the order ID, the buyer's alias and
name, and the buyer's own words between Amazon's markers. Pure: no database, no Flask,
no network.
"""

from __future__ import annotations

import re

ORDER_ID_RE = re.compile(r"\b((?:\d{3}|D\d{2})-\d{7}-\d{7})\b")
# Amazon's Begin/End message markers, in every language: a line of dashes around words.
_MARKER_LINE_RE = re.compile(r"^[ \t]*-{5,}[ \t]*\S.*?-{5,}[ \t]*$", re.MULTILINE)
_RELAY_DOMAIN_RE = re.compile(r"@marketplace\.amazon\.[a-z.]+$", re.IGNORECASE)
_SUBJECT_BUYER_RE = re.compile(r"(?:customer|Kunde|client|cliente|klant|kund)\s+(.+?)\s*\(", re.I)
_FROM_SUFFIX_RE = re.compile(r"\s*-\s*(?:Amazon\s+)?Marketplace\s*$", re.IGNORECASE)


def order_id_in(text: str) -> str | None:
    """The first Amazon order ID in `text`, or None."""
    found = ORDER_ID_RE.search(text)
    return found.group(1) if found else None


def relay_alias(address: str) -> str | None:
    """`address` if it is a buyer's alias at Amazon's relay (…@marketplace.amazon.<tld>)."""
    return address if _RELAY_DOMAIN_RE.search(address) else None


def buyer_text(text: str) -> str | None:
    """What the buyer wrote, between Amazon's Begin and End message markers; None
    where the text has no such pair."""
    markers = list(_MARKER_LINE_RE.finditer(text))
    if len(markers) < 2:
        return None
    return text[markers[0].end() : markers[1].start()].strip()


def buyer_name(subject: str, from_name: str) -> str:
    """The buyer's name: from the subject Amazon writes ("… customer NAME (Order: …)"),
    else the From name without Amazon's "- Marketplace" suffix."""
    named = _SUBJECT_BUYER_RE.search(subject)
    if named:
        return named.group(1).strip()
    return _FROM_SUFFIX_RE.sub("", from_name).strip()
