"""The second factor's rows besides the user's own TOTP columns: recovery codes and
browsers trusted to skip the code (portal/services/two_factor.py writes them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.sqltypes import UTCDateTime, utcnow


class RecoveryCode(db.Model):
    """One single-use recovery code of a user; only its SHA-256 is kept."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<RecoveryCode {self.id} of user {self.user_id}>"


class TrustedBrowser(db.Model):
    """A browser whose signed cookie lets `user` skip the code until `expires_at`;
    deleting the row revokes the cookie, whoever holds a copy."""

    __tablename__ = "trusted_browsers"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: SHA-256 (hex) of the token inside the cookie.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<TrustedBrowser {self.id} of user {self.user_id}>"


class Passkey(db.Model):
    """A WebAuthn credential of a user (a passkey): a second factor, and a password-less
    sign-in. Only public material is kept: the authenticator holds the private key."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: The user's name for it ("Work laptop"), unique per user.
    name: Mapped[str] = mapped_column(String(80))
    #: The credential ID the authenticator chose (its rawId).
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    #: COSE public key, as the registration returned it.
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    #: The authenticator's signature counter: one that goes back reveals a cloned key.
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    #: How the browser may reach it ("internal,hybrid"), offered back at sign-in.
    transports: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("user_id", "name"),)

    def __repr__(self) -> str:
        return f"<Passkey {self.id} of user {self.user_id}>"
