"""OAuth2 mailboxes end to end: "Connect Microsoft 365" through the authorisation server
stand-in (tests/oauth_standin.py), then the worker's poll signing in to the real Dovecot
with AUTHENTICATE XOAUTH2 (its `oauth2` passdb asks the stand-in about each token)."""

from __future__ import annotations

import email
import itertools
import os
from urllib.parse import parse_qs, urlsplit

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select

from ingest.mail import smtp as smtp_transport
from ingest.pipeline import poll_all
from portal import oauth_client
from portal.crypto import decrypt_secret
from portal.extensions import db
from portal.models import AuditEvent, Mailbox, MailboxOAuthState, Message, Role, SendStatus
from portal.services import mailbox_config, outbox, outbox_delivery
from portal.services.mailbox_oauth import pkce_verifier
from portal.services.mailbox_tokens import access_token
from portal.sqltypes import utcnow
from tests.helpers import AuthActions, csrf_token_from, run_together
from tests.mailgen import amazon_message
from tests.oauth_standin import s256
from tests.spapi_standin import _no_redirects

pytestmark = [pytest.mark.imap, pytest.mark.oauth]

ADDRESS = "uk-chan01@helpdesk.test"
_users = itertools.count(1)


def post(client, path, data=None, *, page="/admin/mailboxes"):
    token = csrf_token_from(client.get(page).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **(data or {})})


@pytest.fixture
def shop(oauth_dovecot) -> str:
    """A fresh account on the OAuth Dovecot with one buyer message waiting. Its password
    (for putting mail there) is not the one the portal is given: only XOAUTH2 gets in."""
    user = f"shop{next(_users)}-{os.getpid()}@example.com"
    oauth_dovecot.add_user(user, "imap-pass")
    client = IMAPClient("127.0.0.1", port=oauth_dovecot.port, ssl=False, timeout=30)
    try:
        client.login(user, "imap-pass")
        client.append("INBOX", amazon_message(1, ADDRESS))
    finally:
        client.logout()
    return user


@pytest.fixture
def mailbox(shop, oauth_dovecot) -> Mailbox:
    mailbox = mailbox_config.create_mailbox(
        actor=None,
        name="M365 buyers",
        settings=mailbox_config.imap_settings(
            host="127.0.0.1",
            port=oauth_dovecot.port,
            security="plain",
            username=shop,
            folder="INBOX",
            processed_folder=None,
        ),
        password="not-the-password",
    )
    db.session.commit()
    return mailbox


def consent(client, oauth, mailbox, provider="microsoft"):
    """Press "Connect …", let the stand-in consent, follow its redirect back (real HTTP)."""
    response = post(client, f"/admin/mailboxes/{mailbox.id}/connect/{provider}")
    assert response.status_code == 302
    authorize = response.headers["Location"]
    assert authorize.startswith(f"{oauth.base_url}/authorize?")
    with _no_redirects().open(authorize, timeout=5) as answer:
        assert answer.status == 302
        back = urlsplit(answer.headers["Location"])
    return client.get(f"{back.path}?{back.query}", follow_redirects=True)


def admin_mails() -> list[tuple[str, str, str]]:
    rows = db.session.scalars(
        select(Message).where(Message.thread_id.is_(None)).order_by(Message.id)
    ).all()
    out = []
    for row in rows:
        parsed = email.message_from_bytes(row.raw)
        body = parsed.get_payload(decode=True).decode(parsed.get_content_charset() or "utf-8")
        out.append((row.to_addresses, row.subject, body))
    return out


def events(kind: str) -> int:
    return db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == kind)
    )


def test_connect_then_poll_fetches_mail_with_xoauth2(app, client, admin, oauth, uk, mailbox, shop):
    page = consent(client, oauth, mailbox)
    assert page.status_code == 200
    assert "is connected with Microsoft 365" in page.get_data(as_text=True)
    (asked,) = oauth.authorize_requests
    assert asked["code_challenge_method"] == "S256"
    assert asked["login_hint"] == shop
    assert asked["redirect_uri"] == "http://127.0.0.1:5000/admin/mailboxes/oauth/callback"
    assert set(asked["scope"].split()) == {
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    }
    db.session.refresh(mailbox)
    assert mailbox.oauth_provider == "microsoft"
    (refresh_token,) = oauth.issued_refresh_tokens
    assert decrypt_secret(mailbox.oauth_refresh_token_encrypted) == refresh_token
    assert refresh_token.encode() not in bytes(mailbox.oauth_refresh_token_encrypted)
    assert events("mailbox.oauth_connected") == 1
    assert refresh_token not in str(db.session.scalars(select(AuditEvent.details)).all())
    assert "Signs in with Microsoft 365" in client.get("/admin/mailboxes").get_data(as_text=True)

    summary = poll_all()
    assert summary.stored == 1 and summary.errors == 0
    db.session.refresh(mailbox)
    assert mailbox.last_error is None and mailbox.consecutive_failures == 0
    assert oauth.calls["introspect"] >= 1  # Dovecot checked the token at the stand-in
    assert oauth.calls["refresh_token"] == 0  # the first access token was still fresh


def test_refresh_rotates_and_the_new_refresh_token_is_stored(
    app, client, admin, oauth, uk, mailbox, shop, oauth_dovecot
):
    # Shorter than the renewal margin: every use refreshes.
    oauth.access_token_ttl = 60
    consent(client, oauth, mailbox)
    first = oauth.issued_refresh_tokens[-1]
    assert poll_all().stored == 1
    db.session.refresh(mailbox)
    assert oauth.calls["refresh_token"] == 1
    second = oauth.issued_refresh_tokens[-1]
    assert second != first and first not in oauth.refresh_tokens  # the old one is dead
    assert decrypt_secret(mailbox.oauth_refresh_token_encrypted) == second
    # And the stored one keeps working, poll after poll.
    assert poll_all().errors == 0
    db.session.refresh(mailbox)
    assert decrypt_secret(mailbox.oauth_refresh_token_encrypted) == oauth.issued_refresh_tokens[-1]
    assert oauth.calls["refresh_token"] == 2


def test_revoked_consent_turns_the_mailbox_red_mails_admins_once_and_retries(
    app, client, admin, oauth, uk, mailbox, shop
):
    oauth.access_token_ttl = 60
    consent(client, oauth, mailbox)
    oauth.revoke(shop)

    summary = poll_all()
    assert summary.errors == 1 and summary.stored == 0
    db.session.refresh(mailbox)
    assert mailbox.consecutive_failures == 1
    assert "consent was revoked or the token expired" in mailbox.last_error
    assert 'click "Connect Microsoft 365"' in mailbox.last_error
    assert mailbox.oauth_refused_at is not None
    assert mailbox.next_attempt_at is not None  # retried with backoff, not dropped
    health = client.get("/admin/health").get_data(as_text=True)
    assert "consent was revoked" in health
    assert client.get("/healthz").get_json()["failing_mailboxes"] == 1
    ((to, subject, body),) = admin_mails()
    assert to == admin.email and subject == "Mailbox M365 buyers keeps failing"
    assert "refused the sign-in" in body and "consent was revoked" in body
    assert events("mailbox.oauth_refused") == 1

    # The next tries fail the same way: no second mail, no second audit of the refusal.
    assert poll_all(force=True).errors == 1
    db.session.refresh(mailbox)
    assert mailbox.consecutive_failures == 2
    assert len(admin_mails()) == 1 and events("mailbox.oauth_refused") == 1

    # Connecting again mends it: the next poll fetches the mail.
    consent(client, oauth, mailbox)
    assert poll_all().stored == 1
    db.session.refresh(mailbox)
    assert mailbox.consecutive_failures == 0 and mailbox.oauth_refused_at is None
    assert client.get("/healthz").get_json()["failing_mailboxes"] == 0


def test_consent_revoked_while_the_access_token_is_fresh_is_said_in_the_same_poll(
    app, client, admin, oauth, uk, mailbox, shop
):
    consent(client, oauth, mailbox)  # an access token valid for an hour
    oauth.revoke(shop)  # Dovecot's introspection now calls it inactive
    assert poll_all().errors == 1
    db.session.refresh(mailbox)
    assert oauth.calls["refresh_token"] == 1  # tried at once, not at the next poll
    assert "consent was revoked" in mailbox.last_error
    assert mailbox.consecutive_failures == 1 and len(admin_mails()) == 1


def test_a_wrong_client_secret_is_said_plainly(app, client, admin, oauth, uk, mailbox):
    oauth.access_token_ttl = 60
    consent(client, oauth, mailbox)
    app.config["OAUTH_MICROSOFT_CLIENT_SECRET"] = "not-the-secret"
    assert poll_all().errors == 1
    db.session.refresh(mailbox)
    assert "refused Sellerdesk's client ID or secret" in mailbox.last_error
    assert "OAUTH_MICROSOFT_CLIENT_ID" in mailbox.last_error
    assert len(admin_mails()) == 1


def test_a_provider_outage_is_retried_without_an_alarm(app, client, admin, oauth, uk, mailbox):
    oauth.access_token_ttl = 60
    consent(client, oauth, mailbox)
    oauth.fail_token_with.append(503)
    assert poll_all().errors == 1
    db.session.refresh(mailbox)
    assert "HTTP 503" in mailbox.last_error and "tries again" in mailbox.last_error
    assert mailbox.oauth_refused_at is None and admin_mails() == []
    # The refresh token was not used up by the failed call: the next try works.
    assert poll_all(force=True).stored == 1


def test_a_token_endpoint_that_does_not_answer_in_time(app, client, admin, oauth, uk, mailbox):
    oauth.access_token_ttl = 60
    consent(client, oauth, mailbox)
    app.config["OAUTH_TIMEOUT"] = 0.5
    oauth.token_delay = 3
    assert poll_all().errors == 1
    db.session.refresh(mailbox)
    assert "no answer in time" in mailbox.last_error
    assert mailbox.oauth_refused_at is None


def test_connection_test_signs_in_with_xoauth2(app, client, admin, oauth, uk, mailbox):
    consent(client, oauth, mailbox)
    page = post(client, f"/admin/mailboxes/{mailbox.id}/test")
    assert page.status_code == 302
    shown = client.get("/admin/mailboxes").get_data(as_text=True)
    assert "connection works" in shown


# --- the authorisation step itself ------------------------------------------------------


def test_the_provider_refusing_consent_is_shown_as_a_sentence(app, client, admin, oauth, mailbox):
    oauth.deny_next = True
    page = consent(client, oauth, mailbox).get_data(as_text=True)
    assert "Microsoft 365 did not connect" in page and "access_denied" in page
    assert "The user declined to consent." in page
    db.session.refresh(mailbox)
    assert mailbox.oauth_provider is None


def test_a_consent_without_offline_access_stores_nothing(app, client, admin, oauth, mailbox):
    oauth.omit_refresh_token = True
    page = consent(client, oauth, mailbox).get_data(as_text=True)
    assert "gave no refresh token" in page and "Nothing was stored." in page
    db.session.refresh(mailbox)
    assert mailbox.oauth_provider is None and mailbox.oauth_refresh_token_encrypted is None


def test_the_pkce_verifier_is_checked_by_the_token_endpoint(app, client, admin, oauth, mailbox):
    response = post(client, f"/admin/mailboxes/{mailbox.id}/connect/google")
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    state = query["state"][0]
    assert query["code_challenge"][0] == s256(
        pkce_verifier(state, secret_key=app.config["SECRET_KEY"])
    )
    assert query["scope"] == ["https://mail.google.com/"]
    assert query["access_type"] == ["offline"]
    # A code is worth nothing without the verifier: someone who intercepts it is refused.
    with _no_redirects().open(response.headers["Location"], timeout=5) as answer:
        back = urlsplit(answer.headers["Location"])
    code = parse_qs(back.query)["code"][0]
    settings = oauth_client.provider_settings(app.config, "google")
    with pytest.raises(oauth_client.OAuthError, match="consent was revoked or the token expired"):
        oauth_client.exchange_code(
            settings, code=code, verifier="x" * 43, redirect_uri=query["redirect_uri"][0]
        )
    # The portal, which holds the verifier, completes it.
    page = client.get(f"{back.path}?{back.query}", follow_redirects=True)
    assert "is connected with Google" in page.get_data(as_text=True)


def test_a_state_works_once_and_only_in_the_sign_in_that_began_it(
    app, client, admin, oauth, mailbox, auth, make_user
):
    response = post(client, f"/admin/mailboxes/{mailbox.id}/connect/microsoft")
    with _no_redirects().open(response.headers["Location"], timeout=5) as answer:
        back = urlsplit(answer.headers["Location"])
    callback = f"{back.path}?{back.query}"
    # Another admin's browser cannot complete it.
    other = app.test_client()
    other_admin = make_user(Role.ADMIN)
    AuthActions(other).login(other_admin.email)
    page = other.get(callback, follow_redirects=True).get_data(as_text=True)
    assert "does not match a connection you started here" in page
    assert client.get(callback, follow_redirects=True).status_code == 200
    db.session.refresh(mailbox)
    assert mailbox.oauth_provider == "microsoft"
    # Replayed: refused, and nothing changes.
    page = client.get(callback, follow_redirects=True).get_data(as_text=True)
    assert "does not match a connection you started here" in page
    assert db.session.scalar(select(func.count()).select_from(MailboxOAuthState)) == 0


def test_connect_needs_the_provider_configured(app, client, admin, oauth, mailbox):
    # The consent page's origin is allowed as a form target (the POST redirects there).
    policy = client.get("/admin/mailboxes").headers["Content-Security-Policy"]
    assert f"form-action 'self' {oauth.base_url};" in policy
    app.config["OAUTH_MICROSOFT_CLIENT_ID"] = app.config["OAUTH_GOOGLE_CLIENT_ID"] = ""
    policy = client.get("/admin/mailboxes").headers["Content-Security-Policy"]
    assert "form-action 'self';" in policy
    app.config["OAUTH_MICROSOFT_CLIENT_ID"] = oauth.client_id
    page = client.get("/admin/mailboxes").get_data(as_text=True)
    assert "Connect Microsoft 365" in page and "Connect Google" not in page
    response = post(client, f"/admin/mailboxes/{mailbox.id}/connect/google")
    assert response.status_code == 302
    shown = client.get("/admin/mailboxes").get_data(as_text=True)
    assert "OAUTH_GOOGLE_CLIENT_ID is empty" in shown


def test_access_token_is_reused_until_shortly_before_it_expires(app, oauth, mailbox, client, admin):
    consent(client, oauth, mailbox)
    db.session.refresh(mailbox)
    first = access_token(mailbox, app.config, now=utcnow())
    assert access_token(mailbox, app.config, now=utcnow()) == first
    assert oauth.calls["refresh_token"] == 0
    later = mailbox.oauth_access_expires_at
    assert access_token(mailbox, app.config, now=later) != first
    assert oauth.calls["refresh_token"] == 1


# --- sending a channel's replies through the mailbox (SMTP with XOAUTH2) ------------------


def make_sender(client, mailbox, oauth_smtp, channels) -> None:
    page = f"/admin/mailboxes/{mailbox.id}/sending"
    response = post(
        client,
        page,
        {"smtp_url": f"smtp://127.0.0.1:{oauth_smtp.port}", "channels": [c.id for c in channels]},
        page=page,
    )
    assert response.status_code == 302, response.get_data(as_text=True)


@pytest.mark.smtp
def test_a_reply_goes_out_through_the_sending_mailbox_with_xoauth2(
    app, client, admin, oauth, oauth_smtp, smtp, uk, mailbox, shop, make_thread, make_channel
):
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{smtp.port}"
    oauth.access_token_ttl = 60  # each send refreshes: rotation on the SMTP side too
    consent(client, oauth, mailbox)
    make_sender(client, mailbox, oauth_smtp, [uk])
    assert events("mailbox.sending_changed") == 1
    shown = client.get("/admin/mailboxes").get_data(as_text=True)
    assert f"Sends replies through <code>smtp://127.0.0.1:{oauth_smtp.port}</code>" in shown

    reply = outbox.queue_reply(make_thread(uk), body="Your parcel left today.\n", author=admin)
    other = make_channel("DE", address="de-chan01@helpdesk.test")
    elsewhere = outbox.queue_reply(make_thread(other), body="Ihr Paket.\n", author=admin)
    db.session.commit()
    assert outbox_delivery.deliver_one(reply.id) is True
    assert outbox_delivery.deliver_one(elsewhere.id) is True

    (received,) = oauth_smtp.messages
    assert received.auth_user == shop  # signed in with XOAUTH2 as the mailbox's account
    assert received.message["Message-ID"] == reply.message_id
    assert received.mail_from == uk.helpdesk_address
    # The channel without a sending mailbox still goes through SMTP_URL.
    (plain,) = smtp.messages
    assert plain.message["Message-ID"] == elsewhere.message_id and plain.auth_user is None
    db.session.refresh(mailbox)
    assert decrypt_secret(mailbox.oauth_refresh_token_encrypted) == oauth.issued_refresh_tokens[-1]


@pytest.mark.smtp
def test_a_revoked_sending_mailbox_keeps_the_reply_pending(
    app, client, admin, oauth, oauth_smtp, uk, mailbox, shop, make_thread
):
    oauth.access_token_ttl = 60
    consent(client, oauth, mailbox)
    make_sender(client, mailbox, oauth_smtp, [uk])
    oauth.revoke(shop)
    reply = outbox.queue_reply(make_thread(uk), body="Your parcel left today.\n", author=admin)
    db.session.commit()
    assert outbox_delivery.deliver_one(reply.id) is False
    db.session.refresh(reply)
    assert reply.send_status == SendStatus.PENDING
    assert "consent was revoked" in reply.last_send_error
    assert oauth_smtp.messages == []
    assert len(admin_mails()) == 1  # the admins hear of it once, as for a poll


@pytest.mark.smtp
def test_the_smtp_server_refuses_a_dead_token(oauth, oauth_smtp):
    transport = smtp_transport.Transport(
        kind="smtp", host="127.0.0.1", port=oauth_smtp.port, username="x@example.com",
        oauth_token="at-not-issued",
    )  # fmt: skip
    with pytest.raises(smtp_transport.TemporarySendError, match="535"):
        smtp_transport.send_raw(
            transport,
            sender="a@helpdesk.test",
            recipients=["b@example.com"],
            raw=b"Subject: x\r\n\r\nx\r\n",
            message_id="<x@helpdesk.test>",
            timeout=5,
        )


@pytest.mark.parametrize(
    ("smtp_url", "error"),
    [
        ("outbox:/tmp/x", "A mailbox sends through SMTP"),
        ("ftp://host", "unsupported"),
        ("smtp://", "needs a host"),
    ],
)
def test_bad_smtp_urls_are_refused_next_to_the_field(client, admin, mailbox, smtp_url, error):
    page = f"/admin/mailboxes/{mailbox.id}/sending"
    response = post(client, page, {"smtp_url": smtp_url}, page=page)
    assert response.status_code == 422
    assert error in response.get_data(as_text=True)


def test_the_smtp_url_keeps_no_password(client, admin, mailbox, uk):
    page = f"/admin/mailboxes/{mailbox.id}/sending"
    post(
        client,
        page,
        {
            "smtp_url": "smtp+starttls://me%40shop.com:secret@smtp.office365.com:587",
            "channels": [uk.id],
        },
        page=page,
    )
    db.session.refresh(mailbox)
    assert mailbox.smtp_url == "smtp+starttls://me%40shop.com@smtp.office365.com:587"
    assert smtp_transport.parse_smtp_url(mailbox.smtp_url).username == "me@shop.com"


def test_two_refreshes_at_once_never_lose_the_rotated_token(app, client, admin, oauth, mailbox):
    """An IDLE watch and a poll (or the worker and "Test connection") refreshing together:
    both get a token, the mailbox stays green, the stored refresh token is the live one."""
    oauth.access_token_ttl = 60  # inside the renewal margin: every call refreshes
    consent(client, oauth, mailbox)
    mailbox_id = mailbox.id

    def refresh():
        return access_token(db.session.get(Mailbox, mailbox_id), app.config, now=utcnow())

    tokens = run_together(app, refresh, refresh, refresh)
    assert len(tokens) == 3 and all(oauth.user_of(t) for t in tokens)
    db.session.expire_all()
    mailbox = db.session.get(Mailbox, mailbox_id)
    assert mailbox.oauth_refused_at is None and admin_mails() == []
    assert decrypt_secret(mailbox.oauth_refresh_token_encrypted) in oauth.refresh_tokens


def test_a_mailbox_added_without_a_password_is_connected_next(
    app, client, admin, oauth, uk, shop, oauth_dovecot
):
    """Microsoft 365 has no IMAP password to give: with a provider configured, the form
    takes none, the poll says what to do until the mailbox is connected, then fetches."""
    form = {
        "name": "M365 no password",
        "host": "127.0.0.1",
        "security": "plain",
        "port": str(oauth_dovecot.port),
        "username": shop,
        "password": "",
        "folder": "INBOX",
        "processed_folder": "",
        "is_enabled": "y",
    }
    page = client.get("/admin/mailboxes/new/imap").get_data(as_text=True)
    assert "Leave it empty for a Microsoft 365 or Google mailbox" in page
    response = post(client, "/admin/mailboxes/new/imap", form, page="/admin/mailboxes/new/imap")
    assert response.status_code == 302
    mailbox = db.session.scalar(select(Mailbox).where(Mailbox.name == "M365 no password"))
    assert mailbox.password_encrypted is None

    summary = poll_all()
    assert summary.stored == 0 and summary.errors == 1
    db.session.refresh(mailbox)
    assert "No password and not connected" in mailbox.last_error

    consent(client, oauth, mailbox)
    mailbox.next_attempt_at = None  # the backoff after the failure, not what this tests
    db.session.commit()
    summary = poll_all()
    assert summary.stored == 1 and summary.errors == 0
    # Editing a connected mailbox keeps asking for no password.
    edit = client.get(f"/admin/mailboxes/{mailbox.id}/edit").get_data(as_text=True)
    assert "connected with OAuth" in edit
