"""Rate-limit counters and per-account login lockouts, shared by every web worker
(portal/ratelimit.py and portal/services/lockout.py write them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Double, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.sqltypes import UTCDateTime

#: Longer keys are shortened with a hash (portal/ratelimit.py): the client's address is in
#: the key, and behind a misconfigured proxy that is whatever a client sends.
KEY_LENGTH = 200


class RateLimitCounter(db.Model):
    """One fixed window of one limit for one client: its hits and when the window ends."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    #: Seconds since the epoch (time.time()), as the `limits` package counts.
    expires_at: Mapped[float] = mapped_column(Double)

    def __repr__(self) -> str:
        return f"<RateLimitCounter {self.key} {self.hits}>"


class LoginLockout(db.Model):
    """Failed logins for one e-mail address, whether or not it has an account (so the
    lockout reveals nothing), and until when its logins are refused."""

    __tablename__ = "login_lockouts"

    #: SHA-256 of the normalised address: the addresses people mistype are not kept.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<LoginLockout {self.key[:8]} {self.failures}>"
