"""The parser on real .eml files: pure functions, no database, no network."""

from __future__ import annotations

import hashlib
import tracemalloc
from dataclasses import replace

import pytest

from ingest.mail import parse
from ingest.mail.parse import (
    DEFAULT_MAX_ATTACHMENT_BYTES,
    MAX_BODY_CHARS,
    UnparseableMessage,
    content_hash,
    parse_message,
)
from tests.helpers import MAIL


def load(name: str):
    return parse_message((MAIL / name).read_bytes())


def test_amazon_inquiry_metadata():
    parsed = load("amazon_uk_inquiry.eml")
    assert parsed.message_id == "<0100018c.amazon-uk-1@email.amazonses.com>"
    assert parsed.order_id == "203-1234567-1234567"
    assert parsed.buyer_name == "Jane Doe"
    assert parsed.relay_alias == "abc123xyz@marketplace.amazon.co.uk"
    assert parsed.buyer_text.startswith("Hello, my parcel has not arrived yet.")
    assert parsed.buyer_text.endswith("Thanks — Jane")
    assert "Begin message" not in parsed.buyer_text
    assert parsed.html and "<p>" in parsed.html  # kept, sanitised only on display
    assert parsed.delivery_addresses == ["uk-chan01@helpdesk.test"]
    assert not parsed.is_automatic
    assert parsed.sent_at.isoformat() == "2026-11-23T10:00:00+00:00"


def test_localised_markers_rfc2047_subject_and_cp1252_labelled_latin1():
    parsed = load("amazon_de_presale.eml")
    assert parsed.subject == "Anfrage von Amazon-Kunde Max Müller"
    assert (
        parsed.buyer_text
        == "Ist der Artikel auch in Größe XL verfügbar? Preis 20 € inkl. “Versand”."
    )
    assert parsed.order_id is None  # a pre-sale question
    assert parsed.relay_alias == "zz9plural@marketplace.amazon.de"
    assert parsed.delivery_addresses[0] == "de-chan02+amazon@helpdesk.test"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("iso2022jp_ms.eml", "ご注文の商品がまだ届きません。①番の商品です。㈱"),
        ("iso2022jp_no_charset.eml", "お問い合わせです。"),
    ],
)
def test_japanese_mail(name, expected):
    parsed = load(name)
    assert parsed.text.strip() == expected
    assert parsed.subject == "お問い合わせ (Order: 250-1111111-2222222)"
    assert parsed.from_name == "山田 太郎"
    assert parsed.relay_alias == "kk77jp@marketplace.amazon.co.jp"
    assert parsed.order_id == "250-1111111-2222222"


def test_inline_image_and_hostile_html_are_kept_for_sanitising():
    parsed = load("hostile_html.eml")
    assert parsed.html and "<script>" in parsed.html  # stored as received
    assert "alert('body')" not in parsed.text  # scripts never reach the text rendering
    (logo,) = parsed.attachments
    assert (logo.filename, logo.content_id, logo.is_inline) == ("logo.png", "logo123", True)
    assert logo.data.startswith(b"\x89PNG")


def test_oversize_attachment_recorded_but_not_kept():
    parsed = parse_message((MAIL / "hostile_html.eml").read_bytes(), max_attachment_bytes=10)
    (logo,) = parsed.attachments
    assert logo.is_skipped and logo.size == 70 and logo.data is None


def test_broken_mime_is_parsed_leniently():
    # fast-mail-parser refuses its Base64: the email package reads it, as far as it goes.
    parsed = load("broken_mime.eml")
    assert parsed.delivery_addresses == ["uk-chan01@helpdesk.test"]
    assert parsed.sent_at is None
    assert parsed.text  # the text part's bytes, decoded however they can be
    assert [a.filename for a in parsed.attachments] == ["invrnoice.pdf"]


def test_missing_message_id_gets_a_stable_synthetic_one():
    raw = (MAIL / "no_message_id.eml").read_bytes()
    first, second = parse_message(raw), parse_message(raw)
    assert first.message_id == second.message_id
    assert first.message_id.endswith("@synthetic.sellerdesk>")


@pytest.mark.parametrize("raw", [b"", b"   \n", (MAIL / "not_mail.eml").read_bytes()])
def test_not_mail_is_unparseable(raw):
    with pytest.raises(UnparseableMessage):
        parse_message(raw)


def test_content_hash_ignores_line_ending_style():
    assert content_hash(b"a\r\nb\r\n") == content_hash(b"a\nb\n")


@pytest.mark.parametrize(
    ("raw", "hashed"),
    [
        # The fields added on the way go (a continuation line with its field); the
        # body keeps exactly one line end at the end, however many it came with.
        (
            b"Received: by mx\n\tfor x\nSubject: Hi\nX-Spam: 1\n\nbody\n\n\n",
            b"Subject: Hi\n\nbody\n",
        ),
        (b"Subject: Hi\n\nbody", b"Subject: Hi\n\nbody\n"),
        (b"Subject: Hi\n\n\n\n", b"Subject: Hi\n\n"),
        (b"Subject: Hi\n\n\nbody\n", b"Subject: Hi\n\n\nbody\n"),
        # No empty line: all of it is header, and a line end is still added.
        (b"Subject: Hi\nReceived: x", b"Subject: Hi\n\n"),
        (b"Subject: Hi\n", b"Subject: Hi\n\n"),
        (b"\n\nbody\n", b"\n\nbody\n"),
        (b"ARC-Seal: i=1\nsubject: Hi\n\nb", b"subject: Hi\n\nb\n"),
    ],
)
def test_the_content_hash_is_of_the_mail_as_sent(raw, hashed):
    assert content_hash(raw) == hashlib.sha256(hashed).hexdigest()


@pytest.mark.parametrize("name", ["amazon_uk_inquiry.eml", "iso2022jp_ms.eml", "hostile_html.eml"])
def test_crlf_mail_from_imap_parses_like_lf_mail(name):
    """Dovecot returns CRLF; the decoded text and Amazon's markers must not depend on it."""
    raw = (MAIL / name).read_bytes().replace(b"\r\n", b"\n")
    lf, crlf = parse_message(raw), parse_message(raw.replace(b"\n", b"\r\n"))
    assert "\r" not in crlf.text
    assert crlf.text == lf.text
    assert crlf.buyer_text == lf.buyer_text
    assert crlf.order_id == lf.order_id
    assert crlf.content_hash == lf.content_hash


@pytest.mark.parametrize(
    "text",
    [
        "",
        " \n\t ",
        "  Hello,\n\n  my   parcel\u00a0has\u2028not\x1carrived.  ",
        "word " * 100,
        "x" * 500,
        "\u3000".join(["wörd", "字", "𝔘"] * 80),
    ],
)
def test_the_snippet_is_the_text_with_its_whitespace_collapsed(text):
    parsed = replace(load("amazon_uk_inquiry.eml"), buyer_text=None, visible_text=text, text=text)
    assert parsed.snippet == " ".join(text.split())[:200]


def test_the_snippet_of_a_long_text_reads_only_its_start():
    # A million-character text must not be split into all its words to keep 200 chars.
    text = "Lorem ipsum dolor sit amet, é " * 40_000
    parsed = replace(load("amazon_uk_inquiry.eml"), buyer_text=None, visible_text=text, text=text)
    tracemalloc.start()
    try:
        snippet = parsed.snippet
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert snippet == " ".join(text.split())[:200]
    assert peak < 100_000


# --- Message-IDs written without their brackets ----------------------------------------


def _with_ids(message_id: bytes, in_reply_to: bytes = b"", references: bytes = b"") -> bytes:
    headers = b"From: a@b.c\nTo: uk@helpdesk.test\nSubject: ids\nMessage-ID: " + message_id
    if in_reply_to:
        headers += b"\nIn-Reply-To: " + in_reply_to
    if references:
        headers += b"\nReferences: " + references
    return headers + b"\n\nhello\n"


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        (b"abc.123@mail.example.com", "abc.123@mail.example.com"),
        (b"  <abc.123@mail.example.com  ", "<abc.123@mail.example.com"),
        (b"abc.123@mail.example.com>", "abc.123@mail.example.com>"),
        (b"two\t words", "two words"),
        (b"<good@example.com> stray", "<good@example.com>"),
    ],
)
def test_a_malformed_message_id_is_kept_as_written_not_made_up(header, kept):
    assert parse_message(_with_ids(header)).message_id == kept


@pytest.mark.parametrize("header", [b"", b"< ", b"<>", b"<\xc2\xa0>"])
def test_a_message_id_header_without_an_id_gets_the_synthetic_one(header):
    raw = _with_ids(header)
    assert parse_message(raw).message_id == f"<{content_hash(raw)[:40]}@synthetic.sellerdesk>"


def test_replies_citing_an_id_as_written_keep_it_as_written():
    parsed = parse_message(
        _with_ids(b"<r@x.y>", in_reply_to=b" abc@example.com ", references=b"z@q abc@example.com")
    )
    assert parsed.in_reply_to == "abc@example.com"
    assert parsed.references == ["z@q", "abc@example.com"]
    # Where brackets are used, only the bracketed ids count, as before.
    bracketed = parse_message(_with_ids(b"<r@x.y>", references=b"<a@b> junk <c@d>"))
    assert bracketed.references == ["<a@b>", "<c@d>"]


def _mail_with(body: str, content_type: str = "text/plain") -> bytes:
    return (
        "From: Buyer <buyer@example.com>\nTo: uk@helpdesk.test\nSubject: Long\n"
        "Message-ID: <long@example.com>\nMIME-Version: 1.0\n"
        f"Content-Type: {content_type}; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        f"{body}"
    ).encode()


@pytest.mark.parametrize("fast", [True, False], ids=["fast-mail-parser", "email package"])
def test_a_body_longer_than_kept_is_cut_at_a_line_break_and_flagged(fast):
    line = "A line of a log pasted into the mail, ü and 注文.\n"
    count = MAX_BODY_CHARS // len(line) + 50
    parsed = parse._parse(_mail_with(line * count), DEFAULT_MAX_ATTACHMENT_BYTES, fast=fast)
    assert parsed.body_cut
    assert MAX_BODY_CHARS - len(line) <= len(parsed.text) <= MAX_BODY_CHARS
    assert parsed.text == line * (len(parsed.text) // len(line))  # whole lines only
    assert len(parsed.visible_text) <= MAX_BODY_CHARS


def test_a_body_of_one_long_line_is_cut_at_the_limit():
    parsed = parse_message(_mail_with("x" * (MAX_BODY_CHARS + 10)))
    assert (len(parsed.text), parsed.body_cut) == (MAX_BODY_CHARS, True)


def test_a_body_at_the_limit_is_kept_whole():
    body = "y" * (MAX_BODY_CHARS - 1) + "\n"
    parsed = parse_message(_mail_with(body))
    assert (parsed.text, parsed.body_cut) == (body, False)


def test_a_long_html_body_is_cut_and_its_text_made_from_what_is_kept():
    html = "<p>" + "Paragraph of a newsletter. " * (MAX_BODY_CHARS // 20) + "THE END</p>"
    parsed = parse_message(_mail_with(html, "text/html"))
    assert parsed.body_cut
    assert len(parsed.html) == MAX_BODY_CHARS
    assert "THE END" not in parsed.text
    assert parsed.text.startswith("Paragraph of a newsletter.")


def test_ordinary_mail_is_not_cut():
    assert not load("amazon_uk_inquiry.eml").body_cut
