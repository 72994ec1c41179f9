"""Bulk actions in the inbox (/inbox/bulk): a plain form POST, scoped, audited per thread."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, NoResponseMark, Role, Thread, ThreadStatus
from tests.helpers import csrf_token_from


def bulk(client, data, query=""):
    token = csrf_token_from(client.get(f"/inbox{query}").get_data(as_text=True))
    return client.post(f"/inbox/bulk{query}", data={"csrf_token": token, **data})


def threads_now() -> list[Thread]:
    db.session.expire_all()
    return list(db.session.scalars(select(Thread).order_by(Thread.id)))


def events(kind: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.kind == kind)))


def test_close_then_reopen_ticked_threads_one_audit_entry_each(
    client, login_as, two_channels, make_thread
):
    uk, _ = two_channels
    threads = [make_thread(uk, subject=f"Question {i}") for i in range(3)]
    untouched = make_thread(uk, subject="Leave me")
    login_as(Role.AGENT, assigned=[uk.organisation])
    page = client.get("/inbox").get_data(as_text=True)
    assert 'name="thread_ids"' in page and 'aria-label="Select Question 0"' in page

    ids = [str(t.id) for t in threads]
    response = bulk(client, {"action": "close", "thread_ids": ids}, "?status=all")
    assert response.status_code == 302 and response.headers["Location"] == "/inbox?status=all"
    for thread in threads + [untouched]:
        db.session.refresh(thread)
    assert [t.status for t in threads] == [ThreadStatus.CLOSED] * 3
    assert untouched.status == ThreadStatus.OPEN
    closed = events("thread.status_changed")
    assert sorted(e.target_id for e in closed) == sorted(t.id for t in threads)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Close: 3 of 3 selected thread(s) changed." in page

    bulk(client, {"action": "reopen", "thread_ids": ids + [str(untouched.id)]})
    # The already open thread is left alone and not audited.
    assert len(events("thread.status_changed")) == 6


def test_assign_tag_and_no_response_needed(client, login_as, two_channels, make_thread, make_user):
    uk, _ = two_channels
    threads = [make_thread(uk) for _ in range(2)]
    colleague = make_user(Role.AGENT, name="Bo", assigned=[uk.organisation])
    me = login_as(Role.AGENT, assigned=[uk.organisation])
    ids = [str(t.id) for t in threads]

    assert (
        bulk(client, {"action": "assign", "assignee": "me", "thread_ids": ids}).status_code == 302
    )
    assert {t.assignee_id for t in threads_now()} == {me.id}
    data = {"action": "assign", "assignee": str(colleague.id), "thread_ids": ids}
    assert bulk(client, data).status_code == 302
    assert {t.assignee_id for t in threads_now()} == {colleague.id}

    assert bulk(client, {"action": "tag", "tag": "Refund", "thread_ids": ids}).status_code == 302
    assert [[tag.name for tag in t.tags] for t in threads_now()] == [
        ["refund"],
        ["refund"],
    ]
    assert len(events("thread.tagged")) == 2

    assert bulk(client, {"action": "no_response", "thread_ids": ids}).status_code == 302
    assert db.session.scalar(select(func.count()).select_from(NoResponseMark)) == 2
    assert len(events("thread.no_response_needed")) == 2
    assert all(t.awaiting_reply_since is None for t in threads_now())


def test_select_all_on_the_page_without_javascript(client, login_as, two_channels, make_thread):
    uk, _ = two_channels
    threads = [make_thread(uk) for _ in range(4)]
    login_as(Role.ADMIN)
    page = client.get("/inbox").get_data(as_text=True)
    assert page.count('name="page_ids"') == 4
    data = {"action": "close", "all_on_page": "y", "page_ids": [str(t.id) for t in threads]}
    assert bulk(client, data).status_code == 302
    assert [t.status for t in threads_now()] == [ThreadStatus.CLOSED] * 4


def test_a_thread_the_user_may_not_see_refuses_the_whole_action(
    client, login_as, two_channels, make_thread
):
    uk, de = two_channels
    mine = make_thread(uk)
    theirs = make_thread(de)
    login_as(Role.AGENT, assigned=[uk.organisation])
    for ids in ([str(mine.id), str(theirs.id)], [str(mine.id), "99999"]):
        response = bulk(client, {"action": "close", "thread_ids": ids})
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert 'id="thread_ids-error"' in page and "nothing was changed" in page
        # The selection is kept for the agent to correct.
        assert f'value="{mine.id}" form="bulk" aria-label="Select' in page
        assert f'value="{mine.id}" form="bulk" aria-label="Select {mine.subject}" checked' in page
    db.session.refresh(mine)
    db.session.refresh(theirs)
    assert mine.status == theirs.status == ThreadStatus.OPEN
    assert events("thread.status_changed") == []


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"action": "close", "thread_ids": []}, "thread_ids", "Select at least one thread."),
        ({"action": "close", "thread_ids": ["x"]}, "thread_ids", "not a thread of this inbox"),
        ({"action": "tag", "tag": "  "}, "tag", "Enter a tag."),
        ({"action": "assign", "assignee": "12345"}, "assignee", "Choose someone from the list."),
        ({"action": "explode"}, "action", "Not a valid choice"),
    ],
)
def test_bad_bulk_input_is_shown_beside_the_field(
    client, login_as, two_channels, make_thread, make_user, data, field, message
):
    uk, de = two_channels
    thread = make_thread(uk)
    make_user(Role.AGENT, assigned=[de.organisation])
    login_as(Role.AGENT, assigned=[uk.organisation])
    data = {"thread_ids": [str(thread.id)]} | data
    response = bulk(client, data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="{field}-error"' in page and message in page
    db.session.refresh(thread)
    assert thread.status == ThreadStatus.OPEN and thread.assignee_id is None


def test_sellers_have_no_bulk_actions(client, login_as, two_channels, make_thread):
    uk, _ = two_channels
    thread = make_thread(uk)
    login_as(Role.SELLER, organisation=uk.organisation)
    assert 'name="thread_ids"' not in client.get("/inbox").get_data(as_text=True)
    assert bulk(client, {"action": "close", "thread_ids": [str(thread.id)]}).status_code == 403


def test_an_assignee_who_cannot_work_one_thread_changes_none(
    client, login_as, two_channels, make_thread, make_user
):
    uk, de = two_channels
    threads = [make_thread(de), make_thread(uk)]
    german = make_user(Role.AGENT, name="Greta", assigned=[de.organisation])
    login_as(Role.ADMIN)
    ids = [str(t.id) for t in threads]
    response = bulk(client, {"action": "assign", "assignee": str(german.id), "thread_ids": ids})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="assignee-error"' in page and "Greta does not work for this seller." in page
    assert [t.assignee_id for t in threads_now()] == [None, None]
    assert events("thread.assigned") == []
