"""Closing an organisation from the admin console (admin/people.py `organisation_close`,
`organisation_reopen`): the confirmation step, the closing, the state on the list,
reopening; and what a closed organisation's user meets at /login. CSRF on."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, ChannelStatus, Organisation, Role, User
from portal.services import offboarding
from portal.sqltypes import utcnow
from tests.helpers import PASSWORD, csrf_token_from


def close_url(org_id: int) -> str:
    return f"/admin/organisations/{org_id}/close"


def test_an_admin_confirms_then_closes(client, login_as, uk, make_user, app):
    app.config["OFFBOARDING_GRACE_DAYS"] = 45
    seller = make_user(Role.SELLER, organisation=uk.organisation)
    admin = login_as(Role.ADMIN)
    listing = client.get("/admin/organisations").get_data(as_text=True)
    assert close_url(uk.organisation_id) in listing

    page = client.get(close_url(uk.organisation_id))
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="grace-days">45 days<' in html and "Amazon authorisations" in html
    token = csrf_token_from(html)

    # Without the box ticked nothing happens, and the reason is beside the box.
    refused = client.post(close_url(uk.organisation_id), data={"csrf_token": token})
    assert refused.status_code == 422
    assert "Tick the box to confirm the closing." in refused.get_data(as_text=True)
    assert db.session.get(Organisation, uk.organisation_id).closed_at is None

    done = client.post(
        close_url(uk.organisation_id),
        data={"csrf_token": token, "confirm": "y"},
        follow_redirects=True,
    )
    html = done.get_data(as_text=True)
    assert done.status_code == 200 and "Acme is closed" in html
    db.session.expire_all()
    organisation = db.session.get(Organisation, uk.organisation_id)
    assert (organisation.erase_after - organisation.closed_at).days == 45
    assert organisation.channels[0].status == ChannelStatus.DISABLED
    assert not db.session.get(User, seller.id).is_active
    event = db.session.scalar(select(AuditEvent).filter_by(kind="organisation.closed"))
    assert event.actor_id == admin.id
    assert "Closed on" in html and f"Reopen {organisation.name}" in html


def test_closing_needs_its_csrf_token(client, login_as, uk):
    login_as(Role.ADMIN)
    response = client.post(close_url(uk.organisation_id), data={"confirm": "y"})
    assert response.status_code == 400
    assert db.session.get(Organisation, uk.organisation_id).closed_at is None


def test_reopening_from_the_list(client, login_as, uk):
    login_as(Role.ADMIN)
    offboarding.close_organisation(uk.organisation, actor=None, now=utcnow(), grace_days=30)
    db.session.commit()
    token = csrf_token_from(client.get("/admin/organisations").get_data(as_text=True))
    response = client.post(
        f"/admin/organisations/{uk.organisation_id}/reopen",
        data={"csrf_token": token},
        follow_redirects=True,
    )
    assert "Acme is open again" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Organisation, uk.organisation_id).closed_at is None


def test_the_list_says_when_the_data_was_erased(client, login_as, uk):
    login_as(Role.ADMIN)
    long_ago = utcnow() - timedelta(days=40)
    offboarding.close_organisation(uk.organisation, actor=None, now=long_ago, grace_days=30)
    db.session.commit()
    html = client.get("/admin/organisations").get_data(as_text=True)
    assert "data erased after" in html and "Reopen Acme" not in html  # grace period over
    uk.organisation.data_erased_at = utcnow()
    db.session.commit()
    html = client.get("/admin/organisations").get_data(as_text=True)
    assert "Closed, data erased on" in html


def test_non_admins_cannot_close(client, login_as, uk):
    login_as(Role.SELLER, organisation=uk.organisation)
    assert client.get(close_url(uk.organisation_id)).status_code == 403


def test_a_closed_organisations_user_is_told_so_only_with_the_right_password(client, uk, make_user):
    make_user(Role.SELLER, organisation=uk.organisation, email="owner@acme.test")
    offboarding.close_organisation(uk.organisation, actor=None, now=utcnow(), grace_days=30)
    db.session.commit()

    def login(password: str):
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        return client.post(
            "/login", data={"csrf_token": token, "email": "owner@acme.test", "password": password}
        )

    wrong = login("not the password").get_data(as_text=True)
    assert "Wrong e-mail or password." in wrong and "closed" not in wrong
    right = login(PASSWORD)
    assert right.status_code == 403
    assert "This organisation&#39;s account is closed" in right.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302  # not signed in


def test_the_organisation_page_says_it_is_closed(client, login_as, uk):
    login_as(Role.ADMIN)
    assert 'id="org-closed"' not in client.get(f"/orgs/{uk.organisation_id}").get_data(as_text=True)
    offboarding.close_organisation(uk.organisation, actor=None, now=utcnow(), grace_days=30)
    db.session.commit()
    page = client.get(f"/orgs/{uk.organisation_id}").get_data(as_text=True)
    assert 'id="org-closed">Closed on' in page and "reopen it from Organisations" in page
    uk.organisation.data_erased_at = utcnow()
    db.session.commit()
    page = client.get(f"/orgs/{uk.organisation_id}").get_data(as_text=True)
    assert 'id="org-closed">Closed, data erased on' in page
