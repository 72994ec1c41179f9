"""Channels: the marketplace catalogue, helpdesk addresses, token validation and storage."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from ingest.mail.amazon import relay_alias
from portal.crypto import decrypt_secret
from portal.extensions import db
from portal.marketplaces import (
    DEFAULT_DEVELOPER_ACCOUNTS,
    MARKETPLACES,
    developer_for,
    get_marketplace,
    parse_developer_accounts,
)
from portal.models import AuditEvent, ChannelStatus, Credential
from portal.services import channels as channel_service
from portal.services.credentials import CredentialError, clean_mws_token, clean_seller_id

GOOD_TOKEN = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f"


# --- catalogue ---------------------------------------------------------------------


def test_catalogue_is_complete_and_consistent():
    codes = [m.code for m in MARKETPLACES]
    assert len(codes) == len(set(codes)) == 23
    assert {m.region for m in MARKETPLACES} == {"NA", "EU", "FE"}
    ids = [m.marketplace_id for m in MARKETPLACES]
    assert len(ids) == len(set(ids))
    assert get_marketplace("uk").marketplace_id == "A1F83G8C2ARO7P"
    assert get_marketplace("GB") is get_marketplace("UK")
    assert get_marketplace("JP").region == "FE"
    assert get_marketplace("CA").region == "NA"
    assert get_marketplace("XX") is None
    for marketplace in MARKETPLACES:
        assert marketplace.seller_central_url.startswith("https://sellercentral")
        assert marketplace.relay_domain == f"marketplace.{marketplace.domain}"


@pytest.mark.parametrize(
    ("code", "marketplace_id", "domain", "seller_central"),
    [
        ("IE", "A28R8C7NBKEWEA", "amazon.ie", "https://sellercentral.amazon.ie"),
        ("BE", "AMEN7PMS3EDWL", "amazon.com.be", "https://sellercentral.amazon.com.be"),
        ("ZA", "AE08WJ6YKNBMC", "amazon.co.za", "https://sellercentral.amazon.co.za"),
        # The five of the unified European account share one Seller Central.
        ("DE", "A1PA6795UKMFR9", "amazon.de", "https://sellercentral-europe.amazon.com"),
        ("UK", "A1F83G8C2ARO7P", "amazon.co.uk", "https://sellercentral-europe.amazon.com"),
        ("NL", "A1805IZSGTT6HS", "amazon.nl", "https://sellercentral.amazon.nl"),
        ("JP", "A1VC38T7YXB528", "amazon.co.jp", "https://sellercentral.amazon.co.jp"),
    ],
)
def test_marketplace_facts(code, marketplace_id, domain, seller_central):
    marketplace = get_marketplace(code)
    assert marketplace.marketplace_id == marketplace_id
    assert marketplace.domain == domain
    assert marketplace.seller_central_url == seller_central
    assert marketplace.seller_central_order_url("028-1234567-1234567") == (
        f"{seller_central}/orders-v3/order/028-1234567-1234567"
    )
    assert marketplace.product_url("B07XYZ1234") == f"https://www.{domain}/dp/B07XYZ1234"


def test_the_three_newest_marketplaces_are_in_the_european_region():
    # SP-API serves Ireland, Belgium and South Africa from its EU endpoint, so one
    # European authorisation covers them.
    assert {get_marketplace(c).region for c in ("IE", "BE", "ZA")} == {"EU"}
    assert (
        developer_for(
            get_marketplace("ZA"), name="xSellco", accounts=DEFAULT_DEVELOPER_ACCOUNTS
        ).account_number
        == DEFAULT_DEVELOPER_ACCOUNTS["EU"]
    )


@pytest.mark.parametrize(
    ("code", "number"),
    [
        ("UK", "0873-6813-5448"),
        ("DE", "0873-6813-5448"),
        ("US", "5759-5616-2466"),
        ("CA", "5759-5616-2466"),
        ("JP", "6795-5391-1761"),
        ("MX", None),  # no number known: the page says so rather than invent one
        ("BR", None),
        ("AU", None),
        ("SG", None),
    ],
)
def test_developer_number_per_marketplace(code, number):
    developer = developer_for(
        get_marketplace(code), name="xSellco", accounts=DEFAULT_DEVELOPER_ACCOUNTS
    )
    assert developer.name == "xSellco"
    assert developer.account_number == number


def test_developer_accounts_setting_parses_and_rejects_garbage():
    assert parse_developer_accounts(" eu=1, mx = 2 ,") == {"EU": "1", "MX": "2"}
    with pytest.raises(ValueError, match="KEY=NUMBER"):
        parse_developer_accounts("EU")


# --- helpdesk addresses --------------------------------------------------------------


def test_addresses_are_unique_readable_and_not_guessable(app, make_org):
    org = make_org()
    addresses = set()
    for marketplace in MARKETPLACES:
        channel = channel_service.create_channel(
            org, marketplace.code, actor=None, inbound_domain="helpdesk.test"
        )
        assert re.fullmatch(
            rf"{marketplace.code.lower()}-[a-z2-9]{{8}}@helpdesk\.test", channel.helpdesk_address
        )
        addresses.add(channel.helpdesk_address)
    # Many organisations adding the same marketplace never collide.
    for _ in range(300):
        channel = channel_service.create_channel(
            make_org(), "UK", actor=None, inbound_domain="helpdesk.test"
        )
        assert channel.helpdesk_address not in addresses
        addresses.add(channel.helpdesk_address)
    db.session.commit()
    # The random parts share nothing predictable: no two start the same way more
    # often than chance allows (31 letters; 320 samples).
    firsts = [a.split("-")[1][:2] for a in addresses]
    assert max(firsts.count(f) for f in set(firsts)) < 10


def test_a_marketplace_is_added_once_per_organisation(app, make_org):
    org = make_org()
    channel_service.create_channel(org, "UK", actor=None, inbound_domain="helpdesk.test")
    with pytest.raises(channel_service.ChannelError, match="already connected"):
        channel_service.create_channel(org, "uk", actor=None, inbound_domain="helpdesk.test")
    # Another organisation may add the same marketplace.
    channel_service.create_channel(make_org(), "UK", actor=None, inbound_domain="helpdesk.test")


# --- token validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (GOOD_TOKEN, GOOD_TOKEN),
        (f"  {GOOD_TOKEN}\n", GOOD_TOKEN),  # pasted with whitespace
        (GOOD_TOKEN.upper().replace("AMZN.MWS.", "amzn.mws."), GOOD_TOKEN),
        ("amzn.mws.4ea38b7b-f563-7709-\n4bae-87aeaadc4d6f", GOOD_TOKEN),  # wrapped line
    ],
)
def test_good_tokens(raw, expected):
    assert clean_mws_token(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Enter the MWS Auth Token"),
        ("A1B2C3D4E5F6G7", "looks like a Seller ID"),
        ("4ea38b7b-f563-7709-4bae-87aeaadc4d6f", "start of the token is missing"),
        ("amzn.mws.4ea38b7b-f563-7709-4bae", "incomplete or mistyped"),
        ("amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6fzz", "incomplete or mistyped"),
        ("Atzr|IwEBIA-refresh-token", "SP-API refresh token"),
        ("hello world", "starts with amzn.mws."),
    ],
)
def test_bad_tokens(raw, message):
    with pytest.raises(CredentialError, match=re.escape(message)):
        clean_mws_token(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A1B2C3D4E5F6G7", "A1B2C3D4E5F6G7"),
        (" a1b2c3d4e5f6g7 ", "A1B2C3D4E5F6G7"),
        ("A3EXAMPLE12345\t", "A3EXAMPLE12345"),
        ("AXYZ1234", "AXYZ1234"),
    ],
)
def test_good_seller_ids(raw, expected):
    assert clean_seller_id(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Enter your Seller ID"),
        (GOOD_TOKEN, "looks like your MWS Auth Token"),
        ("A1F83G8C2ARO7P", "marketplace ID of Amazon UK"),
        ("A1B2-C3D4", "letters and digits only"),
        ("ABC", "letters and digits only"),
        ("A" * 25, "letters and digits only"),
    ],
)
def test_bad_seller_ids(raw, message):
    with pytest.raises(CredentialError, match=re.escape(message)):
        clean_seller_id(raw)


# --- storing tokens --------------------------------------------------------------------


def test_token_is_stored_encrypted_and_replaced_not_kept(app, make_channel, make_user):
    channel = make_channel("UK")
    seller = make_user("seller", organisation=channel.organisation)
    channel_service.submit_mws_token(
        channel, seller_id="A1B2C3D4E5F6G7", token=GOOD_TOKEN, actor=seller
    )
    db.session.commit()
    credential = channel.credential
    assert channel.status == ChannelStatus.PENDING_VERIFICATION
    assert credential.secret_hint == "amzn.mws.…4d6f"
    assert GOOD_TOKEN.encode() not in credential.secret_encrypted
    assert decrypt_secret(credential.secret_encrypted) == GOOD_TOKEN

    second = "amzn.mws.00000000-1111-2222-3333-444444444444"
    channel_service.submit_mws_token(
        channel, seller_id="A1B2C3D4E5F6G7", token=second, actor=seller
    )
    db.session.commit()
    rows = db.session.scalars(select(Credential)).all()
    assert len(rows) == 1 and decrypt_secret(rows[0].secret_encrypted) == second

    kinds = [e.kind for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert "channel.token_submitted" in kinds and "channel.token_replaced" in kinds
    # Audit details carry the masked hint only.
    for event in db.session.scalars(select(AuditEvent)):
        assert GOOD_TOKEN not in repr(event.details) and second not in repr(event.details)


def test_database_file_holds_no_plaintext_token(app, make_channel, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("inspects the SQLite file; PostgreSQL is checked by a dump query below")
    channel = make_channel("UK")
    channel_service.submit_mws_token(
        channel, seller_id="A1B2C3D4E5F6G7", token=GOOD_TOKEN, actor=None
    )
    db.session.commit()
    db.session.remove()
    db.engine.dispose()  # flush WAL into the main file
    path = Path(database_url.removeprefix("sqlite:///"))
    # Read by another process: closing a file descriptor of the database drops every
    # POSIX lock this process holds on it, those of SQLite connections still open here
    # too (sqlite.org/howtocorrupt.html, 2.2). Another process could then think itself
    # the last connection and delete the WAL and shared memory under them: every later
    # connection in this process failed with "disk I/O error".
    files = sorted(str(p) for p in path.parent.glob(path.name + "*"))
    data = subprocess.run(["cat", *files], capture_output=True, check=True).stdout
    assert b"4ea38b7b" not in data and GOOD_TOKEN.encode() not in data


def test_no_plaintext_token_in_any_column(app, make_channel):
    """Every text/blob column of every table, on either database."""
    channel = make_channel("UK")
    channel_service.submit_mws_token(
        channel, seller_id="A1B2C3D4E5F6G7", token=GOOD_TOKEN, actor=None
    )
    db.session.commit()
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(table.select()):
            assert "4ea38b7b" not in repr(tuple(row)), table.name


def test_revoked_access_deletes_token_and_disables(app, make_channel):
    channel = make_channel("UK")
    channel_service.submit_mws_token(
        channel, seller_id="A1B2C3D4E5F6G7", token=GOOD_TOKEN, actor=None
    )
    channel_service.report_access_revoked(channel, actor=None)
    db.session.commit()
    assert channel.status == ChannelStatus.DISABLED
    assert channel.credential is None
    assert db.session.scalar(select(Credential)) is None
    # Reactivation: a new token brings it back to pending verification.
    channel_service.submit_mws_token(
        channel, seller_id="A1B2C3D4E5F6G7", token=GOOD_TOKEN, actor=None
    )
    db.session.commit()
    assert channel.status == ChannelStatus.PENDING_VERIFICATION
    assert channel.status_reason == ""


def test_silence_warning_only_for_active_channels_quiet_for_a_week(app, make_channel):
    from datetime import timedelta

    channel = make_channel("UK")
    now = channel_service.utcnow()
    channel.created_at = now - timedelta(days=30)
    assert not channel_service.is_silent(channel, now=now)  # not active
    channel.status = ChannelStatus.ACTIVE
    assert channel_service.is_silent(channel, now=now)
    channel.last_message_at = now - timedelta(days=2)
    assert not channel_service.is_silent(channel, now=now)
    channel.last_message_at = now - timedelta(days=8)
    assert channel_service.is_silent(channel, now=now)


def test_former_address_routes_during_its_grace_period(app, make_channel):
    from datetime import timedelta

    from portal.models import ChannelAlias

    channel = make_channel("UK", address="uk-new@helpdesk.test")
    now = channel_service.utcnow()
    db.session.add_all(
        [
            ChannelAlias(
                channel=channel, address="uk-old@helpdesk.test", expires_at=now + timedelta(days=30)
            ),
            ChannelAlias(
                channel=channel,
                address="uk-older@helpdesk.test",
                expires_at=now - timedelta(days=1),
            ),
        ]
    )
    db.session.commit()
    find = channel_service.find_channel_for_addresses
    assert find(["UK-Old+tag@helpdesk.test"], inbound_domain="helpdesk.test") == channel
    assert find(["uk-older@helpdesk.test"], inbound_domain="helpdesk.test") is None
    assert find(["uk-new@helpdesk.test"], inbound_domain="helpdesk.test") == channel


def test_every_marketplace_relay_is_recognised_by_the_parser():
    # The parser knows nothing of the catalogue (ingest/mail imports nothing of
    # portal/): this keeps its relay rule and the catalogue in step.
    for marketplace in MARKETPLACES:
        address = f"buyer1a2b@{marketplace.relay_domain}"
        assert relay_alias(address) == address, marketplace.code
