"""The seller's channel pages: add, guided setup, token form, confirmations, reactivation."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Channel, ChannelStatus, Role
from portal.services import channels as channel_service
from tests.helpers import csrf_token_from

GOOD_TOKEN = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f"


@pytest.fixture
def seller(login_as, make_org):
    return login_as(Role.SELLER, organisation=make_org("Kite & Co"))


def post_form(client, page_url, action, data):
    token = csrf_token_from(client.get(page_url).get_data(as_text=True))
    return client.post(action, data={"csrf_token": token, **data})


def add_channel(client, marketplace="UK", professional="y"):
    data = {"marketplace": marketplace}
    if professional:
        data["is_professional"] = professional
    return post_form(client, "/channels/new", "/channels/new", data)


def test_seller_adds_a_channel_and_sees_the_guided_setup(client, seller):
    response = add_channel(client)
    assert response.status_code == 302
    channel = db.session.scalar(select(Channel))
    assert response.headers["Location"] == f"/channels/{channel.id}"
    assert channel.organisation_id == seller.organisation_id
    assert channel.status == ChannelStatus.AWAITING_TOKEN
    page = client.get(f"/channels/{channel.id}").get_data(as_text=True)
    for text in (
        "Amazon UK",
        channel.helpdesk_address,
        "Sign up or manage Amazon MWS",
        "Authorise a Developer",
        "xSellco",
        "0873-6813-5448",
        "Customer Service Email",
        "Customer Service Reply-to Email",
        "Messaging Permissions",
        "Not connected yet",
    ):
        assert text in page, text
    assert 'data-copy="' + channel.helpdesk_address in page
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "channel.added"))
    assert event.actor_id == seller.id


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("US", "5759-5616-2466"),
        ("JP", "6795-5391-1761"),
        ("MX", "We have no developer account number"),
    ],
)
def test_developer_number_of_the_marketplace_region(client, seller, code, text):
    add_channel(client, code)
    channel = db.session.scalar(select(Channel))
    assert text in client.get(f"/channels/{channel.id}").get_data(as_text=True)


@pytest.mark.parametrize(
    ("code", "texts"),
    [
        ("IE", ["Amazon Ireland", "(amazon.ie)", 'href="https://sellercentral.amazon.ie"']),
        ("BE", ["Amazon Belgium", "(amazon.com.be)", 'href="https://sellercentral.amazon.com.be"']),
        (
            "ZA",
            ["Amazon South Africa", "(amazon.co.za)", 'href="https://sellercentral.amazon.co.za"'],
        ),
        ("DE", ["Amazon Germany", "(amazon.de)", 'href="https://sellercentral-europe.amazon.com"']),
    ],
)
def test_setup_page_of_each_marketplace_names_its_site_and_seller_central(
    client, seller, code, texts
):
    assert f'value="{code}"' in client.get("/channels/new").get_data(as_text=True)
    add_channel(client, code)
    channel = db.session.scalar(select(Channel))
    assert channel.marketplace == code
    page = client.get(f"/channels/{channel.id}").get_data(as_text=True)
    for text in [*texts, "0873-6813-5448"]:  # the European developer account
        assert text in page, text


def test_professional_account_is_required_with_the_reason(client, seller):
    response = add_channel(client, professional=None)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="is_professional-error"' in page
    assert "Only Professional seller accounts can be connected" in page
    assert db.session.scalar(select(Channel)) is None


def test_a_marketplace_can_be_added_once(client, seller):
    add_channel(client, "UK")
    page = client.get("/channels/new").get_data(as_text=True)
    assert 'value="UK"' not in page and 'value="DE"' in page
    response = add_channel(client, "UK")  # a stale form
    assert response.status_code == 200
    assert 'id="marketplace-error"' in response.get_data(as_text=True)
    assert len(db.session.scalars(select(Channel)).all()) == 1


def test_token_errors_are_shown_beside_each_field(client, seller):
    add_channel(client)
    channel = db.session.scalar(select(Channel))
    url = f"/channels/{channel.id}"
    response = post_form(
        client, url, f"{url}/token", {"seller_id": GOOD_TOKEN, "mws_auth_token": "A1B2C3D4E5F6G7"}
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="seller_id-error"' in page and "looks like your MWS Auth Token" in page
    assert 'id="mws_auth_token-error"' in page and "looks like a Seller ID" in page
    assert channel.credential is None


def test_good_token_is_stored_masked_and_channel_pending(client, seller):
    add_channel(client)
    channel = db.session.scalar(select(Channel))
    url = f"/channels/{channel.id}"
    response = post_form(
        client,
        url,
        f"{url}/token",
        {"seller_id": " a1b2c3d4e5f6g7 ", "mws_auth_token": f" {GOOD_TOKEN}\n"},
    )
    assert response.status_code == 302
    db.session.refresh(channel)
    assert channel.status == ChannelStatus.PENDING_VERIFICATION
    assert channel.credential.seller_id == "A1B2C3D4E5F6G7"
    page = client.get(url).get_data(as_text=True)
    assert "Pending verification" in page
    assert "amzn.mws.…4d6f" in page
    assert GOOD_TOKEN not in page
    assert "4ea38b7b" not in page


def test_setup_steps_are_confirmed_and_forwarding_verified_by_ingestion(client, seller):
    add_channel(client)
    channel = db.session.scalar(select(Channel))
    url = f"/channels/{channel.id}"
    response = post_form(client, url, f"{url}/steps", {"forwarding": "y", "approved_sender": "y"})
    assert response.status_code == 302
    db.session.refresh(channel)
    assert channel.forwarding_confirmed_at and channel.approved_sender_confirmed_at
    page = client.get(url).get_data(as_text=True)
    assert "You confirmed this on" in page
    # Unticking a box takes the confirmation back.
    post_form(client, url, f"{url}/steps", {"forwarding": "y"})
    db.session.refresh(channel)
    assert channel.approved_sender_confirmed_at is None
    kinds = {e.kind for e in db.session.scalars(select(AuditEvent))}
    assert {"channel.step_confirmed", "channel.step_unconfirmed"} <= kinds

    # The first message through ingestion verifies step 3.
    channel.first_message_at = channel_service.utcnow()
    db.session.commit()
    assert "Forwarding verified — first message received at" in client.get(url).get_data(
        as_text=True
    )


def test_reactivation_after_reporting_access_revoked(client, seller):
    add_channel(client)
    channel = db.session.scalar(select(Channel))
    url = f"/channels/{channel.id}"
    post_form(
        client, url, f"{url}/token", {"seller_id": "A1B2C3D4E5F6G7", "mws_auth_token": GOOD_TOKEN}
    )
    post_form(client, url, f"{url}/revoked", {})
    db.session.refresh(channel)
    assert channel.status == ChannelStatus.DISABLED and channel.credential is None
    page = client.get(url).get_data(as_text=True)
    assert "Disabled" in page and "Reactivate access" in page
    new_token = "amzn.mws.00000000-1111-2222-3333-444444444444"
    response = post_form(
        client, url, f"{url}/token", {"seller_id": "A1B2C3D4E5F6G7", "mws_auth_token": new_token}
    )
    assert response.status_code == 302
    db.session.refresh(channel)
    assert channel.status == ChannelStatus.PENDING_VERIFICATION
    assert channel.credential.secret_hint == "amzn.mws.…4444"


def test_channel_list_shows_health(client, seller, make_channel):
    channel = make_channel("DE", organisation=seller.organisation, status=ChannelStatus.ACTIVE)
    channel.created_at = channel.created_at.replace(year=channel.created_at.year - 1)
    db.session.commit()
    page = client.get("/channels").get_data(as_text=True)
    assert "Amazon Germany" in page and "Active" in page
    assert "Not receiving messages?" in page
    assert "never" in page


def test_other_sellers_and_agents(client, auth, make_user, make_channel, make_org):
    theirs = make_channel("UK", organisation=make_org("Other Ltd"))
    mine = make_channel("DE", organisation=make_org("Mine Ltd"))
    seller = make_user(Role.SELLER, organisation=mine.organisation)
    auth.login(seller.email)
    for path in ("", "/token", "/steps", "/revoked"):
        method = client.get if path == "" else client.post
        assert method(f"/channels/{theirs.id}{path}").status_code in (400, 404)
    # Without a valid form the POSTs fail on CSRF (400) first; with one they are 404.
    response = post_form(client, f"/channels/{mine.id}", f"/channels/{theirs.id}/revoked", {})
    assert response.status_code == 404
    assert theirs.helpdesk_address not in client.get("/channels").get_data(as_text=True)
    auth.logout()

    agent = make_user(Role.AGENT, assigned=[theirs.organisation])
    auth.login(agent.email)
    page = client.get(f"/channels/{theirs.id}").get_data(as_text=True)
    assert theirs.helpdesk_address in page and "Submit token" not in page
    response = post_form(client, f"/channels/{theirs.id}", f"/channels/{theirs.id}/revoked", {})
    assert response.status_code == 403
    assert client.get(f"/channels/{mine.id}").status_code == 404
    assert client.get("/channels/new").status_code == 403


def test_post_without_csrf_is_refused(client, seller):
    add_channel(client)
    channel = db.session.scalar(select(Channel))
    response = client.post(
        f"/channels/{channel.id}/token",
        data={"seller_id": "A1B2C3D4E5F6G7", "mws_auth_token": GOOD_TOKEN},
    )
    assert response.status_code == 400
    assert channel.credential is None
