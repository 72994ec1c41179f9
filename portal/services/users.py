"""Accounts: sign-up, users, roles, agents' assignments and authentication."""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from portal.extensions import db
from portal.models import Organisation, Role, User
from portal.services.audit import record_event
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
# Compared against when the e-mail is unknown, so a login takes as long either way
# and the response time does not reveal which addresses have accounts.
_DUMMY_HASH = generate_password_hash("not-a-real-password-" + secrets.token_hex(8))


class AccountError(ValueError):
    """A request that breaks an account rule; the message is shown to the user."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def find_organisation(name: str) -> Organisation | None:
    return db.session.scalar(
        select(Organisation).where(func.lower(Organisation.name) == name.strip().lower())
    )


def get_or_create_organisation(name: str, *, actor: User | None) -> Organisation:
    """The organisation called `name` (case-insensitive), created when missing."""
    organisation = find_organisation(name)
    if organisation is not None:
        return organisation
    organisation = Organisation(name=name.strip())
    db.session.add(organisation)
    db.session.flush()
    record_event(
        "organisation.created", actor=actor, organisation_id=organisation.id, target=organisation
    )
    return organisation


def create_user(
    email: str,
    password: str,
    *,
    role: Role,
    organisation: Organisation | None = None,
    name: str = "",
    actor: User | None = None,
    must_change_password: bool = False,
) -> User:
    """Create a user; sellers must belong to an organisation, others may not."""
    email = normalise_email(email)
    if find_user_by_email(email) is not None:
        raise AccountError(f"A user with the e-mail {email} already exists.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must be at least {MIN_PASSWORD_LENGTH} characters.")
    if role == Role.SELLER and organisation is None:
        raise AccountError("A seller user must belong to an organisation.")
    if role != Role.SELLER and organisation is not None:
        raise AccountError("Only seller users belong to an organisation; assign agents instead.")
    user = User(
        email=email,
        name=name.strip(),
        password_hash=generate_password_hash(password),
        role=role,
        organisation=organisation,
        must_change_password=must_change_password,
    )
    db.session.add(user)
    db.session.flush()
    record_event(
        "user.created",
        actor=actor,
        organisation_id=organisation.id if organisation else None,
        target=user,
        details={"email": email, "role": role.value},
    )
    return user


def sign_up(email: str, password: str, *, organisation_name: str, name: str = "") -> User:
    """Create a seller business: its organisation and its owner, a seller user."""
    if find_organisation(organisation_name) is not None:
        raise AccountError("An organisation with this name already exists.")
    organisation = get_or_create_organisation(organisation_name, actor=None)
    user = create_user(email, password, role=Role.SELLER, organisation=organisation, name=name)
    record_event("user.signed_up", actor=user, organisation_id=organisation.id, target=user)
    return user


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None."""
    user = find_user_by_email(email)
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.is_active:
        return None
    return user


def record_login(user: User) -> None:
    """Note a successful login."""
    user.last_login_at = utcnow()
    record_event("user.login", actor=user, organisation_id=user.organisation_id, target=user)


def change_password(user: User, new_password: str, *, actor: User) -> None:
    """Set a new password and lift any forced change."""
    if len(new_password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must be at least {MIN_PASSWORD_LENGTH} characters.")
    user.password_hash = generate_password_hash(new_password)
    user.must_change_password = False
    record_event(
        "user.password_changed", actor=actor, organisation_id=user.organisation_id, target=user
    )


def assign_agent(agent: User, organisation: Organisation, *, actor: User | None) -> bool:
    """Let `agent` work `organisation`'s threads; False when already assigned."""
    if agent.role != Role.AGENT:
        raise AccountError(f"{agent.email} is a {agent.role.value}, not an agent.")
    if organisation in agent.assigned_organisations:
        return False
    agent.assigned_organisations.append(organisation)
    db.session.flush()
    record_event(
        "agent.assigned",
        actor=actor,
        organisation_id=organisation.id,
        target=agent,
        details={"agent": agent.email},
    )
    return True


def ensure_first_admin(email: str) -> tuple[User, str] | None:
    """On an empty install, create an admin with a one-time password and return both."""
    if db.session.scalar(select(func.count()).select_from(User)):
        return None
    password = secrets.token_urlsafe(12)
    user = create_user(email, password, role=Role.ADMIN, name="Admin", must_change_password=True)
    log.info("Created the first admin %s", email)
    return user, password
