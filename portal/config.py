"""Configuration: read from the environment (and `.env`), with working defaults.

Every value an operator can set is an environment variable named in docs/operations.md.
On a first local run the secrets are generated once into `instance/`; in
production (`SELLERDESK_ENV=production`) a missing secret is a start-up error.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping, MutableMapping
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

from portal.marketplaces import (
    DEFAULT_DEVELOPER_ACCOUNTS,
    DEFAULT_DEVELOPER_NAME,
    parse_developer_accounts,
)

log = logging.getLogger(__name__)


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _normalise_database_url(url: str) -> str:
    # Hosting platforms hand out `postgres://`; SQLAlchemy wants an explicit driver.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _secret_from_instance(instance: Path, name: str, make: Any, *, production: bool) -> str:
    env_name = name.upper()
    value = os.environ.get(env_name)
    if value:
        return value
    if production:
        raise ConfigError(
            f"{env_name} is not set. In production every secret must come from the "
            f"environment; see docs/operations.md, section Production."
        )
    path = instance / name.lower()
    if path.exists():
        return path.read_text().strip()
    value = make()
    instance.mkdir(parents=True, exist_ok=True)
    # Create with 0600 from the start so the secret is never world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    log.warning("Generated %s for this local install and stored it in %s", env_name, path)
    return value


def _int(name: str, default: int | None = None) -> int:
    """The whole number in environment variable `name`; unset or empty: `default`, or
    DEFAULTS[name] for a setting of the app's own config."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return DEFAULTS[name] if default is None else default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def _flag(name: str) -> bool:
    """The yes/no in environment variable `name`; unset or empty: DEFAULTS[name]."""
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return DEFAULTS[name]
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), got {raw!r}")


def config_from_env(instance_path: str) -> dict[str, Any]:
    """Build the app configuration from environment variables."""
    instance = Path(instance_path)
    production = os.environ.get("SELLERDESK_ENV", "development") == "production"
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'sellerdesk.db'}"
    return {
        "ENV_NAME": "production" if production else "development",
        "SECRET_KEY": _secret_from_instance(
            instance, "SECRET_KEY", lambda: secrets.token_urlsafe(48), production=production
        ),
        "TOKEN_KEY": _secret_from_instance(
            instance, "TOKEN_KEY", lambda: Fernet.generate_key().decode(), production=production
        ),
        "SQLALCHEMY_DATABASE_URI": _normalise_database_url(database_url),
        "MAIL_SOURCE": os.environ.get("MAIL_SOURCE") or f"maildir:{instance / 'maildir'}",
        "SMTP_URL": os.environ.get("SMTP_URL") or f"outbox:{instance / 'outbox'}",
        "INBOUND_DOMAIN": (os.environ.get("INBOUND_DOMAIN") or DEFAULTS["INBOUND_DOMAIN"]).lower(),
        "POLL_SECONDS": _int("POLL_SECONDS"),
        "IMAP_IDLE": _flag("IMAP_IDLE"),
        "MAILDIR_WATCH": _flag("MAILDIR_WATCH"),
        "OUTBOX_SECONDS": _int("OUTBOX_SECONDS"),
        "SMTP_TIMEOUT": _int("SMTP_TIMEOUT"),
        "INGEST_LEASE_SECONDS": _int("INGEST_LEASE_SECONDS"),
        "INGEST_PARSE_SECONDS": _int("INGEST_PARSE_SECONDS"),
        "REPORTS_FRESH_SECONDS": _int("REPORTS_FRESH_SECONDS"),
        "MAX_ATTACHMENT_BYTES": _int("MAX_ATTACHMENT_BYTES"),
        "PORT": _int("PORT"),
        # Empty: derived from INBOUND_DOMAIN and PORT by complete_config.
        "MAIL_FROM": (os.environ.get("MAIL_FROM") or "").strip(),
        "PUBLIC_URL": (os.environ.get("PUBLIC_URL") or "").strip(),
        # Empty: the host of PUBLIC_URL (portal/services/passkeys.py).
        "WEBAUTHN_RP_ID": (os.environ.get("WEBAUTHN_RP_ID") or "").strip(),
        # Over HTTPS only in production; `make run` serves plain http on loopback.
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_SECURE": production,
        "RATELIMIT_STORAGE_URI": _ratelimit_storage(production),
        "AMAZON_DEVELOPER_NAME": os.environ.get("AMAZON_DEVELOPER_NAME")
        or DEFAULTS["AMAZON_DEVELOPER_NAME"],
        "AMAZON_DEVELOPER_ACCOUNTS": _developer_accounts(),
        **_spapi_settings(),
        **_inbound_settings(),
        **_oauth_settings(),
    }


def _inbound_settings() -> dict[str, Any]:
    # HTTP ingress (portal/services/http_ingress.py).
    values: dict[str, Any] = {
        name: _int(name) for name in ("INBOUND_MAX_BYTES", "INBOUND_MAX_AGE_SECONDS")
    }
    values["INBOUND_RATE_LIMIT"] = (
        os.environ.get("INBOUND_RATE_LIMIT") or DEFAULTS["INBOUND_RATE_LIMIT"]
    ).strip()
    values["SNS_CERT_HOST_SUFFIX"] = (
        os.environ.get("SNS_CERT_HOST_SUFFIX") or DEFAULTS["SNS_CERT_HOST_SUFFIX"]
    ).strip()
    values["SNS_CA_FILE"] = (os.environ.get("SNS_CA_FILE") or "").strip()
    values["SES_S3_ENDPOINT"] = (os.environ.get("SES_S3_ENDPOINT") or "").strip()
    if values["SES_S3_ENDPOINT"] and not values["SES_S3_ENDPOINT"].startswith(
        ("https://", "http://")
    ):
        raise ConfigError(
            f"SES_S3_ENDPOINT must be an http(s) URL, got {values['SES_S3_ENDPOINT']!r}"
        )
    # Credentials the S3 GET is signed with (SigV4); without a key id the GET is unsigned.
    values["SES_S3_REGION"] = (os.environ.get("SES_S3_REGION") or DEFAULTS["SES_S3_REGION"]).strip()
    for name in ("SES_S3_ACCESS_KEY_ID", "SES_S3_SECRET_ACCESS_KEY", "SES_S3_SESSION_TOKEN"):
        values[name] = (os.environ.get(name) or "").strip()
    if values["SES_S3_ACCESS_KEY_ID"] and not values["SES_S3_SECRET_ACCESS_KEY"]:
        raise ConfigError("SES_S3_ACCESS_KEY_ID is set but SES_S3_SECRET_ACCESS_KEY is not")
    return values


def _ratelimit_storage(production: bool) -> str:
    # Every process that serves must see the same counts, or each allows a client the
    # whole limit (and a limit keyed on one proxy address locks everyone out of a worker):
    # the database's table unless the operator names a storage. Only a single process
    # (`make run`) may count in its own memory.
    uri = os.environ.get("RATELIMIT_STORAGE_URI")
    if uri:
        return uri
    # WEB_CONCURRENCY is gunicorn's setting (scripts/serve passes it on), not the app's.
    if production or _int("WEB_CONCURRENCY", 1) > 1:
        return SHARED_RATELIMIT_STORAGE
    return DEFAULTS["RATELIMIT_STORAGE_URI"]


def _spapi_settings() -> dict[str, Any]:
    # SP-API website authorisation ("Authorise with Amazon"); without the application
    # ID and the LWA client the button stays hidden and only the token form is offered.
    values: dict[str, Any] = {
        name: (os.environ.get(name) or "").strip()
        for name in ("SPAPI_APPLICATION_ID", "LWA_CLIENT_ID", "LWA_CLIENT_SECRET")
    }
    for name in (
        *(f"SPAPI_CONSENT_URL_{r}" for r in SPAPI_REGIONS),
        "LWA_TOKEN_URL",
        *(f"SPAPI_ENDPOINT_{r}" for r in SPAPI_REGIONS),
    ):
        # Unset: Amazon's URL. Set but empty: off (e.g. no consent page for a region).
        values[name] = os.environ.get(name, DEFAULTS[name]).strip()
        if values[name] and not values[name].startswith(("https://", "http://")):
            raise ConfigError(f"{name} must be an http(s) URL, got {values[name]!r}")
    values["SPAPI_REDIRECT_URI"] = (os.environ.get("SPAPI_REDIRECT_URI") or "").strip()
    values["LWA_TIMEOUT"] = _int("LWA_TIMEOUT")
    values["SPAPI_INCLUDE_PII"] = _flag("SPAPI_INCLUDE_PII")
    values["ORDER_DATA_DAYS"] = _int("ORDER_DATA_DAYS")
    if values["ORDER_DATA_DAYS"] < 0:
        raise ConfigError("ORDER_DATA_DAYS must be 0 or more")
    for name in ("RAW_RETENTION_DAYS", "TEXT_RETENTION_DAYS"):
        values[name] = _int(name)
        if values[name] < 1:
            raise ConfigError(f"{name} must be 1 or more")
    values["OFFBOARDING_GRACE_DAYS"] = _int("OFFBOARDING_GRACE_DAYS")
    if values["OFFBOARDING_GRACE_DAYS"] < 0:
        raise ConfigError("OFFBOARDING_GRACE_DAYS must be 0 or more")
    return values


def _oauth_settings() -> dict[str, Any]:
    # "Connect Microsoft 365" / "Connect Google" on a mailbox (portal/oauth_client.py):
    # without a client ID the provider's button stays hidden.
    values: dict[str, Any] = {}
    for provider in OAUTH_PROVIDERS:
        for part in ("CLIENT_ID", "CLIENT_SECRET"):
            name = f"OAUTH_{provider}_{part}"
            values[name] = (os.environ.get(name) or "").strip()
        for part in ("AUTHORIZE_URL", "TOKEN_URL"):
            name = f"OAUTH_{provider}_{part}"
            values[name] = (os.environ.get(name) or DEFAULTS[name]).strip()
            if not values[name].startswith(("https://", "http://")):
                raise ConfigError(f"{name} must be an http(s) URL, got {values[name]!r}")
    values["OAUTH_TIMEOUT"] = _int("OAUTH_TIMEOUT")
    return values


def _developer_accounts() -> dict[str, str]:
    raw = os.environ.get("AMAZON_DEVELOPER_ACCOUNTS")
    if not raw:
        return dict(DEFAULTS["AMAZON_DEVELOPER_ACCOUNTS"])
    try:
        return parse_developer_accounts(raw)
    except ValueError as exc:
        raise ConfigError(
            f"AMAZON_DEVELOPER_ACCOUNTS: {exc}; e.g. EU=0873-6813-5448,US=5759-5616-2466"
        ) from None


#: Defaults that hold in every environment; the environment and tests override them.
#: config_from_env reads its defaults here too: each is written once.
DEFAULTS: Mapping[str, Any] = {
    "ENV_NAME": "development",
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    # flask-login's default, stated because the server-side sign-in ends with it too.
    "REMEMBER_COOKIE_DURATION": timedelta(days=365),
    "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
    "LOGIN_RATE_LIMIT": "10 per minute; 50 per hour",
    # Each sign-up mails the address it names: as many tries as logging in.
    "SIGNUP_RATE_LIMIT": "10 per minute; 50 per hour",
    # Reset links per client; per address, services/password_reset.py sends one at a time.
    "PASSWORD_RESET_RATE_LIMIT": "5 per minute; 20 per hour",
    #: One process only; production and `make serve` share SHARED_RATELIMIT_STORAGE.
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_HEADERS_ENABLED": True,
    "INBOUND_DOMAIN": "helpdesk.localhost",
    "POLL_SECONDS": 60,
    #: Watch IMAP mailboxes with IDLE (fetch on arrival); the poll stays as a safety net.
    "IMAP_IDLE": True,
    "MAILDIR_WATCH": True,
    "OUTBOX_SECONDS": 5,
    "SMTP_TIMEOUT": 30,
    "INGEST_LEASE_SECONDS": 300,
    #: A mail whose parsing takes longer is quarantined as too slow to parse.
    "INGEST_PARSE_SECONDS": 10,
    "MAX_ATTACHMENT_BYTES": 10 * 1024 * 1024,
    #: Reports and the dashboard's 24-hour rates show figures computed up to this long
    #: ago, with their time; the worker recomputes the ones read lately before then.
    #: 0: computed for every page (services/report_snapshots.py).
    "REPORTS_FRESH_SECONDS": 600,
    "PORT": 5000,
    # Static URLs carry a content hash (?v=…, portal/main/views.py), so browsers and
    # proxies may keep a file for a year: a changed file gets a new URL.
    "SEND_FILE_MAX_AGE_DEFAULT": 365 * 24 * 3600,
    # Replies carry at most 10 MB of attachments (Amazon's limit); leave room for the form.
    "MAX_CONTENT_LENGTH": 25 * 1024 * 1024,
    "AMAZON_DEVELOPER_NAME": DEFAULT_DEVELOPER_NAME,
    "AMAZON_DEVELOPER_ACCOUNTS": DEFAULT_DEVELOPER_ACCOUNTS,
    # SP-API authorisation: empty application ID / client = the feature is off.
    "SPAPI_APPLICATION_ID": "",
    "LWA_CLIENT_ID": "",
    "LWA_CLIENT_SECRET": "",
    "SPAPI_CONSENT_URL_NA": "https://sellercentral.amazon.com/apps/authorize/consent",
    "SPAPI_CONSENT_URL_EU": "https://sellercentral-europe.amazon.com/apps/authorize/consent",
    "SPAPI_CONSENT_URL_FE": "https://sellercentral.amazon.co.jp/apps/authorize/consent",
    "LWA_TOKEN_URL": "https://api.amazon.com/auth/o2/token",
    #: Empty: the portal's own /channels/spapi/callback URL, as seen by the browser.
    "SPAPI_REDIRECT_URI": "",
    "LWA_TIMEOUT": 10,
    # The Selling Partner API itself, per region (order context, issue 20).
    "SPAPI_ENDPOINT_NA": "https://sellingpartnerapi-na.amazon.com",
    "SPAPI_ENDPOINT_EU": "https://sellingpartnerapi-eu.amazon.com",
    "SPAPI_ENDPOINT_FE": "https://sellingpartnerapi-fe.amazon.com",
    #: Ask Amazon for the buyer's and the recipient's data: only with Amazon's restricted roles.
    "SPAPI_INCLUDE_PII": False,
    #: Days after delivery that an order's details are kept (Amazon's Data Protection
    #: Policy: buyer data no longer than needed, order data within 30 days of delivery).
    "ORDER_DATA_DAYS": 30,
    #: Days after a thread was closed that its raw mail and attachments are kept, and
    #: its texts (then the thread stays as a tombstone without content): issue 23.
    "RAW_RETENTION_DAYS": 90,
    "TEXT_RETENTION_DAYS": 730,
    # OAuth2 mailboxes (XOAUTH2): empty client ID = that provider's button is hidden.
    "OAUTH_MICROSOFT_CLIENT_ID": "",
    "OAUTH_MICROSOFT_CLIENT_SECRET": "",
    "OAUTH_MICROSOFT_AUTHORIZE_URL": (
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
    ),
    "OAUTH_MICROSOFT_TOKEN_URL": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    "OAUTH_GOOGLE_CLIENT_ID": "",
    "OAUTH_GOOGLE_CLIENT_SECRET": "",
    "OAUTH_GOOGLE_AUTHORIZE_URL": "https://accounts.google.com/o/oauth2/v2/auth",
    "OAUTH_GOOGLE_TOKEN_URL": "https://oauth2.googleapis.com/token",
    "OAUTH_TIMEOUT": 10,
    #: Days after an admin closes an organisation before the worker erases its buyer
    #: data; until then an admin may reopen it (issue 23, offboarding).
    "OFFBOARDING_GRACE_DAYS": 30,
    # HTTP ingress (issue 24): the largest delivery taken (413 above it), how far a
    # signed timestamp may be from now (stale, and the replay memory's window), the
    # deliveries per minute per mailbox, where SNS certificates may come from (https
    # hosts ending in this), a private CA for them (tests), SES's S3 endpoint and the
    # region its signed GETs name (credentials: SES_S3_ACCESS_KEY_ID and friends).
    "INBOUND_MAX_BYTES": 30 * 1024 * 1024,
    "INBOUND_MAX_AGE_SECONDS": 300,
    "INBOUND_RATE_LIMIT": "120 per minute",
    "SNS_CERT_HOST_SUFFIX": ".amazonaws.com",
    "SNS_CA_FILE": "",
    "SES_S3_ENDPOINT": "",
    "SES_S3_REGION": "us-east-1",
    "SES_S3_ACCESS_KEY_ID": "",
    "SES_S3_SECRET_ACCESS_KEY": "",
    "SES_S3_SESSION_TOKEN": "",
}

OAUTH_PROVIDERS = ("MICROSOFT", "GOOGLE")

SPAPI_REGIONS = ("NA", "EU", "FE")

#: The rate-limit counts in the app's own database (portal/ratelimit.py).
SHARED_RATELIMIT_STORAGE = "database://"


def complete_config(config: MutableMapping[str, Any]) -> None:
    """Fill the settings whose defaults follow from others: MAIL_FROM from INBOUND_DOMAIN,
    PUBLIC_URL from PORT (the address `make run` serves on)."""
    if not config.get("MAIL_FROM"):
        config["MAIL_FROM"] = f"Sellerdesk <no-reply@{config['INBOUND_DOMAIN']}>"
    if not config.get("PUBLIC_URL"):
        config["PUBLIC_URL"] = f"http://127.0.0.1:{config['PORT']}"
    # One form, so a link is the base plus an absolute path.
    config["PUBLIC_URL"] = config["PUBLIC_URL"].rstrip("/")


def mail_from_parts(value: str) -> tuple[str, str]:
    """MAIL_FROM (`Name <address>` or a bare address) as (display name, address)."""
    name, address = parseaddr(value)
    return name, address


def check_config(config: Mapping[str, Any]) -> None:
    """Fail early, with a readable message, on settings that would break later."""
    for key in ("SECRET_KEY", "TOKEN_KEY", "SQLALCHEMY_DATABASE_URI"):
        if not config.get(key):
            raise ConfigError(f"{key} is not configured")
    try:
        Fernet(config["TOKEN_KEY"])
    except (ValueError, TypeError):
        raise ConfigError(
            "TOKEN_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes). "
            'Generate one with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"'
        ) from None
    _check_system_mail(config)


def _check_system_mail(config: Mapping[str, Any]) -> None:
    # The worker builds system mail's links and sender from these: a bad value would
    # otherwise surface only as mail that never arrives.
    if "MAIL_FROM" in config:
        name, address = mail_from_parts(config["MAIL_FROM"])
        if "@" not in address or any(c in config["MAIL_FROM"] for c in "\r\n"):
            raise ConfigError(
                f"MAIL_FROM must be an address, optionally with a name: "
                f"'Sellerdesk <no-reply@example.com>', got {config['MAIL_FROM']!r}"
            )
    if "PUBLIC_URL" in config:
        parts = urlsplit(config["PUBLIC_URL"])
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ConfigError(
                "PUBLIC_URL must be the portal's external base URL, e.g. "
                f"https://desk.example.com, got {config['PUBLIC_URL']!r}"
            )
