"""The inbox and thread pages run a fixed number of SQL statements, however many rows they show.

Each page is requested with 1 and with 30 threads (inbox) or messages (thread),
counting statements with a `before_cursor_execute` listener on the engine. A lazy
load per row (an N+1) makes the second count grow; the failure lists the statements
that grew.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event

from portal.extensions import db
from portal.models import Attachment, Direction, Message, Role, SendStatus, Tag, Thread, User
from portal.sqltypes import utcnow

SMALL, LARGE = 1, 30


@contextmanager
def counted() -> Iterator[list[str]]:
    """Every SQL statement the app sends meanwhile, in order."""
    statements: list[str] = []

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", before_cursor_execute)


def statements_for(client: FlaskClient, path: str) -> list[str]:
    client.get(path)  # once first, so one-time work (the session's user) is not counted
    with counted() as statements:
        response = client.get(path)
    assert response.status_code == 200, path
    return statements


def growth(small: list[str], large: list[str]) -> str:
    """The statements the larger page ran more often: where the N+1 is."""
    grown = Counter(_shape(s) for s in large) - Counter(_shape(s) for s in small)
    return "\n".join(f"  +{n} x {sql}" for sql, n in grown.most_common())


def _shape(statement: str) -> str:
    # "IN (?, ?, ?)" and "IN (__[POSTCOMPILE_…])" differ by row count, not by query.
    return " ".join(statement.split())[:160]


@pytest.fixture
def agent(login_as, make_org) -> tuple[User, list]:
    """An agent of two sellers (so the inbox shows organisations too), logged in."""
    orgs = [make_org("Acme"), make_org("Globex")]
    return login_as(Role.AGENT, assigned=orgs, name="Alex Agent"), orgs


@pytest.fixture
def busy_thread(make_thread, make_user) -> Callable[..., Thread]:
    """A thread with `n` buyer messages, each with an attachment, plus notes and replies."""

    def make(channel, n: int, *, author: User) -> Thread:
        thread = make_thread(
            channel, texts=tuple(f"Message {i} about ASIN: B0TEST{i:04d}" for i in range(n))
        )
        for i, message in enumerate(sorted(thread.messages, key=lambda m: m.id)):
            message.html_body = f"<p>Message {i}</p>"
            db.session.add(
                Attachment(
                    message=message,
                    filename=f"photo{i}.jpg",
                    content_type="image/jpeg",
                    size=1000 + i,
                    data=b"\xff\xd8" + bytes(i),
                )
            )
            # Every message answered by someone: an internal note and a sent reply.
            note_by = make_user(Role.AGENT, name=f"Agent {thread.id}-{i}")
            when = message.created_at + timedelta(minutes=1)
            for direction, is_note, who in (
                (Direction.OUT, True, note_by),
                (Direction.OUT, False, author),
            ):
                db.session.add(
                    Message(
                        thread=thread,
                        channel=channel,
                        direction=direction,
                        is_internal_note=is_note,
                        author=who,
                        message_id=f"<r{thread.id}-{i}-{int(is_note)}@helpdesk.test>",
                        content_hash=f"r{thread.id}-{i}-{int(is_note)}",
                        subject=f"Re: {thread.subject}",
                        from_name=who.display_name,
                        from_address=channel.helpdesk_address,
                        to_addresses=thread.buyer_address,
                        text_body=f"Answer {i}",
                        visible_text=f"Answer {i}",
                        send_status=None if is_note else SendStatus.SENT,
                        created_at=when,
                    )
                )
        db.session.commit()
        return thread

    return make


@pytest.fixture
def add_inbox_rows(agent, make_channel, make_thread) -> Callable[[int], None]:
    """Add `n` threads spread over four channels of two sellers, with tags and assignees."""
    agent_user, orgs = agent
    channels = [make_channel(m, organisation=o) for o in orgs for m in ("UK", "DE")]
    tags = {o.id: [Tag(organisation_id=o.id, name=f"tag{k}") for k in range(3)] for o in orgs}
    added = iter(range(10_000))

    def add(n: int) -> None:
        for _ in range(n):
            i = next(added)
            channel = channels[i % len(channels)]
            thread = make_thread(channel, received_at=utcnow() - timedelta(minutes=i))
            thread.tags = tags[channel.organisation_id][: 1 + i % 3]
            thread.assignee = agent_user if i % 2 else None
        db.session.commit()

    return add


@pytest.mark.parametrize(
    "path",
    ["/inbox", "/inbox?status=all", "/inbox?status=all&sort=urgent", "/inbox?status=all&q=parcel"],
)
def test_inbox_page_statements_do_not_grow_with_the_threads_shown(client, add_inbox_rows, path):
    add_inbox_rows(SMALL)
    small = statements_for(client, path)
    add_inbox_rows(LARGE - SMALL)
    page = client.get(path).get_data(as_text=True)
    assert page.count('class="subject"') == LARGE  # the page really shows them all
    large = statements_for(client, path)
    assert len(large) == len(small), (
        f"{path}: {len(small)} statements for {SMALL} thread, {len(large)} for {LARGE}:\n"
        + growth(small, large)
    )


def test_thread_page_statements_do_not_grow_with_the_messages_shown(
    client, agent, make_channel, busy_thread
):
    agent_user, orgs = agent
    channel = make_channel("UK", organisation=orgs[0])
    small_thread = busy_thread(channel, SMALL, author=agent_user)
    large_thread = busy_thread(channel, LARGE, author=agent_user)
    small = statements_for(client, f"/threads/{small_thread.id}")
    large = statements_for(client, f"/threads/{large_thread.id}")
    page = client.get(f"/threads/{large_thread.id}").get_data(as_text=True)
    assert page.count('<article id="m') == 3 * LARGE  # buyer messages, notes, replies
    assert len(large) == len(small), (
        f"{len(small)} statements for a thread of {SMALL} buyer message(s), {len(large)} for "
        f"{LARGE}:\n" + growth(small, large)
    )


def test_dashboard_statements_do_not_grow_with_the_threads_due(
    client, login_as, make_org, make_channel, make_thread
):
    # Agents see the organisation beside each thread due; sellers the marketplace.
    now = utcnow()
    orgs = [make_org(f"Org {n}") for n in range(3)]
    channels = [
        make_channel(code, organisation=org)
        for code, org in zip(["UK", "DE", "FR"], orgs, strict=True)
    ]
    login_as(Role.AGENT, assigned=orgs)
    make_thread(channels[0], received_at=now - timedelta(hours=30))
    make_thread(channels[1], received_at=now - timedelta(hours=21))
    small = statements_for(client, "/dashboard")
    for n in range(LARGE):
        make_thread(channels[n % 3], received_at=now - timedelta(hours=30 - n % 10))
    large = statements_for(client, "/dashboard")
    page = client.get("/dashboard").get_data(as_text=True)
    assert page.count('href="/threads/') == 20  # ten of each list
    assert len(large) == len(small), growth(small, large)


def test_an_unchanged_live_answer_is_a_few_statements(client, login_as, two_channels, make_thread):
    """What 100 open tabs ask every two seconds (bench/live.py): the sign-in (with its
    user and organisation, which the two-factor guard reads), the thread's visibility
    check for a thread page, then the change check."""
    uk, _ = two_channels
    thread = make_thread(uk, texts=("one", "two"))
    login_as(Role.SELLER, organisation=uk.organisation)
    for path, bound in (("/inbox/live", 3), (f"/threads/{thread.id}/live", 4)):
        etag = client.get(path).headers["ETag"]
        with counted() as statements:
            response = client.get(path, headers={"If-None-Match": etag})
        assert response.status_code == 304, path
        assert len(statements) <= bound, "\n".join(statements)
