"""Bulk actions in a real Chromium: the whole page of 50 threads closed in one submit."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Role, Thread, ThreadStatus
from tests.helpers import logged_in_page

pytestmark = pytest.mark.browser


def test_agent_bulk_closes_fifty_threads(
    browser: Browser, live_server: str, make_user, make_channel, make_thread
) -> None:
    uk = make_channel("UK")
    for i in range(50):
        make_thread(uk, subject=f"Question {i:02d}")
    db.session.commit()
    agent = make_user(Role.AGENT, assigned=[uk.organisation])

    page, errors = logged_in_page(browser, live_server, agent.email, "/inbox")
    boxes = page.locator('table.inbox input[name="thread_ids"]')
    expect(boxes).to_have_count(50)

    # Ticking "Select all on the page" ticks every row; unticking a row unticks it.
    page.get_by_label("Select all on the page").check()
    for i in range(50):
        expect(boxes.nth(i)).to_be_checked()
    boxes.nth(0).uncheck()
    expect(page.get_by_label("Select all on the page")).not_to_be_checked()
    boxes.nth(0).check()
    page.get_by_label("With the selected threads").select_option(label="Close")
    page.get_by_role("button", name="Apply").click()

    expect(page.locator(".flash")).to_contain_text("Close: 50 of 50 selected thread(s) changed.")
    expect(page.get_by_text("No threads match these filters.")).to_be_visible()
    assert errors == []
    db.session.expire_all()
    statuses = db.session.scalars(select(Thread.status)).all()
    assert statuses == [ThreadStatus.CLOSED] * 50
    audited = db.session.scalars(
        select(AuditEvent.target_id).where(AuditEvent.kind == "thread.status_changed")
    ).all()
    assert sorted(audited) == sorted(db.session.scalars(select(Thread.id)))
    page.context.close()
