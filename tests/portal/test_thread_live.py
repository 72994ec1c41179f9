"""The live thread page (/threads/<id>/live): 304 while the thread has no new message,
else the new messages rendered as the page renders them; a thread the user may not open
is a 404 and tells nothing (two organisations)."""

from __future__ import annotations

from portal.extensions import db
from portal.models import Role
from portal.services import threads as thread_service


def live(client, thread_id: int, etag: str | None = None, after: int | str = 0):
    headers = {"If-None-Match": etag} if etag else {}
    return client.get(f"/threads/{thread_id}/live?after={after}", headers=headers)


def test_unchanged_is_304_and_a_new_message_is_sent_rendered(
    client, login_as, two_channels, make_thread
):
    uk, _ = two_channels
    thread = make_thread(uk, subject="Parcel late", texts=("Where is it?",))
    agent = login_as(Role.AGENT, assigned=[uk.organisation])
    page = client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert 'id="thread-live"' in page and 'role="status"' in page
    first = live(client, thread.id)
    assert first.status_code == 200
    newest = first.json["newest"]
    assert [m["id"] for m in first.json["messages"]] == [newest]
    etag = first.headers["ETag"]
    assert f'data-live-etag="{etag.strip(chr(34))}"' in page
    assert live(client, thread.id, etag, newest).status_code == 304

    note = thread_service.add_internal_note(thread, "Checked <b>the</b> courier", actor=agent)
    db.session.commit()
    changed = live(client, thread.id, etag, newest)
    assert changed.status_code == 200 and changed.json["newest"] == note.id
    (sent,) = changed.json["messages"]
    assert sent["id"] == note.id and sent["note"] is True and sent["from"] == agent.display_name
    # The page's own article markup, every value escaped.
    assert f'<article id="m{note.id}"' in sent["html"]
    assert "Checked &lt;b&gt;the&lt;/b&gt; courier" in sent["html"]
    assert live(client, thread.id, changed.headers["ETag"], note.id).status_code == 304


def test_another_organisations_thread_is_404_and_never_an_event(
    client, login_as, two_channels, make_thread
):
    uk, de = two_channels
    mine = make_thread(uk, subject="Alpha question")
    other = make_thread(de, subject="Beta question", texts=("Hallo, wo ist mein Paket?",))
    login_as(Role.SELLER, organisation=uk.organisation)
    assert live(client, mine.id).status_code == 200
    for etag in (None, '"anything"'):
        refused = live(client, other.id, etag)
        assert refused.status_code == 404
        assert b"Paket" not in refused.data and "ETag" not in refused.headers


def test_junk_after_means_from_the_start(client, login_as, two_channels, make_thread):
    uk, _ = two_channels
    thread = make_thread(uk, texts=("one", "two"))
    login_as(Role.ADMIN)
    for after in ("junk", "99999999999999999999999", "-3"):
        answer = live(client, thread.id, after=after)
        assert answer.status_code == 200 and len(answer.json["messages"]) == 2


def test_anonymous_is_sent_to_login(client, two_channels, make_thread):
    thread = make_thread(two_channels[0])
    assert live(client, thread.id).status_code == 302


def test_the_thread_page_loads_the_live_script_once_and_its_title_is_the_subject(
    client, login_as, two_channels, make_thread
):
    thread = make_thread(two_channels[0])
    thread.subject = "Where is my parcel?"
    db.session.commit()
    login_as(Role.ADMIN)
    page = client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert "<title>Where is my parcel? · Sellerdesk</title>" in page
    assert page.count("js/live.js") == 1
