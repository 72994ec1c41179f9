"""Admin console: mailboxes (add, edit, disable, test connection), health figures, banner."""

from __future__ import annotations

import contextlib
import itertools
import os
from datetime import timedelta

import pytest
from imapclient import IMAPClient
from sqlalchemy import select, text

from ingest.pipeline import poll_all
from portal.crypto import decrypt_secret
from portal.extensions import db
from portal.models import AuditEvent, Mailbox, Message, Role
from portal.services import health as health_service
from portal.services import leases, mailbox_config
from portal.services import mailboxes as mailbox_service
from portal.sqltypes import utcnow
from tests.helpers import csrf_token_from
from tests.mailgen import amazon_message
from tests.servers import free_port

_users = itertools.count(1)
IMAP_PASSWORD = "s3cret-imap-Pässword"


def token(client, path="/admin/mailboxes"):
    return csrf_token_from(client.get(path).get_data(as_text=True))


def post(client, path, data=None, *, page="/admin/mailboxes", **kwargs):
    return client.post(path, data={"csrf_token": token(client, page), **(data or {})}, **kwargs)


def mailbox_named(name: str) -> Mailbox:
    return db.session.scalar(select(Mailbox).where(Mailbox.name == name))


def imap_form(**overrides):
    data = {
        "name": "EU buyers",
        "host": "imap.example.com",
        "security": "tls",
        "port": "",
        "username": "buyers@example.com",
        "password": IMAP_PASSWORD,
        "folder": "INBOX",
        "processed_folder": "",
        "is_enabled": "y",
    }
    data.update(overrides)
    return data


def add_imap(client, **overrides):
    return post(
        client,
        "/admin/mailboxes/new/imap",
        imap_form(**overrides),
        page="/admin/mailboxes/new/imap",
    )


# --- access ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/mailboxes", "/admin/mailboxes/new/imap", "/admin/health"])
@pytest.mark.parametrize("role", [Role.AGENT, Role.SELLER])
def test_only_admins_see_mailboxes_and_health(client, login_as, path, role):
    login_as(role)
    assert client.get(path).status_code == 403


# --- adding and editing ----------------------------------------------------------------


def test_imap_password_is_stored_encrypted_and_never_shown(app, client, admin):
    response = add_imap(client, port="10993", processed_folder="Processed")
    assert response.status_code == 302
    mailbox = mailbox_named("EU buyers")
    assert mailbox.source_url == "imaps://buyers%40example.com@imap.example.com:10993/INBOX"
    assert mailbox.processed_folder == "Processed"
    assert decrypt_secret(mailbox.password_encrypted) == IMAP_PASSWORD
    # Not in any column of the row, in any form, nor in the audit log.
    row = db.session.execute(
        text("SELECT * FROM mailboxes WHERE id = :id"), {"id": mailbox.id}
    ).one()
    for value in row:
        if isinstance(value, memoryview):
            value = bytes(value)
        if isinstance(value, bytes):
            assert IMAP_PASSWORD.encode() not in value
        else:
            assert IMAP_PASSWORD not in str(value)
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == "mailbox.added"))
    [event] = events.all()
    assert IMAP_PASSWORD not in str(event.details)
    # The pages never show it again.
    for path in ("/admin/mailboxes", f"/admin/mailboxes/{mailbox.id}/edit", "/admin/health"):
        page = client.get(path).get_data(as_text=True)
        assert IMAP_PASSWORD not in page
    assert "Password on file (encrypted)" in client.get("/admin/mailboxes").get_data(as_text=True)


def test_default_port_follows_security(client, admin):
    add_imap(client, name="starttls box", security="starttls")
    assert mailbox_named("starttls box").source_url.startswith("imap+starttls://")
    assert ":143/" in mailbox_named("starttls box").source_url
    add_imap(client, name="tls box", security="tls")
    assert ":993/" in mailbox_named("tls box").source_url


def test_editing_keeps_the_password_unless_a_new_one_is_typed(client, admin):
    add_imap(client)
    mailbox = mailbox_named("EU buyers")
    mailbox.uidvalidity, mailbox.last_uid = 77, 120
    db.session.commit()
    stored = bytes(mailbox.password_encrypted)
    edit = f"/admin/mailboxes/{mailbox.id}/edit"
    response = post(client, edit, imap_form(password="", name="EU buyers 2"), page=edit)
    assert response.status_code == 302
    db.session.refresh(mailbox)
    assert mailbox.name == "EU buyers 2"
    assert bytes(mailbox.password_encrypted) == stored
    assert (mailbox.uidvalidity, mailbox.last_uid) == (77, 120)  # same server and folder
    # Another folder: its UIDs mean nothing, the checkpoint starts over.
    post(client, edit, imap_form(password="new-pass", folder="Amazon"), page=edit)
    db.session.refresh(mailbox)
    assert decrypt_secret(mailbox.password_encrypted) == "new-pass"
    assert mailbox.source_url.endswith("/Amazon")
    assert (mailbox.uidvalidity, mailbox.last_uid) == (None, 0)
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.kind == "mailbox.updated").order_by(AuditEvent.id)
    ).all()[-1]
    assert event.details["password_changed"] is True
    assert "new-pass" not in str(event.details)


def test_add_a_maildir(client, admin, tmp_path):
    response = post(
        client,
        "/admin/mailboxes/new/maildir",
        {"name": "Local", "path": str(tmp_path / "md"), "is_enabled": "y"},
        page="/admin/mailboxes/new/maildir",
    )
    assert response.status_code == 302
    mailbox = mailbox_named("Local")
    assert mailbox.source_url == f"maildir:{tmp_path / 'md'}"
    assert mailbox.password_encrypted is None


@pytest.mark.parametrize(
    ("overrides", "field", "error"),
    [
        ({"host": ""}, "host", "Enter the IMAP server."),
        ({"host": "imap example.com"}, "host", "No spaces, please."),
        ({"port": "70000"}, "port", "A port is 1 to 65535."),
        ({"username": ""}, "username", "Enter the user name."),
        ({"password": ""}, "password", "Enter the password."),
        ({"name": ""}, "name", "Give the mailbox a name."),
        ({"name": "default"}, "name", "reserved for the MAIL_SOURCE mailbox"),
    ],
)
def test_imap_form_errors_are_shown_beside_the_field(client, admin, overrides, field, error):
    response = add_imap(client, **overrides)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="{field}-error">' in page
    assert error in page.split(f'id="{field}-error">', 1)[1].split("</p>", 1)[0]
    assert db.session.scalar(select(Mailbox.id)) is None


def test_duplicate_name_is_refused(client, admin):
    add_imap(client)
    response = add_imap(client)
    assert response.status_code == 422
    assert "Another mailbox already has this name." in response.get_data(as_text=True)


def test_maildir_path_must_be_absolute(client, admin):
    response = post(
        client,
        "/admin/mailboxes/new/maildir",
        {"name": "Local", "path": "relative/md"},
        page="/admin/mailboxes/new/maildir",
    )
    assert response.status_code == 422
    assert "Give an absolute path" in response.get_data(as_text=True)


def test_mail_source_mailbox_is_marked_and_not_editable(app, client, admin):
    poll_all()  # creates the "default" mailbox from MAIL_SOURCE
    default = mailbox_named("default")
    page = client.get("/admin/mailboxes").get_data(as_text=True)
    assert "from the environment" in page
    assert "MAIL_SOURCE" in page
    assert f"/admin/mailboxes/{default.id}/edit" not in page
    response = client.get(f"/admin/mailboxes/{default.id}/edit")
    assert response.status_code == 302
    with pytest.raises(mailbox_config.MailboxConfigError):
        mailbox_config.update_mailbox(
            default,
            actor=None,
            name="default",
            settings=mailbox_config.maildir_settings(path="/tmp/x"),
            is_enabled=True,
        )


def test_disable_and_enable_are_audited(client, admin):
    add_imap(client)
    mailbox = mailbox_named("EU buyers")
    post(client, f"/admin/mailboxes/{mailbox.id}/disable")
    db.session.refresh(mailbox)
    assert not mailbox.is_enabled
    post(client, f"/admin/mailboxes/{mailbox.id}/enable")
    db.session.refresh(mailbox)
    assert mailbox.is_enabled
    kinds = db.session.scalars(
        select(AuditEvent.kind).where(AuditEvent.target_type == "mailbox").order_by(AuditEvent.id)
    ).all()
    assert kinds == ["mailbox.added", "mailbox.disabled", "mailbox.enabled"]


def test_disabled_mailbox_is_not_polled(app, client, admin, tmp_path):
    post(
        client,
        "/admin/mailboxes/new/maildir",
        {"name": "Local", "path": str(tmp_path / "md")},  # unchecked: disabled
        page="/admin/mailboxes/new/maildir",
    )
    mailbox = mailbox_named("Local")
    assert not mailbox.is_enabled
    poll_all()
    db.session.refresh(mailbox)
    assert mailbox.last_poll_started_at is None


def test_actions_need_csrf(client, admin):
    add_imap(client)
    mailbox = mailbox_named("EU buyers")
    assert client.post(f"/admin/mailboxes/{mailbox.id}/disable").status_code == 400
    assert client.post(f"/admin/mailboxes/{mailbox.id}/test").status_code == 400


# --- test connection -------------------------------------------------------------------


def test_maildir_connection_test(client, admin, tmp_path):
    root = tmp_path / "md"
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True)
    (root / "new" / "1.eml").write_bytes(b"Subject: x\n\nx\n")
    (root / "cur" / "0.eml:2,S").write_bytes(b"Subject: y\n\ny\n")
    post(
        client,
        "/admin/mailboxes/new/maildir",
        {"name": "Local", "path": str(root), "is_enabled": "y"},
        page="/admin/mailboxes/new/maildir",
    )
    mailbox = mailbox_named("Local")
    response = post(client, f"/admin/mailboxes/{mailbox.id}/test", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "connection works" in page
    assert "holds 2 messages, 1 not yet fetched" in page
    missing = mailbox_config.maildir_settings(path=str(tmp_path / "nope"))
    mailbox.source_url = mailbox_service.source_url_without_password(missing)
    db.session.commit()
    check = mailbox_config.check_connection(mailbox)
    assert not check.ok
    assert check.message == f"Maildir {tmp_path / 'nope'} does not exist."


@pytest.fixture
def imap_account(dovecot):
    user = f"admintest{next(_users)}-{os.getpid()}"
    dovecot.add_user(user, "right-pass")
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    client.login(user, "right-pass")
    client.select_folder("INBOX")
    yield user, client
    with contextlib.suppress(Exception):
        client.logout()


def imap_mailbox(client, dovecot, user, *, login_with="right-pass", port=None, folder="INBOX"):
    response = add_imap(
        client,
        name=f"box-{user}-{folder}-{port}",
        host="127.0.0.1",
        security="plain",
        port=str(port or dovecot.port),
        username=user,
        password=login_with,
        folder=folder,
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return mailbox_named(f"box-{user}-{folder}-{port}")


def run_connection_test(client, mailbox):
    response = post(client, f"/admin/mailboxes/{mailbox.id}/test", follow_redirects=True)
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.imap
def test_connection_test_against_dovecot_reports_the_message_count(
    client, admin, dovecot, imap_account
):
    user, imap = imap_account
    for i in range(3):
        imap.append("INBOX", amazon_message(i, "uk-x@helpdesk.test"))
    mailbox = imap_mailbox(client, dovecot, user)
    page = run_connection_test(client, mailbox)
    assert "connection works" in page
    assert 'folder "INBOX" holds 3 messages, 3 not yet fetched.' in page.replace("&#34;", '"')
    check = mailbox_config.check_connection(mailbox)
    assert (check.ok, check.message_count, check.waiting) == (True, 3, 3)
    # Nothing changed on the server: no message was flagged \Seen.
    imap.select_folder("INBOX")
    assert all(b"\\Seen" not in f for f in imap.get_flags(imap.search("ALL")).values())


@pytest.mark.imap
def test_connection_test_reports_a_wrong_password(client, admin, dovecot, imap_account):
    user, _ = imap_account
    mailbox = imap_mailbox(client, dovecot, user, login_with="wrong-pass")
    page = run_connection_test(client, mailbox)
    assert "connection failed" in page
    check = mailbox_config.check_connection(mailbox)
    assert not check.ok
    assert check.message.startswith(f"Authentication failed for {user} on 127.0.0.1:")
    assert check.message.endswith(": [AUTHENTICATIONFAILED] Authentication failed.")
    assert "wrong-pass" not in page


@pytest.mark.imap
def test_connection_test_reports_a_refused_port(client, admin, dovecot, imap_account):
    user, _ = imap_account
    port = free_port()  # nothing listens there
    mailbox = imap_mailbox(client, dovecot, user, port=port)
    page = run_connection_test(client, mailbox)
    assert "connection failed" in page
    assert f"Connection refused by 127.0.0.1:{port}" in page


@pytest.mark.imap
def test_connection_test_reports_a_missing_folder(client, admin, dovecot, imap_account):
    user, _ = imap_account
    mailbox = imap_mailbox(client, dovecot, user, folder="Amazon")
    check = mailbox_config.check_connection(mailbox)
    assert not check.ok
    assert check.message.startswith('Folder "Amazon" cannot be opened: ')
    assert "Mailbox doesn't exist" in check.message


# --- health figures ------------------------------------------------------------------------


def health_row(page: str, mailbox: Mailbox) -> str:
    return page.split(f'id="health-{mailbox.id}"', 1)[1].split("</tr>", 1)[0]


def cell(row: str, css: str) -> str:
    return row.split(f'class="{css}">', 1)[1].split("<", 1)[0].strip()


def test_health_shows_fetched_backlog_and_24h_counts(
    app, client, admin, uk, drop_mail, monkeypatch
):
    for i in range(5):
        drop_mail(amazon_message(i, "uk-chan01@helpdesk.test"))
    # A poll cut short after its first batch of two (it lost its lease): three still wait.
    monkeypatch.setattr("ingest.pipeline.BATCH_COUNT", 2)
    monkeypatch.setattr("ingest.pipeline.LEASE_RENEW_AFTER", 0)  # renew after every batch
    real_acquire = leases.acquire_lease
    calls = itertools.count()

    def acquire(mailbox, owner, *, ttl):
        return real_acquire(mailbox, owner, ttl=ttl) if next(calls) == 0 else False

    monkeypatch.setattr(leases, "acquire_lease", acquire)
    assert poll_all().stored == 2
    monkeypatch.setattr(leases, "acquire_lease", real_acquire)
    mailbox = mailbox_named("default")
    assert (mailbox.last_fetched, mailbox.backlog) == (2, 3)
    # Stored two days ago: counts for neither the last poll nor the last 24 hours.
    old = db.session.scalars(select(Message).order_by(Message.id)).first()
    old.created_at = utcnow() - timedelta(days=2)
    db.session.commit()

    row = health_row(client.get("/admin/health").get_data(as_text=True), mailbox)
    assert cell(row, "num last-fetched") == "2"
    assert cell(row, "num fetched-24h") == "1"
    assert cell(row, "num backlog") == "3"
    assert "fetched=2 stored=2" in row

    assert poll_all().stored == 3
    db.session.refresh(mailbox)
    assert (mailbox.last_fetched, mailbox.backlog) == (3, 0)
    row = health_row(client.get("/admin/health").get_data(as_text=True), mailbox)
    assert cell(row, "num last-fetched") == "3"
    assert cell(row, "num fetched-24h") == "4"
    assert cell(row, "num backlog") == "0"


def test_health_shows_the_last_error_and_who_holds_the_lock(app, client, admin, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the Maildir should be")
    app.config["MAIL_SOURCE"] = f"maildir:{blocker}"
    assert poll_all().errors == 1
    mailbox = mailbox_named("default")
    assert mailbox.backlog is None
    assert mailbox.last_error_at is not None
    row = health_row(client.get("/admin/health").get_data(as_text=True), mailbox)
    assert "failing" in row
    assert "FileExistsError" in row or "NotADirectoryError" in row
    assert "unknown" in row  # the backlog after a failed poll
    assert "free" in row

    mailbox.lease_owner = "worker-7:4242"
    mailbox.lease_expires_at = utcnow() + timedelta(minutes=4)
    db.session.commit()
    row = health_row(client.get("/admin/health").get_data(as_text=True), mailbox)
    assert '<code class="lease-holder">worker-7:4242</code>' in row
    # An expired lease holds nothing.
    mailbox.lease_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    row = health_row(client.get("/admin/health").get_data(as_text=True), mailbox)
    assert "worker-7" not in row


def test_health_counts_mail_waiting_for_a_decision(app, client, admin, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")  # no such channel: unrouted
    drop_mail("not_mail.eml")  # quarantined
    poll_all()
    page = client.get("/admin/health").get_data(as_text=True)
    assert 'id="count-unrouted">1<' in page
    assert 'id="count-quarantined">1<' in page


# --- the banner ----------------------------------------------------------------------------

BANNER = "Ingestion looks stalled"


def set_success(name: str, ago: timedelta | None, *, enabled: bool = True) -> Mailbox:
    mailbox = mailbox_named(name) or Mailbox(name=name, source_url="maildir:/tmp/x", last_uid=0)
    mailbox.last_success_at = utcnow() - ago if ago is not None else None
    mailbox.is_enabled = enabled
    db.session.add(mailbox)
    db.session.commit()
    return mailbox


def test_banner_when_no_poll_ever_succeeded(app, client, admin):
    page = client.get("/admin").get_data(as_text=True)
    assert BANNER in page and "No mailbox is enabled" in page
    set_success("a", None)
    page = client.get("/admin").get_data(as_text=True)
    assert BANNER in page and "No mailbox has been polled successfully yet." in page


@pytest.mark.parametrize(
    "path", ["/admin", "/admin/mailboxes", "/admin/health", "/admin/outbox", "/admin/unrouted"]
)
def test_banner_on_every_admin_page_when_stale(app, client, admin, path):
    app.config["POLL_SECONDS"] = 60
    set_success("a", timedelta(minutes=3, seconds=5))
    page = client.get(path).get_data(as_text=True)
    assert BANNER in page
    assert "more than 3 min ago" in page


def test_no_banner_when_fresh(app, client, admin):
    app.config["POLL_SECONDS"] = 60
    set_success("a", timedelta(minutes=2, seconds=50))
    page = client.get("/admin/mailboxes").get_data(as_text=True)
    assert BANNER not in page


def test_only_enabled_mailboxes_count_for_the_banner(app, client, admin):
    app.config["POLL_SECONDS"] = 60
    set_success("old", timedelta(hours=1))
    set_success("switched off", timedelta(seconds=5), enabled=False)
    assert BANNER in client.get("/admin").get_data(as_text=True)
    staleness = health_service.ingestion_staleness(poll_seconds=60)
    assert staleness is not None
    assert utcnow() - staleness.last_success_at > timedelta(minutes=59)


def test_a_real_poll_clears_the_banner(app, client, admin, maildir):
    assert BANNER in client.get("/admin").get_data(as_text=True)
    poll_all()
    assert BANNER not in client.get("/admin").get_data(as_text=True)


def test_no_banner_outside_the_admin_console(app, client, admin):
    assert BANNER not in client.get("/dashboard").get_data(as_text=True)


# --- TLS options -------------------------------------------------------------------------


def test_the_form_keeps_a_private_ca_and_an_explicit_verify_0(client, admin):
    add_imap(client, ca_file="/etc/ssl/private-ca.pem")
    mailbox = mailbox_named("EU buyers")
    assert mailbox.source_url.endswith("/INBOX?ca=/etc/ssl/private-ca.pem")
    mailbox.uidvalidity, mailbox.last_uid = 77, 120
    db.session.commit()
    edit = f"/admin/mailboxes/{mailbox.id}/edit"
    assert "/etc/ssl/private-ca.pem" in client.get(edit).get_data(as_text=True)
    # Saving the form untouched keeps both options; ticking the box turns checks off.
    post(client, edit, imap_form(password="", ca_file="/etc/ssl/private-ca.pem"), page=edit)
    db.session.refresh(mailbox)
    assert mailbox.source_url.endswith("?ca=/etc/ssl/private-ca.pem")
    response = post(client, edit, imap_form(password="", ca_file="", skip_verify="y"), page=edit)
    assert response.status_code == 302
    db.session.refresh(mailbox)
    assert mailbox.source_url.endswith("/INBOX?verify=0")
    # Same server and folder: the checkpoint stays.
    assert (mailbox.uidvalidity, mailbox.last_uid) == (77, 120)
    health = client.get("/admin/health").get_data(as_text=True)
    assert "TLS certificate not verified" in health
    assert "Certificate not verified" in client.get("/admin/mailboxes").get_data(as_text=True)


def test_a_relative_ca_path_is_refused_beside_the_field(client, admin):
    response = add_imap(client, ca_file="ca.pem")
    assert response.status_code == 422
    assert "Give an absolute path" in response.get_data(as_text=True)


def test_a_verified_mailbox_carries_no_warning(client, admin):
    add_imap(client)
    assert "not verified" not in client.get("/admin/health").get_data(as_text=True)


@pytest.mark.imap
@pytest.mark.parametrize(
    ("kind", "ok"), [("good", True), ("expired", False), ("unknown_ca", False)]
)
def test_connection_test_checks_the_certificate(client, admin, tls_dovecot, test_pki, kind, ok):
    server = tls_dovecot(kind)
    user = f"tlsadmin{next(_users)}-{os.getpid()}"
    server.add_user(user, "right-pass")
    add_imap(
        client,
        name=user,
        host="127.0.0.1",
        security="tls",
        port=str(server.tls_port),
        username=user,
        password="right-pass",
        ca_file=str(test_pki.ca),
    )
    page = run_connection_test(client, mailbox_named(user))
    if ok:
        assert "connection works" in page
    else:
        assert "certificate verify failed" in page
