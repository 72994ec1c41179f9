"""Amazon's messaging rules as warnings on a reply: pure functions, no database."""

from __future__ import annotations

import dataclasses

import pytest

from portal.services.compliance import ComplianceWarning, check_reply

MB = 1024 * 1024


def codes(body: str, **kwargs) -> list[str]:
    return [w.code for w in check_reply(body, **kwargs)]


def excerpts(body: str, code: str, **kwargs) -> list[str | None]:
    return [w.excerpt for w in check_reply(body, **kwargs) if w.code == code]


def test_a_clean_reply_has_no_warnings():
    body = (
        "Dear Jane,\n\nthank you for your message about order 123-1234567-1234567. "
        "We shipped it on 12.03.2024 with Royal Mail; it costs £12.99 and should arrive "
        "within 2-3 working days. We can offer you a replacement or a refund.\n\nKind regards"
    )
    assert check_reply(body, order_id="123-1234567-1234567", is_post_order=True) == []


def test_warnings_are_frozen_and_say_what_to_do():
    (warning,) = check_reply("See https://example.com")
    assert isinstance(warning, ComplianceWarning)
    assert warning.code == "outside_link"
    assert warning.excerpt == "https://example.com"
    assert "Amazon" in warning.message and "Remove" in warning.message
    with pytest.raises(dataclasses.FrozenInstanceError):
        warning.code = "other"  # type: ignore[misc]


# --- links -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "excerpt"),
    [
        ("Details on https://mystore.com/help.", "https://mystore.com/help"),
        ("See http://example.org/a?b=1 please", "http://example.org/a?b=1"),
        ("Go to www.mystore.co.uk, thanks", "www.mystore.co.uk"),
        ("Our returns page: shop.example.com/returns", "shop.example.com/returns"),
        ("Visit example.com for more", "example.com"),
        ("Visit MyStore.COM today", "MyStore.COM"),
        ("mehr auf meinshop.de", "meinshop.de"),
        ("(see bit.ly/abc123)", "bit.ly/abc123"),
        # Amazon's name before an @ is the user part: the host is evil.example.
        ("https://amazon.de@evil.example/x", "https://amazon.de@evil.example/x"),
        ("https://amazon.de.evil.example/x", "https://amazon.de.evil.example/x"),
        ("www.fakeamazon.com", "www.fakeamazon.com"),
        ("amazon-deals.com", "amazon-deals.com"),
    ],
)
def test_outside_links_are_flagged(body, excerpt):
    assert excerpts(body, "outside_link") == [excerpt]


@pytest.mark.parametrize(
    "body",
    [
        "See https://www.amazon.com/dp/B000000000",
        "See https://www.amazon.co.uk/gp/help/customer/display.html",
        "See www.amazon.de/returns",
        "See amazon.co.jp/gp/css/order-history",
        "https://sellercentral.amazon.com.au/help",
        "amazon.fr, amazon.it, amazon.es, amazon.com.mx and Amazon.de",
        "The invoice.pdf is attached, e.g. as Mr.Smith said.",
        "The product.It works again.",
        "Version 2.0 costs 3.5 EUR",
        "z.B. morgen, ca. 3 Tage, usw.",
        "",
    ],
)
def test_amazon_links_and_ordinary_text_are_not_flagged(body):
    assert "outside_link" not in codes(body)


def test_each_link_is_reported_once_and_not_also_as_an_email():
    body = "https://amazon.de@evil.example/x and https://x.example/ and https://x.example/"
    found = check_reply(body)
    assert [w.code for w in found] == ["outside_link", "outside_link", "outside_link"]


# --- e-mail addresses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "excerpt"),
    [
        ("Write to support@mystore.com.", "support@mystore.com"),
        ("john.doe+shop@example.co.uk", "john.doe+shop@example.co.uk"),
        ("Mail: INFO@SHOP.DE", "INFO@SHOP.DE"),
        ("jane (at) example (dot) com", "jane (at) example (dot) com"),
        ("jane [at] example.com", "jane [at] example.com"),
        # Amazon's relay alias is still an address: the buyer answers through the thread.
        ("abc123@marketplace.amazon.co.uk", "abc123@marketplace.amazon.co.uk"),
    ],
)
def test_email_addresses_are_flagged(body, excerpt):
    assert excerpts(body, "email_address") == [excerpt]
    assert "outside_link" not in codes(body)


@pytest.mark.parametrize(
    "body",
    ["Please look at the photo.", "Price @ £5 each", "user@localhost", "@mystore on the box"],
)
def test_text_without_email_addresses(body):
    assert "email_address" not in codes(body)


# --- phone numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "excerpt"),
    [
        ("Call us on +44 20 7946 0958.", "+44 20 7946 0958"),
        ("+44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
        ("+49 30 1234567", "+49 30 1234567"),
        ("+1 (555) 123-4567", "+1 (555) 123-4567"),
        ("+81 3-1234-5678", "+81 3-1234-5678"),
        ("0049 30 1234567", "0049 30 1234567"),
        ("our number 020 7946 0958", "020 7946 0958"),
        ("mobile 07700 900123", "07700 900123"),
        ("Telefon: 030/1234567", "030/1234567"),
        ("appelez le 01 23 45 67 89", "01 23 45 67 89"),
        ("01.23.45.67.89", "01.23.45.67.89"),
        ("06 1234 5678", "06 1234 5678"),
        ("(555) 123-4567", "(555) 123-4567"),
        ("555-123-4567", "555-123-4567"),
        ("1-800-555-0199", "1-800-555-0199"),
        ("llame al 612 345 678", "612 345 678"),
        ("03-1234-5678 までお電話ください", "03-1234-5678"),
        ("電話：０９０－１２３４－５６７８", "090-1234-5678"),
        ("Tel.: 6123 4567", "6123 4567"),
        ("WhatsApp 5551234567", "5551234567"),
    ],
)
def test_phone_numbers_are_flagged(body, excerpt):
    assert excerpts(body, "phone_number") == [excerpt]


@pytest.mark.parametrize(
    "body",
    [
        "Order 123-1234567-1234567",
        "Bestellung 302-1234567-7654321 vom 12.03.2024",
        "Your digital order D01-1234567-1234567",
        "ASIN B07XJ8C8F5",
        "ASIN: 0316769487",  # a book's ASIN is its ISBN-10
        "ISBN 978-3-16-148410-0",
        "EAN 4006381333931",
        "Delivered on 12.03.2024, 2024-03-12, 12/03/2024 or 3.12.24",
        "between 01.03.2024 and 05.03.2024",
        "It costs £1,299.99, 1.299,00 € or $12.99; 0.123456789 is a ratio",
        "Postcode SW1A 1AA, PLZ 10115, ZIP 02134-1234, CP 75008",
        "〒100-0001 東京都千代田区",
        "Tracking number: 0034043416123456",
        "Your tracking number is 00340434161234567890",
        "Sendungsnummer 00340434161234567890",
        "Rechnungsnr.: 2024-081512",
        "Invoice 0123456789",
        "1Z999AA10123456784",
        "open 9:00 - 17:30, 2 x 250 ml, qty 3",
        "IBAN DE89 3704 0044 0532 0130 00",
        "version 10.0.19045.3803",
        "Call me back about order 123-1234567-1234567",
    ],
)
def test_order_ids_dates_prices_and_codes_are_not_phone_numbers(body):
    assert "phone_number" not in codes(body)


def test_order_id_next_to_a_phone_number_keeps_them_apart():
    body = "Order 123-1234567-1234567 0800 123 4567"
    assert excerpts(body, "phone_number") == ["0800 123 4567"]


# --- marketing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "excerpt"),
    [
        ("Here is a discount for next time", "discount"),
        ("Use this COUPON", "COUPON"),
        ("promo code SAVE10", "promo code"),
        ("Our summer sale starts now", "sale"),
        ("Get 20% off your next order", "20% off"),
        ("A special offer just for you", "special offer"),
        ("Buy now while stocks last", "Buy now"),
        ("Sign up to our newsletter", "newsletter"),
        ("Follow us on Instagram", "Follow us"),
        ("please subscribe to our channel", "subscribe"),
        ("see our other products", "our other products"),
        ("Ihr Gutschein für die nächste Bestellung", "Gutschein"),
        ("10 % Rabatt", "Rabatt"),
        ("avec le code promo ETE", "code promo"),
        ("les soldes commencent", "soldes"),
        ("un descuento especial", "descuento"),
        ("oferta especial", "oferta especial"),
        ("uno sconto del 10%", "sconto"),
        ("次回使えるクーポンです", "クーポン"),
        ("セール開催中", "セール"),
        ("Please leave a positive review", "positive review"),
        ("a 5-star review would help", "5-star review"),
    ],
)
def test_marketing_is_flagged(body, excerpt):
    assert excerpts(body, "marketing") == [excerpt]


@pytest.mark.parametrize(
    "body",
    [
        "We can offer you a replacement or a full refund.",
        "Our after-sale service will contact you.",
        "Thank you for your order now on its way.",
        "The parcel is waiting for customs clearance.",
        "You can use Subscribe & Save on Amazon for this item.",
        "To unsubscribe from Amazon messages, use the link Amazon provides.",
        "We are sorry; please tell us how we can help.",
        "Vielen Dank für Ihre Bestellung.",
        "セールスチームに確認します",
        "Wholesale enquiries",
        "If you have a moment, you are welcome to leave a review.",
    ],
)
def test_ordinary_customer_service_is_not_marketing(body):
    assert "marketing" not in codes(body)


def test_a_term_is_reported_once():
    assert codes("discount, DISCOUNT and discount") == ["marketing"]


# --- attachments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attachments",
    [
        [("invoice.pdf", "application/pdf", 9 * MB)],
        [("a.pdf", "application/pdf", 5 * MB), ("b.jpg", "image/jpeg", 5 * MB)],
        [("photo.JPEG", "image/jpeg; name=photo.JPEG", 1000)],
        [("notes.txt", "text/plain", 10), ("manual.docx", "application/octet-stream", 10)],
        [("label.png", "", 10), ("old.doc", "application/msword", 10), ("x.gif", "image/gif", 1)],
        [],
    ],
)
def test_accepted_attachments(attachments):
    assert check_reply("Attached.", attachments=attachments) == []


def test_attachments_over_10_mb_in_total():
    found = check_reply(
        "Attached.",
        attachments=[("a.pdf", "application/pdf", 6 * MB), ("b.png", "image/png", 5 * MB)],
    )
    assert [w.code for w in found] == ["attachment_size"]
    assert "10 MB" in found[0].message and "11.0 MB" in found[0].message
    assert codes("x", attachments=[("a.pdf", "application/pdf", 10 * MB)]) == []
    assert codes("x", attachments=[("a.pdf", "application/pdf", 10 * MB + 1)]) == [
        "attachment_size"
    ]


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("setup.exe", "application/x-msdownload"),
        ("invoice.pdf.exe", "application/octet-stream"),
        ("photos.zip", "application/zip"),
        ("backup.rar", "application/vnd.rar"),
        ("page.html", "text/html"),
        ("run.js", "text/javascript"),
        ("script.sh", "application/x-sh"),
        ("macro.docm", "application/vnd.ms-word.document.macroEnabled.12"),
        ("video.mp4", "video/mp4"),
        ("README", "text/plain"),
        ("", "application/pdf"),
        # The right name, the wrong content: a page disguised as text.
        ("notes.txt", "text/html"),
    ],
)
def test_attachment_types_amazon_does_not_accept(filename, content_type):
    found = check_reply(
        "x", attachments=[("ok.pdf", "application/pdf", 1), (filename, content_type, 1)]
    )
    assert [w.code for w in found] == ["attachment_type"]
    name = filename or "an unnamed attachment"
    assert found[0].excerpt == name
    assert f'"{name}"' in found[0].message and "PDF" in found[0].message


# --- order reference -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kwargs", "expected"),
    [
        ("About your parcel", {"order_id": "123-1234567-1234567", "is_post_order": True}, True),
        (
            "About order 123-1234567-1234567",
            {"order_id": "123-1234567-1234567", "is_post_order": True},
            False,
        ),
        (
            "Order d01-1234567-1234567",
            {"order_id": "D01-1234567-1234567", "is_post_order": True},
            False,
        ),
        # Another order's number is not this one's.
        (
            "Order 111-1111111-1111111",
            {"order_id": "123-1234567-1234567", "is_post_order": True},
            True,
        ),
        ("About your parcel", {"order_id": None, "is_post_order": True}, True),
        ("Order 111-1111111-1111111", {"order_id": None, "is_post_order": True}, False),
        # Questions before a purchase have no order to mention.
        ("About the size", {"order_id": "123-1234567-1234567", "is_post_order": False}, False),
        ("About the size", {}, False),
    ],
)
def test_missing_order_reference_on_post_order_threads(body, kwargs, expected):
    found = [w for w in check_reply(body, **kwargs) if w.code == "missing_order_reference"]
    assert bool(found) is expected
    if found and kwargs.get("order_id"):
        assert kwargs["order_id"] in found[0].message
