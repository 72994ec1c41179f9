"""Admin channel pages: the list, token verification, disabling, address changes, settings."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from portal.extensions import db
from portal.models import AuditEvent, ChannelAlias, ChannelStatus, Role, Setting
from portal.services import channels as channel_service
from portal.services.settings import retention_settings
from portal.sqltypes import utcnow
from tests.helpers import csrf_token_from

GOOD_TOKEN = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f"


def post_form(client, page_url, action, data):
    token = csrf_token_from(client.get(page_url).get_data(as_text=True))
    return client.post(action, data={"csrf_token": token, **data})


def submit_token(channel, seller, token=GOOD_TOKEN, seller_id="A1B2C3D4E5F6G7"):
    channel_service.submit_mws_token(channel, seller_id=seller_id, token=token, actor=seller)
    db.session.commit()


@pytest.fixture
def shop(make_org, make_user, make_channel):
    """A seller's organisation with a UK channel whose token awaits verification."""
    org = make_org("Kite & Co")
    seller = make_user(Role.SELLER, organisation=org)
    channel = make_channel("UK", organisation=org)
    submit_token(channel, seller)
    return channel, seller


def seller_page(client, auth, seller, channel, admin):
    """The seller's channel page as the seller sees it; the admin is logged in again after."""
    auth.logout()
    auth.login(seller.email)
    page = client.get(f"/channels/{channel.id}").get_data(as_text=True)
    auth.logout()
    auth.login(admin.email)
    return page


def status_box(page):
    return page.split('aria-label="Channel status"', 1)[1].split("</section>", 1)[0]


# --- the list --------------------------------------------------------------------


def test_list_shows_every_organisations_channels_with_masked_tokens(
    client, login_as, shop, make_channel, make_org
):
    channel, _ = shop
    other = make_channel("JP", organisation=make_org("Zen KK"), status=ChannelStatus.ACTIVE)
    other.created_at = utcnow() - timedelta(days=30)
    db.session.commit()
    login_as(Role.ADMIN)
    page = client.get("/admin/channels").get_data(as_text=True)
    for text in (
        "Kite &amp; Co",
        "Zen KK",
        channel.helpdesk_address,
        other.helpdesk_address,
        "amzn.mws.…4d6f",
        "A1B2C3D4E5F6G7",
        "Pending verification",
        "Not receiving messages?",
    ):
        assert text in page, text
    assert GOOD_TOKEN not in page and "4ea38b7b" not in page


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("status=pending_verification", "UK", "JP"),
        ("status=active", "JP", "UK"),
        ("marketplace=JP", "JP", "UK"),
        ("region=EU", "UK", "JP"),
        ("region=FE", "JP", "UK"),
    ],
)
def test_list_filters(client, login_as, shop, make_channel, make_org, query, shown, hidden):
    channels = {"UK": shop[0], "JP": make_channel("JP", status=ChannelStatus.ACTIVE)}
    login_as(Role.ADMIN)
    page = client.get(f"/admin/channels?{query}").get_data(as_text=True)
    assert channels[shown].helpdesk_address in page
    assert channels[hidden].helpdesk_address not in page


def test_list_filters_by_organisation(client, login_as, shop, make_channel):
    theirs = make_channel("DE")
    login_as(Role.ADMIN)
    page = client.get(f"/admin/channels?organisation={theirs.organisation_id}").get_data(
        as_text=True
    )
    assert theirs.helpdesk_address in page and shop[0].helpdesk_address not in page


def test_list_runs_the_same_queries_for_many_channels(
    app, client, login_as, make_channel, make_org, make_user, make_thread
):
    login_as(Role.ADMIN)

    def count_queries():
        statements = []

        def listener(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            assert client.get("/admin/channels").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(statements)

    def add_channels(n):
        for _ in range(n):
            org = make_org()
            channel = make_channel("DE", organisation=org)
            submit_token(channel, make_user(Role.SELLER, organisation=org))
            make_thread(channel)

    add_channels(2)
    few = count_queries()
    add_channels(5)
    assert count_queries() == few


# --- verify, reject, disable, re-enable ------------------------------------------


def test_admin_verifies_the_token_and_the_seller_sees_active(client, auth, login_as, shop):
    channel, seller = shop
    admin = login_as(Role.ADMIN)
    url = f"/admin/channels/{channel.id}"
    page = client.get(url).get_data(as_text=True)
    assert "amzn.mws.…4d6f" in page and "A1B2C3D4E5F6G7" in page and "Verify token" in page
    response = post_form(client, url, f"{url}/verify", {"verify-reason": "Checked in MWS."})
    assert response.status_code == 302
    db.session.refresh(channel)
    assert channel.status == ChannelStatus.ACTIVE
    kinds = [e.kind for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert kinds[-2:] == ["channel.token_verified", "channel.status_changed"]
    verified = db.session.scalar(select(AuditEvent).filter_by(kind="channel.token_verified"))
    assert verified.actor_id == admin.id and verified.details["token"] == "amzn.mws.…4d6f"

    box = status_box(seller_page(client, auth, seller, channel, admin))
    assert "Active." in box and "Checked in MWS." in box


def test_verify_needs_a_token_on_file(client, login_as, make_channel):
    channel = make_channel("UK")
    login_as(Role.ADMIN)
    url = f"/admin/channels/{channel.id}"
    page = client.get(url).get_data(as_text=True)
    assert "No token on file" in page and "Verify token" not in page
    response = post_form(client, url, f"{url}/verify", {})
    assert response.status_code == 422
    assert "No token is on file for this channel." in response.get_data(as_text=True)
    db.session.refresh(channel)
    assert channel.status == ChannelStatus.AWAITING_TOKEN


def test_verify_refuses_a_token_replaced_after_the_page_was_opened(client, login_as, shop):
    channel, seller = shop
    login_as(Role.ADMIN)
    url = f"/admin/channels/{channel.id}"
    page = client.get(url).get_data(as_text=True)
    seen = re.search(r'name="verify-credential" type="hidden" value="([^"]+)"', page).group(1)
    submit_token(channel, seller, token="amzn.mws.00000000-1111-2222-3333-444444444444")
    response = post_form(client, url, f"{url}/verify", {"verify-credential": seen})
    assert response.status_code == 422
    assert "submitted a new token meanwhile" in response.get_data(as_text=True)
    db.session.refresh(channel)
    assert channel.status == ChannelStatus.PENDING_VERIFICATION


def test_reject_needs_a_reason_and_asks_the_seller_to_resubmit(client, auth, login_as, shop):
    channel, seller = shop
    admin = login_as(Role.ADMIN)
    url = f"/admin/channels/{channel.id}"
    response = post_form(client, url, f"{url}/reject", {"reject-reason": "  "})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="reject-reason-error"' in page and "Give a reason" in page
    assert channel.credential is not None

    response = post_form(
        client, url, f"{url}/reject", {"reject-reason": "The token belongs to another seller"}
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert channel.status == ChannelStatus.AWAITING_TOKEN
    assert channel.credential is None
    rejected = db.session.scalar(select(AuditEvent).filter_by(kind="channel.token_rejected"))
    assert rejected.details["reason"] == "The token belongs to another seller"

    page = seller_page(client, auth, seller, channel, admin)
    box = status_box(page)
    assert "Not connected yet" in box
    assert "We could not verify your token: The token belongs to another seller." in box
    assert "submit a new token" in box
    assert "amzn.mws.…4d6f" not in page


def test_disable_and_reenable(client, auth, login_as, shop):
    channel, seller = shop
    admin = login_as(Role.ADMIN)
    url = f"/admin/channels/{channel.id}"
    response = post_form(client, url, f"{url}/disable", {"disable-reason": ""})
    assert response.status_code == 422
    assert 'id="disable-reason-error"' in response.get_data(as_text=True)

    post_form(client, url, f"{url}/disable", {"disable-reason": "Your subscription lapsed."})
    db.session.refresh(channel)
    assert channel.status == ChannelStatus.DISABLED
    box = status_box(seller_page(client, auth, seller, channel, admin))
    assert "Disabled." in box and "Your subscription lapsed." in box
    assert "To reactivate access" in box

    # A token is on file: re-enabling makes it active.
    response = post_form(client, url, f"{url}/enable", {"enable-reason": ""})
    assert response.status_code == 302
    db.session.refresh(channel)
    assert channel.status == ChannelStatus.ACTIVE and channel.status_reason == ""
    assert "Active." in status_box(seller_page(client, auth, seller, channel, admin))


def test_reenable_without_a_token_awaits_one(client, login_as, make_channel):
    channel = make_channel("UK")
    login_as(Role.ADMIN)
    url = f"/admin/channels/{channel.id}"
    post_form(client, url, f"{url}/disable", {"disable-reason": "Duplicate store."})
    response = post_form(client, url, f"{url}/enable", {})
    assert response.status_code == 302
    db.session.refresh(channel)
    assert channel.status == ChannelStatus.AWAITING_TOKEN
    assert "awaiting a token" in client.get(url).get_data(as_text=True)


# --- address changes -------------------------------------------------------------


def test_generated_address_change_keeps_the_old_address_routing(client, auth, login_as, shop):
    channel, seller = shop
    admin = login_as(Role.ADMIN)
    old = channel.helpdesk_address
    url = f"/admin/channels/{channel.id}"
    response = post_form(client, url, f"{url}/address", {"address-new_address": ""})
    assert response.status_code == 302
    db.session.refresh(channel)
    new = channel.helpdesk_address
    assert new != old and new.startswith("uk-") and new.endswith("@helpdesk.test")
    alias = db.session.scalar(select(ChannelAlias))
    assert alias.address == old and alias.channel_id == channel.id
    assert timedelta(days=29) < alias.expires_at - utcnow() <= timedelta(days=30)

    for address in (old, new, old.replace("@", "+tag@").upper()):
        found = channel_service.find_channel_for_addresses(
            [address], inbound_domain="helpdesk.test"
        )
        assert found is not None and found.id == channel.id, address

    admin_page = client.get(url).get_data(as_text=True)
    assert old in admin_page and "alias" in admin_page and new in admin_page
    page = seller_page(client, auth, seller, channel, admin)
    assert f'id="helpdesk-address">{new}<' in page
    assert "The helpdesk address changed" in page and old in page

    # After the grace period the old address no longer routes and is no longer shown.
    alias.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert channel_service.find_channel_for_addresses([old], inbound_domain="helpdesk.test") is None
    assert old not in seller_page(client, auth, seller, channel, admin)
    event_ = db.session.scalar(select(AuditEvent).filter_by(kind="channel.address_changed"))
    assert event_.details["from"] == old and event_.details["to"] == new


def test_typed_address_is_checked(client, login_as, shop, make_channel):
    channel, _ = shop
    other = make_channel("DE")
    login_as(Role.ADMIN)
    url = f"/admin/channels/{channel.id}"
    for typed, message in (
        ("kite@example.com", "must be on helpdesk.test"),
        ("kite+uk@helpdesk.test", "no + sign"),
        (other.helpdesk_address, "Another channel already uses this address."),
        (channel.helpdesk_address.upper(), "already is the channel"),
    ):
        response = post_form(client, url, f"{url}/address", {"address-new_address": typed})
        assert response.status_code == 422, typed
        page = response.get_data(as_text=True)
        error = page.split('id="address-new_address-error"', 1)[1][:300]
        assert message in error, typed

    # A former address of another channel, still in its grace period, is taken too.
    post_form(
        client,
        f"/admin/channels/{other.id}",
        f"/admin/channels/{other.id}/address",
        {"address-new_address": "de-new@helpdesk.test"},
    )
    old_of_other = db.session.scalar(select(ChannelAlias)).address
    response = post_form(client, url, f"{url}/address", {"address-new_address": old_of_other})
    assert response.status_code == 422
    assert "former address of another channel" in response.get_data(as_text=True)

    response = post_form(
        client, url, f"{url}/address", {"address-new_address": " Kite-UK@Helpdesk.test "}
    )
    assert response.status_code == 302
    db.session.refresh(channel)
    assert channel.helpdesk_address == "kite-uk@helpdesk.test"


def test_switching_back_to_the_former_address_ends_its_alias(client, login_as, shop):
    channel, _ = shop
    login_as(Role.ADMIN)
    url = f"/admin/channels/{channel.id}"
    first = channel.helpdesk_address
    post_form(client, url, f"{url}/address", {"address-new_address": "kite@helpdesk.test"})
    response = post_form(client, url, f"{url}/address", {"address-new_address": first})
    assert response.status_code == 302
    db.session.expire_all()
    assert channel.helpdesk_address == first
    assert [a.address for a in db.session.scalars(select(ChannelAlias))] == ["kite@helpdesk.test"]


# --- settings --------------------------------------------------------------------


def settings_data(**overrides):
    data = {"developer_name": "Sellerdesk Ltd", "region_NA": "", "region_EU": "", "region_FE": ""}
    data.update(overrides)
    return data


def test_settings_change_what_sellers_see_in_step_1(client, auth, login_as, shop):
    channel, seller = shop
    admin = login_as(Role.ADMIN)
    page = client.get("/admin/settings").get_data(as_text=True)
    assert "helpdesk.test" in page  # INBOUND_DOMAIN, read-only
    assert 'value="xSellco"' in page and 'value="0873-6813-5448"' in page

    response = post_form(
        client,
        "/admin/settings",
        "/admin/settings",
        settings_data(region_EU="1111 2222 3333", market_JP="444455556666"),
    )
    assert response.status_code == 302
    stored = db.session.get(Setting, "amazon_developer_accounts").value
    assert stored == {"EU": "1111-2222-3333", "JP": "4444-5555-6666"}
    assert db.session.scalar(select(AuditEvent).filter_by(kind="setting.changed")) is not None

    page = seller_page(client, auth, seller, channel, admin)
    step1 = page.split('id="step-1"', 1)[1].split("</li>", 1)[0]
    assert "Sellerdesk Ltd" in step1 and "1111-2222-3333" in step1
    assert "xSellco" not in step1 and "0873-6813-5448" not in step1


def test_an_empty_number_means_not_known(client, auth, login_as, shop, make_channel):
    _, seller = shop
    us = make_channel("US", organisation=seller.organisation)
    admin = login_as(Role.ADMIN)
    post_form(
        client, "/admin/settings", "/admin/settings", settings_data(region_EU="1111-2222-3333")
    )
    page = seller_page(client, auth, seller, us, admin)
    assert "We have no developer account number for Amazon US" in page


def test_settings_errors_are_shown_beside_the_field(client, login_as):
    login_as(Role.ADMIN)
    response = post_form(
        client,
        "/admin/settings",
        "/admin/settings",
        settings_data(developer_name="", region_EU="0873-6813", market_DE="abc"),
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for field in ("developer_name", "region_EU", "market_DE"):
        assert f'id="{field}-error"' in page, field
    assert "12 digits" in page.split('id="region_EU-error"', 1)[1][:200]
    assert db.session.get(Setting, "amazon_developer_accounts") is None


@pytest.mark.parametrize(
    "number", ["０８７３-６８１３-５４４８", "٠٨٧٣٦٨١٣٥٤٤٨", "0873-6813-544\u00b2"]
)
def test_developer_account_numbers_are_ascii_digits(client, login_as, number):
    # str.isdigit() and `\d` took these, and stored them for sellers to copy.
    login_as(Role.ADMIN)
    response = post_form(
        client, "/admin/settings", "/admin/settings", settings_data(region_EU=number)
    )
    assert response.status_code == 422
    assert "12 digits" in response.get_data(as_text=True).split('id="region_EU-error"', 1)[1][:200]
    assert db.session.get(Setting, "amazon_developer_accounts") is None


def test_settings_reset_to_the_configured_defaults(client, login_as, shop):
    channel, _ = shop
    login_as(Role.ADMIN)
    post_form(
        client, "/admin/settings", "/admin/settings", settings_data(region_EU="1111-2222-3333")
    )
    response = post_form(client, "/admin/settings", "/admin/settings/reset", {})
    assert response.status_code == 302
    assert db.session.get(Setting, "amazon_developer_accounts") is None
    page = client.get(f"/channels/{channel.id}").get_data(as_text=True)
    assert "0873-6813-5448" in page and "xSellco" in page


def test_settings_show_how_long_order_data_is_kept(app, client, login_as):
    login_as(Role.ADMIN)
    page = client.get("/admin/settings").get_data(as_text=True)
    retention = page.split('id="order-data-retention"', 1)[1].split("</dd>", 1)[0]
    assert '<strong id="order-data-days">30</strong> days after the order' in retention
    assert "ORDER_DATA_DAYS" in retention and "Data Protection Policy" in retention
    assert "order ID and status" in retention and "longer than the 30 days" not in retention
    app.config["ORDER_DATA_DAYS"] = 45
    page = client.get("/admin/settings").get_data(as_text=True)
    assert '<strong id="order-data-days">45</strong>' in page
    assert "longer than the 30 days Amazon's Data Protection Policy allows" in page


def test_admin_overview_counts_what_needs_attention(client, login_as, make_channel):
    from portal.models import ChannelStatus

    make_channel("UK", status=ChannelStatus.PENDING_VERIFICATION)
    make_channel("DE", status=ChannelStatus.PENDING_VERIFICATION)
    make_channel("US", status=ChannelStatus.ACTIVE)
    login_as("admin")
    page = client.get("/admin").get_data(as_text=True)
    assert "Tokens waiting for verification" in page
    assert "<strong>2</strong>" in page
    assert "status=pending_verification" in page


def test_settings_show_how_long_buyer_messages_are_kept(app, client, login_as):
    login_as(Role.ADMIN)
    app.config["TEXT_RETENTION_DAYS"] = 365
    page = client.get("/admin/settings").get_data(as_text=True)
    assert '<strong id="raw-retention-days">90</strong>' in page
    assert '<strong id="text-retention-days">365</strong>' in page
    assert "RAW_RETENTION_DAYS" in page and "TEXT_RETENTION_DAYS" in page


def test_admins_set_the_retention_periods_and_can_return_to_the_defaults(app, client, login_as):
    login_as(Role.ADMIN)
    token = csrf_token_from(client.get("/admin/settings").get_data(as_text=True))
    response = client.post(
        "/admin/settings/retention",
        data={"csrf_token": token, "retention-raw_days": "30", "retention-text_days": ""},
    )
    assert response.status_code == 302
    periods = retention_settings(app.config)
    assert (periods.raw_days, periods.text_days) == (30, 730)
    assert (periods.raw_is_default, periods.text_is_default) == (False, True)
    page = client.get("/admin/settings").get_data(as_text=True)
    assert '<strong id="raw-retention-days">30</strong>' in page
    changed = db.session.scalar(
        select(AuditEvent)
        .where(AuditEvent.kind == "setting.changed")
        .order_by(AuditEvent.id.desc())
    )
    assert changed.details == {"key": "retention_raw_days", "from": None, "to": 30}
    client.post(
        "/admin/settings/retention",
        data={"csrf_token": token, "retention-raw_days": "", "retention-text_days": ""},
    )
    assert retention_settings(app.config).raw_is_default


@pytest.mark.parametrize("value", ["0", "-5", "3651", "ten"])
def test_a_bad_retention_period_is_refused_next_to_its_field(client, login_as, value):
    login_as(Role.ADMIN)
    token = csrf_token_from(client.get("/admin/settings").get_data(as_text=True))
    response = client.post(
        "/admin/settings/retention",
        data={"csrf_token": token, "retention-raw_days": value, "retention-text_days": "100"},
    )
    assert response.status_code == 422
    assert 'id="retention-raw_days-error"' in response.get_data(as_text=True)
