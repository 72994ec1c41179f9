"""The seller dashboard's 24-hour response rate for 7, 30 and 90 days against Amazon's 90%."""

from __future__ import annotations

import re
from datetime import timedelta

from portal.extensions import db
from portal.models import Role
from portal.sqltypes import utcnow
from tests.helpers import add_sent_reply


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
