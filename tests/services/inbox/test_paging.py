"""The inbox's keyset paging (services/inbox/paging.py): every thread once, in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from portal.models import Role, ThreadStatus
from portal.services.inbox import InboxQuery, list_inbox


def test_keyset_pages_cover_every_thread_once(make_user, two_channels, make_thread):
    uk, _ = two_channels
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(23):
        # Several threads share a timestamp: the id breaks the tie. Every third one
        # answered (not waiting): urgent pages cross from the waiting ones to those.
        make_thread(
            uk, subject=f"T{i}", received_at=base + timedelta(hours=i // 3), awaiting=i % 3 != 0
        )
    closed = make_thread(uk, subject="Closed", received_at=base, status=ThreadStatus.CLOSED)
    admin = make_user(Role.ADMIN)
    # (status filter, sort): the urgent sort runs its own queries per status filter.
    for status, sort, count in [
        ("open", "activity", 23),
        ("open", "urgent", 23),
        ("all", "urgent", 24),
        ("closed", "urgent", 1),
    ]:
        rows, cursor = [], None
        while True:
            query = InboxQuery(status=status, sort=sort, cursor=cursor)
            page = list_inbox(admin, query, page_size=5)
            rows += page.rows
            cursor = page.next_cursor
            if not cursor:
                break
        assert len(rows) == len({row.id for row in rows}) == count, (status, sort)
        if sort == "urgent":
            # The waiting threads by deadline, then the others by id, across pages.
            keys = [(row.deadline is None, row.deadline or base, row.id) for row in rows]
            assert keys == sorted(keys), status
    assert rows[0].id == closed.id
    activity = list_inbox(admin, InboxQuery()).rows
    assert activity == sorted(activity, key=lambda t: (t.last_message_at, t.id), reverse=True)
    assert list_inbox(admin, InboxQuery(cursor="garbage")).rows  # a bad cursor is page one
