"""Sign-ins kept on the server, and the "Authorise with Amazon" states started in them.

The session and remember-me cookies name a UserSession by a random token of which only
the hash is stored here (portal/services/sessions.py): deleting the row ends every copy
of those cookies, however long the browser keeps them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.sqltypes import UTCDateTime, utcnow

if TYPE_CHECKING:
    from portal.models.users import User


class UserSession(db.Model):
    """One sign-in of a user (one browser); it ends when the row is deleted or expires."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: SHA-256 (hex) of the token the cookies carry; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Moved on by requests at most once a minute (services/sessions.py, note_activity).
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Remembered: the remember-me cookie's end. Otherwise: last seen + the idle limit.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: The client's address when last seen (IPv6 is at most 45 characters as text).
    ip_address: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    is_remembered: Mapped[bool] = mapped_column(default=False)

    user: Mapped[User] = relationship()

    def __repr__(self) -> str:
        return f"<UserSession {self.id} of user {self.user_id}>"


class SpapiState(db.Model):
    """A started "Authorise with Amazon": its `state` works once, in the session that began it."""

    __tablename__ = "spapi_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_session_id: Mapped[int] = mapped_column(
        ForeignKey("user_sessions.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    #: SHA-256 (hex) of the state sent to Amazon.
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user_session: Mapped[UserSession] = relationship()
