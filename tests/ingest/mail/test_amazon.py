"""Amazon's rules for an order ID and an ASIN, which the parser, the reply check and the
inbox share, and the order ID the parser takes from a mail."""

from __future__ import annotations

import pytest

from ingest.mail.amazon import ASIN_RE, ORDER_ID_RE, relay_alias
from ingest.mail.parse import parse_message
from tests.mailgen import amazon_message


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Order ID 123-1234567-1234567:", "123-1234567-1234567"),
        ("(Order: 250-1111111-2222222)", "250-1111111-2222222"),
        ("Your digital order D01-1234567-1234567", "D01-1234567-1234567"),
        # Other letters stand where D does for digital orders, too: the reply check has
        # always taken them for an order ID, and so does the parser now.
        ("Order S01-1234567-1234567", "S01-1234567-1234567"),
        ("orderID=123-1234567-1234567&ref=x", "123-1234567-1234567"),
        # Not an order ID: digits and dashes that go on, a longer group, a lower-case
        # letter, a word around it.
        ("ref 123-1234567-1234567-8", None),
        ("ref 9-123-1234567-1234567", None),
        ("ref 1234-1234567-1234567", None),
        ("ref 123-1234567-12345678", None),
        ("ref d01-1234567-1234567", None),
        ("ref x123-1234567-1234567", None),
    ],
)
def test_order_id_rule(text, found):
    match = ORDER_ID_RE.search(text)
    assert (match.group() if match else None) == found


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("ASIN: B07XYZ1234", ["B07XYZ1234"]),
        ("ASIN：B07XYZ1234", ["B07XYZ1234"]),  # a full-width colon (Japanese mail)
        ("ASIN B07XYZ1234 and ASIN:0316769487", ["B07XYZ1234", "0316769487"]),
        ("ASIN: b07xyz1234", []),
        ("ASIN: B07XYZ12345", []),
        ("PASIN: B07XYZ1234", []),
    ],
)
def test_asin_rule(text, found):
    assert ASIN_RE.findall(text) == found


def _mail(subject: str, body: str = "Hello") -> bytes:
    return (
        f"From: a@marketplace.amazon.co.uk\nTo: uk@helpdesk.test\nSubject: {subject}\n\n{body}\n"
    ).encode()


def test_parser_takes_an_order_id_with_any_letter_first():
    parsed = parse_message(_mail("Inquiry from Amazon customer Jane (Order: S01-1234567-1234567)"))
    assert parsed.order_id == "S01-1234567-1234567"


def test_parser_takes_no_order_id_out_of_a_longer_number():
    # Word boundaries, the parser's rule before, took 123-1234567-1234567 out of it.
    parsed = parse_message(_mail("Your parcel", "Tracking 123-1234567-1234567-8"))
    assert parsed.order_id is None
    parsed = parse_message(
        _mail("Your parcel", "Tracking 123-1234567-1234567-8, order 111-1111111-1111111")
    )
    assert parsed.order_id == "111-1111111-1111111"


@pytest.mark.parametrize("tld", ["ie", "com.be", "co.za", "co.uk", "de", "co.jp"])
def test_a_buyer_message_from_each_marketplace_relay_is_read(tld):
    parsed = parse_message(amazon_message(7, "ie-chan01@helpdesk.test", tld=tld))
    assert parsed.relay_alias is not None
    assert parsed.relay_alias.endswith(f"@marketplace.amazon.{tld}")
    assert parsed.order_id is not None and ORDER_ID_RE.fullmatch(parsed.order_id)
    assert parsed.buyer_name
    assert parsed.buyer_text


@pytest.mark.parametrize(
    ("address", "alias"),
    [
        ("x1@marketplace.amazon.ie", True),
        ("x1@marketplace.amazon.com.be", True),
        ("x1@marketplace.amazon.co.za", True),
        ("x1@amazon.co.za", False),
        ("x1@marketplace-amazon.co.za", False),
    ],
)
def test_relay_alias_rule(address, alias):
    assert (relay_alias(address) == address) is alias
