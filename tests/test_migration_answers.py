"""Migration b7e2c4a9d1f3: messages already stored get their answer, and its downgrade
leaves the other triggers of messages in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask_migrate import downgrade, upgrade
from sqlalchemy import insert, inspect, select

from portal import create_app
from portal.extensions import db
from portal.models import Direction, Message, SendStatus
from tests.helpers import app_config_for, database_triggers, seed_uk_channel

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _message(thread_id: int, n: int, direction: Direction, at: datetime, **values) -> dict:
    return {
        "thread_id": thread_id,
        "channel_id": 1,
        "direction": direction,
        "message_id": f"<m{n}@example.com>",
        "content_hash": f"h{n}",
        "created_at": at,
        # One executemany takes its columns from the first row: every row has them all.
        "send_status": None,
        "sent_at": None,
        **values,
    }


def test_stored_messages_get_their_answer(empty_database_url, tmp_path):
    app = create_app(app_config_for(empty_database_url, tmp_path))
    with app.app_context():
        upgrade()
        seed_uk_channel(2)
        out, inn = Direction.OUT, Direction.IN
        db.session.execute(
            insert(Message.__table__),
            [
                _message(1, 1, inn, T0),
                _message(1, 2, inn, T0 + timedelta(hours=1)),
                _message(1, 3, out, T0 + timedelta(hours=2), send_status=SendStatus.FAILED),
                _message(
                    1,
                    4,
                    out,
                    T0 + timedelta(hours=3),
                    send_status=SendStatus.SENT,
                    sent_at=T0 + timedelta(hours=3),
                ),
                _message(1, 5, inn, T0 + timedelta(hours=4)),
                _message(2, 6, inn, T0),
            ],
        )
        db.session.commit()
        db.session.remove()
        # The triggers just after this migration and its index (later migrations'
        # triggers go with their own downgrades).
        downgrade(revision="d4b8e1f2a6c3")
        before = database_triggers()

        downgrade(revision="a4d7f2c9e1b8")
        columns = {c["name"] for c in inspect(db.engine).get_columns("messages")}
        assert not {"answer_id", "answered_at"} & columns
        after = database_triggers()
        assert after == {name for name in before if not name.startswith("messages_answer_")}

        upgrade()
        rows = db.session.execute(
            select(Message.message_id, Message.answer_id, Message.answered_at).order_by(Message.id)
        ).all()
        answered = (4, T0 + timedelta(hours=3))
        assert [(r.message_id, (r.answer_id, r.answered_at)) for r in rows] == [
            ("<m1@example.com>", answered),
            ("<m2@example.com>", answered),
            ("<m3@example.com>", (None, None)),
            ("<m4@example.com>", (None, None)),
            ("<m5@example.com>", (None, None)),
            ("<m6@example.com>", (None, None)),
        ]
        db.session.remove()
        db.engine.dispose()
