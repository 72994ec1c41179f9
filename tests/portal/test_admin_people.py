"""Admin pages for users and organisations: creation with a one-time password, roles, access."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from werkzeug.security import check_password_hash

from portal.extensions import db
from portal.models import AuditEvent, Organisation, Role, User
from tests.helpers import PASSWORD, csrf_token_from


def post_form(client, page_url, action, data):
    token = csrf_token_from(client.get(page_url).get_data(as_text=True))
    return client.post(action, data={"csrf_token": token, **data})


def shown_password(html: str) -> str:
    match = re.search(r'id="temporary-password">([^<]+)<', html)
    assert match, "no temporary password on the page"
    return match.group(1)


def create_user(client, **fields):
    data = {"email": "new@example.com", "name": "Nina", "role": "agent"}
    data.update(fields)
    return post_form(client, "/admin/users/new", "/admin/users/new", data)


def test_new_user_gets_a_password_shown_once_and_must_change_it(client, auth, login_as):
    login_as(Role.ADMIN)
    response = create_user(client)
    assert response.status_code == 302
    user = db.session.scalar(select(User).filter_by(email="new@example.com"))
    assert response.headers["Location"] == f"/admin/users/{user.id}/temporary-password"
    assert user.role == Role.AGENT and user.must_change_password

    response = client.get(response.headers["Location"])
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    password = shown_password(page)
    assert "Shown only this once" in page
    # Stored only as a hash; never again on the page, nowhere in the audit log.
    assert password not in user.password_hash
    assert check_password_hash(user.password_hash, password)
    again = client.get(f"/admin/users/{user.id}/temporary-password").get_data(as_text=True)
    assert password not in again and "cannot be shown again" in again
    for event in db.session.scalars(select(AuditEvent)):
        assert password not in str(event.details)

    # First login with it: every page leads to the password change until it is done.
    auth.logout()
    response = auth.login("new@example.com", password)
    assert response.status_code == 302
    response = client.get("/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"] == "/account/password"
    response = post_form(
        client,
        "/account/password",
        "/account/password",
        {
            "current_password": password,
            "new_password": PASSWORD,
            "new_password2": PASSWORD,
        },
    )
    assert response.status_code == 302
    assert client.get("/dashboard").status_code == 200
    db.session.refresh(user)
    assert not user.must_change_password


def test_new_seller_needs_an_organisation(client, login_as, make_org):
    org = make_org("Kite & Co")
    login_as(Role.ADMIN)
    response = create_user(client, role="seller")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="organisation-error"' in page and "belongs to an organisation" in page

    response = create_user(client, role="agent", organisation=str(org.id))
    assert response.status_code == 422
    assert "Only sellers belong to an organisation" in response.get_data(as_text=True)

    response = create_user(client, role="seller", new_organisation="kite & co")
    assert response.status_code == 422
    assert 'id="new_organisation-error"' in response.get_data(as_text=True)

    assert create_user(client, role="seller", organisation=str(org.id)).status_code == 302
    user = db.session.scalar(select(User).filter_by(email="new@example.com"))
    assert user.organisation_id == org.id

    response = create_user(client, email="two@example.com", role="seller", new_organisation="Zen")
    assert response.status_code == 302
    user = db.session.scalar(select(User).filter_by(email="two@example.com"))
    assert user.organisation.name == "Zen"


def test_new_user_email_must_be_free(client, login_as, make_user):
    make_user(Role.AGENT, email="taken@example.com")
    login_as(Role.ADMIN)
    response = create_user(client, email="Taken@Example.com")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="email-error"' in page and "already exists" in page


def test_user_list_filters(client, login_as, make_user):
    seller = make_user(Role.SELLER, email="seller@example.com")
    agent = make_user(Role.AGENT, email="agent@example.com")
    agent.is_active = False
    db.session.commit()
    login_as(Role.ADMIN)
    page = client.get("/admin/users?role=seller").get_data(as_text=True)
    assert seller.email in page and agent.email not in page
    page = client.get("/admin/users?active=no").get_data(as_text=True)
    assert agent.email in page and seller.email not in page
    page = client.get("/admin/users?active=yes&role=agent").get_data(as_text=True)
    assert agent.email not in page


def test_deactivated_user_cannot_log_in_and_loses_their_session(app, client, auth, make_user):
    user = make_user(Role.SELLER)
    admin = make_user(Role.ADMIN)
    other = app.test_client()  # the user's own browser, already logged in
    page = other.get("/login").get_data(as_text=True)
    other.post(
        "/login",
        data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_token_from(page)},
    )
    assert other.get("/dashboard").status_code == 200

    auth.login(admin.email)
    url = f"/admin/users/{user.id}"
    response = post_form(client, url, f"{url}/deactivate", {})
    assert response.status_code == 302
    db.session.refresh(user)
    assert not user.is_active
    assert other.get("/dashboard").status_code == 302  # the session no longer counts
    auth.logout()
    assert auth.login(user.email).status_code == 200  # the login form again, with an error

    auth.login(admin.email)
    assert post_form(client, url, f"{url}/reactivate", {}).status_code == 302
    auth.logout()
    assert auth.login(user.email).status_code == 302
    kinds = {e.kind for e in db.session.scalars(select(AuditEvent))}
    assert {"user.deactivated", "user.reactivated"} <= kinds


def test_the_last_active_admin_cannot_be_deactivated_or_demoted(client, login_as, make_user):
    admin = login_as(Role.ADMIN)
    url = f"/admin/users/{admin.id}"
    response = post_form(client, url, f"{url}/deactivate", {})
    assert response.status_code == 422
    assert "is the last active admin" in response.get_data(as_text=True)
    response = post_form(client, url, f"{url}/role", {"role-role": "agent"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="role-role-error"' in page and "is the last active admin" in page
    db.session.refresh(admin)
    assert admin.is_active and admin.role == Role.ADMIN

    # A deactivated admin does not count: still the last active one.
    dormant = make_user(Role.ADMIN)
    dormant.is_active = False
    db.session.commit()
    assert post_form(client, url, f"{url}/role", {"role-role": "agent"}).status_code == 422

    # With a second active admin, the first may be demoted.
    make_user(Role.ADMIN)
    response = post_form(client, url, f"{url}/role", {"role-role": "agent"})
    assert response.status_code == 302
    db.session.refresh(admin)
    assert admin.role == Role.AGENT


def test_an_admin_cannot_deactivate_themselves(client, login_as, make_user):
    make_user(Role.ADMIN)
    admin = login_as(Role.ADMIN)
    url = f"/admin/users/{admin.id}"
    response = post_form(client, url, f"{url}/deactivate", {})
    assert response.status_code == 422
    assert "cannot deactivate your own account" in response.get_data(as_text=True)


def test_admin_cannot_reset_their_own_password(client, login_as):
    # A reset ends every session of the old password, the admin's own included, before
    # the temporary password is shown: it would lock them out.
    admin = login_as(Role.ADMIN)
    url = f"/admin/users/{admin.id}"
    response = post_form(client, url, f"{url}/reset-password", {})
    assert response.status_code == 422
    assert "cannot reset your own password" in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 200


def test_change_role(client, login_as, make_user, make_org):
    org = make_org("Kite & Co")
    agent = make_user(Role.AGENT, assigned=[org])
    login_as(Role.ADMIN)
    url = f"/admin/users/{agent.id}"
    response = post_form(client, url, f"{url}/role", {"role-role": "seller"})
    assert response.status_code == 422
    assert 'id="role-organisation-error"' in response.get_data(as_text=True)

    response = post_form(
        client, url, f"{url}/role", {"role-role": "seller", "role-organisation": str(org.id)}
    )
    assert response.status_code == 302
    db.session.refresh(agent)
    assert agent.role == Role.SELLER and agent.organisation_id == org.id
    assert agent.assigned_organisations == []
    event = db.session.scalar(select(AuditEvent).filter_by(kind="user.role_changed"))
    assert event.details["from"] == "agent" and event.details["to"] == "seller"

    post_form(client, url, f"{url}/role", {"role-role": "admin"})
    db.session.refresh(agent)
    assert agent.role == Role.ADMIN and agent.organisation_id is None


def test_assign_and_unassign_agents(client, login_as, make_user, make_org):
    alpha, beta = make_org("Alpha"), make_org("Beta")
    agent = make_user(Role.AGENT, assigned=[alpha])
    login_as(Role.ADMIN)
    url = f"/admin/users/{agent.id}"
    page = client.get(url).get_data(as_text=True)
    assign = page.split('id="assign"', 1)[1].split("</section>", 1)[0]
    assert f'<option value="{beta.id}">Beta</option>' in assign
    assert f'<option value="{alpha.id}">' not in assign

    response = post_form(client, url, f"{url}/assign", {"assign-organisation": ""})
    assert response.status_code == 422
    assert 'id="assign-organisation-error"' in response.get_data(as_text=True)

    assert (
        post_form(client, url, f"{url}/assign", {"assign-organisation": str(beta.id)}).status_code
        == 302
    )
    db.session.refresh(agent)
    assert {o.name for o in agent.assigned_organisations} == {"Alpha", "Beta"}

    assert post_form(client, url, f"{url}/unassign/{alpha.id}", {}).status_code == 302
    db.session.refresh(agent)
    assert [o.name for o in agent.assigned_organisations] == ["Beta"]
    kinds = [e.kind for e in db.session.scalars(select(AuditEvent))]
    assert "agent.unassigned" in kinds


def test_reset_password_shows_a_new_one_once(client, auth, login_as, make_user):
    user = make_user(Role.AGENT)
    login_as(Role.ADMIN)
    url = f"/admin/users/{user.id}"
    response = post_form(client, url, f"{url}/reset-password", {})
    assert response.status_code == 302
    password = shown_password(client.get(response.headers["Location"]).get_data(as_text=True))
    assert password not in client.get(response.headers["Location"]).get_data(as_text=True)
    db.session.refresh(user)
    assert user.must_change_password
    assert check_password_hash(user.password_hash, password)
    assert not check_password_hash(user.password_hash, PASSWORD)
    auth.logout()
    assert auth.login(user.email).status_code == 200  # the old password is gone
    auth.login(user.email, password)
    assert client.get("/inbox").headers["Location"] == "/account/password"


def test_another_users_password_page_shows_nothing(client, login_as, make_user):
    first, second = make_user(Role.AGENT), make_user(Role.AGENT)
    login_as(Role.ADMIN)
    url = f"/admin/users/{first.id}"
    post_form(client, url, f"{url}/reset-password", {})
    page = client.get(f"/admin/users/{second.id}/temporary-password").get_data(as_text=True)
    assert "cannot be shown again" in page
    # The hand-over was consumed by that visit.
    page = client.get(f"/admin/users/{first.id}/temporary-password").get_data(as_text=True)
    assert "cannot be shown again" in page


# --- organisations ---------------------------------------------------------------


def test_organisations_list_and_reply_switch(client, login_as, make_org, make_user, make_channel):
    org = make_org("Kite & Co")
    make_channel("UK", organisation=org)
    make_channel("DE", organisation=org)
    agent = make_user(Role.AGENT, email="agent@example.com", assigned=[org])
    login_as(Role.ADMIN)
    page = client.get("/admin/organisations").get_data(as_text=True)
    row = page.split(f'id="org-{org.id}"', 1)[1].split("</tr>", 1)[0]
    assert ">2</a>" in row and agent.display_name in row and "Allow sellers to reply" in row

    response = post_form(
        client,
        "/admin/organisations",
        f"/admin/organisations/{org.id}/reply-permission",
        {"allowed": "1"},
    )
    assert response.status_code == 302
    db.session.refresh(org)
    assert org.sellers_can_reply
    event = db.session.scalar(
        select(AuditEvent).filter_by(kind="organisation.sellers_can_reply_changed")
    )
    assert event.organisation_id == org.id and event.details == {"sellers_can_reply": True}
    page = client.get("/admin/organisations").get_data(as_text=True)
    assert "Stop sellers replying" in page

    post_form(
        client,
        "/admin/organisations",
        f"/admin/organisations/{org.id}/reply-permission",
        {"allowed": "0"},
    )
    db.session.refresh(org)
    assert not org.sellers_can_reply


@pytest.mark.parametrize("value", ["", "yes", "2"])
def test_reply_switch_rejects_bad_values(client, login_as, make_org, value):
    org = make_org()
    login_as(Role.ADMIN)
    response = post_form(
        client,
        "/admin/organisations",
        f"/admin/organisations/{org.id}/reply-permission",
        {"allowed": value},
    )
    assert response.status_code == 400
    assert not db.session.get(Organisation, org.id).sellers_can_reply
