"""Migration e9c4a2f7b1d5: messages already stored get needs_answer and first_need (what
changed while it was not applied included), and its downgrade leaves the other
triggers of messages in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask_migrate import downgrade, upgrade
from sqlalchemy import insert, inspect, select, update

from portal import create_app
from portal.extensions import db
from portal.models import Direction, Message, NoResponseMark
from tests.helpers import app_config_for, database_triggers, seed_uk_channel

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
NEW_TRIGGERS = ("messages_needs_answer_", "messages_first_need_", "no_response_marks_")


def _message(thread_id: int, n: int, at: datetime, **values) -> dict:
    return {
        "thread_id": thread_id,
        "channel_id": 1,
        "direction": Direction.IN,
        "message_id": f"<m{n}@example.com>",
        "content_hash": f"h{n}",
        "created_at": at,
        # One executemany takes its columns from the first row: every row has them all.
        "is_autoreply": False,
        "quarantine_reason": None,
        **values,
    }


def test_stored_messages_get_their_flags(empty_database_url, tmp_path):
    app = create_app(app_config_for(empty_database_url, tmp_path))
    with app.app_context():
        upgrade()
        seed_uk_channel(3)
        hour = timedelta(hours=1)
        db.session.execute(
            insert(Message.__table__),
            [
                _message(1, 1, T0, is_autoreply=True),
                _message(1, 2, T0 + hour),
                _message(1, 3, T0 + 2 * hour),
                _message(2, 4, T0, direction=Direction.OUT),
                _message(2, 5, T0 + hour, quarantine_reason="unreadable"),
                _message(2, 6, T0 + hour),
                _message(3, 7, T0),
                _message(3, 8, T0 + hour),
            ],
        )
        db.session.commit()
        db.session.remove()
        before = database_triggers()

        downgrade(revision="d4b8e1f2a6c3")
        columns = {c["name"] for c in inspect(db.engine).get_columns("messages")}
        assert not {"needs_answer", "first_need"} & columns
        after = database_triggers()
        assert after == {name for name in before if not name.startswith(NEW_TRIGGERS)}
        # While the migration is not applied: thread 1's first marked, thread 3's last
        # re-dated before its first.
        with db.engine.begin() as conn:
            conn.execute(
                insert(NoResponseMark.__table__).values(message_id=2, thread_id=1, marked_at=T0)
            )
            conn.execute(
                update(Message.__table__).where(Message.id == 8).values(created_at=T0 - hour)
            )

        upgrade()
        rows = db.session.execute(
            select(Message.message_id, Message.needs_answer, Message.first_need).order_by(
                Message.id
            )
        ).all()
        assert [(r.message_id, r.needs_answer, r.first_need) for r in rows] == [
            ("<m1@example.com>", False, False),  # an auto-reply
            ("<m2@example.com>", False, False),  # marked
            ("<m3@example.com>", True, True),
            ("<m4@example.com>", False, False),  # a reply
            ("<m5@example.com>", False, False),  # quarantined
            ("<m6@example.com>", True, True),
            ("<m7@example.com>", True, False),
            ("<m8@example.com>", True, True),  # re-dated first
        ]
        db.session.remove()
        db.engine.dispose()
