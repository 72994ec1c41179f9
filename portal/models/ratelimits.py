"""Rate-limit counters shared by every web worker (portal/ratelimit.py writes them)."""

from __future__ import annotations

from sqlalchemy import Double, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db

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
