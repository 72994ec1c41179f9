"""'Authorise with Amazon' on the channel pages: the round trip through the stand-in, refusals, revoke.

The portal runs in the Flask test client; Amazon's consent page and token endpoint are
the real HTTP stand-in (tests/spapi_standin.py), so these tests carry the `spapi` mark.
"""

from __future__ import annotations

import html
import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from portal.crypto import decrypt_secret
from portal.extensions import db
from portal.models import (
    AuditEvent,
    Channel,
    ChannelStatus,
    Credential,
    CredentialKind,
    Role,
    SpapiState,
)
from portal.services import admin_channels as admin_channel_service
from portal.services import spapi as spapi_service
from tests.helpers import PASSWORD, AuthActions, csrf_token_from
from tests.spapi_standin import APPLICATION_ID, SELLING_PARTNER_ID

GOOD_TOKEN = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f"
CALLBACK = "http://localhost/channels/spapi/callback"


def post_form(client, page_url, action, data=None):
    token = csrf_token_from(client.get(page_url).get_data(as_text=True))
    return client.post(action, data={"csrf_token": token, **(data or {})})


def flashes(client, url):
    page = client.get(url).get_data(as_text=True)
    return page, html.unescape(
        " ".join(part.split("</li>", 1)[0] for part in page.split('role="status">')[1:]).strip()
    )


@pytest.fixture
def shop(make_org, make_channel):
    org = make_org("Kite & Co")
    return {code: make_channel(code, organisation=org) for code in ("UK", "DE", "US")}


@pytest.fixture
def seller(login_as, shop):
    return login_as(Role.SELLER, organisation=shop["UK"].organisation)


def start(client, channel) -> str:
    """Press "Authorise with Amazon"; the consent URL we are sent to."""
    url = f"/channels/{channel.id}"
    response = post_form(client, url, f"{url}/spapi/authorise")
    assert response.status_code == 302, response.status_code
    return response.headers["Location"]


def come_back(client, callback_url: str):
    parts = urlsplit(callback_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CALLBACK
    return client.get(f"{parts.path}?{parts.query}")


def round_trip(client, spapi, channel, decision="authorise"):
    return come_back(client, spapi.consent(start(client, channel), decision=decision))


def credential_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Credential))


def event_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent))


# --- without settings: only the token form ------------------------------------------


def test_without_settings_the_button_is_hidden_and_the_routes_are_404(client, seller, shop):
    uk = shop["UK"]
    url = f"/channels/{uk.id}"
    response = client.get(url)
    page = response.get_data(as_text=True)
    assert "Authorise with Amazon" not in page and "spapi" not in page
    assert "Authorise a Developer" in page and "Submit token" in page
    assert "form-action 'self';" in response.headers["Content-Security-Policy"]
    assert post_form(client, url, f"{url}/spapi/authorise").status_code == 404
    assert client.get("/channels/spapi/callback?state=x").status_code == 404
    assert credential_count() == 0


@pytest.mark.spapi
def test_a_region_without_consent_url_keeps_the_token_form(app, client, seller, shop, spapi):
    app.config["SPAPI_CONSENT_URL_NA"] = ""
    us = f"/channels/{shop['US'].id}"
    assert "Authorise with Amazon" not in client.get(us).get_data(as_text=True)
    assert post_form(client, us, f"{us}/spapi/authorise").status_code == 404
    assert "Authorise with Amazon" in client.get(f"/channels/{shop['UK'].id}").get_data(
        as_text=True
    )


# --- the round trip ----------------------------------------------------------------------


@pytest.mark.spapi
def test_authorise_with_amazon_round_trip(client, seller, shop, spapi, caplog):
    uk, de, us = shop["UK"], shop["DE"], shop["US"]
    url = f"/channels/{uk.id}"
    response = client.get(url)
    page = response.get_data(as_text=True)
    assert 'value="Authorise with Amazon"' in page
    text = " ".join(page.split())
    assert "One authorisation covers all your Europe channels (Amazon Germany, Amazon UK)." in text
    assert "Use an MWS Auth Token instead" in page  # the token path stays, folded away
    # The authorise form is redirected to Amazon: the page's form-action allows that origin.
    assert f"form-action 'self' {spapi.base_url};" in response.headers["Content-Security-Policy"]

    with caplog.at_level(logging.DEBUG):
        consent = start(client, uk)
        parts = urlsplit(consent)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == spapi.consent_url
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert query["application_id"] == APPLICATION_ID
        assert query["redirect_uri"] == CALLBACK
        assert query["state"].startswith(f"{uk.id}.")
        callback = spapi.consent(consent)
        assert parse_qs(urlsplit(callback).query)["state"] == [query["state"]]
        response = come_back(client, callback)
    assert response.status_code == 302
    assert response.headers["Location"] == url

    page, flashed = flashes(client, url)
    assert (
        flashed == "Authorised with Amazon. Amazon Germany, Amazon UK are now pending verification."
    )
    (refresh_token,) = spapi.issued_refresh_tokens
    hint = "Atzr|…" + refresh_token[-4:]
    for channel in (uk, de):
        db.session.refresh(channel)
        assert channel.status == ChannelStatus.PENDING_VERIFICATION
        assert channel.credential.kind == CredentialKind.SPAPI_REFRESH_TOKEN
        assert channel.credential.seller_id == SELLING_PARTNER_ID
        assert channel.credential.secret_hint == hint
        assert channel.credential.submitted_by_id == seller.id
        assert decrypt_secret(channel.credential.secret_encrypted) == refresh_token
    db.session.refresh(us)
    assert us.credential is None and us.status == ChannelStatus.AWAITING_TOKEN

    assert "Pending verification" in page and "We received your Amazon authorisation" in page
    assert f"Seller ID <code>{SELLING_PARTNER_ID}</code>" in page and hint in page
    text = " ".join(page.split())
    assert "The same authorisation connects Amazon Germany." in text
    assert "and disable the channels it connects (Amazon Germany, Amazon UK)" in text
    assert 'value="Authorise again with Amazon"' in page
    assert "Revoke Amazon authorisation" in page
    # Never shown, never logged; the code is not logged either.
    assert refresh_token not in page and refresh_token[5:] not in page
    assert refresh_token not in caplog.text
    code = parse_qs(urlsplit(callback).query)["spapi_oauth_code"][0]
    assert code not in caplog.text
    kinds = [
        e.kind
        for e in db.session.scalars(select(AuditEvent).where(AuditEvent.actor_id == seller.id))
    ]
    assert kinds.count("channel.token_submitted") == 2
    assert kinds.count("channel.status_changed") == 2


@pytest.mark.spapi
def test_a_replayed_callback_is_refused(client, seller, shop, spapi):
    uk = shop["UK"]
    callback = spapi.consent(start(client, uk))
    assert come_back(client, callback).status_code == 302
    client.get(f"/channels/{uk.id}")  # shows (and clears) the success message
    before = (credential_count(), event_count(), uk.credential.secret_hint)

    response = come_back(client, callback)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/channels/{uk.id}#step-1"
    _, flashed = flashes(client, f"/channels/{uk.id}")
    assert "does not match an authorisation you started here" in flashed
    assert "Nothing was stored" in flashed
    db.session.refresh(uk)
    assert (credential_count(), event_count(), uk.credential.secret_hint) == before
    assert len(spapi.token_requests) == 1  # the replay never reached Amazon


@pytest.mark.spapi
def test_a_replayed_session_cookie_cannot_reuse_a_state(app, client, seller, shop, spapi):
    # Found by the outside probe: the pending states lived in the signed session cookie,
    # so a copy of the cookie taken after "Authorise with Amazon" brought a used state
    # back, and with it a second code exchange. They are kept on the server now.
    uk = shop["UK"]
    callback = spapi.consent(start(client, uk))
    copied = client.get_cookie("session").value
    assert come_back(client, callback).headers["Location"] == f"/channels/{uk.id}"
    assert len(spapi.token_requests) == 1
    before = (credential_count(), event_count())

    replayed = app.test_client()
    replayed.set_cookie("session", copied)
    response = come_back(replayed, callback)
    assert response.headers["Location"] == f"/channels/{uk.id}#step-1"
    _, flashed = flashes(replayed, f"/channels/{uk.id}")
    assert "does not match an authorisation you started here" in flashed
    assert len(spapi.token_requests) == 1  # the replay never reached Amazon
    assert (credential_count(), event_count()) == before


@pytest.mark.spapi
@pytest.mark.parametrize("forged", ["{id}.forged-state", "{id}", "", "99999.x"])
def test_a_forged_state_is_refused(client, seller, shop, spapi, forged):
    uk = shop["UK"]
    real = spapi.consent(start(client, uk))
    code = spapi.issue_code(CALLBACK)
    state = forged.format(id=uk.id)
    response = client.get(
        "/channels/spapi/callback",
        query_string={
            "state": state,
            "selling_partner_id": SELLING_PARTNER_ID,
            "spapi_oauth_code": code,
        },
    )
    assert response.status_code == 302
    # On the channel page when the state names one the user may see, else the list.
    expected = "/channels" if forged in ("", "99999.x") else f"/channels/{uk.id}#step-1"
    assert response.headers["Location"] == expected
    _, flashed = flashes(client, "/channels")
    assert "does not match an authorisation you started here" in flashed
    assert credential_count() == 0 and spapi.token_requests == []
    # The seller's real authorisation still completes afterwards.
    assert come_back(client, real).headers["Location"] == f"/channels/{uk.id}"
    assert credential_count() == 2


@pytest.mark.spapi
@pytest.mark.parametrize(
    "state", ["\u00b2.x", "\u0661\u0662.x", "\uff11\uff12.x", "99999999999.x", f"{2**31}.x"]
)
def test_a_state_naming_no_possible_channel_is_refused(client, seller, shop, spapi, state):
    # `²` passed str.isdigit() and then broke int(); 99999999999 passed the length check
    # and was looked up beyond PostgreSQL's integer: both were a 500.
    response = client.get("/channels/spapi/callback", query_string={"state": state})
    assert response.status_code == 302
    assert response.headers["Location"] == "/channels"
    _, flashed = flashes(client, "/channels")
    assert "does not match an authorisation you started here" in flashed
    assert credential_count() == 0 and spapi.token_requests == []


@pytest.mark.spapi
def test_another_users_or_browsers_callback_is_refused(app, client, seller, shop, spapi):
    uk = shop["UK"]
    callback = spapi.consent(start(client, uk))
    # The same seller in another browser: its session never started this authorisation.
    other = app.test_client()
    assert AuthActions(other).login(seller.email, PASSWORD).status_code == 302
    response = come_back(other, callback)
    assert response.headers["Location"] == f"/channels/{uk.id}#step-1"
    _, flashed = flashes(other, f"/channels/{uk.id}")
    assert "started in another browser" in flashed
    assert credential_count() == 0 and spapi.token_requests == []


@pytest.mark.spapi
def test_an_expired_state_is_refused(client, seller, shop, spapi):
    uk = shop["UK"]
    consent = start(client, uk)
    (state,) = db.session.scalars(select(SpapiState))
    state.issued_at -= spapi_service.STATE_TTL + timedelta(seconds=1)
    db.session.commit()
    response = come_back(client, spapi.consent(consent))
    assert response.headers["Location"] == f"/channels/{uk.id}#step-1"
    _, flashed = flashes(client, f"/channels/{uk.id}")
    assert "took longer than 10 minutes and has expired" in flashed
    assert credential_count() == 0 and spapi.token_requests == []
    assert db.session.scalar(select(func.count()).select_from(SpapiState)) == 0


@pytest.mark.spapi
def test_an_expired_code_is_refused(client, seller, shop, spapi):
    uk = shop["UK"]
    callback = spapi.consent(start(client, uk))
    spapi.expire_codes()  # the seller took more than Amazon's five minutes
    response = come_back(client, callback)
    assert response.headers["Location"] == f"/channels/{uk.id}#step-1"
    page, flashed = flashes(client, f"/channels/{uk.id}")
    assert "expires five minutes after you confirm" in flashed
    assert credential_count() == 0 and spapi.issued_refresh_tokens == []
    db.session.refresh(uk)
    assert uk.status == ChannelStatus.AWAITING_TOKEN
    assert "Not connected yet" in page


@pytest.mark.spapi
@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("secret", "Amazon refused Sellerdesk's application credentials"),
        ("500", "Amazon's login service did not answer properly (HTTP 500)"),
        ("slow", "Amazon's login service did not answer properly (no answer in time)"),
    ],
)
def test_token_endpoint_errors_are_explained(app, client, seller, shop, spapi, fault, message):
    uk = shop["UK"]
    callback = spapi.consent(start(client, uk))
    if fault == "secret":
        spapi.client_secret = "amzn1.oa2-cs.v1.rotated-by-amazon"
    elif fault == "500":
        spapi.fail_token_with.append(500)
    else:
        app.config["LWA_TIMEOUT"] = 0.3
        spapi.token_delay = 1.0
    response = come_back(client, callback)
    assert response.headers["Location"] == f"/channels/{uk.id}#step-1"
    _, flashed = flashes(client, f"/channels/{uk.id}")
    assert message in flashed and "nothing was stored" in flashed.lower()
    assert credential_count() == 0
    db.session.refresh(uk)
    assert uk.status == ChannelStatus.AWAITING_TOKEN


@pytest.mark.spapi
def test_denying_at_amazon_changes_nothing(client, seller, shop, spapi):
    uk = shop["UK"]
    response = round_trip(client, spapi, uk, decision="deny")
    assert response.headers["Location"] == f"/channels/{uk.id}#step-1"
    _, flashed = flashes(client, f"/channels/{uk.id}")
    assert flashed == "You did not authorise Sellerdesk in Seller Central, so nothing changed."
    assert credential_count() == 0 and spapi.token_requests == []


@pytest.mark.spapi
def test_an_incomplete_answer_is_refused(client, seller, shop, spapi):
    uk = shop["UK"]
    consent = start(client, uk)
    state = parse_qs(urlsplit(consent).query)["state"][0]
    response = client.get("/channels/spapi/callback", query_string={"state": state})
    assert response.headers["Location"] == f"/channels/{uk.id}#step-1"
    _, flashed = flashes(client, f"/channels/{uk.id}")
    assert "answer was incomplete" in flashed
    assert credential_count() == 0 and spapi.token_requests == []


# --- the token path, re-authorising, revoking ---------------------------------------------


@pytest.mark.spapi
def test_the_page_shows_whichever_path_the_seller_used(client, seller, shop, spapi):
    uk = shop["UK"]
    url = f"/channels/{uk.id}"
    response = post_form(
        client,
        url,
        f"{url}/token",
        {"seller_id": "A1B2C3D4E5F6G7", "mws_auth_token": GOOD_TOKEN},
    )
    assert response.status_code == 302
    page = client.get(url).get_data(as_text=True)
    assert "Not used: MWS token on file" in page
    assert "Token on file: <code>amzn.mws.…4d6f</code>" in page
    assert "and replaces the token on file" in page
    assert "Revoke Amazon authorisation" not in page and "Report access revoked" in page

    # Authorising with Amazon replaces the MWS token (on UK, and covers DE).
    round_trip(client, spapi, uk)
    db.session.refresh(uk)
    assert uk.credential.kind == CredentialKind.SPAPI_REFRESH_TOKEN
    page = client.get(url).get_data(as_text=True)
    assert "amzn.mws.…4d6f" not in page and "Not used: MWS token on file" not in page
    assert "Authorised with Amazon for Seller ID" in page
    replaced = db.session.scalar(select(AuditEvent).filter_by(kind="channel.token_replaced"))
    assert replaced.target_id == uk.id and replaced.details["replaced_kind"] == "mws_token"


@pytest.mark.spapi
def test_reauthorising_replaces_and_revoking_disables(client, auth, seller, shop, spapi, make_user):
    uk, de = shop["UK"], shop["DE"]
    round_trip(client, spapi, de)
    admin_channel_service.verify_token(uk, actor=None)
    db.session.commit()
    assert uk.status == ChannelStatus.ACTIVE
    first = spapi.issued_refresh_tokens[-1]

    round_trip(client, spapi, uk)
    second = spapi.issued_refresh_tokens[-1]
    assert second != first
    for channel in (uk, de):
        db.session.refresh(channel)
        assert channel.status == ChannelStatus.PENDING_VERIFICATION
        assert decrypt_secret(channel.credential.secret_encrypted) == second
    assert credential_count() == 2

    url = f"/channels/{uk.id}"
    response = post_form(client, url, f"{url}/spapi/revoke")
    assert response.status_code == 302 and response.headers["Location"] == url
    page, flashed = flashes(client, url)
    assert flashed.startswith(
        "The Amazon authorisation is deleted and Amazon Germany, Amazon UK are disabled."
    )
    assert "Manage Your Apps" in flashed
    assert credential_count() == 0
    for channel in (uk, de):
        db.session.refresh(channel)
        assert channel.status == ChannelStatus.DISABLED
    assert "The Amazon authorisation was revoked in Sellerdesk." in page
    assert "authorise Sellerdesk with Amazon again (step 1)" in page
    assert 'value="Authorise with Amazon"' in page
    deleted = db.session.scalars(select(AuditEvent).filter_by(kind="channel.token_deleted")).all()
    assert sorted(e.target_id for e in deleted) == sorted([uk.id, de.id])
    assert all(e.actor_id == seller.id for e in deleted)

    # Revoking again: nothing on file, said so.
    response = post_form(client, url, f"{url}/spapi/revoke")
    assert response.status_code == 302
    assert "No Amazon authorisation is on file" in flashes(client, url)[1]

    # Authorising again reactivates both for verification.
    round_trip(client, spapi, uk)
    for channel in (uk, de):
        db.session.refresh(channel)
        assert channel.status == ChannelStatus.PENDING_VERIFICATION


@pytest.mark.spapi
def test_an_authorisation_stays_visible_when_the_settings_go(app, client, seller, shop, spapi):
    uk = shop["UK"]
    round_trip(client, spapi, uk)
    app.config["SPAPI_APPLICATION_ID"] = ""
    url = f"/channels/{uk.id}"
    page = client.get(url).get_data(as_text=True)
    assert "Authorised with Amazon for Seller ID" in page
    assert "Authorise again with Amazon" not in page
    assert "switched off on this Sellerdesk" in page
    assert post_form(client, url, f"{url}/spapi/authorise").status_code == 404
    # Revoking needs no settings.
    assert post_form(client, url, f"{url}/spapi/revoke").status_code == 302
    assert credential_count() == 0


@pytest.mark.spapi
def test_admin_sees_and_verifies_an_authorisation(client, auth, seller, shop, spapi, login_as):
    uk = shop["UK"]
    round_trip(client, spapi, uk)
    hint = "Atzr|…" + spapi.issued_refresh_tokens[-1][-4:]
    auth.logout()
    login_as(Role.ADMIN)
    url = f"/admin/channels/{uk.id}"
    page = client.get(url).get_data(as_text=True)
    assert hint in page and SELLING_PARTNER_ID in page
    assert spapi.issued_refresh_tokens[-1] not in page
    response = post_form(client, url, f"{url}/verify", {"verify-reason": "Checked with SP-API."})
    assert response.status_code == 302
    db.session.refresh(uk)
    assert uk.status == ChannelStatus.ACTIVE


# --- who may do what ------------------------------------------------------------------


@pytest.mark.spapi
def test_access(client, auth, shop, spapi, make_user, make_org, make_channel):
    uk = shop["UK"]
    url = f"/channels/{uk.id}"
    authorise, revoke = f"{url}/spapi/authorise", f"{url}/spapi/revoke"

    # Anonymous: to the login page (with a CSRF token from it), the callback too.
    for action in (authorise, revoke):
        response = post_form(client, "/login", action)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    response = client.get("/channels/spapi/callback?state=x")
    assert response.status_code == 302 and "/login" in response.headers["Location"]

    # Without a CSRF token: 400.
    owner = make_user(Role.SELLER, organisation=uk.organisation)
    auth.login(owner.email)
    assert client.post(authorise).status_code == 400
    assert client.post(revoke).status_code == 400
    auth.logout()

    # Another organisation's seller: 404 (the channel does not exist for them).
    stranger = make_user(Role.SELLER, organisation=make_org("Other Ltd"))
    auth.login(stranger.email)
    assert post_form(client, "/channels", authorise).status_code == 404
    assert post_form(client, "/channels", revoke).status_code == 404
    response = client.get("/channels/spapi/callback", query_string={"state": f"{uk.id}.x"})
    assert response.status_code == 302 and response.headers["Location"] == "/channels"
    auth.logout()

    # Agents read channels but never connect them: 403; unassigned ones get 404.
    agent = make_user(Role.AGENT, assigned=[uk.organisation])
    auth.login(agent.email)
    page = client.get(url).get_data(as_text=True)
    assert "Authorise with Amazon" not in page
    assert post_form(client, url, authorise).status_code == 403
    assert post_form(client, url, revoke).status_code == 403
    assert client.get("/channels/spapi/callback?state=x").status_code == 403
    auth.logout()
    loner = make_user(Role.AGENT)
    auth.login(loner.email)
    assert post_form(client, "/inbox", authorise).status_code == 404
    auth.logout()

    # Admins may act for a seller, as with the token form.
    admin = make_user(Role.ADMIN)
    auth.login(admin.email)
    response = post_form(client, url, authorise)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(spapi.consent_url + "?")
    response = post_form(client, url, revoke)  # nothing on file yet
    assert response.status_code == 302
    assert credential_count() == 0
    assert db.session.scalar(select(Channel).where(Channel.id == uk.id)) is not None
