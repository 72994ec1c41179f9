"""Building a reply's MIME (ingest/mail/compose.py): headers, body, attachments, refusals.

Pure: no database, no network. The outbox service that stores and sends what this
builds is tested in tests/services/test_outbox.py.
"""

from __future__ import annotations

import pytest

from ingest.mail import compose
from tests.helpers import parse_mail

#: A real Amazon SES Message-ID, longer than a folded header line.
LONG_ID = "<0100018c9a7b2c3d-4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8-000000@eu-west-1.amazonses.com>"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Inquiry from Amazon customer Jane", "Re: Inquiry from Amazon customer Jane"),
        ("Re: Inquiry", "Re: Inquiry"),
        ("RE: re:Re : Inquiry", "Re: Inquiry"),
        ("Re[2]: Inquiry", "Re: Inquiry"),
        ("AW: Anfrage", "Re: AW: Anfrage"),
        ("Reply about my order", "Re: Reply about my order"),
        ("", "Re:"),
    ],
)
def test_reply_subject_never_stacks_prefixes(subject, expected):
    assert compose.reply_subject(subject) == expected


def test_build_reply_headers_body_and_attachments():
    built = compose.build_reply(
        from_address="UK-Shop@helpdesk.test",
        to_address="jane123@marketplace.amazon.co.uk",
        from_name="Acme, Ltd",
        subject="Re: Größe – 注文 (Order: 203-1234567-1234567)",
        body="Hallo Jürgen,\r\n" + "a very long line " * 80 + "\r\n.\r\nBye",
        in_reply_to=LONG_ID,
        references=["<first@amazon.co.uk>", LONG_ID],
        attachments=[
            ("../../etc/Rechnung März.pdf", "application/pdf", b"%PDF-1.4\n"),
            ('photo"1".JPG', "", b"\xff\xd8\xff"),
        ],
    )
    assert built.raw.count(b"\r\n") > 10 and b"\n" not in built.raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in built.raw.split(b"\r\n"))
    assert built.raw.isascii()
    msg = parse_mail(built.raw)
    assert msg["From"] == '"Acme, Ltd" <uk-shop@helpdesk.test>'
    assert msg["To"] == "jane123@marketplace.amazon.co.uk"
    assert msg["Subject"] == "Re: Größe – 注文 (Order: 203-1234567-1234567)"
    assert msg["Message-ID"] == built.message_id
    assert built.message_id.endswith("@helpdesk.test>")
    # A msg-id longer than a line stays a msg-id (not an RFC 2047 encoded word).
    assert msg["In-Reply-To"] == LONG_ID
    assert msg["References"].split() == ["<first@amazon.co.uk>", LONG_ID]
    assert b"=?" not in b"".join(
        line for line in built.raw.split(b"\r\n") if line.startswith((b"In-Reply-To", b" <"))
    )
    assert msg["Auto-Submitted"] == "no"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"].datetime is not None
    for header in ("Precedence", "List-Id", "List-Unsubscribe", "X-Auto-Response-Suppress"):
        assert header not in msg
    body = msg.get_body(("plain",))
    assert body.get_content_charset() == "utf-8"
    assert body["Content-Transfer-Encoding"] == "quoted-printable"
    assert body.get_content() == "Hallo Jürgen,\n" + "a very long line " * 80 + "\n.\nBye\n"
    parts = list(msg.iter_attachments())
    assert [(p.get_filename(), p.get_content_type()) for p in parts] == [
        ("Rechnung März.pdf", "application/pdf"),
        ("photo_1_.JPG", "image/jpeg"),
    ]
    assert parts[0].get_content() == b"%PDF-1.4\n"
    assert all("MIME-Version" not in p for p in parts)


def test_references_are_bounded_and_keep_the_root():
    previous = [f"<ref{i}@example.com>" for i in range(40)]
    refs = compose.build_references(" ".join(previous), "<answered@example.com>")
    assert len(refs) == compose.MAX_REFERENCES
    assert refs[0] == "<ref0@example.com>"
    assert refs[-1] == "<answered@example.com>"
    assert refs[-2] == "<ref39@example.com>"
    huge = [f"<{'x' * 200}{i}@example.com>" for i in range(9)]
    refs = compose.build_references(huge, "<answered@example.com>")
    assert len(" ".join(refs)) <= compose.MAX_REFERENCES_CHARS
    assert refs[0] == huge[0] and refs[-1] == "<answered@example.com>"
    # Malformed ids (spaces, control characters, no @) are dropped, repeats collapse.
    assert compose.build_references(["<a@b>", "<bad>", "<x\x01@y>", "<a@b>"], "<c@d>") == [
        "<a@b>",
        "<c@d>",
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Re: hello\r\nBcc: victim@example.com"),
        ("subject", "Re: hello\nBcc: victim@example.com"),
        ("subject", "Re: hello\rBcc: victim@example.com"),
        ("subject", "Re: tab\there"),
        ("subject", "Re: nul\x00"),
        ("subject", "Re: line\u2028separator"),
        ("from_name", "Acme\r\nBcc: victim@example.com"),
        ("from_address", "shop@helpdesk.test\r\nBcc: victim@example.com"),
        ("to_address", "jane@marketplace.amazon.co.uk\nBcc: victim@example.com"),
        ("filename", "invoice.pdf\r\nContent-Type: text/html"),
        ("filename", "invoice\n.pdf"),
        ("content_type", "application/pdf\r\nX-Evil: 1"),
    ],
)
def test_control_characters_in_header_values_are_refused(field, value):
    kwargs = {
        "from_address": "shop@helpdesk.test",
        "to_address": "jane@marketplace.amazon.co.uk",
        "subject": "Re: hello",
        "from_name": "Acme",
    }
    attachment = ["file.pdf", "application/pdf", b"x"]
    if field == "filename":
        attachment[0] = value
    elif field == "content_type":
        attachment[1] = value
    else:
        kwargs[field] = value
    with pytest.raises(compose.MailError, match="line break or another control character"):
        compose.build_reply(body="Hi", attachments=[tuple(attachment)], **kwargs)


@pytest.mark.parametrize(
    "address", ["", "jane", "jane@", "a b@example.com", "jäne@example.com", "a@b.c, d@e.f"]
)
def test_bad_addresses_are_refused(address):
    with pytest.raises(compose.MailError):
        compose.check_address("buyer's address", address)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("invoice.pdf", "invoice.pdf"),
        ("C:\\Users\\me\\invoice.pdf", "invoice.pdf"),
        ("../../.bashrc", "bashrc"),
        ("a<b>c:d|e?f*g.png", "a_b_c_d_e_f_g.png"),
        # A right-to-left override would show the buyer `photoexe.jpg` for `photogpj.exe`.
        ("photo\u202egpj.exe", "photogpj.exe"),
        ("", "attachment"),
        ("x" * 300 + ".pdf", "x" * (compose.MAX_FILENAME_CHARS - 4) + ".pdf"),
    ],
)
def test_safe_filename(filename, expected):
    assert compose.safe_filename(filename) == expected
