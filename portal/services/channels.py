"""Channels: one Amazon marketplace store each, with its own helpdesk address."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager

from portal.extensions import db
from portal.marketplaces import Marketplace, get_marketplace
from portal.models import (
    Channel,
    ChannelStatus,
    Direction,
    Message,
    Organisation,
    User,
)
from portal.security import scope_to_user
from portal.services.audit import record_event
from portal.sqltypes import utcnow


def normalise_address(address: str) -> str:
    """Lower-case, with any +tag removed from the local part."""
    address = address.strip().lower()
    local, _, domain = address.rpartition("@")
    if not local:
        return address
    return f"{local.split('+', 1)[0]}@{domain}"


def find_channel_for_addresses(addresses: list[str], *, inbound_domain: str) -> Channel | None:
    """The channel whose helpdesk address is the first of `addresses` that names one."""
    candidates = [
        normalise_address(a) for a in addresses if a.lower().endswith("@" + inbound_domain.lower())
    ]
    if not candidates:
        return None
    channels = {
        c.helpdesk_address: c
        for c in db.session.scalars(select(Channel).where(Channel.helpdesk_address.in_(candidates)))
    }
    for address in candidates:  # keep header priority: Delivered-To before To before Cc
        if address in channels:
            return channels[address]
    return None


class ChannelError(ValueError):
    """A channel operation that breaks a rule; the message is shown to the user."""


def _random_part(length: int = 8) -> str:
    # Lower-case letters and digits without look-alikes (0/o, 1/l), easy to read aloud.
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def generate_helpdesk_address(marketplace: Marketplace, *, inbound_domain: str) -> str:
    """A fresh, unguessable address such as `uk-7fk3qz@helpdesk.example.com`."""
    for _ in range(20):
        address = f"{marketplace.code.lower()}-{_random_part()}@{inbound_domain}"
        taken = db.session.scalar(select(Channel.id).where(Channel.helpdesk_address == address))
        if taken is None:
            return address
    raise ChannelError("Could not find a free helpdesk address; please try again.")


def create_channel(
    organisation: Organisation,
    marketplace_code: str,
    *,
    actor: User | None,
    inbound_domain: str,
    is_professional_confirmed: bool = True,
) -> Channel:
    """Add one marketplace store of `organisation` as a channel with its own address."""
    marketplace = get_marketplace(marketplace_code)
    if marketplace is None:
        raise ChannelError(f"Unknown marketplace {marketplace_code!r}.")
    existing = db.session.scalar(
        select(Channel).where(
            Channel.organisation_id == organisation.id, Channel.marketplace == marketplace.code
        )
    )
    if existing is not None:
        raise ChannelError(f"{marketplace.name} is already connected as a channel.")
    channel = Channel(
        organisation=organisation,
        marketplace=marketplace.code,
        helpdesk_address=generate_helpdesk_address(marketplace, inbound_domain=inbound_domain),
        is_professional_confirmed=is_professional_confirmed,
    )
    db.session.add(channel)
    db.session.flush()
    record_event(
        "channel.added",
        actor=actor,
        organisation_id=organisation.id,
        target=channel,
        details={"marketplace": marketplace.code, "helpdesk_address": channel.helpdesk_address},
    )
    return channel


#: An active channel silent for this long probably lost its forwarding.
SILENCE_WARNING = timedelta(days=7)


@dataclass(frozen=True)
class ChannelHealth:
    channel: Channel
    messages_7d: int
    #: Active, yet nothing arrived for SILENCE_WARNING: "not receiving messages?"
    is_silent: bool


def list_channels(user: User | None, *, organisation_id: int | None = None) -> list[ChannelHealth]:
    """Channels `user` may see (all for None: the CLI), with 7-day message counts."""
    now = utcnow()
    recent = (
        select(Message.channel_id, func.count().label("n"))
        .where(
            Message.direction == Direction.IN,
            Message.created_at >= now - SILENCE_WARNING,
            Message.channel_id.is_not(None),
        )
        .group_by(Message.channel_id)
        .subquery()
    )
    stmt = (
        select(Channel, func.coalesce(recent.c.n, 0))
        .join(Channel.organisation)
        .outerjoin(recent, recent.c.channel_id == Channel.id)
        .options(contains_eager(Channel.organisation))
        .order_by(func.lower(Organisation.name), Channel.marketplace)
    )
    if organisation_id is not None:
        stmt = stmt.where(Channel.organisation_id == organisation_id)
    if user is not None:
        stmt = scope_to_user(stmt, Channel.organisation_id, user)
    return [
        ChannelHealth(channel, count, is_silent(channel, now=now))
        for channel, count in db.session.execute(stmt)
    ]


def is_silent(channel: Channel, *, now: datetime) -> bool:
    """True when an active channel has heard nothing for SILENCE_WARNING."""
    if channel.status != ChannelStatus.ACTIVE:
        return False
    # A new channel gets a week's grace before its silence means anything.
    since = channel.last_message_at or channel.created_at
    return since < now - SILENCE_WARNING
