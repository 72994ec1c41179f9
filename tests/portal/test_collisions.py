"""Collision detection on the thread page: the heartbeat route, and a send stopped when
another reply or note came after the composer was opened."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Draft, Message, Role, SendStatus
from portal.services import presence
from portal.services import threads as thread_service
from tests.helpers import csrf_token_from, sent_files

TEXT = "Hello Jane, order 203-1234567-1234567 left today."


@pytest.fixture
def thread(buyer_thread):
    return buyer_thread


def sent(app) -> int:
    return len(sent_files(app))


def composer(client, thread) -> dict[str, str]:
    """The reply form's hidden fields as the page gave them when it was opened."""
    page = client.get(f"/threads/{thread.id}").get_data(as_text=True)
    seen = re.search(r'id="seen" name="seen" type="hidden" value="(\d+)"', page).group(1)
    return {"csrf_token": csrf_token_from(page), "seen": seen}


def test_a_reply_after_the_composer_opened_stops_the_send(app, client, login_as, thread, make_user):
    org = thread.channel.organisation
    ana = make_user(Role.AGENT, name="Ana", assigned=[org])
    login_as(Role.AGENT, name="Bo", assigned=[org])
    opened = composer(client, thread)
    note = thread_service.add_internal_note(thread, "Ana is on it", actor=ana)
    db.session.commit()

    response = client.post(f"/threads/{thread.id}/reply", data={**opened, "body": TEXT})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert f"Ana added a note at {note.created_at:%H:%M} UTC: read it first." in page
    assert "Ana is on it" in page and 'value="Send anyway"' in page
    assert f"\n{TEXT}</textarea>" in page  # the reply is kept, and in the draft
    assert db.session.scalar(select(Draft.body)) == TEXT
    assert sent(app) == 0

    # Having read it, sending again from the page as shown goes through.
    again = re.search(r'id="seen" name="seen" type="hidden" value="(\d+)"', page).group(1)
    assert int(again) == note.id
    response = client.post(
        f"/threads/{thread.id}/reply", data={**opened, "seen": again, "body": TEXT}
    )
    assert response.status_code == 302 and sent(app) == 1
    assert db.session.scalar(select(func.count()).select_from(Draft)) == 0


def test_send_anyway(app, client, login_as, thread, make_user):
    org = thread.channel.organisation
    ana = make_user(Role.AGENT, name="Ana", assigned=[org])
    login_as(Role.AGENT, assigned=[org])
    opened = composer(client, thread)
    # Ana's reply, as the outbox stores it.
    db.session.add(
        Message(
            thread=thread,
            channel_id=thread.channel_id,
            direction="out",
            message_id="<ana-reply@helpdesk.test>",
            content_hash="ana",
            text_body="On its way.",
            author_id=ana.id,
            send_status=SendStatus.SENT,
        )
    )
    db.session.commit()
    response = client.post(f"/threads/{thread.id}/reply", data={**opened, "body": TEXT})
    assert response.status_code == 409
    assert "Ana replied at " in response.get_data(as_text=True)
    data = {**opened, "body": TEXT, "send_anyway": "Send anyway"}
    assert client.post(f"/threads/{thread.id}/reply", data=data).status_code == 302
    assert sent(app) == 1


def test_the_heartbeat_shows_who_else_is_here(app, client, login_as, thread, make_user):
    org = thread.channel.organisation
    ana = make_user(Role.AGENT, name="Ana", assigned=[org])
    login_as(Role.AGENT, name="Bo", assigned=[org])
    token = composer(client, thread)["csrf_token"]
    url = f"/threads/{thread.id}/presence"
    assert client.post(url, data={"csrf_token": token, "writing": "y"}).get_json() == {"others": []}
    presence.beat(ana, thread, writing=False, now=thread_service.utcnow())
    db.session.commit()
    assert client.post(url, data={"csrf_token": token}).get_json() == {
        "others": [{"name": "Ana", "writing": False}]
    }
    assert "Also here: Ana." in client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert client.post(url, data={}).status_code == 400  # no CSRF token
    assert client.post(url, data={"csrf_token": token, "leaving": "y"}).status_code == 200
    assert presence.others_present(ana, thread, now=thread_service.utcnow()) == []
