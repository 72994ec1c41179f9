"""Channels: one Amazon marketplace store each, with its own helpdesk address."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Subquery, func, select
from sqlalchemy.orm import contains_eager

from portal.extensions import db
from portal.marketplaces import Developer, Marketplace, developer_for, get_marketplace
from portal.models import (
    Channel,
    ChannelAlias,
    ChannelStatus,
    Credential,
    CredentialKind,
    Direction,
    Message,
    Organisation,
    User,
)
from portal.services.audit import record_event
from portal.services.credentials import seal_secret
from portal.services.scoping import scope_to_user
from portal.services.settings import developer_settings
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)


def normalise_address(address: str) -> str:
    """Lower-case, with any +tag removed from the local part."""
    address = address.strip().lower()
    local, _, domain = address.rpartition("@")
    if not local:
        return address
    return f"{local.split('+', 1)[0]}@{domain}"


def _routing_candidates(addresses: Iterable[str], inbound_domain: str) -> list[str]:
    suffix = "@" + inbound_domain.lower()
    return [normalise_address(a) for a in addresses if a.lower().endswith(suffix)]


def channels_by_address(addresses: Iterable[str], *, inbound_domain: str) -> dict[str, Channel]:
    """Helpdesk address -> channel, for those of `addresses` that route to one.

    One lookup for the addresses of many messages (ingest asks once per batch); pick a
    message's channel from the result with `route_to_channel`.
    """
    candidates = sorted(set(_routing_candidates(addresses, inbound_domain)))
    if not candidates:
        return {}
    # A closed organisation's channels route nothing (services/offboarding.py): their
    # mail waits as unrouted mail for an admin instead of entering its inbox.
    open_org = Channel.organisation_id.in_(
        select(Organisation.id).where(Organisation.closed_at.is_(None))
    )
    channels = {
        c.helpdesk_address: c
        for c in db.session.scalars(
            select(Channel).where(Channel.helpdesk_address.in_(candidates), open_org)
        )
    }
    # A former address keeps routing during its grace period after an address change.
    aliases = db.session.execute(
        select(ChannelAlias.address, Channel)
        .join(ChannelAlias.channel)
        .where(ChannelAlias.address.in_(candidates), ChannelAlias.expires_at > utcnow(), open_org)
    )
    for address, channel in aliases:
        channels.setdefault(address, channel)
    return channels


def route_to_channel(
    addresses: list[str], routes: Mapping[str, Channel], *, inbound_domain: str
) -> Channel | None:
    """The channel of the first of `addresses` found in `routes` (from `channels_by_address`)."""
    for address in _routing_candidates(addresses, inbound_domain):
        # Keep header priority: Delivered-To before To before Cc.
        channel = routes.get(address)
        if channel is not None:
            return channel
    return None


def find_channel_for_addresses(addresses: list[str], *, inbound_domain: str) -> Channel | None:
    """The channel whose helpdesk address is the first of `addresses` that names one."""
    routes = channels_by_address(addresses, inbound_domain=inbound_domain)
    return route_to_channel(addresses, routes, inbound_domain=inbound_domain)


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
    if organisation.is_closed:
        # A closed organisation's channels route no mail; a new one must not either.
        raise ChannelError(f"{organisation.name} is closed: reopen it first.")
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
    recent = recent_message_counts(now)
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


def recent_message_counts(now: datetime) -> Subquery:
    """Inbound messages per channel over the SILENCE_WARNING before `now`: (channel_id, n)."""
    return (
        select(Message.channel_id, func.count().label("n"))
        .where(
            Message.direction == Direction.IN,
            Message.created_at >= now - SILENCE_WARNING,
            Message.channel_id.is_not(None),
        )
        .group_by(Message.channel_id)
        .subquery()
    )


def is_silent(channel: Channel, *, now: datetime | None = None) -> bool:
    """True when an active channel has heard nothing for SILENCE_WARNING."""
    now = now or utcnow()
    if channel.status != ChannelStatus.ACTIVE:
        return False
    # A new channel gets a week's grace before its silence means anything.
    since = channel.last_message_at or channel.created_at
    return since < now - SILENCE_WARNING


def _set_status(
    channel: Channel, status: ChannelStatus, *, reason: str, actor: User | None
) -> None:
    if channel.status == status and channel.status_reason == reason:
        return
    previous = channel.status
    channel.status = status
    channel.status_reason = reason
    channel.status_changed_at = utcnow()
    record_event(
        "channel.status_changed",
        actor=actor,
        organisation_id=channel.organisation_id,
        target=channel,
        details={"from": previous.value, "to": status.value, "reason": reason},
    )


def submit_mws_token(
    channel: Channel, *, seller_id: str, token: str, actor: User | None
) -> Credential:
    """Store the seller's (already validated) MWS token; the channel awaits verification.

    A token already on file is replaced, never kept beside the new one.
    """
    ciphertext, hint = seal_secret(token)
    replaced = channel.credential is not None
    if replaced:
        db.session.delete(channel.credential)
        db.session.flush()
    credential = Credential(
        channel=channel,
        kind=CredentialKind.MWS_TOKEN,
        seller_id=seller_id,
        secret_encrypted=ciphertext,
        secret_hint=hint,
        submitted_by_id=actor.id if actor is not None else None,
    )
    db.session.add(credential)
    record_event(
        "channel.token_replaced" if replaced else "channel.token_submitted",
        actor=actor,
        organisation_id=channel.organisation_id,
        target=channel,
        details={"kind": CredentialKind.MWS_TOKEN.value, "seller_id": seller_id, "token": hint},
    )
    _set_status(channel, ChannelStatus.PENDING_VERIFICATION, reason="", actor=actor)
    db.session.flush()
    log.info(
        "Token %s for channel %s (%s)", "replaced" if replaced else "submitted", channel.id, hint
    )
    return credential


def confirm_setup_steps(
    channel: Channel, *, forwarding: bool, approved_sender: bool, actor: User | None
) -> list[str]:
    """Record the seller's own confirmation of the Seller Central steps; returns what changed."""
    now = utcnow()
    changed = []
    for step, attr, done in (
        ("forwarding", "forwarding_confirmed_at", forwarding),
        ("approved_sender", "approved_sender_confirmed_at", approved_sender),
    ):
        if done == (getattr(channel, attr) is not None):
            continue
        setattr(channel, attr, now if done else None)
        changed.append(step)
        record_event(
            "channel.step_confirmed" if done else "channel.step_unconfirmed",
            actor=actor,
            organisation_id=channel.organisation_id,
            target=channel,
            details={"step": step},
        )
    db.session.flush()
    return changed


def report_access_revoked(channel: Channel, *, actor: User | None) -> None:
    """The seller revoked our access in Seller Central: drop the dead token, disable."""
    if channel.credential is not None:
        db.session.delete(channel.credential)
        channel.credential = None
        record_event(
            "channel.token_deleted",
            actor=actor,
            organisation_id=channel.organisation_id,
            target=channel,
            details={"why": "access revoked by the seller"},
        )
    _set_status(
        channel,
        ChannelStatus.DISABLED,
        reason="You reported that access was revoked in Seller Central.",
        actor=actor,
    )
    db.session.flush()


def set_channel_status(
    channel: Channel, status: ChannelStatus, *, reason: str, actor: User | None
) -> None:
    """Move `channel` to `status` (admin verification, disabling), audited with the reason."""
    _set_status(channel, status, reason=reason.strip(), actor=actor)
    db.session.flush()


def developer_for_channel(channel: Channel, config: Mapping[str, Any]) -> Developer:
    """The developer the seller authorises for this channel's marketplace (from settings).

    The admins' settings (/admin/settings) win; without them the configuration applies.
    """
    settings = developer_settings(config)
    return developer_for(channel.marketplace_info, name=settings.name, accounts=settings.accounts)
