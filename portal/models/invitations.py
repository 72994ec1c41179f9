"""Invitations: a link mailed to someone to join as a colleague (owner or member of an
organisation) or as staff (agent or admin)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.users import OrgRole, Role
from portal.sqltypes import UTCDateTime, str_enum, utcnow

if TYPE_CHECKING:
    from portal.models.organisations import Organisation
    from portal.models.users import User


class Invitation(db.Model):
    """One invitation; its link works once, until `expires_at`, unless revoked."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    role: Mapped[Role] = mapped_column(str_enum(Role, 16))
    #: Sellers only: the organisation they join, and as what.
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    org_role: Mapped[OrgRole | None] = mapped_column(str_enum(OrgRole, 16))
    #: SHA-256 (hex) of the token in the link; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    organisation: Mapped[Organisation | None] = relationship()
    invited_by: Mapped[User | None] = relationship()

    def is_open(self, now: datetime) -> bool:
        """Not accepted, not revoked, not expired: its link still works."""
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now

    def __repr__(self) -> str:
        return f"<Invitation {self.id} {self.email} {self.role}>"
