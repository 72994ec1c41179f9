"""Organisation roles and invitations through the test client, CSRF on: owners manage,
members work and read; invitations work once, for 7 days, unless withdrawn; renaming;
leaving while another owner remains."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import insert, select

from portal import create_app
from portal.extensions import db
from portal.models import AuditEvent, Invitation, Message, OrgRole, Role, User
from portal.sqltypes import utcnow
from tests.helpers import PASSWORD, AuthActions, app_config_for, csrf_token_from, parse_mail

NEW_PASSWORD = "lantern orchard pebble"


@pytest.fixture
def org(make_org):
    return make_org("Kite & Co")


@pytest.fixture
def owner(login_as, org):
    return login_as(Role.SELLER, organisation=org, email="owner@example.com")


def post_form(client, page_url: str, action: str, data: dict, prefix: str = ""):
    token = csrf_token_from(client.get(page_url).get_data(as_text=True))
    return client.post(action, data={f"{prefix}csrf_token": token, **data})


def mailed_invitation_link() -> str:
    [mail] = db.session.scalars(
        select(Message).where(Message.thread_id.is_(None)).order_by(Message.id.desc()).limit(1)
    ).all()
    text = parse_mail(mail.raw).get_content()
    [link] = re.findall(r"https?://\S+/invitations/\S+", text)
    return "/" + link.split("://", 1)[1].partition("/")[2]


def invite(client, org, email: str, org_role: str = "member"):
    return post_form(
        client,
        f"/orgs/{org.id}",
        f"/orgs/{org.id}/invitations",
        {"invite-email": email, "invite-org_role": org_role},
        prefix="invite-",
    )


def accept(client, path: str, password: str = NEW_PASSWORD, name: str = "Max"):
    return post_form(
        client,
        path,
        path,
        {"name": name, "new_password": password, "new_password2": password},
    )


def test_an_owner_invites_a_member_who_accepts_once(app, client, owner, org):
    response = invite(client, org, "Max@Example.com")
    assert response.status_code == 302
    path = mailed_invitation_link()
    page = client.get(f"/orgs/{org.id}").get_data(as_text=True)
    assert "max@example.com" in page and "Withdraw" in page

    guest = app.test_client()
    assert "member of <strong>Kite &amp; Co</strong>" in guest.get(path).get_data(as_text=True)
    assert accept(guest, path).headers["Location"] == "/login"

    user = db.session.scalar(select(User).where(User.email == "max@example.com"))
    assert (user.role, user.org_role, user.organisation_id, user.name) == (
        Role.SELLER,
        OrgRole.MEMBER,
        org.id,
        "Max",
    )
    assert AuthActions(guest).login("max@example.com", NEW_PASSWORD).status_code == 302
    assert "has expired, was withdrawn or has already been used" in app.test_client().get(
        path
    ).get_data(as_text=True)
    kinds = set(db.session.scalars(select(AuditEvent.kind)))
    assert {"invitation.sent", "invitation.accepted", "user.created"} <= kinds


def test_an_invitation_expires_after_seven_days(app, client, owner, org):
    invite(client, org, "max@example.com")
    path = mailed_invitation_link()
    sent = utcnow()
    app.config["CLOCK"] = lambda: sent + timedelta(days=6, hours=23)
    assert "Choose your password" in client.get(path).get_data(as_text=True)
    app.config["CLOCK"] = lambda: sent + timedelta(days=7, seconds=1)
    assert "has expired" in client.get(path).get_data(as_text=True)


def test_a_withdrawn_invitation_opens_nothing(app, client, owner, org):
    invite(client, org, "max@example.com")
    path = mailed_invitation_link()
    invitation = db.session.scalar(select(Invitation))
    response = post_form(
        client,
        f"/orgs/{org.id}",
        f"/orgs/{org.id}/invitations/{invitation.id}/revoke",
        {},
        prefix="revoke-",
    )
    assert response.status_code == 302
    assert "has expired, was withdrawn" in app.test_client().get(path).get_data(as_text=True)
    guest = app.test_client()
    token = csrf_token_from(guest.get("/login").get_data(as_text=True))
    form = {"csrf_token": token, "new_password": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    assert "has expired" in guest.post(path, data=form).get_data(as_text=True)
    assert db.session.scalar(select(User).where(User.email == "max@example.com")) is None


def test_a_weak_password_is_told_next_to_the_field(app, client, owner, org):
    invite(client, org, "max@example.com")
    page = accept(app.test_client(), mailed_invitation_link(), "short").get_data(as_text=True)
    assert 'id="new_password-error"' in page and "at least 12 characters" in page


@pytest.mark.parametrize("path", ["/channels/new", "/orgs/{org}/invitations", "/orgs/{org}/rename"])
def test_a_member_may_not_manage(client, login_as, org, make_user, path):
    make_user(Role.SELLER, organisation=org)  # the owner
    login_as(Role.SELLER, organisation=org, email="m@example.com")
    member = db.session.scalar(select(User).where(User.email == "m@example.com"))
    member.org_role = OrgRole.MEMBER
    db.session.commit()
    url = path.format(org=org.id)
    token = csrf_token_from(client.get("/dashboard").get_data(as_text=True))
    response = client.post(url, data={"csrf_token": token, "invite-csrf_token": token})
    assert response.status_code == 403
    page = client.get(f"/orgs/{org.id}").get_data(as_text=True)
    assert "Invite a colleague" not in page and "Make owner" not in page


def test_the_last_owner_stays_one_and_cannot_leave(client, owner, org, make_user):
    colleague = make_user(Role.SELLER, organisation=org)
    colleague.org_role = OrgRole.MEMBER
    db.session.commit()
    page = f"/orgs/{org.id}"
    refused = post_form(
        client, page, f"{page}/members/{owner.id}/role", {"role-org_role": "member"}, "role-"
    )
    assert refused.status_code == 422 and "last owner" in refused.get_data(as_text=True)
    left = post_form(client, page, f"{page}/leave", {}, "leave-")
    assert left.status_code == 422 and "only owner" in left.get_data(as_text=True)

    made = post_form(
        client, page, f"{page}/members/{colleague.id}/role", {"role-org_role": "owner"}, "role-"
    )
    assert made.status_code == 302
    left = post_form(client, page, f"{page}/leave", {}, "leave-")
    assert left.headers["Location"] == "/login"
    db.session.expire_all()
    assert not db.session.get(User, owner.id).is_active
    assert AuthActions(client).login(owner.email, PASSWORD).status_code == 200  # refused


def test_an_owner_renames_the_organisation(client, owner, org, make_org):
    make_org("Taken Ltd")
    page = f"/orgs/{org.id}"
    taken = post_form(client, page, f"{page}/rename", {"rename-name": "taken ltd"}, "rename-")
    assert taken.status_code == 422 and "already registered" in taken.get_data(as_text=True)
    renamed = post_form(client, page, f"{page}/rename", {"rename-name": "Kestrel"}, "rename-")
    assert renamed.status_code == 302
    db.session.expire_all()
    assert db.session.get(type(org), org.id).name == "Kestrel"
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "organisation.renamed"))
    assert event.details == {"from": "Kite & Co", "to": "Kestrel"}


def test_admins_invite_agents_and_admins(app, client, admin):
    response = post_form(
        client,
        "/admin/invitations",
        "/admin/invitations",
        {"email": "agent.new@example.com", "role": "agent"},
    )
    assert response.status_code == 302
    path = mailed_invitation_link()
    assert accept(app.test_client(), path).status_code == 302
    user = db.session.scalar(select(User).where(User.email == "agent.new@example.com"))
    assert (user.role, user.org_role, user.organisation_id) == (Role.AGENT, None, None)


@pytest.mark.parametrize(
    "param", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_the_migration_makes_every_seller_an_owner(empty_database_url, tmp_path, param):
    del param  # empty_database_url is parametrized the same way
    app = create_app(app_config_for(empty_database_url, tmp_path))
    with app.app_context():
        upgrade(revision="d8f3b6a1c4e9")
        db.session.execute(insert(db.metadata.tables["organisations"]).values(id=1, name="O"))
        users = db.metadata.tables["users"]
        for n, role in enumerate(("seller", "agent"), start=1):
            db.session.execute(
                insert(users).values(
                    id=n,
                    email=f"u{n}@example.com",
                    name="",
                    password_hash="x",
                    role=role,
                    organisation_id=1 if role == "seller" else None,
                    is_active=True,
                    must_change_password=False,
                    created_at=utcnow(),
                )
            )
        db.session.commit()
        db.session.remove()
        upgrade()
        roles = dict(db.session.execute(select(User.role, User.org_role)).all())
        assert roles == {Role.SELLER: OrgRole.OWNER, Role.AGENT: None}
        db.session.remove()
        db.engine.dispose()
