"""services/http_ingress: checks and storing, on each database (no HTTP: see
tests/portal/test_inbound_http.py for the real requests)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, Direction, InboundReplay, Mailbox, Message
from portal.services import http_ingress
from portal.services.http_ingress import Refused
from portal.sqltypes import utcnow
from tests.helpers import run_together
from tests.http_ingress_standin import generic_headers
from tests.mailgen import amazon_message

HELPDESK = "uk-chan01@helpdesk.test"


@pytest.fixture
def settings(app):
    return http_ingress.IngressSettings(
        max_age=timedelta(minutes=5),
        sns_cert_host_suffix=".amazonaws.com",
        sns_ca_file=None,
        s3_endpoint="",
        inbound_domain=app.config["INBOUND_DOMAIN"],
        max_attachment_bytes=app.config["MAX_ATTACHMENT_BYTES"],
        parse_seconds=None,
    )


@pytest.fixture
def posted(app):
    new = http_ingress.create_http_mailbox(actor=None, name="posted", provider="generic")
    db.session.commit()
    return new


def _count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_the_token_finds_only_an_enabled_http_mailbox(posted):
    assert http_ingress.mailbox_for_token(posted.token) == posted.mailbox
    assert http_ingress.mailbox_for_token(posted.token + "x") is None
    assert http_ingress.mailbox_for_token("") is None
    posted.mailbox.is_enabled = False
    db.session.commit()
    assert http_ingress.mailbox_for_token(posted.token) is None


def test_a_checked_delivery_is_committed_with_its_replay_key(uk, posted, settings):
    raw = amazon_message(1, HELPDESK)
    headers = generic_headers(posted.signing_key, raw)
    delivery = http_ingress.check_generic(posted.mailbox, raw, headers, settings, time.time())
    stored = http_ingress.deliver(posted.mailbox, delivery, settings)
    assert stored.outcome.value == "stored"
    assert _count(Message, Message.direction == Direction.IN) == 1
    assert _count(InboundReplay) == 1
    with pytest.raises(Refused) as refused:
        http_ingress.deliver(posted.mailbox, delivery, settings)
    assert refused.value.status == 409
    assert _count(Message, Message.direction == Direction.IN) == 1


def test_the_same_request_twice_at_once_is_stored_once(app, uk, posted, settings):
    raw = amazon_message(2, HELPDESK)
    headers = generic_headers(posted.signing_key, raw)
    mailbox_id = posted.mailbox.id

    def deliver():
        mailbox = db.session.get(Mailbox, mailbox_id)
        delivery = http_ingress.check_generic(mailbox, raw, headers, settings, time.time())
        try:
            return http_ingress.deliver(mailbox, delivery, settings).outcome.value
        except Refused as refused:
            return refused.status

    results = run_together(app, deliver, deliver)
    assert sorted(map(str, results)) == ["409", "stored"]
    assert _count(Message, Message.direction == Direction.IN) == 1


def test_old_replay_keys_are_forgotten(uk, posted, settings):
    db.session.add(
        InboundReplay(
            mailbox_id=posted.mailbox.id, key="sig:old", seen_at=utcnow() - timedelta(hours=1)
        )
    )
    db.session.commit()
    raw = amazon_message(3, HELPDESK)
    headers = generic_headers(posted.signing_key, raw)
    delivery = http_ingress.check_generic(posted.mailbox, raw, headers, settings, time.time())
    http_ingress.deliver(posted.mailbox, delivery, settings)
    assert [r.key for r in db.session.scalars(select(InboundReplay))] == [delivery.replay_key]


def test_mail_with_nul_bytes_is_stored_not_an_error(uk, posted, settings):
    # The web's NUL guard leaves posted mail alone: the pipeline keeps such bytes raw.
    raw = amazon_message(4, HELPDESK).replace(b"Begin message", b"Begin\x00message")
    headers = generic_headers(posted.signing_key, raw)
    delivery = http_ingress.check_generic(posted.mailbox, raw, headers, settings, time.time())
    stored = http_ingress.deliver(posted.mailbox, delivery, settings)
    assert stored.outcome.value in ("stored", "quarantined")
    assert _count(Message, Message.direction == Direction.IN) == 1


TOPIC = "arn:aws:sns:eu-west-1:123456789012:sellerdesk-inbound"
OTHER_TOPIC = "arn:aws:sns:eu-west-1:999999999999:someone-elses-topic"


@pytest.fixture
def ses_mailbox(app):
    new = http_ingress.create_http_mailbox(actor=None, name="ses", provider="ses")
    db.session.commit()
    return new.mailbox


def test_the_first_topic_pins_an_ses_mailbox_and_others_are_refused(ses_mailbox):
    http_ingress.pin_sns_topic(ses_mailbox, TOPIC)
    http_ingress.pin_sns_topic(ses_mailbox, TOPIC)  # the same topic again: taken
    with pytest.raises(Refused) as refused:
        http_ingress.pin_sns_topic(ses_mailbox, OTHER_TOPIC)
    assert refused.value.status == 403
    db.session.expire_all()
    assert db.session.get(Mailbox, ses_mailbox.id).sns_topic_arn == TOPIC
    assert _count(AuditEvent, AuditEvent.kind == "mailbox.sns_topic_pinned") == 1
    assert http_ingress.unpin_sns_topic(actor=None, mailbox=ses_mailbox) == TOPIC
    http_ingress.pin_sns_topic(ses_mailbox, OTHER_TOPIC)
    assert ses_mailbox.sns_topic_arn == OTHER_TOPIC


def test_two_topics_racing_for_a_new_mailbox_pin_only_one(app, ses_mailbox):
    mailbox_id = ses_mailbox.id

    def pin(topic):
        def call():
            try:
                http_ingress.pin_sns_topic(db.session.get(Mailbox, mailbox_id), topic)
            except Refused as refused:
                return refused.status
            return topic

        return call

    results = run_together(app, pin(TOPIC), pin(OTHER_TOPIC))
    assert sorted(map(str, results)) in (["403", TOPIC], ["403", OTHER_TOPIC])
    db.session.expire_all()
    (winner,) = (r for r in results if r != 403)
    assert db.session.get(Mailbox, mailbox_id).sns_topic_arn == winner
    assert _count(AuditEvent, AuditEvent.kind == "mailbox.sns_topic_pinned") == 1


def test_the_sigv4_signer_matches_aws_published_get_object_example():
    # "Example: GET Object" in Amazon S3's "Signature calculations for the
    # Authorization header" (Signature Version 4), with its example credentials.
    signed = http_ingress.sigv4_headers(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        region="us-east-1",
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        when=datetime(2013, 5, 24, tzinfo=UTC),
        headers={"Range": "bytes=0-9"},
    )
    assert signed["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert signed["x-amz-date"] == "20130524T000000Z"
    assert signed["Host"] == "examplebucket.s3.amazonaws.com"


def test_a_session_token_is_sent_and_signed():
    signed = http_ingress.sigv4_headers(
        "GET",
        "https://s3.eu-west-1.amazonaws.com/bucket/key",
        region="eu-west-1",
        access_key_id="AKID",
        secret_access_key="secret",
        session_token="token",
        when=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert signed["x-amz-security-token"] == "token"
    assert "x-amz-security-token" in signed["Authorization"].split("SignedHeaders=")[1]
