"""Amazon credentials: validating what sellers paste, storing it encrypted, masking it.

The plaintext token only ever lives in memory: it is validated, encrypted with
TOKEN_KEY and stored as ciphertext plus a short masked hint. It is never logged
and never put into an audit event.
"""

from __future__ import annotations

import re

from portal.crypto import encrypt_secret, mask_secret
from portal.marketplaces import MARKETPLACES

_WHITESPACE = re.compile(r"\s+")
_MWS_TOKEN = re.compile(r"amzn\.mws\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_LIKE = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")
# Amazon publishes no pattern for Seller IDs (Merchant Tokens): they are upper-case
# letters and digits, usually 13-14 long and starting with A. Check loosely.
_SELLER_ID = re.compile(r"[A-Z0-9]{8,20}")
_MARKETPLACE_IDS = {m.marketplace_id: m for m in MARKETPLACES}


class CredentialError(ValueError):
    """What the seller pasted is not valid; the message says what to do instead."""


def clean_seller_id(raw: str) -> str:
    """The Seller ID with pasted whitespace removed, upper-cased; or CredentialError."""
    value = _WHITESPACE.sub("", raw or "")
    if not value:
        raise CredentialError("Enter your Seller ID.")
    if value.lower().startswith("amzn."):
        raise CredentialError(
            "This looks like your MWS Auth Token. Paste it in the MWS Auth Token field; "
            "the Seller ID is the shorter code (e.g. A1B2C3D4E5F6G7)."
        )
    value = value.upper()
    marketplace = _MARKETPLACE_IDS.get(value)
    if marketplace is not None:
        raise CredentialError(
            f"{value} is the marketplace ID of {marketplace.name}, not your Seller ID. "
            "Your Seller ID is shown in Seller Central under Settings → Account Info → "
            "Merchant Token."
        )
    if not _SELLER_ID.fullmatch(value):
        raise CredentialError(
            "A Seller ID has 8 to 20 letters and digits only (usually 13 or 14, "
            "starting with A). Copy it from Seller Central → Settings → Account Info."
        )
    return value


def clean_mws_token(raw: str) -> str:
    """The MWS Auth Token with pasted whitespace removed; or CredentialError."""
    value = _WHITESPACE.sub("", raw or "")
    if not value:
        raise CredentialError("Enter the MWS Auth Token that Amazon showed you.")
    lowered = value.lower()
    if _MWS_TOKEN.fullmatch(lowered):
        return lowered
    if lowered.startswith("atzr|"):
        raise CredentialError(
            "This is an SP-API refresh token, not an MWS Auth Token. "
            "An MWS Auth Token starts with amzn.mws."
        )
    if _SELLER_ID.fullmatch(value.upper()) and not lowered.startswith("amzn"):
        raise CredentialError(
            "This looks like a Seller ID. Paste it in the Seller ID field; "
            "the MWS Auth Token starts with amzn.mws."
        )
    if not lowered.startswith("amzn.mws."):
        if _UUID_LIKE.fullmatch(lowered):
            raise CredentialError(
                "The start of the token is missing: it begins with amzn.mws. — "
                "copy the whole token from Amazon's confirmation page."
            )
        raise CredentialError(
            "An MWS Auth Token starts with amzn.mws. followed by 36 letters, digits "
            "and dashes (e.g. amzn.mws.1a2b3c4d-…)."
        )
    raise CredentialError(
        "This token is incomplete or mistyped: after amzn.mws. come 36 characters "
        "in groups of 8-4-4-4-12. Copy the whole token again."
    )


def seal_secret(plaintext: str) -> tuple[bytes, str]:
    """Ciphertext under TOKEN_KEY and the masked hint shown to people."""
    return encrypt_secret(plaintext), mask_secret(plaintext)
