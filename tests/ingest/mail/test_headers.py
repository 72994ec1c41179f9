"""Header values: addresses as the parser keeps them."""

from __future__ import annotations

from ingest.mail import headers
from ingest.mail.parse import parse_message


def test_display_names_are_unfolded_like_other_headers():
    raw = (
        b'From: "Jane\tBuyer"\r\n <jane@marketplace.amazon.co.uk>\r\n'
        b"To: uk-chan01@helpdesk.test\r\nSubject: Hello\r\n\r\nHi\r\n"
    )
    parsed = parse_message(raw)
    assert (parsed.from_name, parsed.from_address) == (
        "Jane Buyer",
        "jane@marketplace.amazon.co.uk",
    )


def test_long_address_headers_are_not_kept_after_parsing():
    # Address values are cached across mail; a worker must not keep long ones.
    before = headers._cached_addresses.cache_info().currsize
    for n in range(5):
        to = ", ".join(f"r{n}-{i}@example.com" for i in range(2000))
        parse_message(f"From: a@b.c\nTo: {to}\nSubject: s\n\nx\n".encode())
    assert headers._cached_addresses.cache_info().currsize - before <= 5  # the From only
