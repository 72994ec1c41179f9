"""The admin dashboard (/admin): per mailbox, messages stored and failed polls as
charts with their tables; the outbox's failures."""

from __future__ import annotations

import re
from datetime import timedelta

from portal.extensions import db
from portal.models import Direction, Mailbox, Message, Role, SendStatus
from portal.services import mailboxes
from portal.sqltypes import utcnow


def _table_rows(page: str, chart_id: str) -> list[list[str]]:
    start = page.index(f'id="{chart_id}"')
    table = page[page.index("<tbody>", start) : page.index("</tbody>", start)]
    return [
        [
            " ".join(re.sub(r"<[^>]+>", " ", cell).split())
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)
    ]


def test_mailbox_charts_and_outbox_failures(client, login_as, make_channel):
    now = utcnow()
    box = Mailbox(name="amazon-eu", source_url="maildir:/tmp/eu")
    quiet = Mailbox(name="quiet-box", source_url="maildir:/tmp/q", is_enabled=False)
    db.session.add_all([box, quiet])
    db.session.flush()
    uk = make_channel("UK")
    for n, at in enumerate((now, now, now - timedelta(hours=3), now - timedelta(days=2))):
        db.session.add(
            Message(
                channel=uk,
                mailbox_id=box.id,
                direction=Direction.IN,
                message_id=f"<a{n}@example.com>",
                content_hash=f"a{n}",
                created_at=at,
            )
        )
    db.session.add(
        Message(
            channel=uk,
            direction=Direction.OUT,
            message_id="<out@example.com>",
            content_hash="out",
            send_status=SendStatus.FAILED,
        )
    )
    mailboxes.count_poll(box, failed=True, now=now)
    mailboxes.count_poll(box, failed=False, now=now)
    mailboxes.count_poll(box, failed=True, now=now - timedelta(days=2))
    db.session.commit()
    login_as(Role.ADMIN)

    page = client.get("/admin").get_data(as_text=True)

    hours = _table_rows(page, f"mailbox-{box.id}-hours")
    assert len(hours) == 24
    assert hours[-1] == [f"{now:%H}:00", "2", "2", "1"]
    assert hours[-4] == [f"{now - timedelta(hours=3):%H}:00", "1", "0", "0"]
    days = _table_rows(page, f"mailbox-{box.id}-days")
    assert len(days) == 7
    assert days[-1][0] == f"{now:%a %d %b}"
    assert days[-3] == [f"{now - timedelta(days=2):%a %d %b}", "1", "1", "1"]
    assert sum(int(row[1]) for row in days) == 4
    # Each chart has its title, its legend in words and its SVG labelled by both.
    assert "amazon-eu: last 24 hours, per hour" in page
    assert "Below the line: failed polls (1 in all)" in page
    assert f'aria-labelledby="mailbox-{box.id}-hours-title"' in page
    assert "quiet-box" in page and "(disabled)" in page
    # The outbox's failures, linked to the outbox.
    outbox = re.search(
        r'<a href="/admin/outbox">Replies failed / still queued</a></th>\s*<td class="num">([^<]*)</td>',
        page,
    )
    assert outbox is not None and outbox.group(1).strip() == "1 / 0"


def test_the_charts_are_in_the_page_once_and_never_in_its_title(client, login_as):
    db.session.add(Mailbox(name="EU buyers", source_url="maildir:/tmp/none"))
    db.session.commit()
    login_as(Role.ADMIN)
    page = client.get("/admin").get_data(as_text=True)
    assert re.search(r"<title>Admin · Sellerdesk</title>", page)
    assert page.count("<h2>Ingestion per mailbox</h2>") == 1
