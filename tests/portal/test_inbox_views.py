"""The inbox and thread pages: scoping, the filter form, forged cursors, deadline badges, actions."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ingest.mail.parse import MAX_BODY_CHARS
from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import AuditEvent, Message, Role, ThreadStatus
from portal.services.inbox import InboxQuery, list_inbox
from tests.helpers import csrf_token_from


def post(client, thread, action, data):
    token = csrf_token_from(client.get(f"/threads/{thread.id}").get_data(as_text=True))
    return client.post(f"/threads/{thread.id}/{action}", data={"csrf_token": token, **data})


def test_agent_sees_only_assigned_organisations(client, login_as, two_channels, make_thread):
    uk, de = two_channels
    mine = make_thread(uk, subject="Alpha question")
    theirs = make_thread(de, subject="Beta question")
    login_as(Role.AGENT, assigned=[uk.organisation])
    page = client.get("/inbox").get_data(as_text=True)
    assert "Alpha question" in page and "Beta question" not in page
    assert client.get(f"/threads/{mine.id}").status_code == 200
    assert client.get(f"/threads/{theirs.id}").status_code == 404
    message = theirs.messages[0]
    assert client.get(f"/threads/{theirs.id}/messages/{message.id}/html").status_code == 404


def test_seller_reads_own_threads_only_and_cannot_act(client, login_as, two_channels, make_thread):
    uk, de = two_channels
    mine = make_thread(uk, subject="Alpha question")
    theirs = make_thread(de, subject="Beta question")
    login_as(Role.SELLER, organisation=uk.organisation)
    page = client.get("/inbox").get_data(as_text=True)
    assert "Alpha question" in page and "Beta question" not in page
    assert client.get(f"/threads/{theirs.id}").status_code == 404
    detail = client.get(f"/threads/{mine.id}").get_data(as_text=True)
    assert "Where is my parcel?" in detail and "Internal note" not in detail
    token = csrf_token_from(detail)
    response = client.post(
        f"/threads/{mine.id}/status", data={"csrf_token": token, "status": "closed"}
    )
    assert response.status_code == 403


def test_the_inbox_form_filters_and_searches(client, login_as, two_channels, make_thread):
    uk, _ = two_channels
    make_thread(uk, subject="Parcel late", texts=("It never came",))
    make_thread(uk, subject="Wrong size", order_id="111-2222222-3333333", texts=("Too small",))
    login_as(Role.ADMIN)
    # The filters themselves are tested on the service (tests/services/inbox/).
    page = client.get("/inbox?q=never+came&status=open").get_data(as_text=True)
    assert "Parcel late" in page and "Wrong size" not in page


@pytest.mark.parametrize(
    "values",
    [
        [0, "junk", 5],  # decodes, but no time
        [0, "2026-11-01T10:00:00", 5],  # a time without a zone
        [0, "2026-11-01T10:00:00+00:00", 2**40],  # beyond the database's integers
        # Times that exist only in their own zone: UTC is before year 1 or after 9999.
        [0, "0001-01-01T00:00:00+05:00", 5],
        [0, "9999-12-31T23:59:59-05:00", 5],
        [0, "2026-11-01T10:00:00+00:00", "5"],
        [7, None, 5],
        [True, None, 5],
        [0, 12, 5],
        {"a": 1, "b": 2, "c": 3},
        [0, None],
        "text",
    ],
)
def test_a_forged_cursor_shows_the_first_page(
    client, login_as, make_org, make_channel, make_thread, values
):
    make_thread(make_channel(organisation=make_org()), subject="Findable")
    login_as(Role.ADMIN)
    after = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
    for sort in ("activity", "urgent"):
        response = client.get(f"/inbox?status=all&sort={sort}&after={after}")
        assert response.status_code == 200 and "Findable" in response.text


def test_urgent_sort_and_deadline(client, login_as, two_channels, make_thread):
    uk, _ = two_channels
    now = datetime.now(UTC)
    make_thread(uk, subject="Overdue", received_at=now - timedelta(hours=30))
    make_thread(uk, subject="Soon", received_at=now - timedelta(hours=22))
    make_thread(uk, subject="Answered", received_at=now, awaiting=False)
    admin = login_as(Role.ADMIN)
    rows = list_inbox(admin, InboxQuery(sort="urgent")).rows
    assert [r.subject for r in rows] == ["Overdue", "Soon", "Answered"]
    assert rows[2].deadline is None
    page = client.get("/inbox?sort=urgent").get_data(as_text=True)
    assert "Overdue by 6 h" in page
    assert "1 h 59 min left" in page or "2 h 0 min left" in page
    assert page.index("Overdue") < page.index("Soon") < page.index("Answered")
    # The thread page shows the same badges as its inbox row (portal/inbox/badges.py).
    overdue = client.get(f"/threads/{rows[0].id}").get_data(as_text=True)
    assert (
        '<div><span class="badge thread-open">Open</span> <span class="deadline overdue"' in overdue
    )
    assert ">Overdue by 6 h" in overdue


def test_thread_actions_are_audited(client, login_as, two_channels, make_thread, make_user):
    uk, _ = two_channels
    thread = make_thread(uk)
    agent = login_as(Role.AGENT, assigned=[uk.organisation])
    assert post(client, thread, "status", {"status": "pending"}).status_code == 302
    assert post(client, thread, "assign", {"assignee": "me"}).status_code == 302
    assert post(client, thread, "tags", {"name": "  Late  Delivery "}).status_code == 302
    assert post(client, thread, "notes", {"text": "Called the courier."}).status_code == 302
    db.session.refresh(thread)
    assert thread.status == ThreadStatus.PENDING
    assert thread.assignee_id == agent.id
    assert [t.name for t in thread.tags] == ["late delivery"]
    note = db.session.scalar(select(Message).where(Message.is_internal_note.is_(True)))
    assert note.text_body == "Called the courier." and note.send_status is None
    page = client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert "Called the courier." in page and "late delivery" in page
    tag = thread.tags[0]
    assert post(client, thread, f"tags/{tag.id}/remove", {}).status_code == 302
    kinds = [e.kind for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    for kind in (
        "thread.status_changed",
        "thread.assigned",
        "thread.tagged",
        "thread.note_added",
        "thread.untagged",
    ):
        assert kind in kinds


def test_bad_action_input_is_shown_beside_the_field(
    client, login_as, two_channels, make_thread, make_user
):
    uk, de = two_channels
    thread = make_thread(uk)
    login_as(Role.AGENT, assigned=[uk.organisation])
    response = post(client, thread, "notes", {"text": "   "})
    assert response.status_code == 422
    assert 'id="text-error"' in response.get_data(as_text=True)
    response = post(client, thread, "tags", {"name": "x" * 41})
    assert response.status_code == 422 and 'id="name-error"' in response.get_data(as_text=True)
    # An agent of another seller cannot be assigned.
    stranger = make_user(Role.AGENT, assigned=[de.organisation])
    response = post(client, thread, "assign", {"assignee": str(stranger.id)})
    assert response.status_code == 422
    db.session.refresh(thread)
    assert thread.assignee_id is None


def test_hostile_html_is_sanitised_in_its_sandboxed_frame(
    client, login_as, make_channel, drop_mail
):
    make_channel("UK", address="uk-chan01@helpdesk.test")
    drop_mail("hostile_html.eml")
    poll_all()
    message = db.session.scalar(select(Message).where(Message.html_body.is_not(None)))
    login_as(Role.ADMIN)
    page = client.get(f"/threads/{message.thread_id}").get_data(as_text=True)
    assert "<script" not in page.split("</header>", 1)[1].replace('<script src="/static', "")
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in page
    frame = client.get(f"/threads/{message.thread_id}/messages/{message.id}/html")
    csp = frame.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox") and "script-src" not in csp and "default-src 'none'" in csp
    body = frame.get_data(as_text=True).lower()
    for bad in ("<script", "onerror", "onload", "javascript:", "<iframe", "<form"):
        assert bad not in body, bad


def test_attachments_download_never_render(client, login_as, make_channel, drop_mail):
    make_channel("UK", address="uk-chan01@helpdesk.test")
    drop_mail("hostile_html.eml")
    poll_all()
    message = db.session.scalar(select(Message).where(Message.html_body.is_not(None)))
    attachments = [a for a in message.attachments if not a.is_skipped]
    assert attachments, "fixture has attachments"
    login_as(Role.ADMIN)
    for attachment in attachments:
        response = client.get(f"/threads/{message.thread_id}/attachments/{attachment.id}")
        assert response.status_code == 200
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_long_body_shows_its_start_and_offers_the_original_mail(
    client, login_as, make_channel, drop_mail
):
    make_channel("UK", address="uk-chan01@helpdesk.test")
    line = "Step 12 of the log: the parcel was scanned again at the depot.\n"
    body = line * (MAX_BODY_CHARS // len(line) + 100) + "THE LAST LINE\n"
    raw = (
        "From: Buyer <buyer@example.com>\nTo: uk-chan01@helpdesk.test\n"
        "Subject: The whole tracking log\nMessage-ID: <long-log@example.com>\n"
        f"Date: Fri, 27 Nov 2026 10:00:00 +0000\n\n{body}"
    ).encode()
    drop_mail(raw)
    assert poll_all().stored == 1
    message = db.session.scalar(select(Message))
    assert message.body_cut and message.raw == raw
    login_as(Role.AGENT, assigned=[message.channel.organisation])

    page = client.get(f"/threads/{message.thread_id}").get_data(as_text=True)
    assert "only its start is shown here" in page and "THE LAST LINE" not in page
    original = f"/threads/{message.thread_id}/messages/{message.id}/original"
    assert f'href="{original}"' in page
    response = client.get(original)
    assert response.status_code == 200
    assert response.get_data() == raw
    assert (
        response.headers["Content-Disposition"]
        == f'attachment; filename="message-{message.id}.eml"'
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"

    # Once retention has removed the raw mail, the rest is gone: the page says why.
    message.raw = None
    db.session.commit()
    response = client.get(original, follow_redirects=True)
    assert "no longer kept" in response.get_data(as_text=True)
    assert response.request.path == f"/threads/{message.thread_id}"


def test_mail_of_ordinary_length_offers_no_original(client, login_as, make_channel, drop_mail):
    make_channel("UK", address="uk-chan01@helpdesk.test")
    drop_mail("amazon_uk_inquiry.eml")
    poll_all()
    message = db.session.scalar(select(Message))
    assert not message.body_cut
    login_as(Role.ADMIN)
    page = client.get(f"/threads/{message.thread_id}").get_data(as_text=True)
    assert "only its start is shown here" not in page and "/original" not in page


def test_the_thread_page_lists_the_buyers_history_only_within_the_organisation(
    client, login_as, two_channels, make_channel, make_thread
):
    uk, de_beta = two_channels
    alias = "q7k2m9x4r1@marketplace.amazon.co.uk"
    this = make_thread(uk, subject="Where is it?", buyer_address=alias)
    fr = make_channel("FR", organisation=uk.organisation)
    earlier = make_thread(
        fr,
        subject="Earlier <question>",
        buyer_address=alias,
        order_id="403-1234567-1234567",
        status=ThreadStatus.CLOSED,
        received_at=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
    )
    same_order = make_thread(uk, subject="Same order, other sender", buyer_address="x@example.com")
    rival = make_thread(de_beta, subject="Rival seller's thread", buyer_address=alias)
    login_as(Role.AGENT, assigned=[uk.organisation, de_beta.organisation])
    page = client.get(f"/threads/{this.id}").get_data(as_text=True)
    history = page.split('id="buyer-history-heading"', 1)[1].split("</section>", 1)[0]
    assert f'href="/threads/{earlier.id}"' in history
    assert "Earlier &lt;question&gt;" in history  # escaped
    assert '<span class="badge thread-closed">Closed</span>' in history
    assert "02 Mar 2026, 09:30 UTC" in history and "FR" in history
    assert f'href="/threads/{same_order.id}"' in history and "same order" in history
    # An agent of both sellers still sees one seller's history on its thread only.
    assert f'href="/threads/{rival.id}"' not in history and "Rival" not in history
    rival_page = client.get(f"/threads/{rival.id}").get_data(as_text=True)
    assert "None: this is the buyer" in rival_page


def test_no_response_needed_marks_the_thread_and_says_what_amazon_does(
    client, login_as, two_channels, make_thread
):
    uk, _ = two_channels
    thread = make_thread(uk, texts=("Thanks, all good!",))
    login_as(Role.AGENT, name="Ana", assigned=[uk.organisation])
    before = client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert 'value="No response needed"' in before
    assert "Mark as no response needed" in before

    response = post(client, thread, "no-response-needed", {})
    assert response.status_code == 302
    db.session.refresh(thread)
    assert thread.awaiting_reply_since is None
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert '<span class="badge no-response">No response needed</span>' in page
    assert "marked by Ana" in page
    assert "1 buyer message(s) marked no response needed" in page
    # Amazon's clock and the steps in Seller Central stay on the page once marked.
    assert "Amazon's own clock" in page and "Mark as no response needed" in page
    assert 'value="No response needed"' not in page


def test_sellers_cannot_mark_no_response_needed(client, login_as, two_channels, make_thread):
    uk, _ = two_channels
    thread = make_thread(uk)
    login_as(Role.SELLER, organisation=uk.organisation)
    assert post(client, thread, "no-response-needed", {}).status_code == 403
    db.session.refresh(thread)
    assert thread.awaiting_reply_since is not None


def test_snooze_sets_pending_until_and_says_so(client, login_as, two_channels, make_thread):
    uk, _ = two_channels
    thread = make_thread(uk)
    login_as(Role.AGENT, assigned=[uk.organisation])
    response = post(client, thread, "snooze", {"until": "2999-01-02T08:30"})
    assert response.status_code == 302
    db.session.refresh(thread)
    assert thread.status == ThreadStatus.PENDING
    assert thread.snoozed_until == datetime(2999, 1, 2, 8, 30, tzinfo=UTC)
    page = client.get(f"/threads/{thread.id}").get_data(as_text=True)
    assert "Pending until 02 Jan 2999, 08:30 UTC." in page
    assert "<dt>Pending until</dt><dd>02 Jan 2999, 08:30 UTC" in page


@pytest.mark.parametrize(
    ("until", "message"),
    [("", "Choose a date and time."), ("2001-01-01T00:00", "Choose a time in the future.")],
)
def test_a_bad_snooze_time_is_shown_beside_the_field(
    client, login_as, two_channels, make_thread, until, message
):
    uk, _ = two_channels
    thread = make_thread(uk)
    login_as(Role.AGENT, assigned=[uk.organisation])
    response = post(client, thread, "snooze", {"until": until})
    assert response.status_code == 422
    assert f'<p class="error" id="until-error">{message}</p>' in response.get_data(as_text=True)
    db.session.refresh(thread)
    assert thread.status == ThreadStatus.OPEN and thread.snoozed_until is None
