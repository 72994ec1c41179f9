"""`flask mailboxes add | list | test | remove`: what admins click, for operators to script."""

from __future__ import annotations

import itertools
import os

import pytest
from sqlalchemy import select

from portal.crypto import decrypt_secret
from portal.extensions import db
from portal.models import AuditEvent, Mailbox

_users = itertools.count(1)


def _mailbox(name):
    return db.session.scalar(select(Mailbox).where(Mailbox.name == name))


def _kinds():
    return [e.kind for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_add_list_remove_a_maildir(runner, tmp_path):
    for sub in ("new", "cur", "tmp"):
        (tmp_path / sub).mkdir()
    result = runner.invoke(
        args=["mailboxes", "add", "--name", "Drop", "--url", f"maildir:{tmp_path}"]
    )
    assert result.exit_code == 0, result.output
    assert result.output == f"added\tDrop\tmaildir:{tmp_path}\n"
    listing = runner.invoke(args=["mailboxes", "list"]).output.splitlines()
    assert listing[0] == "name\tkind\tstate\tlast_success\tlast_error"
    assert "Drop\tmaildir\tnew\t\t" in listing
    tested = runner.invoke(args=["mailboxes", "test", "--name", "Drop"])
    assert (tested.exit_code, tested.output.split("\t")[0]) == (0, "ok")
    result = runner.invoke(args=["mailboxes", "remove", "--name", "Drop"])
    assert (result.exit_code, result.output) == (0, "removed\tDrop\n")
    assert _mailbox("Drop") is None
    assert _kinds() == ["mailbox.added", "mailbox.removed"]


def test_password_from_stdin_is_stored_encrypted_and_not_in_the_url(runner):
    result = runner.invoke(
        args=[
            "mailboxes",
            "add",
            "--name",
            "Buyers",
            "--password-stdin",
            "--url",
            "imaps://buyers%40shop.test@imap.shop.test/INBOX?verify=0",
        ],
        input="s3cret pass\n",
    )
    assert result.exit_code == 0, result.output
    mailbox = _mailbox("Buyers")
    assert decrypt_secret(mailbox.password_encrypted) == "s3cret pass"
    assert "s3cret" not in mailbox.source_url + result.output
    listing = runner.invoke(args=["mailboxes", "list"]).output
    assert "Buyers\timaps\tnew,unverified\t\t" in listing


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--url", "pop3://u@h/"], "unsupported mail source scheme"),
        (["--url", "imaps://u@h/INBOX"], "needs a password"),
        (["--url", "imap://u:p@h/INBOX?ca=/x.pem"], "need TLS"),
    ],
)
def test_add_refuses_bad_input(runner, args, error):
    result = runner.invoke(args=["mailboxes", "add", "--name", "X", *args])
    assert result.exit_code != 0
    assert error in result.output
    assert _mailbox("X") is None


def test_unknown_names_fail(runner):
    for command in ("test", "remove"):
        result = runner.invoke(args=["mailboxes", command, "--name", "nope"])
        assert result.exit_code != 0
        assert 'No mailbox named "nope"' in result.output


def test_the_mail_source_mailbox_cannot_be_removed(app, runner, maildir):
    from ingest.pipeline import poll_all

    poll_all()
    result = runner.invoke(args=["mailboxes", "remove", "--name", "default"])
    assert result.exit_code != 0
    assert "MAIL_SOURCE" in result.output


@pytest.mark.imap
@pytest.mark.parametrize(("kind", "exit_code"), [("good", 0), ("wrong_host", 1), ("expired", 1)])
def test_test_connects_over_verified_tls(runner, tls_dovecot, test_pki, kind, exit_code):
    server = tls_dovecot(kind)
    user = f"cli{next(_users)}-{os.getpid()}"
    server.add_user(user, "imap-pass")
    url = f"imap+starttls://{user}@127.0.0.1:{server.port}/INBOX?ca={test_pki.ca}"
    added = runner.invoke(
        args=["mailboxes", "add", "--name", user, "--url", url, "--password", "imap-pass"]
    )
    assert added.exit_code == 0, added.output
    result = runner.invoke(args=["mailboxes", "test", "--name", user])
    assert result.exit_code == exit_code, result.output
    if exit_code:
        assert result.output.startswith(f"failed\t{user}\tTLS failed")
        assert "certificate verify failed" in result.output
    else:
        assert result.output.startswith(f"ok\t{user}\tConnected to 127.0.0.1")
