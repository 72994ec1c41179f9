"""`flask keys rotate`: every stored secret re-encrypted under a new TOKEN_KEY, all or nothing."""

from __future__ import annotations

import uuid

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from portal.crypto import decrypt_secret, encrypt_secret
from portal.extensions import db
from portal.models import Credential, Mailbox, Order, Role, User
from portal.services import channels as channel_service
from portal.services import http_ingress, two_factor
from portal.services import mailboxes as mailbox_service
from portal.sqltypes import utcnow

MAILBOX_PASSWORD = "imap-Pässwort:1"
OAUTH_REFRESH_TOKEN = "rt-M365-refresh-0001"
OAUTH_ACCESS_TOKEN = "at-M365-access-0001"


@pytest.fixture
def secrets(app, make_channel, make_user):
    """Two channel tokens, an IMAP mailbox password, a Maildir mailbox with none, an OAuth
    mailbox's refresh and access tokens, and an agent's TOTP secret."""
    tokens = {}
    for marketplace in ("UK", "DE"):
        channel = make_channel(marketplace)
        token = f"amzn.mws.{uuid.uuid4()}"
        channel_service.submit_mws_token(
            channel, seller_id="A1B2C3D4E5F6G7", token=token, actor=None
        )
        tokens[channel.id] = token
    mailbox_service.sync_configured_mailbox(
        f"imap://buyers%40example.com:{MAILBOX_PASSWORD}@imap.example.com:993/INBOX"
    )
    db.session.add(Mailbox(name="local", source_url="maildir:/tmp/none"))
    tokens["signing"] = http_ingress.create_http_mailbox(
        actor=None, name="posted", provider="generic"
    ).signing_key
    db.session.add(
        Mailbox(
            name="m365",
            source_url="imaps://shop%40example.com@outlook.office365.com:993/INBOX",
            oauth_provider="microsoft",
            oauth_refresh_token_encrypted=encrypt_secret(OAUTH_REFRESH_TOKEN),
            oauth_access_token_encrypted=encrypt_secret(OAUTH_ACCESS_TOKEN),
        )
    )
    agent = make_user(Role.AGENT)
    tokens["totp"] = two_factor.provision_totp(agent, now=utcnow(), actor=None)
    tokens["order"] = '{"buyer_name": "James Wilson", "ship_to": []}'
    db.session.add(
        Order(
            channel_id=channel.id,
            order_id="202-1234567-8901234",
            pii_encrypted=encrypt_secret(tokens["order"]),
        )
    )
    db.session.commit()
    return tokens


def _ciphertexts() -> dict[str, bytes]:
    rows = {
        f"credential {c.id}": c.secret_encrypted for c in db.session.scalars(select(Credential))
    }
    for m in db.session.scalars(select(Mailbox)):
        if m.signing_key_encrypted is not None:
            rows[f"signing key {m.name}"] = m.signing_key_encrypted
        if m.oauth_provider:
            rows[f"mailbox token {m.name} refresh"] = m.oauth_refresh_token_encrypted
            rows[f"mailbox token {m.name} access"] = m.oauth_access_token_encrypted
        else:
            rows[f"mailbox {m.name}"] = m.password_encrypted
    for u in db.session.scalars(select(User).where(User.totp_secret_encrypted.is_not(None))):
        rows[f"user {u.id}"] = u.totp_secret_encrypted
    for o in db.session.scalars(select(Order)):
        rows[f"order {o.id}"] = o.pii_encrypted
    return rows


def _assert_readable_with(key: str, tokens: dict[int, str]) -> None:
    db.session.expire_all()
    for credential in db.session.scalars(select(Credential)):
        assert decrypt_secret(credential.secret_encrypted, key=key) == tokens[credential.channel_id]
    mailbox = db.session.scalar(select(Mailbox).where(Mailbox.name == "default"))
    assert decrypt_secret(mailbox.password_encrypted, key=key) == MAILBOX_PASSWORD
    m365 = db.session.scalar(select(Mailbox).where(Mailbox.name == "m365"))
    assert decrypt_secret(m365.oauth_refresh_token_encrypted, key=key) == OAUTH_REFRESH_TOKEN
    assert decrypt_secret(m365.oauth_access_token_encrypted, key=key) == OAUTH_ACCESS_TOKEN
    agent = db.session.scalar(select(User).where(User.totp_secret_encrypted.is_not(None)))
    assert decrypt_secret(agent.totp_secret_encrypted, key=key) == tokens["totp"]
    order = db.session.scalar(select(Order))
    assert decrypt_secret(order.pii_encrypted, key=key) == tokens["order"]
    posted = db.session.scalar(select(Mailbox).where(Mailbox.name == "posted"))
    assert decrypt_secret(posted.signing_key_encrypted, key=key) == tokens["signing"]


def test_rotate_re_encrypts_every_secret_and_the_app_reads_them_with_the_new_key(
    app, runner, secrets
):
    old_key, new_key = app.config["TOKEN_KEY"], Fernet.generate_key().decode()
    result = runner.invoke(args=["keys", "rotate"], env={"NEW_TOKEN_KEY": new_key})
    assert result.exit_code == 0, result.output
    assert (
        "credentials: rotated=2 already=0; mailbox passwords: rotated=1 already=0; "
        "TOTP secrets: rotated=1 already=0; order buyer data: rotated=1 already=0; "
        "mailbox signing keys: rotated=1 already=0; "
        "mailbox OAuth tokens: rotated=2 already=0"
    ) in result.output
    assert "set TOKEN_KEY to the new key" in result.output
    assert new_key not in result.output and MAILBOX_PASSWORD not in result.output
    assert OAUTH_REFRESH_TOKEN not in result.output
    _assert_readable_with(new_key, secrets)
    for name, token in _ciphertexts().items():
        if token is not None:
            with pytest.raises(InvalidToken):
                Fernet(old_key).decrypt(token)
        else:
            assert name in ("mailbox local", "mailbox posted")

    # Step two of the procedure: the app now runs with TOKEN_KEY set to the new key.
    app.config["TOKEN_KEY"] = new_key
    mailbox = db.session.scalar(select(Mailbox).where(Mailbox.name == "default"))
    assert mailbox_service.source_settings(mailbox).password == MAILBOX_PASSWORD


def test_running_it_again_changes_nothing(app, runner, secrets):
    new_key = Fernet.generate_key().decode()
    assert runner.invoke(args=["keys", "rotate", "--new-key", new_key]).exit_code == 0
    before = _ciphertexts()
    result = runner.invoke(args=["keys", "rotate", "--new-key", new_key])
    assert result.exit_code == 0, result.output
    assert (
        "credentials: rotated=0 already=2; mailbox passwords: rotated=0 already=1; "
        "TOTP secrets: rotated=0 already=1; order buyer data: rotated=0 already=1; "
        "mailbox signing keys: rotated=0 already=1; "
        "mailbox OAuth tokens: rotated=0 already=2"
    ) in result.output
    db.session.expire_all()
    assert _ciphertexts() == before


def test_a_secret_neither_key_opens_stops_it_before_anything_changes(app, runner, secrets):
    stray = db.session.scalars(select(Credential).order_by(Credential.id)).all()[-1]
    stray.secret_encrypted = encrypt_secret("amzn.mws.x", key=Fernet.generate_key().decode())
    db.session.commit()
    before = _ciphertexts()
    result = runner.invoke(
        args=["keys", "rotate"], env={"NEW_TOKEN_KEY": Fernet.generate_key().decode()}
    )
    assert result.exit_code == 1
    assert f"credential {stray.id}" in result.output
    assert "nothing was changed" in result.output
    db.session.expire_all()
    assert _ciphertexts() == before


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({}, [], "Give the new key in NEW_TOKEN_KEY"),
        ({"NEW_TOKEN_KEY": "not-a-key"}, [], "the new key is not a valid Fernet key"),
        ({}, ["--new-key", "short"], "the new key is not a valid Fernet key"),
        ({"NEW_TOKEN_KEY": "CURRENT"}, [], "the new key is the current TOKEN_KEY"),
    ],
)
def test_bad_new_keys_are_refused(app, runner, secrets, env, args, message):
    env = {k: (app.config["TOKEN_KEY"] if v == "CURRENT" else v) for k, v in env.items()}
    env.setdefault("NEW_TOKEN_KEY", "")
    before = _ciphertexts()
    result = runner.invoke(args=["keys", "rotate", *args], env=env)
    assert result.exit_code == 1, result.output
    assert message in result.output
    db.session.expire_all()
    assert _ciphertexts() == before


def test_with_no_secrets_stored_it_reports_zero(app, runner):
    result = runner.invoke(
        args=["keys", "rotate"], env={"NEW_TOKEN_KEY": Fernet.generate_key().decode()}
    )
    assert result.exit_code == 0, result.output
    assert (
        "credentials: rotated=0 already=0; mailbox passwords: rotated=0 already=0; "
        "TOTP secrets: rotated=0 already=0; order buyer data: rotated=0 already=0"
    ) in result.output


def test_a_failure_half_way_leaves_every_secret_under_the_old_key(
    app, runner, secrets, monkeypatch
):
    real_encrypt = Fernet.encrypt
    calls = []

    def encrypt_then_fail(self, data):
        calls.append(data)
        if len(calls) == 2:
            raise OSError("disk full, say")
        return real_encrypt(self, data)

    before = _ciphertexts()
    monkeypatch.setattr(Fernet, "encrypt", encrypt_then_fail)
    result = runner.invoke(
        args=["keys", "rotate"], env={"NEW_TOKEN_KEY": Fernet.generate_key().decode()}
    )
    monkeypatch.undo()
    assert result.exit_code == 1 and isinstance(result.exception, OSError)
    db.session.expire_all()
    assert _ciphertexts() == before
    _assert_readable_with(app.config["TOKEN_KEY"], secrets)
