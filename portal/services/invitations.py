"""Invitations: an organisation's owners invite colleagues (owner or member), admins
invite staff (agent or admin). The mailed link works once, for VALID_FOR, unless
revoked; accepting it creates the account with the password the person chooses.

The link carries a random token of which only the SHA-256 is stored. Nothing here
commits.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.models import Invitation, Organisation, OrgRole, Role, User
from portal.services import users as user_service
from portal.services.audit import record_event
from portal.services.scoping import can_manage_organisation
from portal.services.sessions import token_digest
from portal.services.system_mail import external_url, queue_system_mail

log = logging.getLogger(__name__)

VALID_FOR = timedelta(days=7)
_MAX_TOKEN_LENGTH = 100
CLOSED = "This invitation has expired, was withdrawn or has already been used. Ask for a new one."


class InvitationError(ValueError):
    """An invitation that may not be sent, revoked or accepted; shown as is."""


def _describe(invitation: Invitation) -> str:
    if invitation.organisation is not None:
        what = "an owner" if invitation.org_role == OrgRole.OWNER else "a member"
        return f"{what} of {invitation.organisation.name}"
    return "an admin" if invitation.role == Role.ADMIN else "a support agent"


def invite(
    email: str,
    *,
    actor: User,
    now: datetime,
    organisation: Organisation | None = None,
    org_role: OrgRole | None = None,
    role: Role | None = None,
) -> Invitation:
    """Invite `email` into `organisation` as `org_role` (its owners, or an admin), or as
    staff `role` (agent or admin; admins only), and queue the mail (no commit)."""
    if organisation is not None:
        if org_role is None or not can_manage_organisation(actor, organisation.id):
            raise InvitationError("Only the organisation's owners may invite colleagues.")
        if organisation.is_closed:
            raise InvitationError(f"{organisation.name} is closed: reopen it first.")
        role = Role.SELLER
    elif role not in (Role.AGENT, Role.ADMIN) or actor.role != Role.ADMIN:
        raise InvitationError("Only admins may invite support agents and admins.")
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        email=user_service.normalise_email(email),
        role=role,
        organisation=organisation,
        org_role=org_role if organisation is not None else None,
        token_hash=token_digest(token),
        invited_by_id=actor.id,
        created_at=now,
        expires_at=now + VALID_FOR,
    )
    db.session.add(invitation)
    db.session.flush()
    link = external_url("account.accept_invitation", token=token)
    queue_system_mail(
        invitation.email,
        subject=f"{actor.display_name} invites you to Sellerdesk",
        body=(
            f"{actor.display_name} ({actor.email}) invites you to Sellerdesk as "
            f"{_describe(invitation)}.\n\n"
            f"Choose your password here to accept. The link works once, for "
            f"{VALID_FOR.days} days:\n\n{link}\n\n"
            f"If you do not expect this, ignore this mail.\n"
        ),
        kind="invitation",
        organisation_id=invitation.organisation_id,
        now=now,
    )
    record_event(
        "invitation.sent",
        actor=actor,
        organisation_id=invitation.organisation_id,
        target=invitation,
        details={
            "email": invitation.email,
            "role": role.value,
            **({"org_role": org_role.value} if invitation.org_role else {}),
        },
    )
    return invitation


def list_open(organisation: Organisation | None, *, now: datetime) -> list[Invitation]:
    """The invitations whose links still work: into `organisation`, or for staff (None)."""
    stmt = select(Invitation).where(
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > now,
    )
    if organisation is None:
        stmt = stmt.where(Invitation.organisation_id.is_(None))
    else:
        stmt = stmt.where(Invitation.organisation_id == organisation.id)
    return list(db.session.scalars(stmt.order_by(Invitation.created_at, Invitation.id)))


def revoke(invitation: Invitation, *, actor: User, now: datetime) -> None:
    """Withdraw an invitation: its link stops working (no commit)."""
    may = (
        can_manage_organisation(actor, invitation.organisation_id)
        if invitation.organisation_id is not None
        else actor.role == Role.ADMIN
    )
    if not may:
        raise InvitationError("You may not withdraw this invitation.")
    if not invitation.is_open(now):
        raise InvitationError("This invitation is no longer open.")
    invitation.revoked_at = now
    db.session.flush()
    record_event(
        "invitation.revoked",
        actor=actor,
        organisation_id=invitation.organisation_id,
        target=invitation,
        details={"email": invitation.email},
    )


def open_invitation(token: str, *, now: datetime) -> Invitation:
    """The open invitation whose link this is; InvitationError otherwise."""
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        raise InvitationError(CLOSED)
    invitation = db.session.scalar(
        select(Invitation).where(Invitation.token_hash == token_digest(token))
    )
    if invitation is None or not invitation.is_open(now):
        raise InvitationError(CLOSED)
    return invitation


def accept(token: str, *, name: str, password: str, now: datetime) -> User:
    """Create the invited account with `password` (no commit); the link stops working.
    InvitationError for a closed link, users.AccountError for a refused password or an
    address that has an account by now."""
    invitation = open_invitation(token, now=now)
    user = user_service.create_user(
        invitation.email,
        password,
        role=invitation.role,
        organisation=invitation.organisation,
        org_role=invitation.org_role or OrgRole.OWNER,
        name=name,
        actor=invitation.invited_by,
    )
    invitation.accepted_at = now
    db.session.flush()
    record_event(
        "invitation.accepted",
        actor=user,
        organisation_id=invitation.organisation_id,
        target=invitation,
        details={"email": invitation.email, "user_id": user.id},
    )
    return user
