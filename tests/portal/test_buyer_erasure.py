"""The buyer erasure pages (orgs/views.py `erase_buyer`, `erase_buyer_confirm`): an
address, the counts of what would go, then the erasure; CSRF on, tenant scope."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, OrgRole, Role, Thread
from portal.services import buyer_data
from portal.sqltypes import utcnow
from tests.helpers import csrf_token_from

BUYER = "q7xk2mfv9d3lp0b@marketplace.amazon.co.uk"


def erase_url(org_id: int, step: str = "") -> str:
    return f"/orgs/{org_id}/buyers/erase{step}"


def look_up(client, org_id: int, address: str):
    token = csrf_token_from(client.get(erase_url(org_id)).get_data(as_text=True))
    return client.post(erase_url(org_id), data={"csrf_token": token, "address": address})


@pytest.fixture
def buyer_thread(uk, make_thread):
    make_thread(uk, texts=("kettle leaks",))
    return make_thread(uk, buyer_address=BUYER, texts=("too small", "refund please"))


def test_an_owner_sees_the_counts_then_erases(client, login_as, uk, buyer_thread):
    login_as(Role.SELLER, organisation=uk.organisation)
    detail = client.get(f"/orgs/{uk.organisation_id}").get_data(as_text=True)
    assert erase_url(uk.organisation_id) in detail

    preview = look_up(client, uk.organisation_id, f" {BUYER.upper()} ")
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert '<strong id="erase-threads">1</strong>' in page
    assert '<strong id="erase-messages">2</strong>' in page
    assert db.session.get(Thread, buyer_thread.id).erased_at is None  # nothing erased yet

    response = client.post(
        erase_url(uk.organisation_id, "/confirm"),
        data={"csrf_token": csrf_token_from(page), "address": BUYER},
    )
    assert response.status_code == 302
    followed = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "1 conversation, 2 messages, 0 attachments, 0 orders." in followed
    db.session.expire_all()
    assert db.session.get(Thread, buyer_thread.id).erased_at is not None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "buyer.erased"))
    assert event.organisation_id == uk.organisation_id and BUYER not in str(event.details)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("", "This field is required."),
        ("no-at-sign", "e-mail address or Amazon relay alias"),
        ("nobody@marketplace.amazon.co.uk", "Nothing is stored about this buyer"),
    ],
)
def test_a_bad_or_unknown_address_is_refused_next_to_the_field(
    client, login_as, uk, buyer_thread, address, message
):
    login_as(Role.SELLER, organisation=uk.organisation)
    response = look_up(client, uk.organisation_id, address)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="address-error"' in page and message in page
    assert "erase-preview" not in page


def test_the_confirmation_needs_its_csrf_token(client, login_as, uk, buyer_thread):
    login_as(Role.SELLER, organisation=uk.organisation)
    response = client.post(erase_url(uk.organisation_id, "/confirm"), data={"address": BUYER})
    assert response.status_code == 400
    assert db.session.get(Thread, buyer_thread.id).erased_at is None


def test_a_second_confirmation_says_nothing_is_left(client, login_as, uk, buyer_thread):
    login_as(Role.SELLER, organisation=uk.organisation)
    token = csrf_token_from(client.get(erase_url(uk.organisation_id)).get_data(as_text=True))
    data = {"csrf_token": token, "address": BUYER}
    client.post(erase_url(uk.organisation_id, "/confirm"), data=data)
    again = client.post(erase_url(uk.organisation_id, "/confirm"), data=data)
    assert again.status_code == 302
    page = client.get(again.headers["Location"]).get_data(as_text=True)
    assert "Nothing is stored about this buyer" in page


def test_an_owner_cannot_erase_in_another_organisation(
    client, login_as, make_org, uk, buyer_thread
):
    login_as(Role.SELLER, organisation=make_org("Beta GmbH"))
    assert client.get(erase_url(uk.organisation_id)).status_code in (403, 404)
    token = csrf_token_from(client.get("/account").get_data(as_text=True))
    response = client.post(
        erase_url(uk.organisation_id, "/confirm"), data={"csrf_token": token, "address": BUYER}
    )
    assert response.status_code in (403, 404)
    assert db.session.get(Thread, buyer_thread.id).erased_at is None


def test_members_and_agents_cannot_erase(client, login_as, make_user, auth, uk, buyer_thread):
    member = make_user(Role.SELLER, organisation=uk.organisation)
    member.org_role = OrgRole.MEMBER
    db.session.commit()
    auth.login(member.email)
    assert client.get(erase_url(uk.organisation_id)).status_code == 403
    assert erase_url(uk.organisation_id) not in client.get(f"/orgs/{uk.organisation_id}").get_data(
        as_text=True
    )
    auth.logout()
    login_as(Role.AGENT, assigned=[uk.organisation])
    assert client.get(erase_url(uk.organisation_id)).status_code == 403


def test_an_admin_may_erase_in_any_organisation(client, login_as, uk, buyer_thread):
    login_as(Role.ADMIN)
    preview = look_up(client, uk.organisation_id, BUYER)
    assert preview.status_code == 200 and 'id="erase-messages">2<' in preview.get_data(as_text=True)


def test_an_erased_thread_says_so_and_shows_no_content(client, login_as, uk, buyer_thread):
    buyer_data.erase_buyer(uk.organisation, BUYER, actor=None, now=utcnow())
    db.session.commit()
    login_as(Role.SELLER, organisation=uk.organisation)
    page = client.get(f"/threads/{buyer_thread.id}").get_data(as_text=True)
    assert 'id="erased-notice"' in page and page.count("Content erased.") == 2
    assert "refund please" not in page and BUYER not in page
