"""Encryption of stored secrets (seller tokens, mailbox passwords) under TOKEN_KEY."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app


class SecretUnreadable(RuntimeError):
    """A stored secret cannot be decrypted with the configured TOKEN_KEY."""


def _fernet(key: str | None = None) -> Fernet:
    return Fernet(key or current_app.config["TOKEN_KEY"])


def encrypt_secret(plaintext: str, *, key: str | None = None) -> bytes:
    return _fernet(key).encrypt(plaintext.encode("utf-8"))


def decrypt_secret(ciphertext: bytes, *, key: str | None = None) -> str:
    try:
        return _fernet(key).decrypt(bytes(ciphertext)).decode("utf-8")
    except InvalidToken:
        raise SecretUnreadable(
            "a stored secret cannot be decrypted: TOKEN_KEY differs from the key it was stored with"
        ) from None


def mask_secret(value: str, *, keep: int = 4) -> str:
    """Enough of a secret to recognise it, e.g. "amzn.mws.…3f2a"."""
    prefix = "amzn.mws." if value.startswith("amzn.mws.") else value[:2]
    return f"{prefix}…{value[-keep:]}"
