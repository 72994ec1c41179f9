"""Operator settings kept in the database, falling back to the configuration.

Admins edit these on /admin/settings. A missing row means the configured default
(environment variable, else the built-in default) applies, so a fresh install
works before anyone opens the settings page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portal.extensions import db
from portal.marketplaces import MARKETPLACES
from portal.models import Setting, User
from portal.services.audit import record_event

DEVELOPER_NAME_KEY = "amazon_developer_name"
DEVELOPER_ACCOUNTS_KEY = "amazon_developer_accounts"
REGIONS = ("NA", "EU", "FE")
DEVELOPER_NAME_MAX_LENGTH = 100

# ASCII digits only: `\d` and str.isdigit() also take ١٢ or full-width １２, which no
# Seller Central page shows.
_ACCOUNT_NUMBER = re.compile(r"[0-9]{4}-[0-9]{4}-[0-9]{4}")
_ACCOUNT_KEYS = set(REGIONS) | {m.code for m in MARKETPLACES}


class SettingsError(ValueError):
    """A setting value that cannot be saved; the message is shown beside the field."""


@dataclass(frozen=True)
class DeveloperSettings:
    name: str
    #: Region (NA, EU, FE) or marketplace code -> account number; a marketplace wins.
    accounts: dict[str, str]
    #: True while no admin has saved the value, i.e. the configuration applies.
    name_is_default: bool
    accounts_is_default: bool


def get_setting(key: str, default: Any = None) -> Any:
    """The stored value of `key`, or `default` when no admin has set it."""
    setting = db.session.get(Setting, key)
    return default if setting is None else setting.value


def set_setting(key: str, value: Any, *, actor: User | None) -> bool:
    """Store `value` under `key`, audited; False when it was already the stored value."""
    setting = db.session.get(Setting, key)
    previous = None if setting is None else setting.value
    if setting is not None and previous == value:
        return False
    if setting is None:
        setting = Setting(key=key, value=value)
        db.session.add(setting)
    else:
        setting.value = value
    db.session.flush()
    record_event(
        "setting.changed", actor=actor, details={"key": key, "from": previous, "to": value}
    )
    return True


def clear_setting(key: str, *, actor: User | None) -> bool:
    """Remove `key` so the configured default applies again; False when it was not set."""
    setting = db.session.get(Setting, key)
    if setting is None:
        return False
    previous = setting.value
    db.session.delete(setting)
    db.session.flush()
    record_event(
        "setting.reset", actor=actor, details={"key": key, "from": previous, "to": "default"}
    )
    return True


def clean_account_number(raw: str | None) -> str:
    """`0873-6813-5448` from what an admin typed; "" means "not known"."""
    value = re.sub(r"[\s-]+", "", raw or "")
    if not value:
        return ""
    if len(value) == 12 and value.isascii() and value.isdigit():
        value = f"{value[:4]}-{value[4:8]}-{value[8:]}"
    if not _ACCOUNT_NUMBER.fullmatch(value):
        raise SettingsError(
            "A developer account number has 12 digits, written like 0873-6813-5448. "
            "Leave it empty when no number is known."
        )
    return value


def clean_developer_name(raw: str | None) -> str:
    value = " ".join((raw or "").split())
    if not value:
        raise SettingsError("Enter the developer name sellers authorise in Seller Central.")
    if len(value) > DEVELOPER_NAME_MAX_LENGTH:
        raise SettingsError(f"At most {DEVELOPER_NAME_MAX_LENGTH} characters.")
    return value


def developer_settings(config: Mapping[str, Any]) -> DeveloperSettings:
    """The developer sellers authorise: the admins' settings, else the configuration."""
    name = get_setting(DEVELOPER_NAME_KEY)
    accounts = get_setting(DEVELOPER_ACCOUNTS_KEY)
    return DeveloperSettings(
        name=name if isinstance(name, str) and name else config["AMAZON_DEVELOPER_NAME"],
        accounts=dict(accounts)
        if isinstance(accounts, dict)
        else dict(config["AMAZON_DEVELOPER_ACCOUNTS"]),
        name_is_default=not isinstance(name, str) or not name,
        accounts_is_default=not isinstance(accounts, dict),
    )


def update_developer_settings(
    *, name: str, accounts: Mapping[str, str | None], actor: User | None
) -> list[str]:
    """Validate and store the developer name and numbers; returns the keys that changed.

    `accounts` maps a region or marketplace code to a number; empty values are left
    out (for a region: no number known; for a marketplace: the region's applies).
    """
    unknown = set(accounts) - _ACCOUNT_KEYS
    if unknown:
        raise SettingsError(f"Unknown region or marketplace: {', '.join(sorted(unknown))}.")
    cleaned = {key: clean_account_number(value) for key, value in accounts.items()}
    stored = {key: value for key, value in sorted(cleaned.items()) if value}
    changed = []
    if set_setting(DEVELOPER_NAME_KEY, clean_developer_name(name), actor=actor):
        changed.append(DEVELOPER_NAME_KEY)
    if set_setting(DEVELOPER_ACCOUNTS_KEY, stored, actor=actor):
        changed.append(DEVELOPER_ACCOUNTS_KEY)
    return changed


def reset_developer_settings(*, actor: User | None) -> list[str]:
    """Forget the admins' developer settings so the configuration applies again."""
    return [
        key
        for key in (DEVELOPER_NAME_KEY, DEVELOPER_ACCOUNTS_KEY)
        if clear_setting(key, actor=actor)
    ]


RAW_RETENTION_KEY = "retention_raw_days"
TEXT_RETENTION_KEY = "retention_text_days"
#: Ten years: a longer period is a typo, not a policy.
MAX_RETENTION_DAYS = 3650


@dataclass(frozen=True)
class RetentionSettings:
    """Days after a thread is closed that its raw mail and attachments, and its texts,
    are kept (services/buyer_data.py); each the admins' value or the configuration's."""

    raw_days: int
    text_days: int
    raw_is_default: bool
    text_is_default: bool


def retention_settings(config: Mapping[str, Any]) -> RetentionSettings:
    """The retention periods in force: the admins' settings, else RAW_/TEXT_RETENTION_DAYS."""
    raw = get_setting(RAW_RETENTION_KEY)
    text = get_setting(TEXT_RETENTION_KEY)
    raw_ok = isinstance(raw, int) and raw >= 1
    text_ok = isinstance(text, int) and text >= 1
    return RetentionSettings(
        raw_days=raw if raw_ok else config["RAW_RETENTION_DAYS"],
        text_days=text if text_ok else config["TEXT_RETENTION_DAYS"],
        raw_is_default=not raw_ok,
        text_is_default=not text_ok,
    )


def _clean_days(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_RETENTION_DAYS:
        raise SettingsError(f"Between 1 and {MAX_RETENTION_DAYS} days, or empty for the default.")
    return value


def update_retention_settings(
    *, raw_days: int | None, text_days: int | None, actor: User | None
) -> list[str]:
    """Store the retention periods (None: the configured default applies), audited;
    returns the keys that changed."""
    changed = []
    for key, value in ((RAW_RETENTION_KEY, raw_days), (TEXT_RETENTION_KEY, text_days)):
        value = _clean_days(value)
        if value is None:
            if clear_setting(key, actor=actor):
                changed.append(key)
        elif set_setting(key, value, actor=actor):
            changed.append(key)
    return changed
