"""What Amazon's buyer-seller relay puts into a mail: the order ID, the buyer's alias and
name, and the buyer's own words between Amazon's markers; and the rules for an order
ID and an ASIN, which the services use too. Pure: no database, no Flask, no network.
"""

from __future__ import annotations

import re

#: An Amazon order ID, the one rule for the parser and the reply check: groups of 3, 7
#: and 7 digits, where a digital order has a letter and two digits first (D01-…). A
#: whole token: digits and dashes that go on (123-1234567-1234567-8) are another number.
ORDER_ID_RE = re.compile(r"(?<![\w-])(?:\d{3}|[A-Z]\d{2})-\d{7}-\d{7}(?![\w-])")
#: An ASIN in Amazon's item lines ("ASIN: B07XYZ1234"), also with a full-width colon
#: (Japanese mail) or none: ten capital letters and digits (a book's is its ISBN-10).
ASIN_RE = re.compile(r"\bASIN\s*[:：]?\s*([A-Z0-9]{10})\b")
# Amazon's Begin/End message markers, in every language: a line of dashes around words.
_MARKER_LINE_RE = re.compile(r"^[ \t]*-{5,}[ \t]*\S.*?-{5,}[ \t]*$", re.MULTILINE)
_RELAY_DOMAIN_RE = re.compile(r"@marketplace\.amazon\.[a-z.]+$", re.IGNORECASE)
_SUBJECT_BUYER_RE = re.compile(r"(?:customer|Kunde|client|cliente|klant|kund)\s+(.+?)\s*\(", re.I)
_FROM_SUFFIX_RE = re.compile(r"\s*-\s*(?:Amazon\s+)?Marketplace\s*$", re.IGNORECASE)


def order_id_in(text: str) -> str | None:
    """The first Amazon order ID in `text`, or None."""
    found = ORDER_ID_RE.search(text)
    return found.group() if found else None


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
