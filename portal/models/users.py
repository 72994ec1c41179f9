"""Users and their roles."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING

from flask_login import UserMixin
from sqlalchemy import BigInteger, Date, ForeignKey, LargeBinary, String, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.organisations import agent_assignments
from portal.sqltypes import UTCDateTime, str_enum, utcnow

if TYPE_CHECKING:
    from portal.models.organisations import Organisation


class Role(enum.StrEnum):
    ADMIN = "admin"  # runs the service for every seller
    AGENT = "agent"  # answers threads of the organisations assigned to them
    SELLER = "seller"  # a seller business's own user, sees only their organisation


class OrgRole(enum.StrEnum):
    """A seller user's place in their organisation."""

    OWNER = "owner"  # also manages channels, tokens, Amazon authorisation, members, settings
    MEMBER = "member"  # works the threads and reads the channels


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(str_enum(Role, 16), index=True)
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    #: Sellers only (None for agents and admins).
    org_role: Mapped[OrgRole | None] = mapped_column(str_enum(OrgRole, 16))
    is_active: Mapped[bool] = mapped_column(default=True)
    must_change_password: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: IANA name (Europe/Berlin) the user reads times in; None until known (UTC
    #: meanwhile): the browser's, taken at the first login, then the user's choice.
    time_zone: Mapped[str | None] = mapped_column(String(64))
    #: TOTP (RFC 6238): the base32 secret, encrypted under TOKEN_KEY like every stored
    #: secret, set once a code confirmed it (enrolment, or `users totp`); None: no
    #: authenticator app. The last time step a code was accepted for, so that no code
    #: works twice (portal/services/two_factor.py reads and writes both).
    totp_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: E-mail alerts the user wants (portal/services/alerts.py; chosen on /account):
    #: a thread assigned to them by someone else, one of theirs 2 hours before Amazon's
    #: deadline, a daily digest (sent once a day, on `digest_sent_on` in their zone).
    #: Server defaults only: migrations' tests insert users by Core.
    alert_assigned: Mapped[bool] = mapped_column(server_default=true())
    alert_deadline: Mapped[bool] = mapped_column(server_default=true())
    alert_digest: Mapped[bool] = mapped_column(server_default=false())
    digest_sent_on: Mapped[date | None] = mapped_column(Date)
    #: Browser notifications (portal/services/notifications.py; opted into on /account)
    #: and how far they were given: each event goes to one of the user's tabs, once.
    browser_notifications: Mapped[bool] = mapped_column(server_default=false())
    notified_through: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_counter: Mapped[int | None] = mapped_column(BigInteger)

    organisation: Mapped[Organisation | None] = relationship(
        back_populates="members", foreign_keys=[organisation_id]
    )
    assigned_organisations: Mapped[list[Organisation]] = relationship(
        secondary=agent_assignments, back_populates="agents", order_by="Organisation.name"
    )

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_owner(self) -> bool:
        return self.role == Role.SELLER and self.org_role == OrgRole.OWNER

    @property
    def display_name(self) -> str:
        return self.name or self.email

    #: The sign-in (a UserSession) this object stands for in the current request, and the
    #: token naming it in the cookies: set by portal/services/sessions.py, not columns.
    current_session = None
    session_ref = None

    def get_id(self) -> str:
        # What flask-login keeps in the session and the remember-me cookie: the token of one
        # server-side sign-in, so logging out (deleting that row) ends every copy of those
        # cookies, and a password change or reset, which deletes them all, ends every one.
        if self.session_ref is None:
            raise RuntimeError(f"{self!r} has no sign-in: start one with services.sessions")
        return self.session_ref

    # UserMixin compares users by get_id(), which is a sign-in here, not the user.
    def __eq__(self, other: object) -> bool:
        if isinstance(other, User):
            return self is other or (self.id is not None and self.id == other.id)
        return NotImplemented

    __hash__ = object.__hash__  # defining __eq__ would unset it

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role}>"
