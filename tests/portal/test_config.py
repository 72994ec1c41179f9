"""Configuration from the environment: each default is written once (config.DEFAULTS)."""

from __future__ import annotations

import pytest

from portal.config import DEFAULTS, ConfigError, config_from_env


@pytest.fixture
def bare_environment(monkeypatch):
    for name in (*DEFAULTS, "SELLERDESK_ENV", "SECRET_KEY", "TOKEN_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_unset_variables_take_the_defaults(bare_environment, tmp_path):
    config = config_from_env(str(tmp_path))
    shared = config.keys() & DEFAULTS.keys()
    assert {"POLL_SECONDS", "IMAP_IDLE", "INBOUND_DOMAIN", "AMAZON_DEVELOPER_ACCOUNTS"} <= shared
    assert {name: config[name] for name in shared} == {name: DEFAULTS[name] for name in shared}


def test_empty_numbers_and_flags_take_the_defaults_and_set_ones_win(bare_environment, tmp_path):
    bare_environment.setenv("POLL_SECONDS", "")
    bare_environment.setenv("IMAP_IDLE", "")
    bare_environment.setenv("OUTBOX_SECONDS", "7")
    bare_environment.setenv("INBOUND_DOMAIN", "Help.Example.COM")
    config = config_from_env(str(tmp_path))
    assert (config["POLL_SECONDS"], config["IMAP_IDLE"]) == (60, True)
    assert (config["OUTBOX_SECONDS"], config["INBOUND_DOMAIN"]) == (7, "help.example.com")


@pytest.mark.parametrize(("name", "value"), [("PORT", "eighty"), ("IMAP_IDLE", "maybe")])
def test_malformed_values_say_which_variable(bare_environment, tmp_path, name, value):
    bare_environment.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        config_from_env(str(tmp_path))


def test_mail_from_and_public_url_follow_inbound_domain_and_port(bare_environment, tmp_path):
    from portal import create_app

    bare_environment.setenv("INBOUND_DOMAIN", "help.example.com")
    bare_environment.setenv("PORT", "8080")
    bare_environment.setenv("SECRET_KEY", "x")
    config = config_from_env(str(tmp_path))
    app = create_app({**config, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["MAIL_FROM"] == "Sellerdesk <no-reply@help.example.com>"
    assert app.config["PUBLIC_URL"] == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAIL_FROM", "Sellerdesk"),
        ("PUBLIC_URL", "desk.example.com"),
        ("PUBLIC_URL", "ftp://desk.example.com"),
    ],
)
def test_malformed_system_mail_settings_say_which(bare_environment, tmp_path, name, value):
    from portal import create_app

    bare_environment.setenv(name, value)
    config = config_from_env(str(tmp_path))
    with pytest.raises(ConfigError, match=name):
        create_app({**config, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
