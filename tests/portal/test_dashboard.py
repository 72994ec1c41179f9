"""The seller dashboard's 24-hour response rate for 7, 30 and 90 days against Amazon's 90%."""

from __future__ import annotations

import re
from datetime import timedelta

from portal.extensions import db
from portal.models import ChannelStatus, Role
from portal.sqltypes import utcnow
from tests.helpers import add_sent_reply, connect_with_mws_token


def test_rates_per_channel_and_period(client, login_as, make_org, make_channel, make_thread):
    now = utcnow()
    org = make_org("Alpha Ltd")
    uk = make_channel("UK", organisation=org)
    make_channel("DE", organisation=org)
    # Answered within 90 minutes, three hours ago; unanswered since 20 days.
    answered = make_thread(uk, received_at=now - timedelta(hours=3))
    add_sent_reply(answered, at=now - timedelta(hours=1, minutes=30))
    make_thread(uk, received_at=now - timedelta(days=20))
    make_thread(make_channel("UK"), received_at=now - timedelta(hours=30))  # another org
    db.session.commit()
    login_as(Role.SELLER, organisation=org)

    page = client.get("/dashboard").get_data(as_text=True)

    table = page[page.index('id="response-rates"') : page.index("</table>")]
    rows = {
        m.group(1): " ".join(re.sub(r"<[^>]+>", " ", m.group(2)).split())
        for m in re.finditer(r'<th scope="row">(\w+)</th>(.*?)</tr>', table, re.S)
    }
    # UK: 7 days 1 of 1; 30 and 90 days 1 of 2. DE: nothing. The total is UK's.
    assert rows["UK"] == (
        "100.0% meets 90% (1 of 1) 50.0% below 90% (1 of 2) 50.0% below 90% (1 of 2)"
    )
    assert rows["Total"] == rows["UK"]
    assert rows["DE"] == "– (0 of 0) – (0 of 0) – (0 of 0)"
    assert "only once also marked in Seller Central" in page


def test_agents_and_admins_see_no_rates(client, login_as, make_org):
    login_as(Role.ADMIN)
    assert 'id="response-rates"' not in client.get("/dashboard").get_data(as_text=True)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _section(page: str, element_id: str, end: str) -> str:
    start = page.index(f'id="{element_id}"')
    return page[start : page.index(end, start)]


def test_channels_state_volume_and_answers_due(
    client, login_as, make_org, make_channel, make_thread
):
    now = utcnow()
    alpha, beta = make_org("Alpha Ltd"), make_org("Beta GmbH")
    uk = make_channel("UK", organisation=alpha, status=ChannelStatus.ACTIVE)
    connect_with_mws_token(uk)
    uk.status = ChannelStatus.ACTIVE
    uk.is_amazon_authorisation_needed = True
    de = make_channel("DE", organisation=alpha)
    de.forwarding_confirmed_at = now
    late = make_thread(uk, subject="Where is my lamp", received_at=now - timedelta(hours=26))
    soon = make_thread(de, subject="Wrong colour", received_at=now - timedelta(hours=22))
    uk.first_message_at = now - timedelta(days=20)
    uk.last_message_at = now - timedelta(days=8, hours=1)  # set after make_thread's message
    late.messages[0].created_at = now - timedelta(days=8, hours=1)
    # Beta's channel and its overdue thread must not show.
    make_thread(
        make_channel("FR", organisation=beta),
        subject="Beta's buyer",
        received_at=now - timedelta(hours=30),
    )
    db.session.commit()
    login_as(Role.SELLER, organisation=alpha)

    page = client.get("/dashboard").get_data(as_text=True)

    overview = _section(page, "channel-overview", "</table>")
    rows = {
        m.group(1): _text(m.group(2))
        for m in re.finditer(r'<th scope="row"><a [^>]*>([^<]+)</a></th>(.*?)</tr>', overview, re.S)
    }
    assert set(rows) == {"Amazon UK", "Amazon Germany"}
    assert rows["Amazon UK"].startswith(
        "3 of 4 steps done Continue setup of Amazon UK Silent for 8 days Check forwarding"
    )
    assert "MWS token on file Active Amazon authorisation needed" in rows["Amazon UK"]
    assert rows["Amazon Germany"].startswith(
        "1 of 4 steps done Continue setup of Amazon Germany Confirmed by you, not verified yet "
        "Not authorised yet Awaiting token never"
    )
    # The sparkline says its numbers; the table beside it has them per day.
    # (UK's one message is 8 days old.)
    assert (
        'aria-label="Buyer messages per day over the last 7 days, oldest first: 0, 0, 0, 0, 0, 0, 0"'
        in overview
    )
    assert rows["Amazon Germany"].endswith("1 in 7 days")
    volume = _section(page, "channel-volume", "</table>")
    assert "Beta" not in volume and "France" not in page
    overdue = _section(page, "overdue", "</section>")
    assert f'href="/threads/{late.id}"' in overdue and "Where is my lamp" in overdue
    assert "(1)" in overdue and "Overdue by" in overdue
    due_soon = _section(page, "due-soon", "</section>")
    assert f'href="/threads/{soon.id}"' in due_soon and "(1)" in due_soon
    assert "Beta&#39;s buyer" not in page and "Beta's buyer" not in page


def test_agents_see_answers_due_of_their_organisations_only(
    client, login_as, make_org, make_channel, make_thread
):
    now = utcnow()
    alpha, beta = make_org("Alpha Ltd"), make_org("Beta GmbH")
    mine = make_thread(
        make_channel("UK", organisation=alpha), received_at=now - timedelta(hours=30)
    )
    make_thread(make_channel("DE", organisation=beta), received_at=now - timedelta(hours=30))
    login_as(Role.AGENT, assigned=[alpha])

    page = client.get("/dashboard").get_data(as_text=True)

    overdue = _section(page, "overdue", "</section>")
    assert re.findall(r'href="/threads/(\d+)"', overdue) == [str(mine.id)]
    assert "Alpha Ltd" in overdue
    assert 'id="channel-overview"' not in page  # agents keep the organisations table
