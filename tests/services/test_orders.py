"""Asking Amazon for a channel's order: which channels may ask, with what, and the
process's one SP-API client."""

from __future__ import annotations

import pytest

from portal.amazon_api import AmazonApi, FailureKind
from portal.amazon_orders import AmazonOrder
from portal.config import ConfigError, config_from_env
from portal.extensions import db
from portal.services import channels as channel_service
from portal.services import orders as order_service
from portal.services import spapi as spapi_service

REFRESH_TOKEN = "Atzr|IwEBIstandin-refresh-token-for-the-orders-service-0123456789WXYZ"
MWS_TOKEN = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f"
ORDER = "202-1234567-8901234"


@pytest.fixture
def authorised(make_channel, make_org, spapi):
    """An Irish and a South African channel authorised with Amazon (the stand-in)."""
    org = make_org()
    ireland = make_channel("IE", organisation=org)
    make_channel("ZA", organisation=org)
    spapi_service.store_refresh_token(
        ireland,
        selling_partner_id=spapi.selling_partner_id,
        refresh_token=REFRESH_TOKEN,
        actor=None,
    )
    db.session.commit()
    spapi.accept_refresh_token(REFRESH_TOKEN)
    return org


def channel_of(org, code):
    return next(c for c in org.channels if c.marketplace == code)


@pytest.mark.spapi
def test_an_authorised_channel_gets_its_order_from_its_region(app, authorised, spapi):
    api = order_service.amazon_api(app.config, app.extensions)
    for code in ("IE", "ZA"):  # one European authorisation covers both
        order = order_service.fetch_order(channel_of(authorised, code), ORDER, api=api)
        assert isinstance(order, AmazonOrder) and order.order_id == ORDER
    assert spapi.calls == {"lwa_refresh": 1, "getOrder": 2}


@pytest.mark.spapi
def test_a_channel_without_sp_api_authorisation_makes_no_call(app, make_channel, spapi):
    mws = make_channel("UK")
    channel_service.submit_mws_token(mws, seller_id="A1B2C3D4E5F6G7", token=MWS_TOKEN, actor=None)
    none = make_channel("DE")
    api = order_service.amazon_api(app.config, app.extensions)
    for channel in (mws, none):
        result = order_service.fetch_order(channel, ORDER, api=api)
        assert result.kind == FailureKind.NOT_AUTHORISED
        assert "Authorise with Amazon" in result.message
    assert sum(spapi.calls.values()) == 0


@pytest.mark.spapi
@pytest.mark.parametrize("order_id", ["", "123", "202-1234567-8901234/../x", ORDER + " "])
def test_only_an_amazon_order_id_is_asked_for(app, authorised, spapi, order_id):
    api = order_service.amazon_api(app.config, app.extensions)
    result = order_service.fetch_order(channel_of(authorised, "IE"), order_id, api=api)
    assert result.kind == FailureKind.REJECTED
    assert sum(spapi.calls.values()) == 0


@pytest.mark.spapi
def test_the_process_keeps_one_client_until_the_settings_change(app, spapi):
    api = order_service.amazon_api(app.config, app.extensions)
    assert isinstance(api, AmazonApi)
    assert order_service.amazon_api(app.config, app.extensions) is api
    app.config["SPAPI_INCLUDE_PII"] = True
    changed = order_service.amazon_api(app.config, app.extensions)
    assert changed is not api and changed.settings.include_pii
    app.config["LWA_CLIENT_ID"] = ""
    assert order_service.amazon_api(app.config, app.extensions) is None


def test_config_reads_the_endpoints_and_the_pii_switch(monkeypatch, tmp_path):
    for name in ("SPAPI_INCLUDE_PII", *(f"SPAPI_ENDPOINT_{r}" for r in ("NA", "EU", "FE"))):
        monkeypatch.delenv(name, raising=False)
    config = config_from_env(str(tmp_path))
    assert config["SPAPI_ENDPOINT_NA"] == "https://sellingpartnerapi-na.amazon.com"
    assert config["SPAPI_ENDPOINT_EU"] == "https://sellingpartnerapi-eu.amazon.com"
    assert config["SPAPI_ENDPOINT_FE"] == "https://sellingpartnerapi-fe.amazon.com"
    assert config["SPAPI_INCLUDE_PII"] is False

    monkeypatch.setenv("SPAPI_ENDPOINT_EU", "http://127.0.0.1:9/")
    monkeypatch.setenv("SPAPI_ENDPOINT_FE", "")
    monkeypatch.setenv("SPAPI_INCLUDE_PII", "1")
    config = config_from_env(str(tmp_path))
    assert config["SPAPI_ENDPOINT_EU"] == "http://127.0.0.1:9/"
    assert config["SPAPI_ENDPOINT_FE"] == "" and config["SPAPI_INCLUDE_PII"] is True

    monkeypatch.setenv("SPAPI_ENDPOINT_NA", "ftp://sellingpartnerapi-na.amazon.com")
    with pytest.raises(ConfigError, match="SPAPI_ENDPOINT_NA must be an http"):
        config_from_env(str(tmp_path))
