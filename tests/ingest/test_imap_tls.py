"""IMAP over verified TLS, against real Dovecots serving certificates the suite makes."""

from __future__ import annotations

import itertools
import os

import pytest
from imapclient import IMAPClient

from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Mailbox, Message
from tests.mailgen import amazon_message

pytestmark = pytest.mark.imap

ADDRESS = "uk-chan01@helpdesk.test"
_users = itertools.count(1)


def _mailbox_with_mail(server) -> str:
    """A fresh user on `server` with one message waiting; returns the user."""
    user = f"tls{next(_users)}-{os.getpid()}"
    server.add_user(user, "imap-pass")
    client = IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=30)
    try:
        client.login(user, "imap-pass")
        client.append("INBOX", amazon_message(1, ADDRESS))
    finally:
        client.logout()
    return user


def _unseen(server, user) -> int:
    client = IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=30)
    try:
        client.login(user, "imap-pass")
        client.select_folder("INBOX", readonly=True)
        return len(client.search(["UNSEEN"]))
    finally:
        client.logout()


def _url(scheme, user, host, port, query):
    return f"{scheme}://{user}:imap-pass@{host}:{port}/INBOX{query}"


@pytest.mark.parametrize("scheme", ["imaps", "imap+starttls"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_good_certificate_from_the_mailbox_ca_is_accepted(
    app, uk, tls_dovecot, test_pki, scheme, host
):
    server = tls_dovecot("good")
    user = _mailbox_with_mail(server)
    port = server.tls_port if scheme == "imaps" else server.port
    app.config["MAIL_SOURCE"] = _url(scheme, user, host, port, f"?ca={test_pki.ca}")
    assert poll_all().stored == 1
    mailbox = db.session.scalar(db.select(Mailbox))
    assert mailbox.last_error is None
    assert f"ca={test_pki.ca}" in mailbox.source_url
    assert _unseen(server, user) == 0


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("wrong_host", "mismatch"),
        ("expired", "certificate has expired"),
        ("unknown_ca", "unable to get local issuer certificate"),
    ],
)
@pytest.mark.parametrize("scheme", ["imaps", "imap+starttls"])
def test_a_bad_certificate_is_refused_and_no_mail_is_touched(
    app, client, login_as, uk, tls_dovecot, test_pki, kind, reason, scheme
):
    server = tls_dovecot(kind)
    user = _mailbox_with_mail(server)
    port = server.tls_port if scheme == "imaps" else server.port
    app.config["MAIL_SOURCE"] = _url(scheme, user, "127.0.0.1", port, f"?ca={test_pki.ca}")
    summary = poll_all()
    assert (summary.stored, summary.errors) == (0, 1)
    mailbox = db.session.scalar(db.select(Mailbox))
    assert mailbox.last_error.startswith("TLS certificate refused (")
    assert reason in mailbox.last_error
    assert db.session.scalar(db.select(db.func.count()).select_from(Message)) == 0
    assert _unseen(server, user) == 1
    login_as("admin")
    health = client.get("/admin/health").get_data(as_text=True)
    assert "TLS certificate refused (" in health
    assert reason in health


def test_the_system_cas_do_not_know_the_test_ca(app, uk, tls_dovecot):
    server = tls_dovecot("good")
    user = _mailbox_with_mail(server)
    app.config["MAIL_SOURCE"] = _url("imaps", user, "127.0.0.1", server.tls_port, "")
    assert poll_all().errors == 1
    assert "certificate verify failed" in db.session.scalar(db.select(Mailbox)).last_error
    assert _unseen(server, user) == 1


def test_verify_0_accepts_any_certificate(app, uk, tls_dovecot):
    server = tls_dovecot("expired")
    user = _mailbox_with_mail(server)
    app.config["MAIL_SOURCE"] = _url("imaps", user, "127.0.0.1", server.tls_port, "?verify=0")
    assert poll_all().stored == 1
    mailbox = db.session.scalar(db.select(Mailbox))
    assert mailbox.last_error is None
    assert mailbox.source_url.endswith("?verify=0")


def test_changing_only_the_tls_options_keeps_the_checkpoint(app, uk, tls_dovecot, test_pki):
    server = tls_dovecot("good")
    user = _mailbox_with_mail(server)
    app.config["MAIL_SOURCE"] = _url("imaps", user, "127.0.0.1", server.tls_port, "?verify=0")
    assert poll_all().stored == 1
    mailbox = db.session.scalar(db.select(Mailbox))
    checkpoint = (mailbox.uidvalidity, mailbox.last_uid)
    app.config["MAIL_SOURCE"] = _url(
        "imaps", user, "127.0.0.1", server.tls_port, f"?ca={test_pki.ca}"
    )
    assert poll_all().fetched == 0
    db.session.refresh(mailbox)
    assert (mailbox.uidvalidity, mailbox.last_uid) == checkpoint
    assert mailbox.source_url.endswith(f"?ca={test_pki.ca}")
