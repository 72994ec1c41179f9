"""POST /inbound/<token> over real HTTP: the generic HMAC form, Mailgun and SES via SNS.

The portal runs on a loopback port (`live_server`); Mailgun's and SNS's signed
requests come from tests/http_ingress_standin.py, SNS's certificate and S3's objects
from its HTTPS server on localhost (the suite's CA, SNS_CERT_HOST_SUFFIX=localhost).
"""

from __future__ import annotations

import datetime as dt
import time
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, Direction, InboundReplay, Mailbox, Message
from portal.services import http_ingress
from tests.http_ingress_standin import (
    TOPIC,
    SnsStandin,
    generic_headers,
    generic_post,
    mailgun_fields,
    mailgun_post,
    post,
    s3_signature_error,
    sns_post,
)
from tests.mailgen import amazon_message

pytestmark = pytest.mark.live

HELPDESK = "uk-chan01@helpdesk.test"
MAILGUN_KEY = "key-mailgun-signing-0123456789abcdef"


@pytest.fixture(scope="module")
def sns(test_pki):
    standin = SnsStandin(test_pki.good.cert, test_pki.good.key)
    yield standin
    standin.close()


@pytest.fixture
def app_config(app_config, test_pki, sns):
    app_config.update(
        SNS_CERT_HOST_SUFFIX="localhost",
        SNS_CA_FILE=str(test_pki.ca),
        SES_S3_ENDPOINT=sns.base,
        INBOUND_MAX_BYTES=200_000,
    )
    return app_config


def _mailbox(provider: str, key: str | None = None) -> tuple[str, str | None]:
    new = http_ingress.create_http_mailbox(
        actor=None, name=f"posted-{provider}", provider=provider, signing_key=key
    )
    db.session.commit()
    return new.token, new.signing_key


def _inbound() -> list[Message]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message).where(Message.direction == Direction.IN)))


def test_generic_delivery_is_stored_threaded_and_a_retry_is_stored_once(app, uk, live_server):
    token, key = _mailbox("generic")
    url = f"{live_server}/inbound/{token}"
    raw = amazon_message(1, HELPDESK)
    status, body = generic_post(url, key, raw)
    assert (status, body) == (200, {"status": "stored"})
    (stored,) = _inbound()
    assert stored.channel_id == uk.id and stored.thread_id is not None
    # The MTA retries after a lost answer: a new request, signed afresh.
    status, body = generic_post(url, key, raw, timestamp=int(time.time()) + 1)
    assert (status, body) == (200, {"status": "duplicate"})
    assert len(_inbound()) == 1
    mailbox = db.session.scalar(select(Mailbox).where(Mailbox.name == "posted-generic"))
    assert mailbox.last_delivery_at is not None


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ("unsigned", 401),
        ("wrong_key", 403),
        ("tampered_body", 403),
        ("stale", 400),
        ("future", 400),
        ("bad_scheme", 403),
    ],
)
def test_generic_refusals_store_nothing(app, uk, live_server, change, status):
    token, key = _mailbox("generic")
    url = f"{live_server}/inbound/{token}"
    raw = amazon_message(2, HELPDESK)
    headers = generic_headers(key, raw)
    if change == "unsigned":
        headers = {"Content-Type": "message/rfc822"}
    elif change == "wrong_key":
        headers = generic_headers("not-the-key", raw)
    elif change == "tampered_body":
        raw = raw.replace(b"Inquiry", b"Inquirx")
    elif change == "stale":
        headers = generic_headers(key, raw, timestamp=int(time.time()) - 301)
    elif change == "future":
        headers = generic_headers(key, raw, timestamp=int(time.time()) + 301)
    elif change == "bad_scheme":
        headers["X-Sellerdesk-Signature"] = headers["X-Sellerdesk-Signature"].replace(
            "sha256=", "sha1="
        )
    got, body = post(url, raw, headers)
    assert got == status, body
    assert "error" in body
    assert _inbound() == []


def test_a_replayed_request_is_refused_and_stores_nothing_more(app, uk, live_server):
    token, key = _mailbox("generic")
    url = f"{live_server}/inbound/{token}"
    raw = amazon_message(3, HELPDESK)
    headers = generic_headers(key, raw)
    assert post(url, raw, headers)[0] == 200
    status, body = post(url, raw, headers)
    assert status == 409 and "replayed" in body["error"]
    assert len(_inbound()) == 1
    assert db.session.scalar(select(func.count(InboundReplay.id))) == 1


def test_oversize_unknown_token_and_get_are_refused(app, uk, live_server):
    token, key = _mailbox("generic")
    big = amazon_message(4, HELPDESK) + b"\n" + b"x" * 250_000
    assert generic_post(f"{live_server}/inbound/{token}", key, big)[0] == 413
    raw = amazon_message(5, HELPDESK)
    assert generic_post(f"{live_server}/inbound/not-a-token", key, raw)[0] == 404
    assert _inbound() == []


def test_mailgun_raw_mime_route_signed_and_refused(app, uk, live_server):
    token, _ = _mailbox("mailgun", MAILGUN_KEY)
    url = f"{live_server}/inbound/{token}/mime"
    raw = amazon_message(6, HELPDESK)
    fields = mailgun_fields(MAILGUN_KEY, raw)
    assert mailgun_post(url, fields) == (200, {"status": "stored"})
    # Mailgun's retry of the same post: refused with 406, which stops its retries.
    assert mailgun_post(url, fields)[0] == 406
    # A new post of the same mail (new token and timestamp) is a duplicate.
    assert mailgun_post(url, mailgun_fields(MAILGUN_KEY, raw))[1] == {"status": "duplicate"}
    other = amazon_message(7, HELPDESK)
    assert mailgun_post(url, mailgun_fields("wrong-key", other))[0] == 403
    stale = mailgun_fields(MAILGUN_KEY, other, timestamp=int(time.time()) - 600)
    assert mailgun_post(url, stale)[0] == 400
    unsigned = {k: v for k, v in mailgun_fields(MAILGUN_KEY, other).items() if k != "signature"}
    assert mailgun_post(url, unsigned)[0] == 401
    assert len(_inbound()) == 1


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_via_sns_inline_content(app, uk, live_server, sns, version):
    token, key = _mailbox("ses")
    assert key is None
    url = f"{live_server}/inbound/{token}"
    raw = amazon_message(8, HELPDESK)
    message = sns.notification(raw, version=version)
    assert sns_post(url, message) == (200, {"status": "stored"})
    # SNS delivers the same message again: a replay, nothing stored.
    assert sns_post(url, message)[0] == 409
    assert len(_inbound()) == 1


def test_ses_via_sns_content_in_s3(app, uk, live_server, sns):
    token, _ = _mailbox("ses")
    raw = amazon_message(9, HELPDESK)
    message = sns.notification(raw, s3_key="mail/abc123")
    assert sns_post(f"{live_server}/inbound/{token}", message) == (200, {"status": "stored"})
    assert sns.visits["/inbound-mail/mail/abc123"] >= 1
    (stored,) = _inbound()
    assert stored.raw == raw


def test_sns_subscription_is_confirmed_at_its_subscribe_url(app, uk, live_server, sns):
    token, _ = _mailbox("ses")
    before = sns.visits["/confirm"]
    status, body = sns_post(f"{live_server}/inbound/{token}", sns.subscription())
    assert (status, body) == (200, {"status": "subscription confirmed"})
    assert sns.visits["/confirm"] == before + 1


OTHER_TOPIC = "arn:aws:sns:eu-west-1:999999999999:someone-elses-topic"


def test_an_ses_mailbox_takes_mail_only_from_the_topic_it_confirmed_first(
    app, uk, live_server, sns
):
    token, _ = _mailbox("ses")
    url = f"{live_server}/inbound/{token}"
    before = sns.visits["/confirm"]
    assert sns_post(url, sns.subscription())[0] == 200
    mailbox = db.session.scalar(select(Mailbox).where(Mailbox.name == "posted-ses"))
    db.session.refresh(mailbox)
    assert mailbox.sns_topic_arn == TOPIC
    assert db.session.scalar(
        select(AuditEvent).where(
            AuditEvent.kind == "mailbox.sns_topic_pinned", AuditEvent.target_id == mailbox.id
        )
    )
    # Someone who learnt the address subscribes their own topic: never confirmed...
    status, body = sns_post(url, sns.subscription(topic=OTHER_TOPIC))
    assert status == 403 and "topic" in body["error"]
    assert sns.visits["/confirm"] == before + 1
    # ...and their notifications (validly signed by SNS) store nothing.
    foreign = sns.notification(amazon_message(11, HELPDESK), topic=OTHER_TOPIC)
    assert sns_post(url, foreign)[0] == 403
    assert _inbound() == []
    assert db.session.scalar(select(func.count(InboundReplay.id))) == 1  # the confirmation
    # The seller's own topic still delivers.
    assert sns_post(url, sns.notification(amazon_message(12, HELPDESK)))[0] == 200
    assert len(_inbound()) == 1


def test_a_mailbox_subscribed_before_pins_is_pinned_by_its_first_notification(
    app, uk, live_server, sns
):
    token, _ = _mailbox("ses")
    url = f"{live_server}/inbound/{token}"
    assert sns_post(url, sns.notification(amazon_message(13, HELPDESK)))[0] == 200
    assert (
        sns_post(url, sns.notification(amazon_message(14, HELPDESK), topic=OTHER_TOPIC))[0] == 403
    )
    assert len(_inbound()) == 1


@pytest.fixture
def signed_s3(app, sns, monkeypatch):
    """The stand-in S3 wants SigV4 GETs; the portal holds the right key."""
    monkeypatch.setattr(sns, "s3_credentials", ("AKIDSTANDIN", "standin/secret+key"))
    monkeypatch.setattr(sns, "s3_session_token", "session-token-1")
    for name, value in {
        "SES_S3_REGION": sns.s3_region,
        "SES_S3_ACCESS_KEY_ID": "AKIDSTANDIN",
        "SES_S3_SECRET_ACCESS_KEY": "standin/secret+key",
        "SES_S3_SESSION_TOKEN": "session-token-1",
    }.items():
        monkeypatch.setitem(app.config, name, value)
    return sns


def test_ses_mail_in_a_private_bucket_is_fetched_with_a_signed_get(app, uk, live_server, signed_s3):
    token, _ = _mailbox("ses")
    raw = amazon_message(15, HELPDESK)
    message = signed_s3.notification(raw, s3_key="mail/with space+plus=1")
    assert sns_post(f"{live_server}/inbound/{token}", message) == (200, {"status": "stored"})
    (stored,) = _inbound()
    assert stored.raw == raw


@pytest.mark.parametrize(
    ("setting", "value", "s3_error"),
    [
        ("SES_S3_SECRET_ACCESS_KEY", "not-the-secret", "SignatureDoesNotMatch"),
        ("SES_S3_ACCESS_KEY_ID", "AKIDSOMEONEELSE", "InvalidAccessKeyId"),
        ("SES_S3_REGION", "us-east-1", "AuthorizationHeaderMalformed"),
        ("SES_S3_SESSION_TOKEN", "", "InvalidToken"),
        ("SES_S3_ACCESS_KEY_ID", "", "AccessDenied"),  # unsigned, at a private bucket
    ],
)
def test_a_refused_s3_get_asks_sns_to_retry_and_stores_nothing(
    app, uk, live_server, signed_s3, monkeypatch, setting, value, s3_error
):
    monkeypatch.setitem(app.config, setting, value)
    token, _ = _mailbox("ses")
    message = signed_s3.notification(amazon_message(16, HELPDESK), s3_key="mail/refused")
    status, body = sns_post(f"{live_server}/inbound/{token}", message)
    assert status == 502 and "S3" in body["error"]
    assert signed_s3.s3_refusals[s3_error] >= 1
    assert _inbound() == []
    assert db.session.scalar(select(func.count(InboundReplay.id))) == 0


def test_the_standin_s3_refuses_a_wrong_secret_as_signature_does_not_match():
    # The stand-in's own check, against the portal's signer: right and wrong secret.
    url = "https://localhost:8443/inbound-mail/mail/x"
    when = dt.datetime(2026, 12, 6, 20, 0, tzinfo=dt.UTC)
    signed = http_ingress.sigv4_headers(
        "GET",
        url,
        region="eu-west-1",
        access_key_id="AKID",
        secret_access_key="right",
        when=when,
    )
    target = "/inbound-mail/mail/x"
    assert s3_signature_error("GET", target, signed, ("AKID", "right")) is None
    assert s3_signature_error("GET", target, signed, ("AKID", "wrong")) == "SignatureDoesNotMatch"
    assert s3_signature_error("GET", "/inbound-mail/mail/y", signed, ("AKID", "right")) == (
        "SignatureDoesNotMatch"
    )


def test_sns_refusals(app, uk, live_server, sns):
    token, _ = _mailbox("ses")
    url = f"{live_server}/inbound/{token}"
    raw = amazon_message(10, HELPDESK)
    # A certificate on a host outside SNS_CERT_HOST_SUFFIX is never fetched.
    wrong_host = sns.sign(
        {**sns.notification(raw), "SigningCertURL": sns.cert_url.replace("localhost", "127.0.0.1")}
    )
    fetched = sns.visits["/SimpleNotificationService-standin.pem"]
    assert sns_post(url, wrong_host)[0] == 403
    plain_http = sns.sign(
        {**sns.notification(raw), "SigningCertURL": sns.cert_url.replace("https:", "http:")}
    )
    assert sns_post(url, plain_http)[0] == 403
    assert sns.visits["/SimpleNotificationService-standin.pem"] == fetched
    tampered = sns.notification(raw)
    tampered["Message"] = tampered["Message"].replace("Received", "Bounce")
    assert sns_post(url, tampered)[0] == 403
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
    assert sns_post(url, sns.notification(raw, timestamp=old))[0] == 400
    unsigned = {k: v for k, v in sns.notification(raw).items() if k != "Signature"}
    assert sns_post(url, unsigned)[0] == 401
    bad_subscribe = sns.sign({**sns.subscription(), "SubscribeURL": "https://evil.test/confirm"})
    assert sns_post(url, bad_subscribe)[0] == 403
    assert _inbound() == []


def test_deliveries_are_rate_limited_per_mailbox(app, uk, live_server):
    app.config["INBOUND_RATE_LIMIT"] = "2 per minute"
    token, key = _mailbox("generic")
    other = http_ingress.create_http_mailbox(actor=None, name="other", provider="generic")
    db.session.commit()
    url = f"{live_server}/inbound/{token}"
    assert generic_post(url, key, amazon_message(11, HELPDESK))[0] == 200
    assert generic_post(url, key, amazon_message(12, HELPDESK))[0] == 200
    assert generic_post(url, key, amazon_message(13, HELPDESK))[0] == 429
    # Another mailbox has its own count.
    other_url = f"{live_server}/inbound/{other.token}"
    assert generic_post(other_url, other.signing_key, amazon_message(13, HELPDESK))[0] == 200
    assert len(_inbound()) == 3


def test_a_large_mailgun_message_is_taken_and_one_over_the_limit_refused(app, uk, live_server):
    app.config["INBOUND_MAX_BYTES"] = 2_000_000
    token, _ = _mailbox("mailgun", MAILGUN_KEY)
    url = f"{live_server}/inbound/{token}/mime"
    # Beyond werkzeug's 500 kB default for a form field held in memory.
    big = amazon_message(14, HELPDESK) + b"\n" + b"photo line\n" * 70_000
    fields = mailgun_fields(MAILGUN_KEY, big)
    assert mailgun_post(url, fields, multipart=True) == (200, {"status": "stored"})
    huge = amazon_message(15, HELPDESK) + b"\n" + b"photo line\n" * 200_000
    assert mailgun_post(url, mailgun_fields(MAILGUN_KEY, huge), multipart=True)[0] == 413
    assert len(_inbound()) == 1


@pytest.mark.parametrize("multipart", [False, True])
def test_mailgun_8bit_mail_in_another_charset_is_stored_byte_for_byte(
    app, uk, live_server, multipart
):
    # A Latin-1 body with no transfer encoding: a form decoded as UTF-8 would have put
    # replacement characters where the accents are.
    token, _ = _mailbox("mailgun", MAILGUN_KEY)
    raw = (
        b"From: Ren\xe9e <renee@example.com>\r\nTo: " + HELPDESK.encode() + b"\r\n"
        b"Subject: Colis re\xe7u ab\xeem\xe9\r\nMessage-ID: <latin1-mailgun@example.com>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nLe colis est arriv\xe9 ab\xeem\xe9.\r\n"
    )
    fields = mailgun_fields(MAILGUN_KEY, raw)
    if multipart:
        status = mailgun_post(f"{live_server}/inbound/{token}/mime", fields, multipart=True)
    else:
        fields["body-mime"] = raw  # urlencode quotes bytes as they are
        status = post(
            f"{live_server}/inbound/{token}/mime",
            urlencode(fields).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert status == (200, {"status": "stored"})
    [stored] = _inbound()
    assert stored.raw == raw
    assert stored.subject == "Colis reçu abîmé"


def test_mailgun_refuses_what_is_not_a_form(app, uk, live_server):
    token, _ = _mailbox("mailgun", MAILGUN_KEY)
    answer = post(
        f"{live_server}/inbound/{token}/mime",
        amazon_message(8, HELPDESK),
        {"Content-Type": "message/rfc822"},
    )
    assert answer[0] == 415
    assert _inbound() == []
