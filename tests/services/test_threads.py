"""The response clock (services/threads.py `response_deadline`): when an answer is due."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from ingest.pipeline import poll_all
from portal.extensions import db
from portal.models import Thread, ThreadStatus
from portal.services import threads as thread_service


@pytest.mark.parametrize(
    ("received", "due"),
    [
        # Friday evening: due Saturday evening. Weekends count (Amazon's rule).
        (datetime(2026, 11, 27, 18, 0, tzinfo=UTC), datetime(2026, 11, 28, 18, 0, tzinfo=UTC)),
        (datetime(2026, 11, 28, 23, 30, tzinfo=UTC), datetime(2026, 11, 29, 23, 30, tzinfo=UTC)),
    ],
)
def test_deadline_is_24_hours_weekends_included(make_thread, received, due):
    thread = make_thread(received_at=received)
    assert thread_service.response_deadline(thread) == due
    thread.status = ThreadStatus.CLOSED
    assert thread_service.response_deadline(thread) is None


def test_automatic_mail_does_not_start_the_clock(uk, drop_mail):
    drop_mail("autoreply.eml", replace={"To: ": "Delivered-To: uk-chan01@helpdesk.test\nTo: "})
    drop_mail("amazon_notification.eml")
    poll_all()
    for thread in db.session.scalars(select(Thread)):
        assert thread.awaiting_reply_since is None
        assert thread_service.response_deadline(thread) is None
