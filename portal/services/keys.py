"""TOKEN_KEY rotation: re-encrypt every stored secret under a new key."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from portal.extensions import db
from portal.models import Credential, Mailbox, Order, User

log = logging.getLogger(__name__)


class KeyRotationError(RuntimeError):
    """Rotation is refused; nothing was changed. The message says why."""


@dataclass
class RotationCount:
    rotated: int = 0
    #: Already under the new key (a repeated run): left as they are.
    already: int = 0


@dataclass
class RotationSummary:
    credentials: RotationCount = field(default_factory=RotationCount)
    mailboxes: RotationCount = field(default_factory=RotationCount)
    totp: RotationCount = field(default_factory=RotationCount)
    orders: RotationCount = field(default_factory=RotationCount)
    signing_keys: RotationCount = field(default_factory=RotationCount)
    #: Refresh and access tokens of OAuth mailboxes (one count per token).
    mailbox_tokens: RotationCount = field(default_factory=RotationCount)

    def line(self) -> str:
        c, m, t, o = self.credentials, self.mailboxes, self.totp, self.orders
        k = self.mailbox_tokens
        return (
            f"credentials: rotated={c.rotated} already={c.already}; "
            f"mailbox passwords: rotated={m.rotated} already={m.already}; "
            f"TOTP secrets: rotated={t.rotated} already={t.already}; "
            f"order buyer data: rotated={o.rotated} already={o.already}; "
            f"mailbox signing keys: rotated={self.signing_keys.rotated} "
            f"already={self.signing_keys.already}; "
            f"mailbox OAuth tokens: rotated={k.rotated} already={k.already}"
        )


def _fernet(key: str, what: str) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise KeyRotationError(
            f"{what} is not a valid Fernet key (32 url-safe base64-encoded bytes)"
        ) from None


def rotate_token_key(*, old_key: str, new_key: str) -> RotationSummary:
    """Re-encrypt Credential.secret_encrypted, Mailbox.password_encrypted (with the HTTP
    mailboxes' signing keys and the OAuth mailboxes' tokens), User.totp_secret_encrypted
    and Order.pii_encrypted from `old_key` to `new_key`
    (flushed, not committed: the caller commits once, for all of them).

    Every secret is decrypted first; if any cannot be read with either key, nothing is
    changed and KeyRotationError names the rows (never their contents). A secret that
    already opens with the new key is left alone, so running it twice is harmless.
    """
    old, new = _fernet(old_key, "the current TOKEN_KEY"), _fernet(new_key, "the new key")
    if old_key.strip() == new_key.strip():
        raise KeyRotationError("the new key is the current TOKEN_KEY")
    # Locked (on PostgreSQL) so that nothing re-writes a secret under the old key meanwhile.
    credentials = db.session.scalars(
        select(Credential).order_by(Credential.id).with_for_update()
    ).all()
    mailboxes = db.session.scalars(
        select(Mailbox)
        .where(
            Mailbox.password_encrypted.is_not(None)
            | Mailbox.oauth_refresh_token_encrypted.is_not(None)
            | Mailbox.oauth_access_token_encrypted.is_not(None)
        )
        .order_by(Mailbox.id)
        .with_for_update()
    ).all()
    users = db.session.scalars(
        select(User)
        .where(User.totp_secret_encrypted.is_not(None))
        .order_by(User.id)
        .with_for_update(of=User)
    ).all()
    orders = db.session.scalars(
        select(Order).where(Order.pii_encrypted.is_not(None)).order_by(Order.id).with_for_update()
    ).all()
    signing = db.session.scalars(
        select(Mailbox)
        .where(Mailbox.signing_key_encrypted.is_not(None))
        .order_by(Mailbox.id)
        .with_for_update()
    ).all()
    rows = (
        [("credential", c, "secret_encrypted") for c in credentials]
        + [("mailbox", m, "password_encrypted") for m in mailboxes if m.password_encrypted]
        + [
            ("mailbox_token", m, attribute)
            for m in mailboxes
            for attribute in ("oauth_refresh_token_encrypted", "oauth_access_token_encrypted")
            if getattr(m, attribute) is not None
        ]
        + [("user", u, "totp_secret_encrypted") for u in users]
        + [("order", o, "pii_encrypted") for o in orders]
        + [("signing key of mailbox", m, "signing_key_encrypted") for m in signing]
    )

    plaintexts: list[bytes | None] = []  # None: already under the new key
    unreadable: list[str] = []
    for kind, row, attribute in rows:
        token = bytes(getattr(row, attribute))
        try:
            new.decrypt(token)
        except InvalidToken:
            pass
        else:
            plaintexts.append(None)
            continue
        try:
            plaintexts.append(old.decrypt(token))
        except InvalidToken:
            plaintexts.append(None)
            unreadable.append(f"{kind} {row.id}")
    if unreadable:
        raise KeyRotationError(
            "these secrets open with neither the current nor the new key, so nothing was "
            f"changed: {', '.join(unreadable)}"
        )

    summary = RotationSummary()
    counts = {
        "credential": summary.credentials,
        "mailbox": summary.mailboxes,
        "mailbox_token": summary.mailbox_tokens,
        "user": summary.totp,
        "order": summary.orders,
        "signing key of mailbox": summary.signing_keys,
    }
    for (kind, row, attribute), plaintext in zip(rows, plaintexts, strict=True):
        count = counts[kind]
        if plaintext is None:
            count.already += 1
            continue
        setattr(row, attribute, new.encrypt(plaintext))
        count.rotated += 1
    db.session.flush()
    log.warning("Re-encrypted stored secrets under a new TOKEN_KEY: %s", summary.line())
    return summary
