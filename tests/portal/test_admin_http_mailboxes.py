"""Admin console: HTTP ingress mailboxes (add, shown once, health's last delivery) and the CLI."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.crypto import decrypt_secret
from portal.extensions import db
from portal.models import AuditEvent, InboundReplay, Mailbox
from portal.services import http_ingress
from tests.helpers import csrf_token_from
from tests.http_ingress_standin import generic_headers
from tests.mailgen import amazon_message

NEW = "/admin/mailboxes/new-http"


def _add(client, **data):
    token = csrf_token_from(client.get(NEW).get_data(as_text=True))
    form = {"csrf_token": token, "name": "Posted", "provider": "generic", "is_enabled": "y"}
    return client.post(NEW, data={**form, **data})


def test_admin_adds_a_generic_http_mailbox_and_sees_its_address_and_key_once(
    app, client, admin, uk
):
    response = _add(client)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    url = re.search(r'id="ingress-url">([^<]+)<', page).group(1)
    key = re.search(r'id="ingress-key">([^<]+)<', page).group(1)
    path = url.split("://", 1)[1].split("/", 1)[1]
    mailbox = db.session.scalar(select(Mailbox).where(Mailbox.name == "Posted"))
    assert mailbox.source_url == "http-ingress://?provider=generic"
    assert mailbox.ingress_token_hash == http_ingress.token_hash(path.rsplit("/", 1)[1])
    assert decrypt_secret(mailbox.signing_key_encrypted) == key
    assert db.session.scalar(
        select(AuditEvent).where(
            AuditEvent.kind == "mailbox.added", AuditEvent.target_id == mailbox.id
        )
    )
    # Neither the address nor the key is shown again.
    listing = client.get("/admin/mailboxes").get_data(as_text=True)
    assert "HTTP ingress" in listing and key not in listing and path not in listing
    assert client.get(f"/admin/mailboxes/{mailbox.id}/edit").status_code == 302

    raw = amazon_message(1, "uk-chan01@helpdesk.test")
    delivered = client.post(f"/{path}", data=raw, headers=generic_headers(key, raw))
    assert delivered.status_code == 200, delivered.get_data(as_text=True)
    health = client.get("/admin/health").get_data(as_text=True)
    assert "last delivery" in health


def test_a_mailgun_mailbox_needs_mailguns_signing_key(app, client, admin):
    response = _add(client, provider="mailgun", signing_key="")
    assert response.status_code == 422
    assert "Enter Mailgun" in response.get_data(as_text=True)
    assert db.session.scalar(select(Mailbox).where(Mailbox.name == "Posted")) is None
    response = _add(client, provider="mailgun", signing_key="key-from-mailgun")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "/mime" in page and "key-from-mailgun" not in page


def test_cli_adds_lists_and_tests_an_http_mailbox(app, runner):
    result = runner.invoke(args=["mailboxes", "add", "--name", "mta", "--url", "http-ingress://"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split("\t", 1) for line in result.output.splitlines())
    assert lines["added"] == "mta\thttp-ingress://?provider=generic"
    assert lines["path"].startswith("/inbound/") and lines["signing_key"]
    listed = runner.invoke(args=["mailboxes", "list"]).output
    assert "mta\thttp-ingress\tnew" in listed
    tested = runner.invoke(args=["mailboxes", "test", "--name", "mta"])
    assert tested.exit_code == 0 and "ready" in tested.output
    refused = runner.invoke(
        args=["mailboxes", "add", "--name", "mg", "--url", "http-ingress://?provider=mailgun"]
    )
    assert refused.exit_code != 0 and "signing key" in refused.output
    bad = runner.invoke(
        args=["mailboxes", "add", "--name", "x", "--url", "http-ingress://?provider=postmark"]
    )
    assert bad.exit_code != 0 and "unknown HTTP ingress provider" in bad.output
    ses = runner.invoke(
        args=["mailboxes", "add", "--name", "ses", "--url", "http-ingress://?provider=ses"]
    )
    assert ses.exit_code == 0 and "signing_key" not in ses.output
    # Removing it forgets its replay memory too.
    mailbox = db.session.scalar(select(Mailbox).where(Mailbox.name == "mta"))
    db.session.add(InboundReplay(mailbox_id=mailbox.id, key="sig:taken"))
    db.session.commit()
    removed = runner.invoke(args=["mailboxes", "remove", "--name", "mta"])
    assert removed.exit_code == 0, removed.output
    db.session.expire_all()
    assert db.session.scalar(select(InboundReplay)) is None


def test_an_ses_mailboxs_pinned_topic_is_shown_and_the_cli_clears_it(app, client, admin, runner):
    new = http_ingress.create_http_mailbox(actor=None, name="ses", provider="ses")
    db.session.commit()
    listing = client.get("/admin/mailboxes").get_data(as_text=True)
    assert "not pinned yet" in listing
    topic = "arn:aws:sns:eu-west-1:123456789012:sellerdesk-inbound"
    new.mailbox.sns_topic_arn = topic
    db.session.commit()
    listing = client.get("/admin/mailboxes").get_data(as_text=True)
    assert f'<code class="sns-topic">{topic}</code>' in listing

    result = runner.invoke(args=["mailboxes", "unpin-topic", "--name", "ses"])
    assert result.exit_code == 0, result.output
    assert result.output == f"unpinned\tses\t{topic}\n"
    db.session.expire_all()
    assert db.session.get(Mailbox, new.mailbox.id).sns_topic_arn is None
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.kind == "mailbox.sns_topic_unpinned")
    )
    assert event.target_id == new.mailbox.id and event.details == {"topic": topic}
    # Only SES mailboxes have a topic.
    http_ingress.create_http_mailbox(actor=None, name="mta", provider="generic")
    db.session.commit()
    refused = runner.invoke(args=["mailboxes", "unpin-topic", "--name", "mta"])
    assert refused.exit_code != 0 and "not an Amazon SES mailbox" in refused.output
