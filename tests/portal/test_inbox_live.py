"""The live inbox (/inbox/live): 304 while nothing the user may see changed, else the
rows and the navigation's counts; scoped as the inbox is (two organisations)."""

from __future__ import annotations

from datetime import timedelta

from portal.extensions import db
from portal.models import Role, ThreadStatus
from portal.services import inbox as inbox_service
from portal.services import threads as thread_service
from portal.sqltypes import utcnow


def live(client, etag: str | None = None, query: str = ""):
    headers = {"If-None-Match": etag} if etag else {}
    return client.get(f"/inbox/live{query}", headers=headers)


def test_unchanged_is_304_and_a_change_sends_the_rows(client, login_as, two_channels, make_thread):
    uk, _ = two_channels
    make_thread(uk, subject="First question")
    agent = login_as(Role.AGENT, assigned=[uk.organisation])
    first = live(client)
    assert first.status_code == 200 and "First question" in first.json["rows"]
    etag = first.headers["ETag"]
    assert live(client, etag).status_code == 304
    thread = make_thread(uk, subject="Second question")
    changed = live(client, etag)
    assert changed.status_code == 200
    assert "Second question" in changed.json["rows"] and thread.id in changed.json["ids"]
    etag = changed.headers["ETag"]
    assert live(client, etag).status_code == 304
    # A change of assignee and of status changes the answer too.
    thread_service.assign_thread(thread, agent, actor=agent)
    db.session.commit()
    assigned = live(client, etag)
    assert assigned.status_code == 200 and assigned.json["counts"]["mine_open"] == 1
    thread_service.set_thread_status(thread, ThreadStatus.CLOSED, actor=agent)
    db.session.commit()
    closed = live(client, assigned.headers["ETag"])
    assert closed.status_code == 200 and thread.id not in closed.json["ids"]


def test_the_rows_keep_the_filters(client, login_as, two_channels, make_thread):
    uk, _ = two_channels
    make_thread(uk, subject="Parcel late", texts=("It never came",))
    make_thread(uk, subject="Wrong size", texts=("Too small",))
    login_as(Role.ADMIN)
    rows = live(client, query="?q=never+came&status=open").json["rows"]
    assert "Parcel late" in rows and "Wrong size" not in rows


def test_another_organisations_changes_are_never_seen(client, login_as, two_channels, make_thread):
    uk, de = two_channels
    make_thread(uk, subject="Alpha question")
    login_as(Role.SELLER, organisation=uk.organisation)
    first = live(client)
    assert "Alpha question" in first.json["rows"]
    etag = first.headers["ETag"]
    other = make_thread(de, subject="Beta question")
    # Not even that something changed: the answer stays 304.
    assert live(client, etag).status_code == 304
    other.status = ThreadStatus.CLOSED
    db.session.commit()
    assert live(client, etag).status_code == 304
    make_thread(uk, subject="Alpha again")
    changed = live(client, etag)
    assert changed.status_code == 200
    assert "Beta question" not in changed.json["rows"] and other.id not in changed.json["ids"]
    assert changed.json["counts"]["unassigned"] == 2


def test_anonymous_is_sent_to_login(client):
    assert live(client).status_code == 302


def test_nav_counts(login_as, make_user, two_channels, make_thread):
    uk, de = two_channels
    agent = make_user(Role.AGENT, assigned=[uk.organisation])
    now = utcnow()
    mine = make_thread(uk, received_at=now - timedelta(hours=21))  # due in 3 h
    make_thread(uk, received_at=now - timedelta(hours=2))  # unassigned, due in 22 h
    make_thread(uk, status=ThreadStatus.CLOSED)
    make_thread(de, received_at=now - timedelta(hours=23))  # another organisation's
    thread_service.assign_thread(mine, agent, actor=agent)
    db.session.commit()
    counts = inbox_service.nav_counts(agent, now=now)
    assert counts == inbox_service.NavCounts(mine_open=1, unassigned=1, due_soon=1)


def test_a_tag_changes_the_token(make_user, two_channels, make_thread):
    uk, _ = two_channels
    admin = make_user(Role.ADMIN)
    thread = make_thread(uk)
    before = inbox_service.change_token(admin)
    thread_service.add_tag(thread, "vip", actor=admin)
    db.session.commit()
    assert inbox_service.change_token(admin) != before


def test_the_inbox_page_shows_the_counts_and_the_live_url(client, login_as, two_channels):
    uk, _ = two_channels
    login_as(Role.AGENT, assigned=[uk.organisation])
    page = client.get("/inbox?status=all").get_data(as_text=True)
    assert 'id="nav-counts"' in page and 'data-live-url="/inbox/live?status=all"' in page
