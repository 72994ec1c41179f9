"""Reply drafts in a real Chromium: typed text and a chosen file survive a reload."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Draft, Role
from tests.helpers import logged_in_page

pytestmark = pytest.mark.browser

TEXT = "Hello Jane, the label for order 203-1234567-1234567 is attached."


def test_a_draft_with_an_attachment_survives_a_reload(
    app, browser: Browser, live_server: str, make_user, make_channel, make_thread
) -> None:
    thread = make_thread(make_channel("UK"), buyer_name="Jane")
    db.session.commit()
    agent = make_user(Role.AGENT, assigned=[thread.channel.organisation])
    page, errors = logged_in_page(browser, live_server, agent.email, f"/threads/{thread.id}")

    page.get_by_role("textbox", name="Reply").fill(TEXT)
    expect(page.locator("[data-draft-status]")).to_contain_text("Draft saved")
    page.get_by_label("Attachments").set_input_files(
        {"name": "label.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 label"}
    )
    files = page.locator("[data-draft-files] li")
    expect(files).to_have_count(1)
    expect(files.first).to_contain_text("label.pdf")

    page.reload()
    expect(page.get_by_role("textbox", name="Reply")).to_have_value(TEXT)
    expect(files).to_have_count(1)
    expect(files.first).to_contain_text("label.pdf")

    page.get_by_role("button", name="Send reply").click()
    expect(page.locator(".flash")).to_contain_text("Reply sent.")
    expect(page.get_by_role("textbox", name="Reply")).to_have_value("")
    [sent] = Path(app.config["SMTP_URL"].removeprefix("outbox:")).glob("*.eml")
    mail = email.message_from_bytes(sent.read_bytes(), policy=policy.default)
    assert [a.get_filename() for a in mail.iter_attachments()] == ["label.pdf"]
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Draft)) == 0
    assert errors == []
    page.context.close()
