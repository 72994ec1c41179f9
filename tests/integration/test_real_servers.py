"""Smoke tests for the real servers the suite starts (tests/servers.py)."""

from __future__ import annotations

import smtplib
import time
import uuid
from email.message import EmailMessage

import psycopg
import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, LoginError

from tests.servers import DovecotServer, PostgresServer, SmtpServer


def _message(n: int, *, to: str = "seller@example.test") -> bytes:
    msg = EmailMessage()
    msg["From"] = "buyer@marketplace.amazon.de"
    msg["To"] = to
    msg["Subject"] = f"Inquiry {n} from Amazon customer Jürgen (Order: 302-1234567-123456{n})"
    msg["Message-ID"] = f"<smoke-{n}-{uuid.uuid4().hex}@example.test>"
    msg.set_content(f"Message number {n}\n")
    return msg.as_bytes()


def _imap_user(dovecot: DovecotServer) -> tuple[str, str]:
    user, password = f"u{uuid.uuid4().hex[:8]}@example.test", "s3cret"
    dovecot.add_user(user, password)
    return user, password


def _connect(dovecot: DovecotServer, user: str, password: str) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    try:
        client.login(user, password)
    except Exception:
        client.shutdown()
        raise
    return client


@pytest.mark.imap
def test_dovecot_append_and_peek_by_uid(dovecot: DovecotServer) -> None:
    user, password = _imap_user(dovecot)
    with _connect(dovecot, user, password) as client:
        assert b"IDLE" in client.capabilities()
        uidvalidity = client.select_folder("INBOX")[b"UIDVALIDITY"]
        for n in range(3):
            client.append("INBOX", _message(n))

        info = client.select_folder("INBOX")
        assert info[b"UIDVALIDITY"] == uidvalidity
        uids = client.search("ALL")  # UIDs: IMAPClient uses UID commands by default
        assert len(uids) == 3
        fetched = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
        subjects = [fetched[uid][b"BODY[]"].split(b"\r\nSubject: ")[1][:9] for uid in uids]
        assert subjects == [b"Inquiry 0", b"Inquiry 1", b"Inquiry 2"]
        # PEEK must leave the messages unread.
        assert all(b"\\Seen" not in flags for flags in client.get_flags(uids).values())

    # Maildir on disk holds the three messages.
    maildir = dovecot.maildir(user)
    assert len([*maildir.glob("cur/*"), *maildir.glob("new/*")]) == 3


@pytest.mark.imap
def test_dovecot_users_added_while_running(dovecot: DovecotServer) -> None:
    # Several users in quick succession: each must be usable at once.
    for _ in range(3):
        user, password = _imap_user(dovecot)
        with _connect(dovecot, user, password) as client:
            assert client.select_folder("INBOX")[b"EXISTS"] == 0

    dovecot.add_user(user, "changed")
    with pytest.raises(LoginError):
        _connect(dovecot, user, password)
    _connect(dovecot, user, "changed").logout()


@pytest.mark.imap
def test_dovecot_wrong_password_fails_fast(dovecot: DovecotServer) -> None:
    user, _ = _imap_user(dovecot)
    for _ in range(2):  # the anvil penalty would start with the second failure
        started = time.monotonic()
        with pytest.raises(LoginError):
            _connect(dovecot, user, "wrong")
        # Dovecot's defaults would make this 2 s and growing (anvil penalty); its
        # fixed 0.5 s failure-queue tick remains.
        assert time.monotonic() - started < 1.2


@pytest.mark.imap
def test_dovecot_restart_keeps_messages(dovecot: DovecotServer) -> None:
    user, password = _imap_user(dovecot)
    with _connect(dovecot, user, password) as client:
        client.append("INBOX", _message(1))
        client.append("INBOX", _message(2))
        info = client.select_folder("INBOX", readonly=True)
        before = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])

        dovecot.restart()

        # The open session is cut, as a fetch in progress would be.
        with pytest.raises((IMAPClientAbortError, OSError)):
            client.noop()

    with _connect(dovecot, user, password) as client:
        after_info = client.select_folder("INBOX", readonly=True)
        assert after_info[b"UIDVALIDITY"] == info[b"UIDVALIDITY"]
        after = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
    assert {uid: d[b"BODY[]"] for uid, d in after.items()} == {
        uid: d[b"BODY[]"] for uid, d in before.items()
    }


def _send(smtp: SmtpServer, raw: bytes, to: list[str] | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
        client.sendmail("seller@example.test", to or ["buyer@marketplace.amazon.de"], raw)


@pytest.mark.smtp
def test_smtp_receives_with_headers_intact(smtp: SmtpServer) -> None:
    msg = EmailMessage()
    msg["From"] = "Seller <seller@example.test>"
    msg["To"] = "buyer@marketplace.amazon.de"
    msg["Subject"] = "Re: Anfrage zu Bestellung 302-1234567-1234567 – Größe"
    msg["In-Reply-To"] = "<orig@amazon.de>"
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("Hallo,\nvielen Dank.\n")
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
        client.send_message(
            msg, "seller@example.test", ["buyer@marketplace.amazon.de", "copy@example.test"]
        )

    [received] = smtp.messages
    assert received.mail_from == "seller@example.test"
    assert received.rcpt_tos == ["buyer@marketplace.amazon.de", "copy@example.test"]
    assert received.message["Subject"] == msg["Subject"]
    assert received.message["In-Reply-To"] == "<orig@amazon.de>"
    assert received.message["Auto-Submitted"] == "auto-replied"
    assert received.message.get_content() == "Hallo,\nvielen Dank.\n"
    assert b"\r\nIn-Reply-To: <orig@amazon.de>\r\n" in received.raw


@pytest.mark.smtp
@pytest.mark.parametrize(
    ("at", "code", "error"),
    [
        ("data", 550, smtplib.SMTPDataError),
        ("data", 451, smtplib.SMTPDataError),
        ("rcpt", 550, smtplib.SMTPRecipientsRefused),
        ("mail", 421, smtplib.SMTPSenderRefused),
    ],
)
def test_smtp_reject_next(smtp: SmtpServer, at: str, code: int, error: type[Exception]) -> None:
    smtp.reject_next(code, "5.0.0 go away" if code >= 500 else "4.0.0 try later", at=at)
    with pytest.raises(error) as excinfo:
        _send(smtp, _message(1))
    if isinstance(excinfo.value, smtplib.SMTPRecipientsRefused):
        assert [c for c, _ in excinfo.value.recipients.values()] == [code]
    else:
        assert excinfo.value.smtp_code == code  # type: ignore[attr-defined]
    assert smtp.messages == []

    _send(smtp, _message(2))  # only the next message was rejected
    assert len(smtp.messages) == 1


@pytest.mark.smtp
def test_smtp_down_then_up_on_same_port(smtp: SmtpServer) -> None:
    port = smtp.port
    smtp.stop()
    with pytest.raises(ConnectionRefusedError):
        _send(smtp, _message(1))
    smtp.start()
    smtp.restart()
    assert smtp.port == port
    _send(smtp, _message(2))
    assert len(smtp.wait_for_messages(1)) == 1


@pytest.mark.smtp
def test_smtp_auth() -> None:
    server = SmtpServer(users={"mailer": "pw"})
    server.start()
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("mailer", "wrong")
            client.login("mailer", "pw")
            client.sendmail("seller@example.test", ["buyer@example.test"], _message(1))
        assert [m.auth_user for m in server.messages] == ["mailer"]
    finally:
        server.stop()


@pytest.mark.postgres
def test_postgres_tables_and_second_database(postgres_server: PostgresServer) -> None:
    url = postgres_server.url()
    assert url == f"postgresql+psycopg://postgres@127.0.0.1:{postgres_server.port}/sellerdesk_test"

    with psycopg.connect(postgres_server.dsn()) as conn:
        conn.execute("CREATE TABLE smoke (id serial PRIMARY KEY, subject text NOT NULL)")
        conn.execute("INSERT INTO smoke (subject) VALUES (%s)", ["Größe – 注文"])
        row = conn.execute("SELECT subject FROM smoke").fetchone()
    assert row == ("Größe – 注文",)

    name = f"second_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(name)
    with psycopg.connect(postgres_server.dsn(name)) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
        # The new database starts empty: the table above lives in sellerdesk_test only.
        assert conn.execute("SELECT to_regclass('smoke')").fetchone() == (None,)
