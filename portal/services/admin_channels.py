"""Admins' channel operations: every seller's channels, token verification, addresses."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager, selectinload

from portal.extensions import db
from portal.marketplaces import MARKETPLACES
from portal.models import (
    AuditEvent,
    Channel,
    ChannelAlias,
    ChannelStatus,
    Credential,
    Organisation,
    User,
)
from portal.services.audit import record_event
from portal.services.channels import (
    ChannelError,
    ChannelHealth,
    generate_helpdesk_address,
    is_silent,
    normalise_address,
    recent_message_counts,
    set_channel_status,
)
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

#: How long a former helpdesk address keeps routing after an address change.
ALIAS_GRACE = timedelta(days=30)
REASON_MAX_LENGTH = 1000

# Local parts we hand out ourselves are like "uk-7fk3qz2m"; typed ones may also use
# dots and underscores. No "+": routing strips +tags, so such an address could never match.
_LOCAL_PART = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")


@dataclass(frozen=True)
class ChannelFilters:
    status: ChannelStatus | None = None
    marketplace: str | None = None
    region: str | None = None
    organisation_id: int | None = None


def list_all_channels(filters: ChannelFilters | None = None) -> list[ChannelHealth]:
    """Every organisation's channels for the admin list, with health, in a fixed number of queries.

    Like `channels.list_channels`, but filtered and with the credential loaded, so the
    list shows token hints without one query per row.
    """
    filters = filters or ChannelFilters()
    now = utcnow()
    recent = recent_message_counts(now)
    stmt = (
        select(Channel, func.coalesce(recent.c.n, 0))
        .join(Channel.organisation)
        .outerjoin(recent, recent.c.channel_id == Channel.id)
        .options(contains_eager(Channel.organisation), selectinload(Channel.credential))
        .order_by(func.lower(Organisation.name), Channel.marketplace, Channel.id)
    )
    if filters.status is not None:
        stmt = stmt.where(Channel.status == filters.status)
    if filters.marketplace:
        stmt = stmt.where(Channel.marketplace == filters.marketplace)
    if filters.region:
        codes = [m.code for m in MARKETPLACES if m.region == filters.region]
        stmt = stmt.where(Channel.marketplace.in_(codes))
    if filters.organisation_id is not None:
        stmt = stmt.where(Channel.organisation_id == filters.organisation_id)
    return [
        ChannelHealth(channel, count, is_silent(channel, now=now))
        for channel, count in db.session.execute(stmt)
    ]


def channel_history(channel: Channel, *, limit: int = 20) -> list[AuditEvent]:
    """The newest audit events about `channel`, with their actors."""
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.target_type == "channel", AuditEvent.target_id == channel.id)
            .options(selectinload(AuditEvent.actor))
            .order_by(AuditEvent.id.desc())
            .limit(limit)
        )
    )


def live_aliases(channel: Channel, *, now: datetime | None = None) -> list[ChannelAlias]:
    """The channel's former addresses that still route to it."""
    now = now or utcnow()
    return [alias for alias in channel.aliases if alias.expires_at > now]


def _clean_reason(reason: str | None, *, required: bool, what: str) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise ChannelError(f"Give the seller a reason to {what}.")
    if len(reason) > REASON_MAX_LENGTH:
        raise ChannelError(f"Keep the reason under {REASON_MAX_LENGTH} characters.")
    return reason


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def credential_marker(credential: Credential) -> str:
    """Names one submitted token: a replacement differs even where the database reuses ids."""
    return f"{credential.id}:{credential.submitted_at.isoformat()}"


def _check_credential(channel: Channel, expected_credential: str | None) -> None:
    if channel.credential is None:
        raise ChannelError("No token is on file for this channel.")
    if expected_credential and credential_marker(channel.credential) != expected_credential:
        # The seller replaced the token after the admin opened the page.
        raise ChannelError(
            "The seller submitted a new token meanwhile. Check the token now on file first."
        )


def verify_token(
    channel: Channel,
    *,
    reason: str = "",
    actor: User | None,
    expected_credential: str | None = None,
) -> None:
    """An admin checked the token on file: the channel becomes active.

    `expected_credential` (see `credential_marker`) is the token the admin looked at.
    """
    _check_credential(channel, expected_credential)
    if channel.status == ChannelStatus.ACTIVE:
        raise ChannelError("The channel is already active.")
    reason = _clean_reason(reason, required=False, what="verify")
    credential = channel.credential
    record_event(
        "channel.token_verified",
        actor=actor,
        organisation_id=channel.organisation_id,
        target=channel,
        details={"seller_id": credential.seller_id, "token": credential.secret_hint},
    )
    set_channel_status(channel, ChannelStatus.ACTIVE, reason=reason, actor=actor)
    log.info("Channel %s: token %s verified", channel.id, credential.secret_hint)


def reject_token(
    channel: Channel,
    *,
    reason: str,
    actor: User | None,
    expected_credential: str | None = None,
) -> None:
    """The token on file does not work: delete it and ask the seller for a new one."""
    _check_credential(channel, expected_credential)
    reason = _clean_reason(reason, required=True, what="resubmit the token")
    credential = channel.credential
    record_event(
        "channel.token_rejected",
        actor=actor,
        organisation_id=channel.organisation_id,
        target=channel,
        details={
            "seller_id": credential.seller_id,
            "token": credential.secret_hint,
            "reason": reason,
        },
    )
    db.session.delete(credential)
    channel.credential = None
    # The seller reads this in the status box of their channel page.
    set_channel_status(
        channel,
        ChannelStatus.AWAITING_TOKEN,
        reason=f"We could not verify your token: {_sentence(reason)} "
        "Please check steps 1 and 2 and submit a new token.",
        actor=actor,
    )
    log.info("Channel %s: token %s rejected", channel.id, credential.secret_hint)


def disable_channel(channel: Channel, *, reason: str, actor: User | None) -> None:
    """Switch the channel off; the seller sees the reason and how to reactivate."""
    if channel.status == ChannelStatus.DISABLED:
        raise ChannelError("The channel is already disabled.")
    reason = _clean_reason(reason, required=True, what="explain why the channel is disabled")
    set_channel_status(channel, ChannelStatus.DISABLED, reason=reason, actor=actor)


def reenable_channel(channel: Channel, *, reason: str = "", actor: User | None) -> ChannelStatus:
    """Undo a disable: active again with a token on file, else back to awaiting one."""
    if channel.status != ChannelStatus.DISABLED:
        raise ChannelError("Only a disabled channel can be re-enabled.")
    reason = _clean_reason(reason, required=False, what="re-enable")
    status = (
        ChannelStatus.ACTIVE if channel.credential is not None else ChannelStatus.AWAITING_TOKEN
    )
    set_channel_status(channel, status, reason=reason, actor=actor)
    return status


def _address_in_use(address: str, channel: Channel, now: datetime) -> str | None:
    """Why `address` cannot become `channel`'s address, or None."""
    owner = db.session.scalar(select(Channel).where(Channel.helpdesk_address == address))
    if owner is not None:
        if owner.id == channel.id:
            return "This already is the channel's helpdesk address."
        return "Another channel already uses this address."
    alias = db.session.scalar(
        select(ChannelAlias).where(ChannelAlias.address == address, ChannelAlias.expires_at > now)
    )
    if alias is not None and alias.channel_id != channel.id:
        return "This is a former address of another channel and still routes to it."
    return None


def clean_helpdesk_address(address: str, *, inbound_domain: str) -> str:
    """A typed helpdesk address, lower-cased and checked against INBOUND_DOMAIN."""
    address = address.strip().lower()
    local, sep, domain = address.rpartition("@")
    if not sep:
        raise ChannelError(f"Enter a full address such as uk-support@{inbound_domain}.")
    if domain != inbound_domain.lower():
        raise ChannelError(f"The address must be on {inbound_domain}, where our mail arrives.")
    if not _LOCAL_PART.fullmatch(local) or ".." in local:
        raise ChannelError(
            "Use lower-case letters, digits, dots, dashes and underscores before the @ "
            "(no + sign: it is stripped when mail is routed)."
        )
    return address


def change_helpdesk_address(
    channel: Channel,
    *,
    new_address: str | None,
    inbound_domain: str,
    actor: User | None,
    reason: str = "",
    grace: timedelta = ALIAS_GRACE,
) -> ChannelAlias:
    """Give `channel` a new address (typed, or generated when None/empty).

    The old address becomes an alias that keeps routing for `grace`, so mail sent
    before the seller updates Seller Central is not lost. Returns that alias.
    """
    now = utcnow()
    reason = _clean_reason(reason, required=False, what="change the address")
    if new_address and new_address.strip():
        address = clean_helpdesk_address(new_address, inbound_domain=inbound_domain)
        problem = _address_in_use(address, channel, now)
        if problem:
            raise ChannelError(problem)
    else:
        address = _generate_unused_address(channel, inbound_domain=inbound_domain, now=now)

    old_address = channel.helpdesk_address
    # Expired aliases (of any channel) free their address, and switching back to one
    # of this channel's own former addresses ends that alias; both make room below.
    stale = db.session.scalars(
        select(ChannelAlias).where(ChannelAlias.address.in_([address, old_address]))
    ).all()
    for alias in stale:
        if alias.expires_at <= now or alias.channel_id == channel.id:
            db.session.delete(alias)
    db.session.flush()
    db.session.expire(channel, ["aliases"])

    channel.helpdesk_address = address
    alias = ChannelAlias(channel=channel, address=old_address, expires_at=now + grace)
    db.session.add(alias)
    db.session.flush()
    record_event(
        "channel.address_changed",
        actor=actor,
        organisation_id=channel.organisation_id,
        target=channel,
        details={
            "from": old_address,
            "to": address,
            "old_address_routes_until": alias.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
            "reason": reason,
        },
    )
    log.info("Channel %s: address %s -> %s", channel.id, old_address, address)
    return alias


def _generate_unused_address(channel: Channel, *, inbound_domain: str, now: datetime) -> str:
    # generate_helpdesk_address only looks at channels; skip live aliases too.
    for _ in range(20):
        address = generate_helpdesk_address(channel.marketplace_info, inbound_domain=inbound_domain)
        if _address_in_use(normalise_address(address), channel, now) is None:
            return address
    raise ChannelError("Could not find a free helpdesk address; please try again.")
