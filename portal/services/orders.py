"""An Amazon order for a channel, asked of SP-API with the channel's stored authorisation.

The HTTP client, its access tokens and its rate limits are portal/amazon_api.py; reading
Amazon's answer is portal/amazon_orders.py. This module decides which channel may ask
(one holding an SP-API refresh token) and hands the client the seller's region, Seller
ID and decrypted refresh token. It is for the worker: a web request never waits for Amazon.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ingest.mail.amazon import ORDER_ID_RE
from portal.amazon_api import AmazonApi, ApiFailure, FailureKind, api_settings
from portal.amazon_orders import AmazonOrder
from portal.crypto import decrypt_secret
from portal.models import Channel
from portal.services.spapi import is_spapi_credential

log = logging.getLogger(__name__)


def amazon_api(config: Mapping[str, Any], extensions: dict[str, Any]) -> AmazonApi | None:
    """The process's SP-API client (kept in the app's `extensions`, so its access tokens
    and rate-limit buckets last across jobs); None when the LWA client is not configured."""
    settings = api_settings(config)
    if settings is None:
        return None
    api = extensions.get("amazon_api")
    if not isinstance(api, AmazonApi) or api.settings != settings:
        api = extensions["amazon_api"] = AmazonApi(settings)
    return api


def fetch_order(channel: Channel, order_id: str, *, api: AmazonApi) -> AmazonOrder | ApiFailure:
    """Ask Amazon for `order_id` on `channel`: the order, or an ApiFailure to act on."""
    if not ORDER_ID_RE.fullmatch(order_id or ""):
        return ApiFailure(FailureKind.REJECTED, f"{order_id!r} is not an Amazon order ID.")
    credential = channel.credential
    if credential is None or not is_spapi_credential(credential):
        return ApiFailure(
            FailureKind.NOT_AUTHORISED,
            "There is no order data because this channel is not authorised with Amazon's "
            'Selling Partner API: the seller can click "Authorise with Amazon" on the '
            "channel's page.",
        )
    return api.get_order(
        region=channel.marketplace_info.region,
        seller_id=credential.seller_id,
        refresh_token=decrypt_secret(credential.secret_encrypted),
        order_id=order_id,
    )
