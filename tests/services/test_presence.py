"""Collision detection (services/presence.py): who else is on a thread, for 30 s after
their last heartbeat, and which reply or note came after a composer was opened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from portal.extensions import db
from portal.models import Role
from portal.services import presence
from portal.services import threads as thread_service

NOW = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)


def test_others_are_shown_until_30_seconds_after_their_last_beat(uk, make_thread, make_user):
    thread = make_thread(uk)
    ana = make_user(Role.AGENT, name="Ana", assigned=[uk.organisation])
    bo = make_user(Role.AGENT, name="Bo", assigned=[uk.organisation])
    presence.beat(ana, thread, writing=False, now=NOW)
    presence.beat(bo, thread, writing=False, now=NOW)
    presence.beat(bo, thread, writing=True, now=NOW + timedelta(seconds=10))  # the same row
    db.session.commit()

    assert presence.others_present(ana, thread, now=NOW + timedelta(seconds=40)) == [
        presence.Present("Bo", True)
    ]
    assert presence.others_present(bo, thread, now=NOW + timedelta(seconds=30)) == [
        presence.Present("Ana", False)
    ]
    assert presence.others_present(bo, thread, now=NOW + timedelta(seconds=31)) == []
    # Leaving the page takes the person off at once.
    presence.leave(bo, thread)
    assert presence.others_present(ana, thread, now=NOW) == []


def test_a_note_or_reply_by_someone_else_after_the_composer_opened(uk, make_thread, make_user):
    thread = make_thread(uk)
    ana = make_user(Role.AGENT, name="Ana", assigned=[uk.organisation])
    bo = make_user(Role.AGENT, name="Bo", assigned=[uk.organisation])
    seen = presence.newest_message_id(thread)
    assert seen == thread.messages[0].id
    assert presence.added_since(thread, seen, reader=bo) is None
    own = thread_service.add_internal_note(thread, "Mine", actor=bo)
    assert presence.added_since(thread, seen, reader=bo) is None  # one's own does not count
    note = thread_service.add_internal_note(thread, "Checking the courier", actor=ana)
    assert presence.added_since(thread, seen, reader=bo) == note
    assert presence.added_since(thread, note.id, reader=bo) is None
    assert presence.newest_message_id(thread) == note.id > own.id
