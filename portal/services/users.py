"""Accounts: sign-up, users, roles, agents' assignments and authentication."""

from __future__ import annotations

import functools
import logging
import secrets
import zoneinfo
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from werkzeug.security import check_password_hash

from ingest.mail.text import describe_character, first_unsafe_character
from portal.extensions import db
from portal.models import Channel, Organisation, OrgRole, Role, User
from portal.services.audit import record_event
from portal.services.passwords import hash_password, needs_rehash, password_problem
from portal.services.sessions import end_sessions
from portal.sqltypes import utcnow

log = logging.getLogger(__name__)


@functools.cache
def _dummy_hash() -> str:
    """Compared against when the e-mail is unknown, so a login takes as long either way
    and the response time does not reveal which addresses have accounts. Made on first
    use rather than at import: hashing is deliberately slow, and every process imports
    this module (the ingest worker and each `flask` command, which never log anyone in)."""
    return hash_password("not-a-real-password-" + secrets.token_hex(8))


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


def _checked_name(label: str, name: str) -> str:
    """`name` stripped; AccountError when it holds a character no name may (ingest.mail.text).

    The forms say so beside the field first; this holds for every other caller (the CLI):
    a business name is the From name of its replies, so a line break there would make
    every reply unsendable and the organisation impossible to rename.
    """
    char = first_unsafe_character(name)
    if char is not None:
        raise AccountError(f"The {label} cannot contain {describe_character(char)}.")
    return name.strip()


def get_or_create_organisation(name: str, *, actor: User | None) -> Organisation:
    """The organisation called `name` (case-insensitive), created when missing."""
    organisation = find_organisation(name)
    if organisation is not None:
        return organisation
    organisation = Organisation(name=_checked_name("organisation's name", name))
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
    org_role: OrgRole = OrgRole.OWNER,
) -> User:
    """Create a user; sellers must belong to an organisation (as `org_role`, by default
    an owner, as whoever creates a business is), others may not."""
    email = normalise_email(email)
    if find_user_by_email(email) is not None:
        raise AccountError(f"A user with the e-mail {email} already exists.")
    _check_password(password, email, name, organisation.name if organisation else "")
    if role == Role.SELLER and organisation is None:
        raise AccountError("A seller user must belong to an organisation.")
    if role != Role.SELLER and organisation is not None:
        raise AccountError("Only seller users belong to an organisation; assign agents instead.")
    if organisation is not None and organisation.is_closed:
        # Offboarding disabled its people; a new one would undo that unnoticed.
        raise AccountError(f"{organisation.name} is closed: reopen it first.")
    user = User(
        email=email,
        name=_checked_name("user's name", name),
        password_hash=hash_password(password),
        role=role,
        organisation=organisation,
        org_role=org_role if role == Role.SELLER else None,
        must_change_password=must_change_password,
    )
    db.session.add(user)
    db.session.flush()
    record_event(
        "user.created",
        actor=actor,
        organisation_id=organisation.id if organisation else None,
        target=user,
        details={
            "email": email,
            "role": role.value,
            **({"org_role": org_role.value} if role == Role.SELLER else {}),
        },
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


@dataclass(frozen=True)
class LoginCheck:
    """What a password sign-in found: the user, or None; `closed` when the password
    was right but the user's organisation is closed (services/offboarding.py), which
    only someone who knows the password is told."""

    user: User | None
    closed: bool = False


def check_login(email: str, password: str) -> LoginCheck:
    """The active user with this e-mail and password (one password check, whatever
    the address), or why not."""
    user = find_user_by_email(email)
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return LoginCheck(None)
    if not check_password_hash(user.password_hash, password):
        return LoginCheck(None)
    if user.organisation is not None and user.organisation.is_closed:
        return LoginCheck(None, closed=True)
    if not user.is_active:
        return LoginCheck(None)
    if needs_rehash(user.password_hash):  # an older scheme: the password is in hand now
        user.password_hash = hash_password(password)
        log.info("Password hash of user %s upgraded to the current scheme", user.id)
    return LoginCheck(user)


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None."""
    return check_login(email, password).user


def _check_password(password: str, *about: str) -> None:
    problem = password_problem(password, about=about)
    if problem is not None:
        raise AccountError(f"Password refused: {problem}")


def record_login(user: User, *, browser_time_zone: str | None = None) -> None:
    """Note a successful login; a user without a time zone yet takes the browser's."""
    user.last_login_at = utcnow()
    if user.time_zone is None and is_time_zone(browser_time_zone):
        user.time_zone = browser_time_zone
    record_event("user.login", actor=user, organisation_id=user.organisation_id, target=user)


def is_time_zone(name: str | None) -> bool:
    """An IANA time zone this system knows (what a browser reports, what a form offers)."""
    return bool(name) and name in time_zone_names()


@functools.cache
def time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def local_time(user: User, when: datetime) -> datetime:
    """`when` in the zone the user reads times in (UTC until they have one, or when the
    system no longer knows theirs): for what is written to them outside a page."""
    try:
        return when.astimezone(zoneinfo.ZoneInfo(user.time_zone or "UTC"))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return when


def set_time_zone(user: User, name: str) -> None:
    """The zone the user reads times in (no commit); refused unless is_time_zone."""
    if not is_time_zone(name):
        raise ValueError(f"unknown time zone {name!r}")
    user.time_zone = name


def change_time_zone(user: User, name: str) -> None:
    """The user's own choice on /account (no commit), audited with the old and new zone."""
    before = user.time_zone
    set_time_zone(user, name)
    if before != name:
        record_event(
            "user.time_zone_changed",
            actor=user,
            organisation_id=user.organisation_id,
            target=user,
            details={"from": before or "UTC", "to": name},
        )


def change_password(user: User, new_password: str, *, actor: User) -> None:
    """Set a new password, lift any forced change and end every sign-in of `user`.

    The sign-in the change was made in ends too: the caller starts a new one if wanted.
    """
    org_name = user.organisation.name if user.organisation else ""
    _check_password(new_password, user.email, user.name, org_name)
    user.password_hash = hash_password(new_password)
    user.must_change_password = False
    end_sessions(user)
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


# --- administration (the admin console) -------------------------------------------


@dataclass(frozen=True)
class UserFilters:
    role: Role | None = None
    is_active: bool | None = None


def list_users(filters: UserFilters | None = None) -> list[User]:
    """Every user for the admin list, with organisation and assignments loaded."""
    filters = filters or UserFilters()
    stmt = (
        select(User)
        .options(selectinload(User.organisation), selectinload(User.assigned_organisations))
        .order_by(User.email)
    )
    if filters.role is not None:
        stmt = stmt.where(User.role == filters.role)
    if filters.is_active is not None:
        stmt = stmt.where(User.is_active.is_(filters.is_active))
    return list(db.session.scalars(stmt))


def generate_temporary_password() -> str:
    """A random one-time password; the user must replace it at first login."""
    return secrets.token_urlsafe(12)


def create_user_with_temporary_password(
    email: str,
    *,
    role: Role,
    organisation: Organisation | None = None,
    new_organisation: str | None = None,
    name: str = "",
    actor: User | None,
) -> tuple[User, str]:
    """Create a user who must change the returned password at first login.

    A seller belongs to `organisation`, or to `new_organisation`, created by name.
    Only the hash is stored: the caller shows the password once and then forgets it.
    """
    if new_organisation and new_organisation.strip():
        if organisation is not None:
            raise AccountError("Choose an organisation or name a new one, not both.")
        if find_organisation(new_organisation) is not None:
            raise AccountError("An organisation with this name already exists: choose it.")
        organisation = get_or_create_organisation(new_organisation, actor=actor)
    password = generate_temporary_password()
    user = create_user(
        email,
        password,
        role=role,
        organisation=organisation,
        name=name,
        actor=actor,
        must_change_password=True,
    )
    return user, password


def reset_password(user: User, *, actor: User | None) -> str:
    """Replace `user`'s password with a temporary one, returned once, to change at login.

    Every sign-in of `user` ends: whoever held one needs the new password.
    """
    if actor is not None and actor.id == user.id:
        # The reset ends the actor's own session before the temporary password could be
        # shown to them: they would lock themselves out.
        raise AccountError(
            "You cannot reset your own password here; change it on your Password page."
        )
    password = generate_temporary_password()
    user.password_hash = hash_password(password)
    user.must_change_password = True
    end_sessions(user)
    db.session.flush()
    record_event(
        "user.password_reset",
        actor=actor,
        organisation_id=user.organisation_id,
        target=user,
        details={"email": user.email},
    )
    return password


def _check_not_last_admin(user: User, *, doing: str) -> None:
    if user.role != Role.ADMIN or not user.is_active:
        return
    # Lock the active admins' rows (PostgreSQL) so two admins demoting each other at
    # the same moment cannot both succeed and leave nobody to run the service.
    others = db.session.scalars(
        select(User.id)
        .where(User.role == Role.ADMIN, User.is_active.is_(True), User.id != user.id)
        .with_for_update()
    ).all()
    if not others:
        raise AccountError(
            f"{user.email} is the last active admin: make another user an admin "
            f"before you {doing} this one."
        )


def deactivate_user(user: User, *, actor: User | None) -> None:
    """Stop `user` from logging in and end their sign-ins (kept, not deleted); never the
    last active admin. Reactivating does not bring the ended sign-ins back."""
    if not user.is_active:
        raise AccountError(f"{user.email} is already deactivated.")
    _check_not_last_admin(user, doing="deactivate")
    if actor is not None and actor.id == user.id:
        raise AccountError("You cannot deactivate your own account; ask another admin.")
    user.is_active = False
    end_sessions(user)
    db.session.flush()
    record_event(
        "user.deactivated",
        actor=actor,
        organisation_id=user.organisation_id,
        target=user,
        details={"email": user.email},
    )


def reactivate_user(user: User, *, actor: User | None) -> None:
    """Let a deactivated user log in again."""
    if user.is_active:
        raise AccountError(f"{user.email} is already active.")
    user.is_active = True
    db.session.flush()
    record_event(
        "user.reactivated",
        actor=actor,
        organisation_id=user.organisation_id,
        target=user,
        details={"email": user.email},
    )


def change_role(
    user: User, role: Role, *, organisation: Organisation | None = None, actor: User | None
) -> bool:
    """Give `user` another role; False when unchanged.

    Sellers belong to exactly one organisation (required when becoming a seller);
    agents and admins to none, and only agents keep assignments.
    """
    previous_org = user.organisation_id
    if role == Role.SELLER and organisation is None:
        raise AccountError("Choose the organisation this seller belongs to.")
    if role == user.role and (role != Role.SELLER or organisation.id == previous_org):
        return False
    if role != Role.ADMIN:
        _check_not_last_admin(user, doing="demote")
    previous = user.role
    user.role = role
    user.organisation = organisation if role == Role.SELLER else None
    # An admin who makes someone a seller makes them an owner, as a new business's is.
    user.org_role = OrgRole.OWNER if role == Role.SELLER else None
    if role != Role.AGENT:
        user.assigned_organisations.clear()
    db.session.flush()
    record_event(
        "user.role_changed",
        actor=actor,
        organisation_id=user.organisation_id or previous_org,
        target=user,
        details={"email": user.email, "from": previous.value, "to": role.value},
    )
    return True


def unassign_agent(agent: User, organisation: Organisation, *, actor: User | None) -> bool:
    """Stop `agent` working `organisation`'s threads; False when not assigned."""
    if organisation not in agent.assigned_organisations:
        return False
    agent.assigned_organisations.remove(organisation)
    db.session.flush()
    record_event(
        "agent.unassigned",
        actor=actor,
        organisation_id=organisation.id,
        target=agent,
        details={"agent": agent.email},
    )
    return True


def set_sellers_can_reply(organisation: Organisation, allowed: bool, *, actor: User | None) -> bool:
    """Allow or forbid the organisation's sellers to reply to buyers; False when unchanged."""
    if organisation.sellers_can_reply == allowed:
        return False
    organisation.sellers_can_reply = allowed
    db.session.flush()
    record_event(
        "organisation.sellers_can_reply_changed",
        actor=actor,
        organisation_id=organisation.id,
        target=organisation,
        details={"sellers_can_reply": allowed},
    )
    return True


def organisation_choices() -> list[tuple[int, str]]:
    """(id, name) of every organisation, by name: for the admins' menus."""
    rows = db.session.execute(
        select(Organisation.id, Organisation.name).order_by(func.lower(Organisation.name))
    )
    return [(org_id, name) for org_id, name in rows]


@dataclass(frozen=True)
class OrganisationRow:
    organisation: Organisation
    channel_count: int
    seller_count: int
    agents: list[User]


def list_organisations_for_admin() -> list[OrganisationRow]:
    """Every organisation with its channel and seller counts and assigned agents."""
    channels = (
        select(Channel.organisation_id, func.count().label("n"))
        .group_by(Channel.organisation_id)
        .subquery()
    )
    sellers = (
        select(User.organisation_id, func.count().label("n"))
        .where(User.organisation_id.is_not(None))
        .group_by(User.organisation_id)
        .subquery()
    )
    stmt = (
        select(Organisation, func.coalesce(channels.c.n, 0), func.coalesce(sellers.c.n, 0))
        .outerjoin(channels, channels.c.organisation_id == Organisation.id)
        .outerjoin(sellers, sellers.c.organisation_id == Organisation.id)
        .options(selectinload(Organisation.agents))
        .order_by(func.lower(Organisation.name))
    )
    return [
        OrganisationRow(org, n_channels, n_sellers, sorted(org.agents, key=lambda u: u.email))
        for org, n_channels, n_sellers in db.session.execute(stmt)
    ]


# --- an organisation's own people and settings (its owners, or an admin) -------------


def rename_organisation(organisation: Organisation, name: str, *, actor: User | None) -> bool:
    """Give `organisation` another name (unique, case-insensitive); False when unchanged."""
    name = _checked_name("organisation's name", name)
    if not name:
        raise AccountError("The organisation needs a name.")
    if name == organisation.name:
        return False
    other = find_organisation(name)
    if other is not None and other.id != organisation.id:
        raise AccountError("A business with this name is already registered.")
    previous = organisation.name
    organisation.name = name
    db.session.flush()
    record_event(
        "organisation.renamed",
        actor=actor,
        organisation_id=organisation.id,
        target=organisation,
        details={"from": previous, "to": name},
    )
    return True


def _other_owners(user: User) -> list[int]:
    # Locked (PostgreSQL) so two owners stepping down at once cannot both succeed.
    return list(
        db.session.scalars(
            select(User.id)
            .where(
                User.organisation_id == user.organisation_id,
                User.role == Role.SELLER,
                User.org_role == OrgRole.OWNER,
                User.is_active.is_(True),
                User.id != user.id,
            )
            .with_for_update()
        )
    )


def set_org_role(user: User, org_role: OrgRole, *, actor: User | None) -> bool:
    """Make a seller user an owner or a member; False when unchanged. The last active
    owner stays one: someone must manage the organisation."""
    if user.role != Role.SELLER:
        raise AccountError(f"{user.email} is not a member of an organisation.")
    if user.org_role == org_role:
        return False
    if user.org_role == OrgRole.OWNER and user.is_active and not _other_owners(user):
        raise AccountError(f"{user.email} is the last owner: make someone else an owner first.")
    previous = user.org_role
    user.org_role = org_role
    db.session.flush()
    record_event(
        "user.org_role_changed",
        actor=actor,
        organisation_id=user.organisation_id,
        target=user,
        details={"email": user.email, "from": previous.value if previous else None, "to": org_role},
    )
    return True


def leave_organisation(user: User) -> None:
    """`user` leaves their organisation: the account is closed (deactivated, signed out
    everywhere; its history kept). An owner may leave only while another owner remains."""
    if user.role != Role.SELLER:
        raise AccountError("Only a member of an organisation can leave it.")
    if user.org_role == OrgRole.OWNER and not _other_owners(user):
        raise AccountError(
            "You are the organisation's only owner: make a colleague an owner before you leave."
        )
    user.is_active = False
    end_sessions(user)
    db.session.flush()
    record_event(
        "user.left_organisation",
        actor=user,
        organisation_id=user.organisation_id,
        target=user,
        details={"email": user.email},
    )
