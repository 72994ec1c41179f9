"""SMTP_URL and the transports (ingest/mail/smtp.py); the `outbox:` folder without a server.

The real SMTP server is exercised in tests/integration/test_replies.py.
"""

from __future__ import annotations

import pytest

from ingest.mail import compose, smtp


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", ("smtp", "mail.example.com", 25, "plain", "", "")),
        (
            "smtp+starttls://us%40er:p%40ss%3Aw%2Fd@mail.example.com",
            ("smtp", "mail.example.com", 587, "starttls", "us@er", "p@ss:w/d"),
        ),
        ("smtps://u:p@mail.example.com:2465", ("smtp", "mail.example.com", 2465, "tls", "u", "p")),
        ("smtp://127.0.0.1:2525", ("smtp", "127.0.0.1", 2525, "plain", "", "")),
    ],
)
def test_parse_smtp_url(url, expected):
    t = smtp.parse_smtp_url(url)
    assert (t.kind, t.host, t.port, t.security, t.username, t.password) == expected
    assert "p@ss" not in repr(t) and ":p@" not in repr(t)


def test_parse_smtp_url_outbox_and_errors(tmp_path):
    assert smtp.parse_smtp_url(f"outbox:{tmp_path}").path == str(tmp_path)
    for bad in ("outbox:", "http://example.com", "smtp://", "smtp://host:port"):
        with pytest.raises(compose.MailError):
            smtp.parse_smtp_url(bad)


def test_outbox_transport_writes_atomically_and_overwrites_on_retry(tmp_path):
    transport = smtp.parse_smtp_url(f"outbox:{tmp_path / 'out'}")
    for raw in (b"first\r\n", b"second\r\n"):
        smtp.send_raw(
            transport, sender="a@b.c", recipients=["d@e.f"], raw=raw, message_id="<id@x.y>"
        )
    files = list((tmp_path / "out").iterdir())
    assert [f.name for f in files] == [smtp.outbox_filename("<id@x.y>")]
    assert files[0].read_bytes() == b"second\r\n"
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(smtp.TemporarySendError, match="outbox"):
        smtp.send_raw(
            smtp.parse_smtp_url(f"outbox:{blocked}"),
            sender="a@b.c",
            recipients=["d@e.f"],
            raw=b"x",
            message_id="<id@x.y>",
        )
