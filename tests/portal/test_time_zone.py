"""Times in the user's own zone: the browser's taken at a first login, UTC on hover, UTC
for users without one; Chromium reports its zone through the login form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, expect

from portal.extensions import db
from portal.models import AuditEvent, Role, User
from portal.services import users as user_service
from portal.templating import format_datetime
from tests.helpers import (
    PASSWORD,
    AuthActions,
    browser_log_in,
    csrf_token_from,
    enrol_totp,
    totp_code,
)

WINTER_NOON = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SUMMER_NOON = datetime(2026, 7, 5, 12, 0, tzinfo=UTC)


def _log_in(client, email: str, time_zone: str):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token, "time_zone": time_zone},
    )


def test_the_first_login_takes_the_browsers_zone_and_later_ones_keep_it(client, auth, make_user):
    user = make_user(Role.SELLER)
    assert _log_in(client, user.email, "Europe/Berlin").status_code == 302
    db.session.refresh(user)
    assert user.time_zone == "Europe/Berlin"
    auth.logout()
    _log_in(client, user.email, "America/New_York")  # travelling: the choice stays
    db.session.refresh(user)
    assert user.time_zone == "Europe/Berlin"


@pytest.mark.parametrize("reported", ["", "Mars/Olympus_Mons", "../../etc/passwd", "x" * 500])
def test_a_zone_the_system_does_not_know_is_ignored(client, make_user, reported):
    user = make_user(Role.SELLER)
    assert _log_in(client, user.email, reported).status_code == 302
    db.session.refresh(user)
    assert user.time_zone is None


def test_the_zone_waits_for_the_second_factor(client, make_user):
    user = make_user(Role.AGENT)
    enrol_totp(user)
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    client.post(
        "/login",
        data={
            "email": user.email,
            "password": PASSWORD,
            "csrf_token": token,
            "time_zone": "Asia/Tokyo",
        },
    )
    db.session.refresh(user)
    assert user.time_zone is None  # a right password alone changes nothing of the account
    AuthActions(client).enter_code(totp_code(user.email))
    db.session.refresh(user)
    assert user.time_zone == "Asia/Tokyo"


def test_set_time_zone_refuses_unknown_names(make_user):
    user = make_user(Role.SELLER)
    with pytest.raises(ValueError, match="unknown time zone"):
        user_service.set_time_zone(user, "Europe/Atlantis")
    user_service.set_time_zone(user, "Asia/Kolkata")
    assert user.time_zone == "Asia/Kolkata"


def test_pages_show_the_users_zone_with_utc_on_hover(client, login_as, make_channel):
    user = login_as(Role.SELLER)
    channel = make_channel("DE", organisation=user.organisation)
    channel.last_message_at = WINTER_NOON
    user.time_zone = "Europe/Berlin"
    db.session.commit()
    page = client.get("/channels").get_data(as_text=True)
    assert (
        '<time datetime="2026-12-05T12:00:00Z" title="05 Dec 2026, 12:00 UTC">'
        "05 Dec 2026, 13:00 CET</time>"
    ) in page
    channel.last_message_at = SUMMER_NOON  # summer time is the zone's, not a fixed offset
    db.session.commit()
    assert "05 Jul 2026, 14:00 CEST</time>" in client.get("/channels").get_data(as_text=True)


def test_users_without_a_zone_and_the_worker_see_utc(client, login_as, make_channel, app):
    user = login_as(Role.SELLER)
    channel = make_channel("UK", organisation=user.organisation)
    channel.last_message_at = WINTER_NOON
    db.session.commit()
    page = client.get("/channels").get_data(as_text=True)
    assert "05 Dec 2026, 12:00 UTC" in page and "<time " not in page
    assert format_datetime(WINTER_NOON) == "05 Dec 2026, 12:00 UTC"  # no request: UTC


@pytest.mark.browser
def test_chromium_reports_its_zone_at_the_first_login(
    browser: Browser, live_server: str, make_user, make_channel, app
) -> None:
    user = make_user(Role.SELLER)
    channel = make_channel("JP", organisation=user.organisation)
    channel.last_message_at = WINTER_NOON
    db.session.commit()
    page = browser.new_context(timezone_id="Asia/Tokyo").new_page()
    browser_log_in(page, live_server, user.email)
    db.session.expire_all()
    assert db.session.get(User, user.id).time_zone == "Asia/Tokyo"
    page.goto(f"{live_server}/channels")
    shown = page.locator("time", has_text="05 Dec 2026, 21:00 JST")
    expect(shown).to_have_attribute("title", "05 Dec 2026, 12:00 UTC")


def test_the_account_page_changes_the_zone_and_audits_it(client, login_as):
    user = login_as(Role.SELLER)
    page = client.get("/account").get_data(as_text=True)
    assert '<option selected value="UTC">UTC</option>' in page  # no zone yet: UTC
    token = csrf_token_from(page)
    response = client.post(
        "/account/time-zone", data={"time_zone": "Pacific/Auckland", "csrf_token": token}
    )
    assert response.status_code == 302
    db.session.refresh(user)
    assert user.time_zone == "Pacific/Auckland"
    page = client.get("/account").get_data(as_text=True)
    assert "Times are now shown in Pacific/Auckland." in page
    assert '<option selected value="Pacific/Auckland">' in page
    (event,) = [e for e in AuditEvent.query.all() if e.kind == "user.time_zone_changed"]
    assert event.details == {"from": "UTC", "to": "Pacific/Auckland"}


@pytest.mark.parametrize("chosen", ["Europe/Atlantis", "", "../../etc/passwd"])
def test_an_unknown_zone_is_refused_next_to_the_field(client, login_as, chosen):
    user = login_as(Role.SELLER)
    token = csrf_token_from(client.get("/account").get_data(as_text=True))
    response = client.post("/account/time-zone", data={"time_zone": chosen, "csrf_token": token})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="time_zone-error"' in page and 'aria-invalid="true"' in page
    db.session.refresh(user)
    assert user.time_zone is None
