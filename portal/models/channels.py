"""Channels (one Amazon marketplace store of an organisation) and their credentials."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.marketplaces import Marketplace, get_marketplace
from portal.sqltypes import UTCDateTime, str_enum, utcnow

if TYPE_CHECKING:
    from portal.models.organisations import Organisation
    from portal.models.users import User


class ChannelStatus(enum.StrEnum):
    AWAITING_TOKEN = "awaiting_token"  # noqa: S105 (a status, not a secret)
    PENDING_VERIFICATION = "pending_verification"
    ACTIVE = "active"
    DISABLED = "disabled"


class CredentialKind(enum.StrEnum):
    MWS_TOKEN = "mws_token"  # noqa: S105 (a kind, not a secret)
    SPAPI_REFRESH_TOKEN = "spapi_refresh_token"  # noqa: S105 (a kind, not a secret)


class Channel(db.Model):
    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("organisation_id", "marketplace"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    #: Short marketplace code from the catalogue, e.g. "UK", "DE", "US".
    marketplace: Mapped[str] = mapped_column(String(8))
    helpdesk_address: Mapped[str] = mapped_column(String(254), unique=True)
    status: Mapped[ChannelStatus] = mapped_column(
        str_enum(ChannelStatus), default=ChannelStatus.AWAITING_TOKEN, index=True
    )
    #: Why the channel is in its status (shown to the seller), e.g. an admin's reason.
    status_reason: Mapped[str] = mapped_column(Text, default="")
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Amazon refused the channel's SP-API authorisation (withdrawn in Seller Central):
    #: shown beside the status, which it does not change; cleared by a new authorisation.
    is_amazon_authorisation_needed: Mapped[bool] = mapped_column(default=False)
    is_professional_confirmed: Mapped[bool] = mapped_column(default=False)
    forwarding_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_sender_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set by ingestion: proof that Amazon forwards this channel's mail to us.
    first_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the owners were mailed that forwarding went silent, or that Amazon's
    #: authorisation was lost; cleared when that ends, so each alert goes once.
    silence_alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    authorisation_alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organisation: Mapped[Organisation] = relationship(back_populates="channels")
    credential: Mapped[Credential | None] = relationship(
        back_populates="channel", cascade="all, delete-orphan", uselist=False
    )
    aliases: Mapped[list[ChannelAlias]] = relationship(
        back_populates="channel", cascade="all, delete-orphan", order_by="ChannelAlias.id"
    )

    @property
    def marketplace_info(self) -> Marketplace:
        marketplace = get_marketplace(self.marketplace)
        if marketplace is None:  # only a hand-edited row can get here
            raise LookupError(f"unknown marketplace {self.marketplace!r}")
        return marketplace

    @property
    def is_token_on_file(self) -> bool:
        return self.credential is not None

    def __repr__(self) -> str:
        return f"<Channel {self.id} {self.marketplace} {self.helpdesk_address}>"


class Credential(db.Model):
    """The one Amazon credential on file for a channel; replaced, never kept twice."""

    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), unique=True
    )
    kind: Mapped[CredentialKind] = mapped_column(str_enum(CredentialKind))
    seller_id: Mapped[str] = mapped_column(String(32))
    #: Fernet ciphertext under TOKEN_KEY; the plaintext never touches the database.
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    #: Masked form shown to people, e.g. "amzn.mws.…3f2a".
    secret_hint: Mapped[str] = mapped_column(String(40))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    channel: Mapped[Channel] = relationship(back_populates="credential")
    submitted_by: Mapped[User | None] = relationship()


class ChannelAlias(db.Model):
    """A former helpdesk address that still routes to its channel until `expires_at`.

    When an admin changes a channel's address, sellers need time to update Seller
    Central; mail to the old address must not become unrouted meanwhile.
    """

    __tablename__ = "channel_aliases"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str] = mapped_column(String(254), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    channel: Mapped[Channel] = relationship(back_populates="aliases")
