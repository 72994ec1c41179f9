"""/reports and /reports.csv: the service's numbers, scoped to what the user may see."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from portal.extensions import db
from portal.models import Role
from portal.sqltypes import utcnow
from tests.helpers import add_sent_reply


@pytest.fixture
def two_sellers(make_org, make_channel, make_thread):
    """Alpha: UK, one message answered after 90 min and one open 30 h (overdue);
    Beta: DE, three open messages received an hour ago."""
    now = utcnow()
    alpha, beta = make_org("Alpha Ltd"), make_org("Beta GmbH")
    uk = make_channel("UK", organisation=alpha)
    de = make_channel("DE", organisation=beta)
    answered = make_thread(uk, received_at=now - timedelta(hours=3))
    add_sent_reply(answered, at=now - timedelta(hours=1, minutes=30))
    make_thread(uk, received_at=now - timedelta(hours=30))
    make_thread(de, texts=("a", "b", "c"), received_at=now - timedelta(hours=1))
    db.session.commit()
    return alpha, beta


def csv_rows(client, query: str = "") -> list[dict[str, str]]:
    response = client.get("/reports.csv" + query)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_seller_sees_only_their_organisation(client, login_as, two_sellers):
    alpha, beta = two_sellers
    login_as(Role.SELLER, organisation=alpha)

    page = client.get("/reports").get_data(as_text=True)

    assert "count for Amazon only once also marked in Seller Central" in page
    assert 'id="chart-messages"' in page and "<svg" in page and "Show as table" in page
    # (Not a bare "DE": the page's random CSRF token may hold those letters.)
    assert "Beta" not in page and '<th scope="row">DE</th>' not in page
    rows = csv_rows(client)
    assert [r["scope"] for r in rows] == ["UK", "total"]
    assert rows[-1] == {
        "scope": "total",
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
    # The page shows the same numbers as the CSV.
    for value in ("50.0", "90.0"):
        assert f'<td class="num">{value}</td>' in page
    # With one organisation there is no filter: another's id changes nothing.
    assert [r["scope"] for r in csv_rows(client, f"?organisation={beta.id}")] == ["UK", "total"]


def test_admin_sees_all_and_filters_by_organisation(client, login_as, two_sellers):
    alpha, beta = two_sellers
    login_as(Role.ADMIN)

    everything = csv_rows(client, "?period=7")
    assert [r["scope"] for r in everything] == ["Alpha Ltd UK", "Beta GmbH DE", "total"]
    assert everything[-1]["messages"] == "5"
    assert everything[-1]["open"] == "4"

    beta_only = csv_rows(client, f"?period=7&organisation={beta.id}")
    assert [r["scope"] for r in beta_only] == ["DE", "total"]
    assert beta_only[-1]["messages"] == "3"
    assert beta_only[-1]["answered_24h_pct"] == "0.0"
    page = client.get(f"/reports?organisation={beta.id}").get_data(as_text=True)
    assert "Alpha Ltd" in page  # in the filters' choices only
    assert '<th scope="row">Alpha Ltd UK</th>' not in page
    assert '<th scope="row">DE</th>' in page


def test_agent_sees_assigned_organisations(client, login_as, two_sellers):
    alpha, beta = two_sellers
    login_as(Role.AGENT, assigned=[beta])
    rows = csv_rows(client, "?period=90")
    assert [r["scope"] for r in rows] == ["DE", "total"]
    assert rows[-1]["messages"] == "3"


def test_an_organisation_out_of_sight_is_refused(client, login_as, two_sellers, make_org):
    alpha, beta = two_sellers
    login_as(Role.AGENT, assigned=[beta, make_org("Gamma")])
    response = client.get(f"/reports?organisation={alpha.id}")
    assert response.status_code == 400
    assert "Not a valid choice" in response.get_data(as_text=True)
    assert "Alpha" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?period=custom", "Give the first day of the period."),
        ("?period=custom&start=2026-11-10", "Give the last day of the period."),
        ("?period=custom&start=2026-11-10&end=2026-11-01", "The last day comes before the first."),
        ("?period=custom&start=2020-01-01&end=2026-11-01", "Choose at most 366 days."),
        ("?period=custom&start=nonsense&end=2026-11-01", "Not a valid date value."),
        ("?period=12", "Not a valid choice."),
    ],
)
def test_bad_periods_are_explained_next_to_the_field(client, login_as, query, message):
    login_as(Role.SELLER)
    response = client.get("/reports" + query)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'class="error"' in page
    assert message in page
    # The field with the error says so to screen readers, and points at the sentence.
    field = re.search(r'<(?:select|input)[^>]*aria-invalid="true"[^>]*>', page).group(0)
    name = re.search(r'\sid="(\w+)"', field).group(1)
    assert f'aria-describedby="{name}-error"' in field
    assert f'id="{name}-error"' in page
    assert client.get("/reports.csv" + query).status_code == 400


def test_custom_period_counts_whole_days(client, login_as, two_sellers):
    alpha, beta = two_sellers
    login_as(Role.SELLER, organisation=alpha)
    today = utcnow().date()
    rows = csv_rows(client, f"?period=custom&start={today - timedelta(days=2)}&end={today}")
    assert rows[-1]["messages"] == "2"
    old = today - timedelta(days=30)
    rows = csv_rows(client, f"?period=custom&start={old}&end={old}")
    assert rows[-1]["messages"] == "0"


@pytest.fixture
def three_channels(make_org, make_channel, make_thread, make_user):
    """One seller: UK 3 messages (one answered by the agent after 2 h), DE 1, US 2; an
    agent of theirs."""
    now = utcnow()
    org = make_org("Sort Co")
    agent = make_user(Role.AGENT, assigned=[org], name="Ann Agent")
    uk = make_channel("UK", organisation=org)
    de = make_channel("DE", organisation=org)
    us = make_channel("US", organisation=org)
    answered = make_thread(uk, received_at=now - timedelta(hours=5))
    add_sent_reply(answered, at=now - timedelta(hours=3))
    answered.messages[-1].author = agent
    make_thread(uk, texts=("a", "b"), received_at=now - timedelta(hours=1))
    make_thread(de, received_at=now - timedelta(hours=1))
    make_thread(us, texts=("a", "b"), received_at=now - timedelta(hours=1))
    db.session.commit()
    return org, agent, (uk, de, us)


def _row_headers(page: str, table: str) -> list[str]:
    body = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<th scope="row">([^<]*)</th>', body)


def test_filters_by_channel_marketplace_and_agent(client, login_as, three_channels):
    org, agent, (uk, de, us) = three_channels
    login_as(Role.SELLER, organisation=org)

    assert [(r["scope"], r["messages"]) for r in csv_rows(client, f"?channel={de.id}")] == [
        ("DE", "1"),
        ("total", "1"),
    ]
    assert [(r["scope"], r["messages"]) for r in csv_rows(client, "?marketplace=US")] == [
        ("US", "2"),
        ("total", "2"),
    ]
    # The agent's reply answered one UK message, after 120 minutes.
    by_agent = csv_rows(client, f"?agent={agent.id}")
    assert [(r["scope"], r["messages"]) for r in by_agent] == [
        ("DE", "0"),
        ("UK", "1"),
        ("US", "0"),
        ("total", "1"),
    ]
    assert by_agent[-1]["median_response_minutes"] == "120.0"
    page = client.get(f"/reports?agent={agent.id}").get_data(as_text=True)
    assert _row_headers(page, "report-agents") == ["Ann Agent"]
    # The response-time distribution: the one answer in 1–4 h.
    assert 'id="chart-distribution"' in page
    assert '<th scope="row">1–4 h</th><td class="num">1</td>' in page
    assert '<th scope="row">24–48 h (late)</th><td class="num">0</td>' in page


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?channel=abc", "channel"),
        ("?channel=999999", "channel"),
        ("?marketplace=XX", "marketplace"),
        ("?agent=999999", "agent"),
        ("?agent=1.5", "agent"),
        ("?sort=bogus", "sort"),
        ("?dir=sideways", "dir"),
    ],
)
def test_bad_filters_are_explained_next_to_the_field(
    client, login_as, three_channels, query, field
):
    org, agent, channels = three_channels
    login_as(Role.SELLER, organisation=org)
    response = client.get("/reports" + query)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert f'<p class="error" id="{field}-error">Not a valid choice.</p>' in page
    assert client.get("/reports.csv" + query).status_code == 400


def test_another_organisations_channel_and_agent_are_refused(
    client, login_as, three_channels, make_org, make_channel, make_user
):
    org, agent, channels = three_channels
    other = make_org("Other Ltd")
    theirs = make_channel("FR", organisation=other)
    their_agent = make_user(Role.AGENT, assigned=[other])
    login_as(Role.SELLER, organisation=org)
    for query in (f"?channel={theirs.id}", f"?agent={their_agent.id}", "?marketplace=FR"):
        response = client.get("/reports" + query)
        assert response.status_code == 400, query
        assert "Other Ltd" not in response.get_data(as_text=True)


def test_tables_sort_by_any_column_through_links(client, login_as, three_channels):
    org, agent, channels = three_channels
    login_as(Role.SELLER, organisation=org)

    page = client.get("/reports").get_data(as_text=True)
    assert _row_headers(page, "report-channels") == ["DE", "UK", "US", "Total"]
    assert "aria-sort" not in page
    # Messages: DE 1, UK 3, US 2.
    page = client.get("/reports?sort=messages&dir=desc").get_data(as_text=True)
    assert _row_headers(page, "report-channels") == ["UK", "US", "DE", "Total"]
    assert 'aria-sort="descending"><a href="/reports?sort=messages&amp;dir=asc">' in page
    page = client.get("/reports?sort=messages&dir=asc").get_data(as_text=True)
    assert _row_headers(page, "report-channels") == ["DE", "US", "UK", "Total"]
    assert 'aria-sort="ascending"><a href="/reports?sort=messages&amp;dir=desc">' in page
    # Only UK has a median: the others, with none, come last in either direction.
    page = client.get("/reports?sort=median&dir=desc").get_data(as_text=True)
    assert _row_headers(page, "report-channels")[0] == "UK"
    # The CSV keeps the order asked for, the total last.
    rows = csv_rows(client, "?sort=scope&dir=desc")
    assert [r["scope"] for r in rows] == ["US", "UK", "DE", "total"]
    # The filters stay in the header links.
    page = client.get("/reports?period=7&marketplace=UK").get_data(as_text=True)
    assert 'href="/reports?period=7&amp;marketplace=UK&amp;sort=late&amp;dir=asc"' in page
