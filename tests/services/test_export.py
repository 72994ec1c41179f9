"""The JSON Lines export: fields, flags, scoping, secrets, encoding, streaming, atomic files."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from email.utils import formataddr

import pytest

from ingest.mail.parse import MAX_BODY_CHARS
from ingest.pipeline import Outcome
from portal.crypto import encrypt_secret
from portal.extensions import db
from portal.models import Credential, CredentialKind, Direction, Message, SendStatus, Thread
from portal.services import export as export_service

FIELDS = {
    "thread_id",
    "channel",
    "marketplace",
    "direction",
    "message_id",
    "in_reply_to",
    "subject",
    "from",
    "to",
    "order_id",
    "received_at",
    "flags",
    "quarantine_reason",
    "text",
}
MWS_TOKEN = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaEXAMPLE"


@pytest.fixture
def acme(uk):
    """The organisation of the `uk` channel."""
    return uk.organisation


def full_export() -> list[dict]:
    return list(export_service.iter_message_records(organisation=None))


def export_lines(organisation=None) -> bytes:
    return b"".join(
        export_service.iter_jsonl(export_service.iter_message_records(organisation=organisation))
    )


def test_every_field_is_present_with_its_type(uk, ingest):
    assert ingest("amazon_uk_inquiry.eml") == Outcome.STORED
    (record,) = full_export()
    message = db.session.scalar(db.select(Message))
    assert set(record) == FIELDS
    assert record["thread_id"] == message.thread_id and isinstance(record["thread_id"], int)
    assert record["channel"] == "uk-chan01@helpdesk.test"
    assert record["marketplace"] == "UK"
    assert record["direction"] == "in"
    assert record["message_id"] == "<0100018c.amazon-uk-1@email.amazonses.com>"
    assert record["in_reply_to"] is None
    assert record["subject"] == "Inquiry from Amazon customer Jane Doe (Order: 203-1234567-1234567)"
    assert record["from"] == formataddr((message.from_name, message.from_address))
    assert record["from"].endswith(" <abc123xyz@marketplace.amazon.co.uk>")
    assert record["to"] == ["uk-chan01@helpdesk.test"]
    assert record["order_id"] == "203-1234567-1234567"
    received = datetime.fromisoformat(record["received_at"])
    assert received.utcoffset().total_seconds() == 0
    assert received == message.created_at
    assert record["flags"] == []
    assert record["quarantine_reason"] is None
    assert "Hello, my parcel has not arrived yet." in record["text"]
    assert "Thanks — Jane" in record["text"]  # quoted-printable decoded


def test_reply_headers_and_several_recipients(uk, ingest):
    ingest(
        b"Delivered-To: uk-chan01@helpdesk.test\nFrom: a@example.com\n"
        b"To: uk-chan01@helpdesk.test, Other Person <other@example.com>\n"
        b"Subject: Re: x\nMessage-ID: <r2@example.com>\nIn-Reply-To: <r1@example.com>\n\nhi\n"
    )
    (record,) = full_export()
    assert record["from"] == "a@example.com"
    assert record["to"] == ["uk-chan01@helpdesk.test", "other@example.com"]
    assert record["in_reply_to"] == "<r1@example.com>"
    assert record["text"].strip() == "hi"


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("autoreply.eml", "autoreply"),
        ("bounce.eml", "bounce"),
        ("amazon_notification.eml", "amazon_notification"),
        ("seller_central_copy.eml", "seller_central_copy"),
    ],
)
def test_automatic_mail_is_flagged(uk, ingest, name, flag):
    assert ingest(name) == Outcome.STORED
    (record,) = full_export()
    assert record["flags"] == [flag]
    assert record["channel"] == uk.helpdesk_address


def test_a_body_cut_at_ingest_is_flagged(uk, ingest):
    body = "a line of the pasted log\n" * (MAX_BODY_CHARS // 20)
    raw = (
        "From: buyer@example.com\nTo: uk-chan01@helpdesk.test\nSubject: Log\n"
        f"Message-ID: <cut@example.com>\n\n{body}"
    ).encode()
    assert ingest(raw) == Outcome.STORED
    (record,) = full_export()
    assert record["flags"] == ["body_cut"]
    assert len(record["text"]) <= MAX_BODY_CHARS < len(body)


def test_unrouted_and_quarantined_only_in_the_full_export(uk, acme, ingest):
    assert ingest("amazon_uk_inquiry.eml") == Outcome.STORED
    assert ingest("no_message_id.eml") == Outcome.UNROUTED
    assert ingest("not_mail.eml") == Outcome.QUARANTINED

    routed, unrouted, quarantined = full_export()
    assert routed["flags"] == []
    assert unrouted["flags"] == ["unrouted"]
    assert unrouted["channel"] is None and unrouted["marketplace"] is None
    assert unrouted["thread_id"] is None
    assert unrouted["from"] == "buyer@example.com"
    assert unrouted["subject"] == "Hello?"
    assert quarantined["flags"] == ["quarantined"]
    assert quarantined["channel"] is None and quarantined["thread_id"] is None
    assert "not an e-mail" in quarantined["quarantine_reason"]
    assert quarantined["text"] == "" and quarantined["from"] == "" and quarantined["to"] == []
    for record in (unrouted, quarantined):
        assert set(record) == FIELDS

    org_records = list(export_service.iter_message_records(organisation=acme))
    assert [r["message_id"] for r in org_records] == [routed["message_id"]]


def test_an_organisation_export_holds_only_its_own_mail(make_org, make_channel, uk, acme, ingest):
    make_channel("DE", organisation=make_org("Beta GmbH"), address="de-chan02@helpdesk.test")
    ingest("amazon_uk_inquiry.eml")
    ingest("amazon_uk_followup.eml", replace={"uk-chan01@helpdesk.test": "de-chan02@helpdesk.test"})
    ingest("amazon_uk_followup.eml")
    records = list(export_service.iter_message_records(organisation=acme))
    assert len(records) == 2
    assert {r["channel"] for r in records} == {"uk-chan01@helpdesk.test"}
    assert len(full_export()) == 3


def test_outbound_exported_internal_notes_not(uk, acme, ingest):
    ingest("amazon_uk_inquiry.eml")
    inbound = db.session.scalar(db.select(Message))
    thread = db.session.get(Thread, inbound.thread_id)
    common = {"thread": thread, "channel": uk, "content_hash": "x" * 64}
    db.session.add_all(
        [
            Message(
                direction=Direction.OUT,
                message_id="<reply-1@helpdesk.test>",
                in_reply_to=inbound.message_id,
                subject="Re: your parcel",
                from_name="Acme Support",
                from_address=uk.helpdesk_address,
                to_addresses=inbound.from_address,
                text_body="It is on its way.",
                send_status=SendStatus.SENT,
                **common,
            ),
            Message(
                direction=Direction.OUT,
                message_id="<note-1@helpdesk.test>",
                is_internal_note=True,
                text_body="Internal: buyer is a regular, be generous.",
                **common,
            ),
        ]
    )
    db.session.commit()
    for organisation in (None, acme):
        records = list(export_service.iter_message_records(organisation=organisation))
        assert [r["direction"] for r in records] == ["in", "out"]
        reply = records[1]
        assert reply["from"] == f"Acme Support <{uk.helpdesk_address}>"
        assert reply["to"] == [inbound.from_address]
        assert reply["in_reply_to"] == inbound.message_id
        assert reply["text"] == "It is on its way."
    assert b"be generous" not in export_lines()


def test_no_credentials_or_secrets_in_the_export(uk, ingest):
    ingest("amazon_uk_inquiry.eml")
    ciphertext = encrypt_secret(MWS_TOKEN)
    db.session.add(
        Credential(
            channel=uk,
            kind=CredentialKind.MWS_TOKEN,
            seller_id="A9SELLERID0042",
            secret_encrypted=ciphertext,
            secret_hint="amzn.mws.…MPLE",
        )
    )
    db.session.commit()
    for organisation in (None, uk.organisation):
        output = export_lines(organisation)
        assert output.count(b"\n") == 1
        assert MWS_TOKEN.encode() not in output
        assert ciphertext not in output
        assert b"amzn.mws" not in output
        assert b"A9SELLERID0042" not in output


def test_japanese_text_round_trips_as_utf8(make_channel, ingest):
    make_channel("JP", address="jp-chan03@helpdesk.test")
    assert ingest("iso2022jp_ms.eml") == Outcome.STORED
    output = export_lines()
    # Written as UTF-8 characters, not \\u escapes.
    assert "ご注文の商品がまだ届きません。".encode() in output
    assert b"\\u" not in output
    record = json.loads(output.decode("utf-8"))
    assert record["text"].strip() == "ご注文の商品がまだ届きません。①番の商品です。㈱"
    assert record["subject"] == "お問い合わせ (Order: 250-1111111-2222222)"
    assert record["from"] == "山田 太郎 <kk77jp@marketplace.amazon.co.jp>"
    assert record["marketplace"] == "JP"


def test_reads_in_chunks_in_message_id_order(uk, ingest):
    for n in range(7):
        ingest(
            f"Delivered-To: uk-chan01@helpdesk.test\nFrom: b{n}@example.com\n"
            f"Subject: s{n}\nMessage-ID: <c{n}@example.com>\n\nbody {n}\n".encode()
        )
    ids = db.session.scalars(db.select(Message.id).order_by(Message.id)).all()
    records = list(export_service.iter_message_records(organisation=None, chunk_size=3))
    assert [r["message_id"] for r in records] == [f"<c{n}@example.com>" for n in range(7)]
    assert len(ids) == 7
    # An exact multiple of the chunk size ends cleanly too.
    assert len(list(export_service.iter_message_records(organisation=None, chunk_size=7))) == 7


def test_iter_jsonl_is_one_object_per_line():
    lines = list(export_service.iter_jsonl([{"text": "a\nb", "n": 1}, {"text": "ü"}]))
    assert lines == [b'{"text": "a\\nb", "n": 1}\n', '{"text": "ü"}\n'.encode()]


@pytest.mark.parametrize(
    ("name", "address", "expected"),
    [
        ("", "a@example.com", "a@example.com"),
        ("Jane Doe", "a@example.com", "Jane Doe <a@example.com>"),
        ("Doe, Jane", "a@example.com", '"Doe, Jane" <a@example.com>'),
        ('Jane "JD" Doe', "a@example.com", '"Jane \\"JD\\" Doe" <a@example.com>'),
        (
            "J. Doe - Amazon Marketplace",
            "a@example.com",
            '"J. Doe - Amazon Marketplace" <a@example.com>',
        ),
        ("山田 太郎", "kk@example.jp", "山田 太郎 <kk@example.jp>"),
        ("Nobody", "", ""),
    ],
)
def test_format_mailbox(name, address, expected):
    assert export_service.format_mailbox(name, address) == expected
    if name.isascii() and address:
        assert expected == formataddr((name, address))


def test_write_jsonl_file_replaces_the_target_atomically(uk, ingest, tmp_path):
    ingest("amazon_uk_inquiry.eml")
    target = tmp_path / "export.jsonl"
    assert export_service.write_jsonl_file(target, organisation=None) == 1
    assert json.loads(target.read_text("utf-8"))["channel"] == uk.helpdesk_address
    assert [p.name for p in tmp_path.iterdir()] == ["export.jsonl"]


def test_a_failed_export_leaves_no_partial_file(uk, ingest, tmp_path, monkeypatch):
    ingest("amazon_uk_inquiry.eml")
    ingest("amazon_uk_followup.eml")
    target = tmp_path / "export.jsonl"
    target.write_text("previous complete export\n")
    real_record = export_service._record
    calls = iter(range(100))

    def failing_record(row):
        if next(calls) == 1:
            raise RuntimeError("database went away")
        return real_record(row)

    monkeypatch.setattr(export_service, "_record", failing_record)
    with pytest.raises(RuntimeError, match="database went away"):
        export_service.write_jsonl_file(target, organisation=None)
    assert target.read_text() == "previous complete export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["export.jsonl"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Acme", "sellerdesk-acme-2026-03-01.jsonl"),
        ("Müller & Söhne GmbH.", "sellerdesk-muller-sohne-gmbh-2026-03-01.jsonl"),
        ("株式会社ヤマダ", "sellerdesk-org-{id}-2026-03-01.jsonl"),
    ],
)
def test_export_filename(make_org, name, expected):
    organisation = make_org(name)
    filename = export_service.export_filename(organisation, on=date(2026, 3, 1))
    assert filename == expected.format(id=organisation.id)


def test_received_at_is_utc_iso8601(uk, ingest):
    ingest("amazon_uk_inquiry.eml")
    message = db.session.scalar(db.select(Message))
    message.created_at = datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC)
    db.session.commit()
    assert full_export()[0]["received_at"] == "2026-11-23T10:00:05+00:00"
