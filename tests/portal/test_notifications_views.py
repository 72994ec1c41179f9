"""Browser notifications on the pages: the choice on /account (CSRF, audited), the
script only for those who opted in, and POST /notifications/claim scoped as the inbox
is (two organisations), each notification to one tab once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Role
from portal.services import notifications as notification_service
from portal.sqltypes import utcnow
from tests.helpers import csrf_token_from


def settled(thread):
    # Stored a few seconds ago: past the claim's settling time.
    thread.created_at = utcnow() - timedelta(seconds=10)
    db.session.commit()
    return thread


def test_opting_in_on_the_account_page(client, login_as):
    user = login_as(Role.AGENT)
    page = client.get("/account").get_data(as_text=True)
    assert 'id="notifications"' in page and "js/notify.js" not in page
    token = csrf_token_from(page)
    assert (
        client.post("/account/notifications", data={"notifications-browser": "y"}).status_code
        == 400
    )
    answer = client.post(
        "/account/notifications",
        data={"notifications-csrf_token": token, "notifications-browser": "y"},
    )
    assert answer.status_code == 302
    db.session.refresh(user)
    assert user.browser_notifications and user.notified_through is not None
    assert db.session.scalar(
        select(AuditEvent).where(AuditEvent.kind == "user.notifications_changed")
    )
    page = client.get("/account").get_data(as_text=True)
    assert "js/notify.js" in page and "Allow notifications in this browser" in page
    assert "js/notify.js" in client.get("/inbox").get_data(as_text=True)
    client.post("/account/notifications", data={"notifications-csrf_token": token})
    db.session.refresh(user)
    assert not user.browser_notifications
    assert "js/notify.js" not in client.get("/inbox").get_data(as_text=True)


def claim(client):
    token = csrf_token_from(client.get("/account").get_data(as_text=True))
    return client.post("/notifications/claim", data={"csrf_token": token})


def test_claim_is_scoped_and_given_once(client, login_as, two_channels, make_thread):
    uk, de = two_channels
    seller = login_as(Role.SELLER, organisation=uk.organisation)
    notification_service.set_browser_notifications(
        seller, True, now=utcnow() - timedelta(minutes=1)
    )
    db.session.commit()
    alpha = settled(make_thread(uk, subject="Alpha question"))
    settled(make_thread(de, subject="Beta question"))
    first = claim(client)
    assert first.status_code == 200
    (item,) = first.json["notifications"]
    assert item["title"] == "New: Alpha question" and item["url"] == f"/threads/{alpha.id}"
    assert "Beta" not in first.get_data(as_text=True)
    assert claim(client).json == {"notifications": []}


def test_claim_needs_csrf_and_a_login(client, login_as):
    # Every POST's CSRF check comes first, even before the login's.
    assert client.post("/notifications/claim").status_code == 400
    login_as(Role.SELLER)
    assert client.post("/notifications/claim").status_code == 400
    assert claim(client).json == {"notifications": []}
