"""`flask report --org NAME --days N`: the metric per channel and in total."""

from __future__ import annotations

from datetime import timedelta

from portal.extensions import db
from portal.sqltypes import utcnow
from tests.helpers import add_sent_reply


def test_prints_a_line_per_channel_and_the_total(runner, make_org, make_channel, make_thread):
    org = make_org("Report Co")
    uk = make_channel("UK", organisation=org)
    make_channel("DE", organisation=org)
    now = utcnow()
    # UK: one answered after 90 minutes, one waiting 30 h (open, overdue), and one
    # 40 days old, outside the 30 days.
    answered = make_thread(uk, received_at=now - timedelta(hours=3))
    add_sent_reply(answered, at=now - timedelta(hours=1, minutes=30))
    make_thread(uk, received_at=now - timedelta(hours=30))
    make_thread(uk, received_at=now - timedelta(days=40))
    make_thread(make_channel("UK"), received_at=now - timedelta(hours=1))  # another org
    db.session.commit()

    result = runner.invoke(args=["report", "--org", "Report Co", "--days", "30"])

    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.output.splitlines()]
    assert lines[0][:3] == ["scope", "messages", "answered_24h"]
    rows = {line[0]: dict(zip(lines[0], line, strict=True)) for line in lines[1:]}
    assert list(rows) == ["DE", "UK", "total"]
    assert rows["DE"]["messages"] == "0"
    assert rows["DE"]["answered_24h_pct"] == ""
    for scope in ("UK", "total"):
        assert rows[scope] == {
            "scope": scope,
            "messages": "2",
            "answered_24h": "1",
            "answered_24h_pct": "50.0",
            "late": "0",
            "open": "1",
            "open_overdue": "1",
            "median_response_minutes": "90.0",
            "p90_response_minutes": "90.0",
            # Both threads began in the period; the answered one after 90 minutes.
            "threads": "2",
            "first_response_median_minutes": "90.0",
            "first_response_p90_minutes": "90.0",
            "closed": "0",
            "close_median_minutes": "",
            "close_p90_minutes": "",
        }


def test_unknown_organisation_exits_1(runner, make_org):
    make_org("Real Co")
    result = runner.invoke(args=["report", "--org", "Nobody Ltd"])
    assert result.exit_code == 1
    assert "Nobody Ltd" in result.output
