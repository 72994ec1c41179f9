"""Exactly once across sources (issue 24): one mail is stored once whichever way it comes.

A copy with other transport fields (Received, Delivered-To, Return-Path, X-…), the
same mail through two mailboxes, through IMAP (the suite's Dovecot) and HTTP (the
portal served on loopback): stored once. Other content under one Message-ID: kept.
A malformed Message-ID: kept as written, and a reply citing it threads.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ingest.mail.maildir import MaildirSource
from ingest.mail.parse import content_hash, raw_hash
from ingest.mail.source import SourceSettings
from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Direction, Mailbox, Message
from portal.services import http_ingress
from portal.services.inbound import Outcome
from tests.http_ingress_standin import generic_post

HELPDESK = "uk-chan01@helpdesk.test"

MAIL = (
    b"From: Jane Doe <jane.doe@example.org>\n"
    b"To: uk-chan01@helpdesk.test\n"
    b"Subject: Where is my parcel?\n"
    b"Date: Thu, 03 Dec 2026 10:00:00 +0000\n"
    b"Message-ID: <parcel-1@example.org>\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"X-Mailer: Webmail 3\n"
    b"\n"
    b"Hello, my parcel has not arrived.\n"
)


def on_the_way(raw: bytes, hop: str) -> bytes:
    """`raw` as another way delivers it: trace and delivery fields added on top, a
    spam verdict, CRLF line ends, one more blank line at the end."""
    added = (
        f"Return-Path: <bounce-{hop}@example.org>\n"
        f"Delivered-To: {HELPDESK}\n"
        f"Received: from mx-{hop}.example.net (mx-{hop}.example.net [192.0.2.7])\n"
        f"\tby inbound-{hop}.helpdesk.test with ESMTPS id {hop}42; Thu, 3 Dec 2026 10:00:05 +0000\n"
        f"Authentication-Results: inbound-{hop}.helpdesk.test; spf=pass\n"
        f"ARC-Seal: i=1; a=rsa-sha256; cv=none; d={hop}.example.net; b=abc\n"
        f"X-Spam-Status: No, score=-0.{len(hop)}\n"
        f"X-Forwarded-By-{hop}: yes\n"
    ).encode()
    return (added + raw + b"\n").replace(b"\n", b"\r\n")


def inbound() -> list[Message]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Message).where(Message.direction == Direction.IN).order_by(Message.id)
        )
    )


def test_the_hash_leaves_out_the_fields_added_on_the_way_and_nothing_else():
    assert content_hash(on_the_way(MAIL, "a")) == content_hash(MAIL)
    assert content_hash(on_the_way(MAIL, "b")) == content_hash(on_the_way(MAIL, "a"))
    assert raw_hash(on_the_way(MAIL, "a")) != raw_hash(MAIL)
    for changed in (
        MAIL.replace(b"not arrived", b"not arrivedd"),
        MAIL.replace(b"Subject: Where", b"Subject: When"),
        MAIL.replace(b"From: Jane Doe", b"From: Jane Do"),
        MAIL.replace(b"Date: Thu, 03 Dec 2026 10:00", b"Date: Thu, 03 Dec 2026 10:01"),
    ):
        assert content_hash(changed) != content_hash(MAIL)


def test_a_copy_with_other_transport_fields_is_stored_once(uk, ingest):
    assert ingest(MAIL) == Outcome.STORED
    assert ingest(on_the_way(MAIL, "a")) == Outcome.DUPLICATE
    assert ingest(on_the_way(MAIL, "b")) == Outcome.DUPLICATE
    assert len(inbound()) == 1


def test_other_content_under_one_message_id_is_still_kept(uk, ingest):
    assert ingest(MAIL) == Outcome.STORED
    edited = MAIL.replace(b"not arrived", b"still not arrived")
    assert ingest(on_the_way(edited, "a")) == Outcome.STORED
    assert [m.message_id for m in inbound()] == ["<parcel-1@example.org>"] * 2


def test_mail_stored_by_versions_that_hashed_every_byte_is_recognised(uk, ingest):
    delivered = on_the_way(MAIL, "a")
    assert ingest(delivered) == Outcome.STORED
    (stored,) = inbound()
    stored.content_hash = raw_hash(delivered)  # as stored before issue 24
    db.session.commit()
    assert ingest(delivered) == Outcome.DUPLICATE
    assert len(inbound()) == 1


def test_the_same_mail_through_two_mailboxes_is_stored_once(uk, maildir, tmp_path):
    second = tmp_path / "second-maildir"
    for sub in ("new", "cur", "tmp"):
        (second / sub).mkdir(parents=True)
    db.session.add(Mailbox(name="second", source_url=f"maildir:{second}"))
    db.session.commit()
    (maildir / "new" / "1.first").write_bytes(on_the_way(MAIL, "a"))
    (second / "new" / "1.second").write_bytes(on_the_way(MAIL, "b"))
    summary = poll_all()
    assert (summary.fetched, summary.stored, summary.duplicate) == (2, 1, 1)
    assert [m.message_id for m in inbound()] == ["<parcel-1@example.org>"]


MALFORMED = [b"parcel-2@example.org", b"<parcel-2@example.org", b"parcel-2@example.org>"]


@pytest.mark.parametrize("written", MALFORMED)
def test_a_malformed_message_id_is_kept_as_written_and_a_reply_citing_it_threads(
    uk, ingest, written
):
    first = MAIL.replace(b"<parcel-1@example.org>", b"  " + written + b"  ")
    assert ingest(first) == Outcome.STORED
    reply = (
        b"From: Jane (mobile) <jane@mobile.example.net>\nTo: uk-chan01@helpdesk.test\n"
        b"Subject: another subject\nDate: Thu, 03 Dec 2026 12:00:00 +0000\n"
        b"Message-ID: <reply-2@mobile.example.net>\nIn-Reply-To: " + written + b"\n\nAny news?\n"
    )
    assert ingest(reply) == Outcome.STORED
    original, answer = inbound()
    assert original.message_id == written.decode()
    assert answer.thread_id == original.thread_id
    # Delivered again along another way: still the one mail.
    assert ingest(on_the_way(first, "c")) == Outcome.DUPLICATE


@pytest.mark.imap
@pytest.mark.live
def test_the_same_mail_through_imap_and_http_is_stored_once(app, uk, imap, live_server):
    new = http_ingress.create_http_mailbox(actor=None, name="posted", provider="generic")
    db.session.commit()
    url = f"{live_server}/inbound/{new.token}"
    imap.append("INBOX", on_the_way(MAIL, "imap"))
    assert poll_all().stored == 1
    assert generic_post(url, new.signing_key, on_the_way(MAIL, "http")) == (
        200,
        {"status": "duplicate"},
    )
    # And the other way round: first HTTP, then IMAP.
    other = MAIL.replace(b"parcel-1", b"parcel-3")
    assert generic_post(url, new.signing_key, on_the_way(other, "http"))[1] == {"status": "stored"}
    imap.append("INBOX", on_the_way(other, "imap"))
    summary = poll_all()
    assert (summary.fetched, summary.stored, summary.duplicate) == (1, 0, 1)
    assert sorted(m.message_id for m in inbound()) == [
        "<parcel-1@example.org>",
        "<parcel-3@example.org>",
    ]


def test_removal_at_the_source_finds_mail_under_either_hash(tmp_path):
    # An erased message is deleted from its Maildir by the hash it was stored under:
    # the whole bytes (stored before issue 24) or the bytes as sent.
    old, new = on_the_way(MAIL, "old"), on_the_way(MAIL.replace(b"parcel-1", b"parcel-4"), "new")
    with MaildirSource(SourceSettings(kind="maildir", path=str(tmp_path / "md"))) as source:
        (tmp_path / "md" / "cur" / "1.old").write_bytes(old)
        (tmp_path / "md" / "cur" / "2.new").write_bytes(new)
        (tmp_path / "md" / "cur" / "3.kept").write_bytes(MAIL.replace(b"parcel", b"other"))
        contents = [
            ("<parcel-1@example.org>", raw_hash(old)),
            ("<parcel-4@example.org>", content_hash(MAIL.replace(b"parcel-1", b"parcel-4"))),
        ]
        assert source.remove_erased(uids=[], contents=contents) == 2
    assert sorted(p.name for p in (tmp_path / "md" / "cur").iterdir()) == ["3.kept"]
