"""Organisations (one seller business each) and agents' assignments to them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Column, ForeignKey, String, Table, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.sqltypes import UTCDateTime, utcnow

if TYPE_CHECKING:
    from portal.models.channels import Channel
    from portal.models.users import User

#: Which organisations an agent works for.
agent_assignments = Table(
    "agent_assignments",
    db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "organisation_id",
        ForeignKey("organisations.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)


class Organisation(db.Model):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Sellers read their threads; they may also reply only when their owner allows it.
    sellers_can_reply: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: The owner requires a second factor of every seller user here (admins and agents
    #: always need one). Only a server default: migrations' tests insert rows by Core.
    requires_two_factor: Mapped[bool] = mapped_column(server_default=false())
    #: Offboarding (services/offboarding.py): when an admin closed the organisation,
    #: from when the worker erases its buyer data, and when it finished doing so.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erase_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data_erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    members: Mapped[list[User]] = relationship(
        back_populates="organisation", foreign_keys="User.organisation_id"
    )
    agents: Mapped[list[User]] = relationship(
        secondary=agent_assignments, back_populates="assigned_organisations"
    )
    channels: Mapped[list[Channel]] = relationship(
        back_populates="organisation", order_by="Channel.id"
    )

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None

    def __repr__(self) -> str:
        return f"<Organisation {self.id} {self.name!r}>"
