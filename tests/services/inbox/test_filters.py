"""The inbox's filters (services/inbox/filters.py): status, marketplace, channel, seller,
search, tag and assignee, read through list_inbox."""

from __future__ import annotations

from portal.extensions import db
from portal.models import Role, ThreadStatus
from portal.services import threads as thread_service
from portal.services.inbox import InboxQuery, list_inbox


def test_filters_and_search(make_user, two_channels, make_thread):
    uk, de = two_channels
    make_thread(uk, subject="Parcel late", texts=("It never came",))
    make_thread(uk, subject="Wrong size", order_id="111-2222222-3333333", texts=("Too small",))
    make_thread(de, subject="Kaputt", buyer_name="Max Mustermann", texts=("Defekt angekommen",))
    closed = make_thread(uk, subject="Thanks", status=ThreadStatus.CLOSED)
    admin = make_user(Role.ADMIN)

    def subjects(**params):
        page = list_inbox(admin, InboxQuery(**params))
        return {row.subject for row in page.rows}

    assert subjects() == {"Parcel late", "Wrong size", "Kaputt"}
    assert subjects(status="closed") == {"Thanks"}
    assert subjects(status="all") == {"Parcel late", "Wrong size", "Kaputt", "Thanks"}
    assert subjects(marketplace="DE") == {"Kaputt"}
    assert subjects(channel_id=de.id) == {"Kaputt"}
    assert subjects(organisation_id=uk.organisation_id) == {"Parcel late", "Wrong size"}
    assert subjects(q="111-2222222") == {"Wrong size"}
    assert subjects(q="mustermann") == {"Kaputt"}
    assert subjects(q="never came") == {"Parcel late"}
    assert subjects(q="100%_") == set()  # LIKE wildcards are literal
    thread_service.add_tag(closed, "Refund", actor=admin)
    db.session.commit()
    assert subjects(status="all", tag="refund") == {"Thanks"}


def test_assignee_filter(make_user, two_channels, make_thread):
    uk, _ = two_channels
    agent = make_user(Role.AGENT, assigned=[uk.organisation])
    mine = make_thread(uk, subject="Mine")
    make_thread(uk, subject="Other")
    thread_service.assign_thread(mine, agent, actor=agent)
    db.session.commit()
    assert {r.subject for r in list_inbox(agent, InboxQuery(assignee="me")).rows} == {"Mine"}
    unassigned = list_inbox(agent, InboxQuery(assignee="unassigned")).rows
    assert {r.subject for r in unassigned} == {"Other"}
