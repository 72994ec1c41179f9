"""The export's two front ends: a seller's download from the portal and `flask export`."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ingest.pipeline import Outcome
from portal.extensions import db
from portal.models import AuditEvent, Role
from portal.sqltypes import utcnow
from tests.helpers import ORDER_ITEMS, ORDER_PACKAGES, store_order


@pytest.fixture
def two_orgs(make_org, make_channel, ingest):
    """Alpha (UK) and Beta (DE) with one buyer mail each, plus unrouted and quarantined mail."""
    alpha, beta = make_org("Alpha Ltd"), make_org("Beta GmbH")
    make_channel("UK", organisation=alpha, address="uk-alpha@helpdesk.test")
    make_channel("DE", organisation=beta, address="de-beta@helpdesk.test")
    assert (
        ingest(
            "amazon_uk_inquiry.eml", replace={"uk-chan01@helpdesk.test": "uk-alpha@helpdesk.test"}
        )
        == Outcome.STORED
    )
    assert ingest("amazon_de_presale.eml", replace={"de-chan02": "de-beta"}) == Outcome.STORED
    assert ingest("no_message_id.eml") == Outcome.UNROUTED
    assert ingest("not_mail.eml") == Outcome.QUARANTINED
    return alpha, beta


def parse_lines(data: bytes) -> list[dict]:
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def committed_exports() -> list[tuple[int | None, int | None]]:
    """Audit events as another connection sees them: committed ones only."""
    with db.engine.connect() as conn:
        return conn.execute(
            select(AuditEvent.actor_id, AuditEvent.organisation_id).where(
                AuditEvent.kind == "organisation.exported"
            )
        ).all()


# --- the seller's download -------------------------------------------------------------


def test_seller_downloads_own_organisation(client, login_as, two_orgs):
    alpha, _ = two_orgs
    seller = login_as(Role.SELLER, organisation=alpha)
    response = client.get(f"/orgs/{alpha.id}/export.jsonl")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    today = utcnow().date().isoformat()
    assert (
        response.headers["Content-Disposition"]
        == f'attachment; filename="sellerdesk-alpha-ltd-{today}.jsonl"'
    )
    (record,) = parse_lines(response.get_data())
    assert record["channel"] == "uk-alpha@helpdesk.test"
    assert record["flags"] == []
    assert committed_exports() == [(seller.id, alpha.id)]


def test_download_never_holds_unrouted_quarantined_or_other_orgs_mail(client, login_as, two_orgs):
    alpha, _ = two_orgs
    login_as(Role.SELLER, organisation=alpha)
    data = client.get(f"/orgs/{alpha.id}/export.jsonl").get_data()
    assert b"de-beta@helpdesk.test" not in data
    assert b"unrouted" not in data and b"quarantined" not in data
    assert b"buyer@example.com" not in data  # the unrouted mail's sender


def test_seller_of_another_org_gets_404(client, login_as, two_orgs):
    alpha, beta = two_orgs
    login_as(Role.SELLER, organisation=beta)
    response = client.get(f"/orgs/{alpha.id}/export.jsonl")
    assert response.status_code == 404
    assert b"uk-alpha" not in response.get_data()
    assert committed_exports() == []


def test_nonexistent_organisation_is_404(client, login_as):
    login_as(Role.ADMIN)
    assert client.get("/orgs/999999/export.jsonl").status_code == 404


def test_assigned_agent_downloads_unassigned_gets_404(client, auth, make_user, two_orgs):
    alpha, beta = two_orgs
    agent = make_user(Role.AGENT, assigned=[alpha])
    auth.login(agent.email)
    assert client.get(f"/orgs/{alpha.id}/export.jsonl").status_code == 200
    assert client.get(f"/orgs/{beta.id}/export.jsonl").status_code == 404


def test_admin_downloads_any_organisation(client, login_as, two_orgs):
    _, beta = two_orgs
    admin = login_as(Role.ADMIN)
    response = client.get(f"/orgs/{beta.id}/export.jsonl")
    assert response.status_code == 200
    (record,) = parse_lines(response.get_data())
    assert record["channel"] == "de-beta@helpdesk.test"
    assert record["marketplace"] == "DE"
    assert committed_exports() == [(admin.id, beta.id)]


def test_anonymous_is_sent_to_login(client, two_orgs):
    alpha, _ = two_orgs
    response = client.get(f"/orgs/{alpha.id}/export.jsonl")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert committed_exports() == []


def test_organisation_page_links_to_the_download(client, login_as, two_orgs):
    alpha, _ = two_orgs
    login_as(Role.SELLER, organisation=alpha)
    page = client.get(f"/orgs/{alpha.id}").get_data(as_text=True)
    assert f'href="/orgs/{alpha.id}/export.jsonl"' in page
    assert "Download messages (JSON Lines)" in page


# --- flask export ----------------------------------------------------------------------


def test_cli_exports_every_message_to_a_file(runner, two_orgs, tmp_path):
    out = tmp_path / "all.jsonl"
    result = runner.invoke(args=["export", "--jsonl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"exported 4 messages to {out}"
    assert result.stdout == ""
    records = parse_lines(out.read_bytes())
    assert [r["flags"] for r in records] == [[], [], ["unrouted"], ["quarantined"]]
    assert [r["marketplace"] for r in records] == ["UK", "DE", None, None]


def test_cli_never_exports_order_data_beyond_the_order_id(runner, make_thread, tmp_path):
    thread = make_thread(order_id="203-7654321-1234567", texts=("Where is my kneeler?",))
    store_order(thread.channel, thread.order_id, programs=["PRIME", "AMAZON_BUSINESS"])
    out = tmp_path / "all.jsonl"
    result = runner.invoke(args=["export", "--jsonl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    exported = out.read_text(encoding="utf-8")
    (record,) = parse_lines(out.read_bytes())
    assert record["order_id"] == "203-7654321-1234567"  # the order ID, as before
    details = [str(v) for item in ORDER_ITEMS for k, v in item.items() if k != "quantity"]
    details += ["36.97", "AMAZON_BUSINESS"]  # the total, a program
    for package in ORDER_PACKAGES:
        details += [package["carrier"], package["tracking_number"], package["status"]]
    for detail in details:
        assert detail not in exported, detail


def test_cli_writes_to_stdout_by_default(runner, two_orgs):
    result = runner.invoke(args=["export", "--jsonl"])
    assert result.exit_code == 0, result.output
    assert len(parse_lines(result.stdout_bytes)) == 4
    assert result.stderr.strip() == "exported 4 messages to stdout"


def test_cli_org_filter(runner, two_orgs, tmp_path):
    out = tmp_path / "beta.jsonl"
    result = runner.invoke(args=["export", "--jsonl", "--org", "Beta GmbH", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = parse_lines(out.read_bytes())
    assert record["channel"] == "de-beta@helpdesk.test"
    result = runner.invoke(args=["export", "--jsonl", "--org", "Nobody Ltd"])
    assert result.exit_code == 1
    assert "No organisation called 'Nobody Ltd'" in result.output


def test_cli_requires_jsonl(runner, tmp_path):
    out = tmp_path / "x.jsonl"
    result = runner.invoke(args=["export", "--out", str(out)])
    assert result.exit_code == 2
    assert "--jsonl" in result.output and "only export format" in result.output
    assert not out.exists()


def test_cli_reports_an_unwritable_destination(runner, app, tmp_path):
    result = runner.invoke(args=["export", "--jsonl", "--out", str(tmp_path / "no" / "x.jsonl")])
    assert result.exit_code == 1
    assert "Cannot write" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_on_an_empty_database(runner, app, tmp_path):
    out = tmp_path / "empty.jsonl"
    result = runner.invoke(args=["export", "--jsonl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b""
    assert "exported 0 messages" in result.stderr
