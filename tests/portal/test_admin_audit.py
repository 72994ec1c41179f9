"""The audit log: the admins' filtered view of everything, and each organisation's own page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Role
from portal.services.audit import record_event
from portal.services.audit_log import PAGE_SIZE
from tests.helpers import enrol_totp


def event_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="event-(\d+)"', html)]


@pytest.fixture
def log(make_org, make_user):
    """Two organisations with a few events each, at known times, and the admin acting."""
    alpha, beta = make_org("Alpha Ltd"), make_org("Beta GmbH")
    seller = make_user(Role.SELLER, organisation=alpha)
    admin = make_user(Role.ADMIN, email="boss@example.com")
    enrol_totp(admin)  # before the login, which would audit it after the events below
    db.session.execute(db.delete(AuditEvent))  # only the events below
    when = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    made = {}
    for name, kind, actor, org, day in (
        ("a1", "channel.added", seller, alpha, 0),
        ("a2", "channel.token_submitted", seller, alpha, 1),
        ("b1", "channel.added", None, beta, 2),
        ("x1", "setting.changed", admin, None, 3),
        ("a3", "channel.status_changed", admin, alpha, 4),
    ):
        event = record_event(
            kind,
            actor=actor,
            organisation_id=org.id if org else None,
            details={"marker": name, "token": "amzn.mws.…4d6f"},
        )
        event.created_at = when + timedelta(days=day)
        made[name] = event.id
    db.session.commit()
    return {"alpha": alpha, "beta": beta, "seller": seller, "admin": admin, "ids": made}


def test_admin_sees_every_event_newest_first(client, auth, log):
    auth.login(log["admin"].email)
    page = client.get("/admin/audit").get_data(as_text=True)
    ids = log["ids"]
    shown = event_ids(page)
    # The admin's own login comes last and shows first.
    assert shown[1:] == [ids["a3"], ids["x1"], ids["b1"], ids["a2"], ids["a1"]]
    assert "marker:" in page and "a3" in page and "amzn.mws.…4d6f" in page
    assert "boss@example.com" in page and "Alpha Ltd" in page and "System" in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("organisation={alpha}", ["a3", "a2", "a1"]),
        ("organisation={beta}", ["b1"]),
        ("actor={seller}", ["a2", "a1"]),
        ("actor=system", ["b1"]),
        ("kind=channel.added", ["b1", "a1"]),
        ("since=2026-03-11&until=2026-03-13", ["x1", "b1", "a2"]),
        ("until=2026-03-10", ["a1"]),
        ("organisation={alpha}&actor={admin}&since=2026-03-12", ["a3"]),
        # The first and last days a date can name: no day after 9999-12-31 (was a 500).
        ("organisation={alpha}&until=9999-12-31", ["a3", "a2", "a1"]),
        ("organisation={beta}&since=0001-01-01", ["b1"]),
        ("since=0001-01-01&until=0001-01-01", []),
        ("since=9999-12-31&until=9999-12-31", []),
    ],
)
def test_admin_audit_filters(client, auth, log, query, expected):
    auth.login(log["admin"].email)
    query = query.format(
        alpha=log["alpha"].id,
        beta=log["beta"].id,
        seller=log["seller"].id,
        admin=log["admin"].id,
    )
    response = client.get(f"/admin/audit?{query}")
    assert response.status_code == 200
    shown = event_ids(response.get_data(as_text=True))
    assert shown == [log["ids"][name] for name in expected]


def test_a_bad_date_is_reported_beside_its_field(client, auth, log):
    auth.login(log["admin"].email)
    response = client.get("/admin/audit?since=2026-13-45")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="since-error"' in page
    assert len(event_ids(page)) == 6  # the filter is ignored


def test_keyset_pages(client, auth, log):
    for n in range(PAGE_SIZE + 5):
        record_event("test.filler", actor=None, details={"n": n})
    db.session.commit()
    auth.login(log["admin"].email)
    first = client.get("/admin/audit?kind=test.filler").get_data(as_text=True)
    first_ids = event_ids(first)
    assert len(first_ids) == PAGE_SIZE and first_ids == sorted(first_ids, reverse=True)
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert f"before={first_ids[-1]}" in older and "kind=test.filler" in older
    second = client.get(older).get_data(as_text=True)
    second_ids = event_ids(second)
    assert len(second_ids) == 5 and max(second_ids) < min(first_ids)
    assert 'rel="next"' not in second
    newer = re.search(r'href="([^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")
    assert event_ids(client.get(newer).get_data(as_text=True)) == first_ids


# --- each organisation's own log ------------------------------------------------


def test_seller_sees_only_their_organisations_events(client, auth, log):
    auth.login(log["seller"].email)
    alpha, beta = log["alpha"], log["beta"]
    response = client.get(f"/orgs/{alpha.id}/audit")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    ids = log["ids"]
    shown = event_ids(page)
    assert [ids["a3"], ids["a2"], ids["a1"]] == [i for i in shown if i in ids.values()]
    assert ids["b1"] not in shown and ids["x1"] not in shown
    # The admin who acted is not named to the seller.
    assert "boss@example.com" not in page and "Sellerdesk support" in page
    assert client.get(f"/orgs/{beta.id}/audit").status_code == 404
    assert client.get("/orgs/999999/audit").status_code == 404
    assert f"/orgs/{alpha.id}/audit" in client.get(f"/orgs/{alpha.id}").get_data(as_text=True)


def test_assigned_agents_and_admins_may_open_an_organisations_log(client, auth, log, make_user):
    alpha, beta = log["alpha"], log["beta"]
    agent = make_user(Role.AGENT, assigned=[beta])
    auth.login(agent.email)
    assert client.get(f"/orgs/{beta.id}/audit").status_code == 200
    assert client.get(f"/orgs/{alpha.id}/audit").status_code == 404
    auth.logout()
    auth.login(log["admin"].email)
    page = client.get(f"/orgs/{alpha.id}/audit").get_data(as_text=True)
    assert log["ids"]["a3"] in event_ids(page)
    assert "boss@example.com" in page  # staff see who acted


def test_anonymous_is_sent_to_login(client, log):
    response = client.get(f"/orgs/{log['alpha'].id}/audit")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_events_never_hold_the_token(client, auth, login_as, make_org, make_user, make_channel):
    from portal.services import channels as channel_service

    token = "amzn.mws.4ea38b7b-f563-7709-4bae-87aeaadc4d6f"
    org = make_org()
    seller = make_user(Role.SELLER, organisation=org)
    channel = make_channel("UK", organisation=org)
    channel_service.submit_mws_token(channel, seller_id="A1B2C3D4E5F6G7", token=token, actor=seller)
    db.session.commit()
    login_as(Role.ADMIN)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "amzn.mws.…4d6f" in page and token not in page and "4ea38b7b" not in page
    assert all(token not in str(e.details) for e in db.session.scalars(select(AuditEvent)))
