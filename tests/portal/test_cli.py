from __future__ import annotations

import pytest

from portal.extensions import db
from portal.models import AuditEvent, Channel, Organisation, Role, Thread, User


def test_users_create_seller_creates_org(runner):
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "S@Example.com",
            "--password",
            "long enough pw",
            "--role",
            "seller",
            "--org",
            "Acme",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "Created seller s@example.com in Acme." in result.output
    user = db.session.scalar(db.select(User).filter_by(email="s@example.com"))
    assert user.organisation.name == "Acme"


def test_users_create_refuses_duplicates_and_short_passwords(runner, make_user):
    make_user(Role.ADMIN, email="a@example.com")
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "a@example.com",
            "--password",
            "long enough pw",
            "--role",
            "admin",
        ]
    )
    assert result.exit_code == 1
    assert "already exists" in result.output
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "b@example.com",
            "--password",
            "short",
            "--role",
            "admin",
        ]
    )
    assert result.exit_code == 1
    assert "at least 12 characters" in result.output


def test_users_assign_agent(runner, make_user, make_org):
    make_org("Acme")
    agent = make_user(Role.AGENT, email="agent@example.com")
    result = runner.invoke(
        args=["users", "assign", "--email", "agent@example.com", "--org", "acme"]
    )
    assert result.exit_code == 0, result.output
    db.session.refresh(agent)
    assert [o.name for o in agent.assigned_organisations] == ["Acme"]
    again = runner.invoke(args=["users", "assign", "--email", "agent@example.com", "--org", "Acme"])
    assert "already assigned" in again.output


def test_users_assign_refuses_non_agents_and_unknowns(runner, make_user):
    seller = make_user(Role.SELLER)
    org = db.session.scalar(db.select(Organisation))
    result = runner.invoke(args=["users", "assign", "--email", seller.email, "--org", org.name])
    assert result.exit_code == 1 and "not an agent" in result.output
    result = runner.invoke(args=["users", "assign", "--email", "x@example.com", "--org", org.name])
    assert result.exit_code == 1 and "No user" in result.output


def test_users_create_refuses_control_characters_in_names(runner):
    base = ["users", "create", "--email", "s@example.com", "--password", "long enough pw"]
    result = runner.invoke(args=[*base, "--role", "seller", "--org", "Evil\r\nBcc: x@evil.test"])
    assert result.exit_code != 0
    assert "cannot contain U+000D (CARRIAGE RETURN)" in result.output
    result = runner.invoke(args=[*base, "--role", "admin", "--name", "Ann\u202e"])
    assert result.exit_code != 0
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in result.output
    assert db.session.scalar(db.select(db.func.count()).select_from(Organisation)) == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 0


@pytest.mark.parametrize(
    ("code", "region"), [("IE", "EU"), ("BE", "EU"), ("ZA", "EU"), ("uk", "EU")]
)
def test_channels_add_takes_every_marketplace(runner, make_org, code, region):
    make_org("Acme")
    result = runner.invoke(args=["channels", "add", "--org", "Acme", "--marketplace", code])
    assert result.exit_code == 0, result.output
    channel = db.session.scalar(db.select(Channel))
    assert channel.marketplace == code.upper()
    assert channel.marketplace_info.region == region
    assert result.output.strip() == channel.helpdesk_address
    assert channel.helpdesk_address.startswith(f"{code.lower()}-")


def test_channels_add_refuses_an_unknown_marketplace(runner, make_org):
    make_org("Acme")
    result = runner.invoke(args=["channels", "add", "--org", "Acme", "--marketplace", "XX"])
    assert result.exit_code != 0
    assert db.session.scalar(db.select(Channel)) is None


BUYER = "q7xk2mfv9d3lp0b@marketplace.amazon.co.uk"


def test_buyers_erase_prints_counts_and_erases(runner, uk, make_thread):
    thread = make_thread(uk, buyer_address=BUYER, texts=("one", "two"))
    args = ["buyers", "erase", "--org", "acme", "--email", BUYER.upper()]
    dry = runner.invoke(args=[*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output == "would erase\tthreads=1\tmessages=2\n"
    assert db.session.get(Thread, thread.id).erased_at is None

    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert result.output == ("erased\tmessages=2\tattachments=0\torders=0\tthreads=1\tdrafts=0\n")
    db.session.expire_all()
    assert db.session.get(Thread, thread.id).erased_at is not None
    event = db.session.scalar(db.select(AuditEvent).filter_by(kind="buyer.erased"))
    assert event.actor_id is None and BUYER not in str(event.details)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "Acme", "--alias", "nobody@marketplace.amazon.co.uk"], "Nothing is stored"),
        (["--org", "Acme", "--alias", "nobody@marketplace.amazon.co.uk", "--dry-run"], "Nothing"),
        (["--org", "Nope", "--email", BUYER], "No organisation called 'Nope'"),
        (["--org", "Acme", "--email", "not an address"], "e-mail address"),
    ],
)
def test_buyers_erase_fails_when_nothing_matches(runner, uk, make_thread, args, message):
    make_thread(uk, buyer_address=BUYER)
    result = runner.invoke(args=["buyers", "erase", *args])
    assert result.exit_code == 1
    assert message in result.output


def test_buyers_export_writes_json_lines_and_is_audited(runner, uk, make_thread, tmp_path):
    import json

    make_thread(uk, buyer_address=BUYER, texts=("one", "two"))
    make_thread(uk, texts=("someone else",))
    result = runner.invoke(args=["buyers", "export", "--org", "acme", "--alias", BUYER.upper()])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == ["one", "two"]
    assert result.stderr.strip() == "exported\tmessages=2\torders=0\tlines=2\tto=stdout"
    out = tmp_path / "buyer.jsonl"
    result = runner.invoke(
        args=["buyers", "export", "--org", "Acme", "--email", BUYER, "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and len(out.read_text(encoding="utf-8").splitlines()) == 2
    events = db.session.scalars(db.select(AuditEvent).filter_by(kind="buyer.exported")).all()
    assert len(events) == 2 and events[0].actor_id is None
    assert BUYER not in str(events[0].details).lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "Acme", "--alias", "nobody@marketplace.amazon.co.uk"], "Nothing is stored"),
        (["--org", "Nope", "--email", BUYER], "No organisation called 'Nope'"),
        (["--org", "Acme", "--email", "not an address"], "e-mail address"),
    ],
)
def test_buyers_export_fails_when_nothing_matches(runner, uk, make_thread, args, message):
    make_thread(uk, buyer_address=BUYER)
    result = runner.invoke(args=["buyers", "export", *args])
    assert result.exit_code == 1
    assert message in result.output and result.stdout == ""
    assert db.session.scalar(db.select(AuditEvent).filter_by(kind="buyer.exported")) is None


def test_orgs_close_then_reopen(runner, uk, make_user, app):
    make_user(Role.SELLER, organisation=uk.organisation)
    app.config["OFFBOARDING_GRACE_DAYS"] = 12
    result = runner.invoke(args=["orgs", "close", "--org", "acme"])
    assert result.exit_code == 0, result.output
    fields = result.output.rstrip("\n").split("\t")
    assert fields[:6] == [
        "closed",
        "Acme",
        "channels_disabled=1",
        "authorisations_deleted=0",
        "users_disabled=1",
        "sessions_ended=0",
    ]
    db.session.expire_all()
    organisation = db.session.get(Organisation, uk.organisation_id)
    assert fields[6] == f"erase_after={organisation.erase_after.isoformat()}"
    assert (organisation.erase_after - organisation.closed_at).days == 12
    event = db.session.scalar(db.select(AuditEvent).filter_by(kind="organisation.closed"))
    assert event.actor_id is None and event.details["grace_days"] == 12

    again = runner.invoke(args=["orgs", "close", "--org", "Acme", "--grace-days", "3"])
    assert again.exit_code == 1 and "already closed" in again.output

    result = runner.invoke(args=["orgs", "reopen", "--org", "Acme"])
    assert result.exit_code == 0, result.output
    assert result.output == "reopened\tAcme\n"
    db.session.expire_all()
    assert db.session.get(Organisation, uk.organisation_id).closed_at is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["close", "--org", "Nope"], "No organisation called 'Nope'"),
        (["reopen", "--org", "Nope"], "No organisation called 'Nope'"),
        (["reopen", "--org", "Acme"], "Acme is not closed"),
    ],
)
def test_orgs_close_and_reopen_fail_clearly(runner, uk, args, message):
    result = runner.invoke(args=["orgs", *args])
    assert result.exit_code == 1
    assert message in result.output
