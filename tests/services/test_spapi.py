"""SP-API authorisation: settings, state, consent URL, code exchange (real HTTP), storage, revoke."""

from __future__ import annotations

import dataclasses
import io
import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from portal.config import ConfigError, config_from_env
from portal.crypto import decrypt_secret
from portal.extensions import db
from portal.models import (
    AuditEvent,
    ChannelStatus,
    Credential,
    CredentialKind,
    Role,
    SpapiState,
    UserSession,
)
from portal.services import admin_channels as admin_channel_service
from portal.services import channels as channel_service
from portal.services import export as export_service
from portal.services import sessions as session_service
from portal.services import spapi as spapi_service
from portal.services.sessions import token_digest
from portal.services.spapi import SpapiError
from portal.sqltypes import utcnow
from tests.servers import free_port
from tests.spapi_standin import APPLICATION_ID, CLIENT_ID, CLIENT_SECRET, SELLING_PARTNER_ID

REFRESH_TOKEN = "Atzr|IwEBIexampleexampleexampleexampleexampleexampleexampleWXYZ"
MWS_TOKEN = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f"
CONFIGURED = {
    "SPAPI_APPLICATION_ID": APPLICATION_ID,
    "LWA_CLIENT_ID": CLIENT_ID,
    "LWA_CLIENT_SECRET": CLIENT_SECRET,
    "SPAPI_CONSENT_URL_NA": "https://sellercentral.amazon.com/apps/authorize/consent",
    "SPAPI_CONSENT_URL_EU": "https://sellercentral-europe.amazon.com/apps/authorize/consent",
    "SPAPI_CONSENT_URL_FE": "",
    "LWA_TOKEN_URL": "https://api.amazon.com/auth/o2/token",
    "SPAPI_REDIRECT_URI": "",
    "LWA_TIMEOUT": 10,
}


# --- settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "missing", ["SPAPI_APPLICATION_ID", "LWA_CLIENT_ID", "LWA_CLIENT_SECRET", "LWA_TOKEN_URL"]
)
def test_settings_are_off_without_application_or_client(missing):
    assert spapi_service.spapi_settings({**CONFIGURED, missing: "  "}) is None


def test_settings_per_region_and_secret_not_in_repr():
    settings = spapi_service.spapi_settings(CONFIGURED)
    assert settings is not None
    assert settings.is_available_for("EU") and settings.is_available_for("NA")
    assert not settings.is_available_for("FE")  # no consent URL configured
    assert CLIENT_SECRET not in repr(settings)


def test_config_reads_the_environment_with_amazons_defaults(monkeypatch, tmp_path):
    for name in (
        "SPAPI_APPLICATION_ID",
        "LWA_CLIENT_ID",
        "LWA_CLIENT_SECRET",
        "LWA_TOKEN_URL",
        "LWA_TIMEOUT",
        "SPAPI_REDIRECT_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    for region in ("NA", "EU", "FE"):
        monkeypatch.delenv(f"SPAPI_CONSENT_URL_{region}", raising=False)
    config = config_from_env(str(tmp_path))
    assert config["SPAPI_APPLICATION_ID"] == "" and spapi_service.spapi_settings(config) is None
    assert (
        config["SPAPI_CONSENT_URL_NA"] == "https://sellercentral.amazon.com/apps/authorize/consent"
    )
    assert (
        config["SPAPI_CONSENT_URL_EU"]
        == "https://sellercentral-europe.amazon.com/apps/authorize/consent"
    )
    assert (
        config["SPAPI_CONSENT_URL_FE"]
        == "https://sellercentral.amazon.co.jp/apps/authorize/consent"
    )
    assert config["LWA_TOKEN_URL"] == "https://api.amazon.com/auth/o2/token"
    assert config["LWA_TIMEOUT"] == 10

    monkeypatch.setenv("SPAPI_APPLICATION_ID", APPLICATION_ID)
    monkeypatch.setenv("LWA_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("LWA_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("SPAPI_REDIRECT_URI", "https://desk.example.com/channels/spapi/callback")
    settings = spapi_service.spapi_settings(config_from_env(str(tmp_path)))
    assert settings is not None and settings.application_id == APPLICATION_ID
    assert settings.redirect_uri == "https://desk.example.com/channels/spapi/callback"

    monkeypatch.setenv("SPAPI_CONSENT_URL_FE", "")
    settings = spapi_service.spapi_settings(config_from_env(str(tmp_path)))
    assert not settings.is_available_for("FE") and settings.is_available_for("EU")

    monkeypatch.setenv("LWA_TOKEN_URL", "file:///etc/passwd")
    with pytest.raises(ConfigError, match="LWA_TOKEN_URL must be an http"):
        config_from_env(str(tmp_path))


def test_consent_url_keeps_configured_parameters():
    settings = spapi_service.spapi_settings(
        {**CONFIGURED, "SPAPI_CONSENT_URL_EU": CONFIGURED["SPAPI_CONSENT_URL_EU"] + "?version=beta"}
    )
    url = spapi_service.consent_url(
        settings, region="EU", state="7.abc", redirect_uri="https://desk.example/cb"
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CONFIGURED["SPAPI_CONSENT_URL_EU"]
    assert parse_qs(parts.query) == {
        "version": ["beta"],
        "application_id": [APPLICATION_ID],
        "state": ["7.abc"],
        "redirect_uri": ["https://desk.example/cb"],
    }


def test_refresh_token_hint():
    assert spapi_service.mask_refresh_token(REFRESH_TOKEN) == "Atzr|…WXYZ"
    assert spapi_service.mask_refresh_token("something-else-1234") == "so…1234"


# --- state -------------------------------------------------------------------------


@pytest.fixture
def seller(make_user, uk):
    return make_user(Role.SELLER, organisation=uk.organisation)


def sign_in(user) -> UserSession:
    """A new sign-in (one browser) of `user`."""
    return session_service.start_session(
        user,
        remember=False,
        remember_for=timedelta(days=365),
        ip_address="127.0.0.1",
        user_agent="test",
        now=utcnow(),
    )


@pytest.fixture
def browser(seller) -> UserSession:
    return sign_in(seller)


def pending(login: UserSession) -> set[str]:
    """The hashes of the states `login` has pending."""
    return set(
        db.session.scalars(
            select(SpapiState.state_hash).where(SpapiState.user_session_id == login.id)
        )
    )


def test_state_is_single_use_and_names_its_channel(uk, browser):
    now = utcnow()
    state = spapi_service.issue_state(browser, channel=uk, now=now)
    assert state.startswith(f"{uk.id}.") and len(state) > 40
    assert spapi_service.channel_id_of_state(state) == uk.id
    # Only its hash is kept, on the server.
    assert pending(browser) == {token_digest(state)}
    assert spapi_service.redeem_state(browser, state, now=now) == uk.id
    assert pending(browser) == set()
    with pytest.raises(SpapiError, match="already used"):
        spapi_service.redeem_state(browser, state, now=now)


def test_states_differ_and_tabs_can_run_side_by_side(uk, browser):
    now = utcnow()
    first = spapi_service.issue_state(browser, channel=uk, now=now)
    second = spapi_service.issue_state(browser, channel=uk, now=now)
    assert first != second
    assert spapi_service.redeem_state(browser, first, now=now) == uk.id
    assert spapi_service.redeem_state(browser, second, now=now) == uk.id


def test_forged_and_missing_states_are_refused(uk, browser):
    now = utcnow()
    real = spapi_service.issue_state(browser, channel=uk, now=now)
    for forged in (f"{uk.id}.forged", real + "x", "", None, real * 10):
        with pytest.raises(SpapiError, match="does not match an authorisation"):
            spapi_service.redeem_state(browser, forged, now=now)
    assert pending(browser) == {token_digest(real)}


def test_state_expires_after_ten_minutes(uk, browser):
    now = utcnow()
    fresh = spapi_service.issue_state(browser, channel=uk, now=now)
    late = now + timedelta(minutes=9, seconds=59)
    assert spapi_service.redeem_state(browser, fresh, now=late) == uk.id
    old = spapi_service.issue_state(browser, channel=uk, now=now)
    # Redeemed late it is refused, and gone (the store drops expired states as it goes).
    with pytest.raises(SpapiError, match="longer than 10 minutes"):
        spapi_service.redeem_state(browser, old, now=now + timedelta(minutes=10, seconds=1))
    assert pending(browser) == set()


def test_state_is_bound_to_the_user(uk, browser, make_user):
    admin = sign_in(make_user(Role.ADMIN))
    state = spapi_service.issue_state(browser, channel=uk, now=utcnow())
    with pytest.raises(SpapiError, match="another user"):
        spapi_service.redeem_state(admin, state, now=utcnow())
    # Still pending for the seller who started it.
    assert spapi_service.redeem_state(browser, state, now=utcnow()) == uk.id


def test_state_is_bound_to_the_sign_in_that_started_it(uk, seller, browser):
    other_browser = sign_in(seller)
    state = spapi_service.issue_state(browser, channel=uk, now=utcnow())
    with pytest.raises(SpapiError, match="started in another browser"):
        spapi_service.redeem_state(other_browser, state, now=utcnow())
    assert spapi_service.redeem_state(browser, state, now=utcnow()) == uk.id


def test_ending_the_sign_in_drops_its_states(uk, seller, browser):
    state = spapi_service.issue_state(browser, channel=uk, now=utcnow())
    session_service.end_sessions(seller)
    db.session.commit()
    assert db.session.scalar(select(SpapiState.id)) is None
    with pytest.raises(SpapiError, match="does not match"):
        spapi_service.redeem_state(sign_in(seller), state, now=utcnow())


def test_pending_states_are_capped(uk, browser):
    now = utcnow()
    states = [
        spapi_service.issue_state(browser, channel=uk, now=now + timedelta(seconds=i))
        for i in range(spapi_service.MAX_PENDING_STATES + 2)
    ]
    assert pending(browser) == {token_digest(state) for state in states[2:]}


@pytest.mark.parametrize(
    "state",
    [
        *("x.y", "12345678901234.y", "-1.y", ".y", ""),
        # Digits str.isdigit() takes and int() refuses or reads as another number.
        *("\u00b2.y", "\u0661\u0662.y", "\uff11\uff12.y", "1\u00b2.y"),
        # Beyond an INTEGER id (a 500 on PostgreSQL).
        *("99999999999.y", f"{2**31}.y", "0.y"),
    ],
)
def test_channel_id_of_a_malformed_state(state):
    assert spapi_service.channel_id_of_state(state) is None


# --- the code exchange, over real HTTP against the stand-in ---------------------------


@pytest.fixture
def settings(spapi, app):
    return spapi_service.spapi_settings(app.config)


REDIRECT = "http://localhost/channels/spapi/callback"


@pytest.mark.spapi
def test_exchange_returns_the_refresh_token(settings, spapi):
    code = spapi.issue_code(REDIRECT)
    token = spapi_service.exchange_code(settings, code=code, redirect_uri=REDIRECT)
    assert token == spapi.issued_refresh_tokens[-1] and token.startswith("Atzr|")
    (sent,) = spapi.token_requests
    assert sent == {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }


@pytest.mark.spapi
def test_a_code_works_once(settings, spapi):
    code = spapi.issue_code(REDIRECT)
    spapi_service.exchange_code(settings, code=code, redirect_uri=REDIRECT)
    with pytest.raises(SpapiError, match="expires five minutes after"):
        spapi_service.exchange_code(settings, code=code, redirect_uri=REDIRECT)


@pytest.mark.spapi
@pytest.mark.parametrize("case", ["expired", "unknown", "other redirect"])
def test_refused_codes(settings, spapi, case):
    code = spapi.issue_code(REDIRECT)
    redirect_uri = REDIRECT
    if case == "expired":
        spapi.expire_codes()
    elif case == "unknown":
        code = "ANDnotissued"
    else:
        redirect_uri = "http://elsewhere.example/cb"
    with pytest.raises(SpapiError, match="expires five minutes after"):
        spapi_service.exchange_code(settings, code=code, redirect_uri=redirect_uri)
    assert spapi.issued_refresh_tokens == []


@pytest.mark.spapi
def test_wrong_client_secret(settings, spapi, caplog):
    spapi.client_secret = "amzn1.oa2-cs.v1.rotated"
    code = spapi.issue_code(REDIRECT)
    with (
        caplog.at_level(logging.DEBUG),
        pytest.raises(SpapiError, match="refused Sellerdesk's application credentials"),
    ):
        spapi_service.exchange_code(settings, code=code, redirect_uri=REDIRECT)
    assert "invalid_client" in caplog.text
    assert CLIENT_SECRET not in caplog.text


@pytest.mark.spapi
@pytest.mark.parametrize("status", [500, 503])
def test_token_endpoint_failure(settings, spapi, status):
    spapi.fail_token_with.append(status)
    with pytest.raises(SpapiError, match=f"did not answer properly \\(HTTP {status}\\)"):
        spapi_service.exchange_code(
            settings, code=spapi.issue_code(REDIRECT), redirect_uri=REDIRECT
        )


@pytest.mark.spapi
def test_token_endpoint_too_slow(app, spapi):
    app.config["LWA_TIMEOUT"] = 0.3
    spapi.token_delay = 1.0
    settings = spapi_service.spapi_settings(app.config)
    with pytest.raises(SpapiError, match="no answer in time"):
        spapi_service.exchange_code(
            settings, code=spapi.issue_code(REDIRECT), redirect_uri=REDIRECT
        )


@pytest.mark.spapi
def test_token_endpoint_unreachable(app, spapi):
    app.config["LWA_TOKEN_URL"] = f"http://127.0.0.1:{free_port()}/auth/o2/token"
    settings = spapi_service.spapi_settings(app.config)
    with pytest.raises(SpapiError, match="could not reach it"):
        spapi_service.exchange_code(settings, code="ANDx", redirect_uri=REDIRECT)


@pytest.mark.spapi
def test_token_endpoint_redirects_are_not_followed(app, spapi):
    # The client secret goes to the configured URL or nowhere.
    app.config["LWA_TOKEN_URL"] = spapi.base_url + "/moved/auth/o2/token"
    settings = spapi_service.spapi_settings(app.config)
    with pytest.raises(SpapiError, match="HTTP 307"):
        spapi_service.exchange_code(
            settings, code=spapi.issue_code(REDIRECT), redirect_uri=REDIRECT
        )
    assert spapi.token_requests == []


def test_exchange_without_network_is_refused_by_the_guard(app, settings):
    # Unmarked tests may not reach the stand-in: the suite's network guard holds.
    with pytest.raises(RuntimeError, match="mark it"):
        spapi_service.exchange_code(settings, code="ANDx", redirect_uri=REDIRECT)


# The endpoint's answers the stand-in does not give, read without the network.


@pytest.mark.parametrize(
    ("status", "answer", "told"),
    [
        (400, {"error": "invalid_grant"}, "expires five minutes after"),
        (401, {"error": "unauthorized_client"}, "refused Sellerdesk's application credentials"),
        (400, {}, "did not answer properly (HTTP 400)"),
        (400, {"error": "invalid_scope"}, "Amazon refused the authorisation (invalid_scope)"),
    ],
)
def test_what_a_refusal_tells_the_seller(status, answer, told):
    assert told in str(spapi_service._refusal(status, answer))


@pytest.mark.parametrize(
    "answer",
    [{}, {"refresh_token": "  "}, {"refresh_token": 42}, {"refresh_token": "Atzr|" + "x" * 4096}],
)
def test_an_answer_without_a_usable_refresh_token(answer):
    with pytest.raises(SpapiError, match="no refresh token in the answer"):
        spapi_service._refresh_token_in(answer)


def test_a_token_url_that_is_not_http_is_never_called(settings):
    settings = dataclasses.replace(settings, token_url="file:///etc/passwd")
    with pytest.raises(SpapiError, match="the token endpoint is misconfigured"):
        spapi_service.exchange_code(settings, code="ANDx", redirect_uri=REDIRECT)


# --- storing, replacing, revoking -----------------------------------------------------


@pytest.fixture
def shop(make_channel, make_org, make_user):
    org = make_org("Kite & Co")
    channels = {code: make_channel(code, organisation=org) for code in ("UK", "DE", "FR", "US")}
    seller = make_user(Role.SELLER, organisation=org)
    return channels, seller


def _events(kind):
    return list(db.session.scalars(select(AuditEvent).filter_by(kind=kind).order_by(AuditEvent.id)))


def test_one_authorisation_covers_the_region(shop, caplog):
    channels, seller = shop
    with caplog.at_level(logging.DEBUG):
        stored = spapi_service.store_refresh_token(
            channels["DE"],
            selling_partner_id=SELLING_PARTNER_ID,
            refresh_token=REFRESH_TOKEN,
            actor=seller,
        )
        db.session.commit()
    assert [c.marketplace for c in stored] == ["DE", "FR", "UK"]
    for code in ("UK", "DE", "FR"):
        channel = channels[code]
        credential = channel.credential
        assert channel.status == ChannelStatus.PENDING_VERIFICATION
        assert credential.kind == CredentialKind.SPAPI_REFRESH_TOKEN
        assert credential.seller_id == SELLING_PARTNER_ID
        assert credential.secret_hint == "Atzr|…WXYZ"
        assert credential.submitted_by_id == seller.id
        assert REFRESH_TOKEN.encode() not in credential.secret_encrypted
        assert decrypt_secret(credential.secret_encrypted) == REFRESH_TOKEN
    ciphertexts = {channels[c].credential.secret_encrypted for c in ("UK", "DE", "FR")}
    assert len(ciphertexts) == 3
    assert channels["US"].credential is None
    assert channels["US"].status == ChannelStatus.AWAITING_TOKEN

    submitted = _events("channel.token_submitted")
    assert sorted(e.target_id for e in submitted) == sorted(c.id for c in stored)
    for event in submitted:
        assert event.actor_id == seller.id
        assert event.details == {
            "kind": "spapi_refresh_token",
            "seller_id": SELLING_PARTNER_ID,
            "token": "Atzr|…WXYZ",
            "via": "amazon_authorisation",
            "authorised_from": "DE",
        }
    assert len(_events("channel.status_changed")) == 3
    assert REFRESH_TOKEN not in caplog.text
    assert "Atzr|…WXYZ" in caplog.text


def test_reauthorising_replaces_mws_tokens_and_earlier_authorisations(shop):
    channels, seller = shop
    channel_service.submit_mws_token(
        channels["UK"], seller_id="A1B2C3D4E5F6G7", token=MWS_TOKEN, actor=seller
    )
    spapi_service.store_refresh_token(
        channels["UK"],
        selling_partner_id=SELLING_PARTNER_ID,
        refresh_token=REFRESH_TOKEN,
        actor=seller,
    )
    db.session.commit()
    admin_channel_service.verify_token(channels["UK"], actor=None)
    db.session.commit()
    assert channels["UK"].status == ChannelStatus.ACTIVE

    newer = "Atzr|IwEBInewernewernewernewer0000"
    spapi_service.store_refresh_token(
        channels["FR"], selling_partner_id=SELLING_PARTNER_ID, refresh_token=newer, actor=seller
    )
    db.session.commit()
    credentials = db.session.scalars(select(Credential)).all()
    assert len(credentials) == 3  # one per channel, never kept twice
    for code in ("UK", "DE", "FR"):
        assert channels[code].credential.secret_hint == "Atzr|…0000"
        assert decrypt_secret(channels[code].credential.secret_encrypted) == newer
        assert channels[code].status == ChannelStatus.PENDING_VERIFICATION
    replaced = _events("channel.token_replaced")
    assert [e.details["replaced_kind"] for e in replaced] == [
        "mws_token",  # UK: the MWS token, by the first authorisation
        "spapi_refresh_token",
        "spapi_refresh_token",
        "spapi_refresh_token",
    ]


def test_admin_verification_works_for_an_authorisation(shop):
    channels, seller = shop
    spapi_service.store_refresh_token(
        channels["UK"],
        selling_partner_id=SELLING_PARTNER_ID,
        refresh_token=REFRESH_TOKEN,
        actor=seller,
    )
    db.session.commit()
    admin_channel_service.verify_token(
        channels["UK"],
        actor=None,
        expected_credential=admin_channel_service.credential_marker(channels["UK"].credential),
    )
    db.session.commit()
    assert channels["UK"].status == ChannelStatus.ACTIVE
    assert channels["DE"].status == ChannelStatus.PENDING_VERIFICATION
    (verified,) = _events("channel.token_verified")
    assert verified.details == {"seller_id": SELLING_PARTNER_ID, "token": "Atzr|…WXYZ"}


def test_revoking_deletes_the_token_everywhere_it_was_stored(shop):
    channels, seller = shop
    spapi_service.store_refresh_token(
        channels["UK"],
        selling_partner_id=SELLING_PARTNER_ID,
        refresh_token=REFRESH_TOKEN,
        actor=seller,
    )
    channel_service.submit_mws_token(
        channels["US"], seller_id="A1B2C3D4E5F6G7", token=MWS_TOKEN, actor=seller
    )
    db.session.commit()
    revoked = spapi_service.revoke_authorisation(channels["FR"], actor=seller)
    db.session.commit()
    assert [c.marketplace for c in revoked] == ["DE", "FR", "UK"]
    for code in ("UK", "DE", "FR"):
        assert channels[code].credential is None
        assert channels[code].status == ChannelStatus.DISABLED
        assert channels[code].status_reason == "The Amazon authorisation was revoked in Sellerdesk."
    assert channels["US"].credential is not None  # another region, another credential
    kinds = [c.kind for c in db.session.scalars(select(Credential))]
    assert kinds == [CredentialKind.MWS_TOKEN]
    deleted = _events("channel.token_deleted")
    assert len(deleted) == 3 and all(e.actor_id == seller.id for e in deleted)
    assert deleted[0].details["why"] == "Amazon authorisation revoked by the seller"

    with pytest.raises(SpapiError, match="No Amazon authorisation"):
        spapi_service.revoke_authorisation(channels["UK"], actor=seller)
    with pytest.raises(SpapiError, match="No Amazon authorisation"):
        spapi_service.revoke_authorisation(channels["US"], actor=seller)  # an MWS token


def test_the_refresh_token_never_reaches_audit_or_export(shop, make_thread):
    channels, seller = shop
    make_thread(channels["UK"])
    spapi_service.store_refresh_token(
        channels["UK"],
        selling_partner_id=SELLING_PARTNER_ID,
        refresh_token=REFRESH_TOKEN,
        actor=seller,
    )
    db.session.commit()
    for event in db.session.scalars(select(AuditEvent)):
        assert REFRESH_TOKEN not in str(event.details)
    for organisation in (seller.organisation, None):
        out = io.BytesIO()
        assert export_service.write_jsonl(out, organisation=organisation) == 1
        text = out.getvalue().decode()
        assert REFRESH_TOKEN not in text and "Atzr" not in text


@pytest.mark.spapi
def test_complete_authorisation_refuses_an_incomplete_answer(shop, settings, spapi):
    channels, seller = shop
    for code, partner in (("", SELLING_PARTNER_ID), ("ANDx", ""), ("ANDx", "not a seller id!")):
        with pytest.raises(SpapiError, match="incomplete"):
            spapi_service.complete_authorisation(
                channels["UK"],
                settings=settings,
                code=code,
                selling_partner_id=partner,
                redirect_uri=REDIRECT,
                actor=seller,
            )
    assert spapi.token_requests == []  # refused before asking Amazon
    assert db.session.scalar(select(Credential)) is None


@pytest.mark.spapi
def test_complete_authorisation_exchanges_and_stores(shop, settings, spapi):
    channels, seller = shop
    stored = spapi_service.complete_authorisation(
        channels["US"],
        settings=settings,
        code=spapi.issue_code(REDIRECT),
        selling_partner_id=" a3standinseller ",
        redirect_uri=REDIRECT,
        actor=seller,
    )
    db.session.commit()
    assert [c.marketplace for c in stored] == ["US"]
    credential = channels["US"].credential
    assert credential.seller_id == SELLING_PARTNER_ID
    assert decrypt_secret(credential.secret_encrypted) == spapi.issued_refresh_tokens[-1]
