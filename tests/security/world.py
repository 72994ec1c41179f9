"""Two seller organisations, A and B, with one of everything, for the security suites.

Every text that belongs to an organisation carries its marker (`alphamark` for A,
`betamark` for B), so a test can tell from any response body whether it shows
another tenant's data: a user of A must never see `betamark`, whatever the page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, insert, select

from portal import create_app
from portal.crypto import encrypt_secret
from portal.extensions import db
from portal.models import (
    Attachment,
    ChannelStatus,
    Direction,
    Invitation,
    Mailbox,
    Message,
    OrgRole,
    Passkey,
    Role,
    SendStatus,
    Thread,
)
from portal.services import canned as canned_service
from portal.services import channels as channel_service
from portal.services import outbox as outbox_service
from portal.services import passwords as password_rules
from portal.services import sessions as session_service
from portal.services import threads as thread_service
from portal.services import two_factor
from portal.services import users as user_service
from portal.services.http_ingress import token_hash
from portal.sqltypes import utcnow
from tests.helpers import PASSWORD, AuthActions, FreshContextClient, app_config_for

MARKS = {"A": "alphamark", "B": "betamark"}
GOOD_TOKEN = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def fast_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap password hashes for the many users these suites create and log in.

    The real cost (scrypt, ~0.3 s a hash) is what the auth tests measure; here it
    would only multiply the run time. Checking still goes through werkzeug.
    """
    monkeypatch.setattr(password_rules, "HASH_METHOD", "pbkdf2:sha256:1")


@dataclass
class World:
    """Objects by owner ("A", "B", or "G" for shared/global ones) and name; users by role."""

    objects: dict[str, dict[str, Any]] = field(default_factory=lambda: {"A": {}, "B": {}, "G": {}})
    users: dict[str, Any] = field(default_factory=dict)

    def get(self, owner: str, name: str) -> Any:
        try:
            return self.objects[owner][name]
        except KeyError:
            raise AssertionError(f"the security world has no {name!r} of owner {owner}") from None


def _make_user(
    role: Role,
    email: str,
    *,
    organisation=None,
    assigned=(),
    name: str = "",
    org_role: OrgRole = OrgRole.OWNER,
):
    user = user_service.create_user(
        email, PASSWORD, role=role, organisation=organisation, name=name, org_role=org_role
    )
    for org in assigned:
        user_service.assign_agent(user, org, actor=None)
    db.session.commit()
    return user


def _make_invitation(email: str, role: Role, organisation, by) -> Invitation:
    now = utcnow()
    invitation = Invitation(
        email=email,
        role=role,
        organisation=organisation,
        org_role=OrgRole.MEMBER if organisation is not None else None,
        token_hash=hashlib.sha256(email.encode()).hexdigest(),
        invited_by_id=by.id,
        created_at=now,
        expires_at=now + timedelta(days=7),
    )
    db.session.add(invitation)
    db.session.commit()
    return invitation


def _make_thread(channel, mark: str) -> Thread:
    subject = f"Inquiry from Amazon customer {mark} (Order: 203-1234567-1234567)"
    when = utcnow() - timedelta(hours=2)
    thread = Thread(
        channel=channel,
        organisation_id=channel.organisation_id,
        subject=subject,
        normalized_subject=subject.lower(),
        buyer_name=f"Buyer {mark}",
        buyer_address=f"buyer-{mark}@marketplace.amazon.co.uk",
        order_id="203-1234567-1234567",
        last_message_at=when,
        awaiting_reply_since=when,
    )
    text = f"Where is my parcel {mark}?"
    inbound = Message(
        thread=thread,
        channel=channel,
        direction=Direction.IN,
        message_id=f"<inbound-{mark}@example.com>",
        content_hash=f"hash-{mark}",
        subject=subject,
        from_name=f"Buyer {mark}",
        from_address=thread.buyer_address,
        to_addresses=channel.helpdesk_address,
        order_id=thread.order_id,
        text_body=text,
        visible_text=text,
        snippet=text,
        html_body=f'<p>HTML body {mark}</p><img src="cid:logo-{mark}">',
        raw=f"Subject: {mark}\r\n\r\nbody {mark}\r\n".encode(),
        created_at=when,
    )
    # An automatic message too, so every page that sets such mail apart is checked
    # (the accessibility suite found its faded text below AA contrast).
    notice = Message(
        thread=thread,
        channel=channel,
        direction=Direction.IN,
        message_id=f"<notice-{mark}@amazon.co.uk>",
        content_hash=f"notice-hash-{mark}",
        subject=f"Delivery update {mark}",
        from_address="no-reply@amazon.co.uk",
        to_addresses=channel.helpdesk_address,
        text_body=f"Your order {mark} has shipped.",
        visible_text=f"Your order {mark} has shipped.",
        is_amazon_notification=True,
        created_at=when + timedelta(minutes=5),
    )
    db.session.add_all([thread, inbound, notice])
    db.session.commit()
    return thread


def _org_objects(world: World, owner: str) -> None:
    mark = MARKS[owner]
    objects = world.objects[owner]
    org = user_service.get_or_create_organisation(f"{owner.lower()}org {mark} Ltd", actor=None)
    channel = channel_service.create_channel(
        org, "UK", actor=None, inbound_domain="helpdesk.test", is_professional_confirmed=True
    )
    channel.helpdesk_address = f"uk-{mark}@helpdesk.test"
    db.session.commit()
    seller = _make_user(
        Role.SELLER, f"seller-{mark}@example.com", organisation=org, name=f"Seller {mark}"
    )
    agent = _make_user(
        Role.AGENT, f"agent-{mark}@example.com", assigned=[org], name=f"Agent {mark}"
    )
    channel_service.submit_mws_token(
        channel, seller_id="A1B2C3D4E5F6G7", token=GOOD_TOKEN, actor=seller
    )
    db.session.commit()
    assert channel.status == ChannelStatus.PENDING_VERIFICATION

    thread = _make_thread(channel, mark)
    inbound = thread.messages[0]
    attachment = Attachment(
        message=inbound,
        filename=f"invoice-{mark}.pdf",
        content_type="application/pdf",
        size=20,
        data=f"%PDF-1.4 {mark}".encode(),
    )
    inline = Attachment(
        message=inbound,
        filename=f"logo-{mark}.png",
        content_type="image/png",
        size=len(PNG),
        content_id=f"logo-{mark}",
        is_inline=True,
        data=PNG,
    )
    db.session.add_all([attachment, inline])
    db.session.commit()
    tag = thread_service.add_tag(thread, f"tag-{mark}", actor=agent)
    thread_service.add_internal_note(thread, f"Internal note {mark}", actor=agent)
    reply = outbox_service.queue_reply(thread, body=f"Hello buyer {mark}", author=agent)
    db.session.flush()
    reply.send_status = SendStatus.FAILED
    reply.last_send_error = f"DATA: 554 refused {mark}"
    canned = canned_service.create_canned_reply(
        organisation=org,
        title=f"Canned {mark}",
        body=f"Hello {{buyer_name}} from {mark}",
        actor=seller,
    )
    db.session.commit()
    # A second sign-in of the seller, in a browser the matrix has not: only that seller
    # may end it from their account page.
    sign_in = session_service.start_session(
        seller,
        remember=False,
        remember_for=timedelta(days=1),
        ip_address="192.0.2.1",
        user_agent=f"Browser {mark}",
        now=utcnow(),
    )
    db.session.commit()
    member = _make_user(
        Role.SELLER,
        f"member-{mark}@example.com",
        organisation=org,
        name=f"Member {mark}",
        org_role=OrgRole.MEMBER,
    )
    invitation = _make_invitation(f"invited-{mark}@example.com", Role.SELLER, org, seller)
    # The member's passkey, theirs alone to remove; with an authenticator app too, which
    # is how the matrix signs them in.
    two_factor.provision_totp(member, now=utcnow(), actor=None)
    passkey = Passkey(
        user_id=member.id,
        name=f"Laptop {mark}",
        credential_id=f"credential-{mark}".encode(),
        public_key=b"not a real key",
        sign_count=0,
        transports="internal",
    )
    db.session.add(passkey)
    db.session.commit()
    objects.update(
        member=member,
        invitation=invitation,
        session=sign_in,
        passkey=passkey,
        org=org,
        channel=channel,
        seller=seller,
        agent=agent,
        thread=thread,
        inbound=inbound,
        attachment=attachment,
        tag=tag,
        reply=reply,
        canned=canned,
        # A user of the organisation's own, for the admin pages about users.
        user=seller,
    )


WORLD_INGRESS_TOKEN = "world-ingress-token"


def build_world() -> World:
    """Create organisations A and B, their people and mail, and the shared objects.

    Needs an app context; call it with cheap password hashes (`fast_passwords`).
    """
    world = World()
    admin = _make_user(Role.ADMIN, "admin-world@example.com", name="Admin")
    agent_none = _make_user(Role.AGENT, "agent-none@example.com", name="Agent unassigned")
    for owner in ("A", "B"):
        _org_objects(world, owner)

    shared = world.objects["G"]
    shared["canned"] = canned_service.create_canned_reply(
        organisation=None, title="Canned global", body="Hello {buyer_name}", actor=admin
    )
    mailbox = Mailbox(name="Main", source_url="maildir:/nonexistent/sellerdesk-test")
    db.session.add(mailbox)
    # An HTTP ingress mailbox whose path token the route matrix knows (WORLD_INGRESS_TOKEN):
    # its unsigned posts must be refused.
    db.session.add(
        Mailbox(
            name="Posted",
            source_url="http-ingress://?provider=generic",
            ingress_token_hash=token_hash(WORLD_INGRESS_TOKEN),
            signing_key_encrypted=encrypt_secret("world-signing-key"),
        )
    )
    now = utcnow()
    unrouted = Message(
        mailbox=mailbox,
        direction=Direction.IN,
        message_id="<unrouted@example.com>",
        content_hash="unrouted",
        subject="Unrouted question",
        from_address="someone@example.com",
        to_addresses="nobody@helpdesk.test",
        html_body="<p>unrouted html</p>",
        text_body="unrouted text",
        raw=b"Subject: Unrouted question\r\n\r\nunrouted text\r\n",
        created_at=now - timedelta(minutes=5),
    )
    quarantined = Message(
        mailbox=mailbox,
        direction=Direction.IN,
        message_id="<quarantined@quarantine.sellerdesk>",
        content_hash="quarantined",
        raw=b"\x00\x01 not mail",
        size=10,
        quarantine_reason="no From, To, Date, Subject or Message-ID header: not an e-mail",
    )
    db.session.add_all([unrouted, quarantined])
    db.session.commit()
    shared.update(
        mailbox=mailbox,
        unrouted=unrouted,
        quarantined=quarantined,
        invitation=_make_invitation("invited-staff@example.com", Role.AGENT, None, admin),
    )

    world.users = {
        "owner_a": world.objects["A"]["seller"],
        "member_a": world.objects["A"]["member"],
        "owner_b": world.objects["B"]["seller"],
        "agent_a": world.objects["A"]["agent"],
        "agent_none": agent_none,
        "admin": admin,
    }
    return world


# --- snapshots: put the world back after a request changed it ------------------------------


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of every table (committed data), to `restore` later."""
    db.session.rollback()
    rows = {
        table.name: [
            dict(row._mapping)
            for row in db.session.execute(select(table).order_by(*table.primary_key.columns))
        ]
        for table in db.metadata.sorted_tables
    }
    db.session.rollback()
    return rows


def restore(rows: dict[str, list[dict[str, Any]]]) -> None:
    """Make the database hold exactly `rows` again (same ids, so sessions stay valid)."""
    db.session.rollback()
    tables = db.metadata.sorted_tables
    for table in reversed(tables):
        db.session.execute(delete(table))
    for table in tables:
        if rows[table.name]:
            db.session.execute(insert(table), rows[table.name])
    db.session.commit()
    db.session.expire_all()


#: Columns any request of a signed-in user may write: the activity of the sign-in
#: (portal/services/sessions.py, note_activity, at most once a minute). Not a change.
ACTIVITY = {"user_sessions": ("last_seen_at", "expires_at", "ip_address")}
#: Tables any page may write as a cache of what it computed: the dashboard's and the
#: reports' figures (portal/services/report_snapshots.py; whose figures a page may
#: show is tests/portal/test_report_snapshots.py's). Not a change.
CACHES = frozenset({"report_snapshots"})


def fingerprint() -> dict[str, str]:
    """A digest of every row of every table (committed data, but ACTIVITY and CACHES), by
    table."""
    digests = {}
    for name, rows in snapshot().items():
        if name in CACHES:
            continue
        skip = ACTIVITY.get(name, ())
        kept = [{k: v for k, v in row.items() if k not in skip} for row in rows]
        digests[name] = hashlib.sha256(repr(kept).encode()).hexdigest()
    return digests


# --- one world, one logged-in client per role, for suites of many requests -----------------

ROLES = ("anonymous", "owner_a", "member_a", "owner_b", "agent_a", "agent_none", "admin")
#: Whose objects each role may see.
SEES = {
    "anonymous": frozenset(),
    "owner_a": frozenset("A"),
    "member_a": frozenset("A"),
    "owner_b": frozenset("B"),
    "agent_a": frozenset("A"),
    "agent_none": frozenset(),
    "admin": frozenset("AB"),
}
#: Settings that turn "Authorise with Amazon" on, so its routes answer; no suite here
#: reaches the token endpoint (no request carries a state the portal issued).
SPAPI_ON = {
    "SPAPI_APPLICATION_ID": "amzn1.sp.solution.security-suite",
    "LWA_CLIENT_ID": "amzn1.application-oa2-client.security-suite",
    "LWA_CLIENT_SECRET": "security-suite-secret",
    "LWA_TOKEN_URL": "http://127.0.0.1:9/never-called",
}


@dataclass
class Matrix:
    """The app, the world's object ids by owner and name, and a client per role."""

    app: Flask
    ids: dict[str, dict[str, int]]
    clients: dict[str, FlaskClient]
    emails: dict[str, str]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    digest: dict[str, str] = field(default_factory=dict)

    def login(self, role: str) -> None:
        if role != "anonymous":
            response = AuthActions(self.clients[role]).login(self.emails[role])
            assert response.status_code == 302, f"{role} could not log in"

    def log_in_again(self, role: str) -> None:
        """After a real logout: log `role` in anew, and make that the world to go back to.

        The logout ended the sign-in on the server and the client dropped its cookie, so
        restoring the old row would not log the client back in.
        """
        self.reset()
        self.login(role)
        self.rows = snapshot()
        self.digest = fingerprint()

    def reset(self) -> None:
        """Put the world back if a request changed it (sessions stay valid)."""
        if fingerprint() != self.digest:
            restore(self.rows)


@contextmanager
def open_matrix(database_url: str, tmp: Path) -> Iterator[Matrix]:
    """Build the world once, log every role in, and empty the database afterwards.

    Rebuilding the world for each of hundreds of requests would take minutes; instead
    a suite calls `matrix.reset()` after a request that may have changed something.
    """
    config = app_config_for(
        database_url,
        tmp,
        LOGIN_RATE_LIMIT="1000 per minute",
        SIGNUP_RATE_LIMIT="1000 per minute",
        PASSWORD_RESET_RATE_LIMIT="1000 per minute",
        # A name, not an IP address: browsers make passkeys only for named sites, and the
        # pages offer their forms only then.
        PUBLIC_URL="http://localhost:5000",
        # Reports keep their figures, as in production: every role's pages go through
        # the snapshots (tests/portal/test_report_snapshots.py checks their scope).
        REPORTS_FRESH_SECONDS=600,
        **SPAPI_ON,
    )
    app = create_app(config)
    app.test_client_class = FreshContextClient
    with app.app_context():
        try:
            with pytest.MonkeyPatch.context() as monkeypatch:
                fast_passwords(monkeypatch)
                world = build_world()
            ids = {
                owner: {name: obj.id for name, obj in objects.items()}
                for owner, objects in world.objects.items()
            }
            emails = {role: user.email for role, user in world.users.items()}
            matrix = Matrix(app, ids, {r: app.test_client() for r in ROLES}, emails)
            for role in ROLES:
                matrix.login(role)
            matrix.rows = snapshot()
            matrix.digest = fingerprint()
            yield matrix
        finally:
            db.session.remove()
            with db.engine.begin() as conn:
                for table in reversed(db.metadata.sorted_tables):
                    conn.execute(delete(table))
            db.engine.dispose()
