"""Who has a thread open, and whether they are writing: one row per user and thread,
renewed by the page's heartbeat and ignored once older than the presence window."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.sqltypes import UTCDateTime


class ThreadPresence(db.Model):
    __tablename__ = "thread_presence"

    thread_id: Mapped[int] = mapped_column(
        ForeignKey("threads.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    is_writing: Mapped[bool] = mapped_column(default=False)
