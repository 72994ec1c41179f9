"""Offboarding (services/offboarding.py, ingest/retention.py): an admin closes an
organisation, its buyer data goes after the grace period. The clock is passed in;
nothing here waits. Runs on SQLite and, with --postgres, on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from ingest.retention import run_offboarding_erasure
from portal.config import ConfigError, config_from_env
from portal.crypto import encrypt_secret
from portal.extensions import db
from portal.models import (
    AuditEvent,
    ChannelStatus,
    Credential,
    CredentialKind,
    Direction,
    Mailbox,
    MailboxRemoval,
    Message,
    Order,
    OrgRole,
    Role,
    Thread,
    User,
    UserSession,
)
from portal.services import channels as channel_service
from portal.services import invitations, offboarding
from portal.services import users as user_service
from portal.services.channels import find_channel_for_addresses
from portal.services.sessions import start_session
from tests.helpers import PASSWORD, store_order

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def kinds() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.kind).order_by(AuditEvent.id)))


@pytest.fixture
def acme(uk, make_channel, make_user, make_thread):
    """Acme with two channels (one holding an MWS token), an owner signed in, a member,
    two threads and an order; and Beta, another seller, with a thread of its own."""
    de = make_channel("DE", organisation=uk.organisation)
    db.session.add(
        Credential(
            channel=uk,
            kind=CredentialKind.MWS_TOKEN,
            seller_id="A9SELLERID0042",
            secret_encrypted=encrypt_secret("amzn.mws.00000000-0000-0000-0000-000000000000"),
            secret_hint="amzn.mws.…0000",
        )
    )
    uk.status = ChannelStatus.ACTIVE
    owner = make_user(Role.SELLER, organisation=uk.organisation, email="owner@acme.test")
    member = make_user(Role.SELLER, organisation=uk.organisation, email="member@acme.test")
    start_session(
        owner,
        remember=False,
        remember_for=timedelta(days=1),
        ip_address=None,
        user_agent=None,
        now=NOW,
    )
    first = make_thread(uk, texts=("where is it", "still waiting"))
    make_thread(de, order_id=None, texts=("wie bitte",))
    store_order(uk, "203-1234567-1234567")
    theirs = make_thread(texts=("beta's buyer",))
    db.session.commit()
    return uk.organisation, owner, member, first, theirs


def test_closing_disables_channels_deletes_tokens_and_disables_users(acme, make_user):
    organisation, owner, member, _, theirs = acme
    admin = make_user(Role.ADMIN)
    done = offboarding.close_organisation(organisation, actor=admin, now=NOW, grace_days=30)
    db.session.commit()

    assert organisation.closed_at == NOW and organisation.erase_after == NOW + timedelta(days=30)
    assert [c.status for c in organisation.channels] == [ChannelStatus.DISABLED] * 2
    assert all(c.status_reason == offboarding.CLOSED_REASON for c in organisation.channels)
    assert db.session.scalar(select(func.count(Credential.id))) == 0
    assert (done.authorisations_deleted, done.sessions_ended) == (1, 1)
    assert sorted(done.users_disabled) == sorted([owner.id, member.id])
    assert not db.session.get(User, owner.id).is_active
    assert db.session.scalar(select(func.count(UserSession.id))) == 0
    # Another organisation is untouched; the data stays until the grace period is over.
    assert theirs.channel.status != ChannelStatus.DISABLED
    assert (
        db.session.scalar(select(func.count(Thread.id)).where(Thread.erased_at.is_not(None))) == 0
    )
    assert kinds().count("user.deactivated") == 2
    assert "channel.authorisation_deleted" in kinds() and kinds()[-1] == "organisation.closed"
    assert "amzn.mws" not in str(db.session.scalars(select(AuditEvent.details)).all())
    with pytest.raises(offboarding.OffboardingError, match="already closed"):
        offboarding.close_organisation(organisation, actor=admin, now=NOW, grace_days=30)


def test_a_closed_organisations_users_cannot_sign_in_and_say_why_only_with_the_password(acme):
    organisation, owner, *_ = acme
    offboarding.close_organisation(organisation, actor=None, now=NOW, grace_days=30)
    db.session.commit()
    assert user_service.check_login("owner@acme.test", PASSWORD) == user_service.LoginCheck(
        None, closed=True
    )
    assert user_service.check_login("owner@acme.test", "wrong password!!") == (
        user_service.LoginCheck(None)
    )
    # Even an admin's reactivation of one user does not open a closed organisation.
    db.session.get(User, owner.id).is_active = True
    db.session.commit()
    assert user_service.authenticate("owner@acme.test", PASSWORD) is None


def test_mail_to_a_closed_organisations_channels_is_no_longer_routed(acme):
    organisation, *_ = acme
    address = organisation.channels[0].helpdesk_address
    assert find_channel_for_addresses([address], inbound_domain="helpdesk.test") is not None
    offboarding.close_organisation(organisation, actor=None, now=NOW, grace_days=30)
    db.session.commit()
    assert find_channel_for_addresses([address], inbound_domain="helpdesk.test") is None


def test_reopening_within_the_grace_period_brings_users_and_channels_back(acme, make_user):
    organisation, owner, member, *_ = acme
    member.is_active = False  # deactivated before the closing: stays so
    db.session.commit()
    offboarding.close_organisation(organisation, actor=None, now=NOW, grace_days=30)
    db.session.commit()
    offboarding.reopen_organisation(organisation, actor=None, now=NOW + timedelta(days=29))
    db.session.commit()
    assert not organisation.is_closed and organisation.erase_after is None
    assert (
        db.session.get(User, owner.id).is_active and not db.session.get(User, member.id).is_active
    )
    # The authorisation was deleted: the channels wait for a new one.
    assert [c.status for c in organisation.channels] == [ChannelStatus.AWAITING_TOKEN] * 2
    assert kinds()[-1] == "organisation.reopened"
    with pytest.raises(offboarding.OffboardingError, match="not closed"):
        offboarding.reopen_organisation(organisation, actor=None, now=NOW)


def test_no_reopening_once_the_grace_period_is_over(acme):
    organisation, *_ = acme
    offboarding.close_organisation(organisation, actor=None, now=NOW, grace_days=30)
    db.session.commit()
    with pytest.raises(offboarding.OffboardingError, match="grace period"):
        offboarding.reopen_organisation(organisation, actor=None, now=NOW + timedelta(days=30))


@pytest.mark.parametrize("days", [-1, offboarding.MAX_GRACE_DAYS + 1])
def test_the_grace_period_is_bounded(acme, days):
    with pytest.raises(offboarding.OffboardingError, match="grace period"):
        offboarding.close_organisation(acme[0], actor=None, now=NOW, grace_days=days)


def test_the_worker_erases_everything_after_the_grace_period_in_batches(acme):
    organisation, _, _, first, theirs = acme
    mailbox = Mailbox(name="inbox", source_url="maildir:/nowhere")
    db.session.add(mailbox)
    first.messages[0].mailbox, first.messages[0].uid = mailbox, 9
    db.session.commit()
    offboarding.close_organisation(organisation, actor=None, now=NOW, grace_days=30)
    # Mail to its channels after the closing is not routed: it waits as unrouted mail.
    for n, to in enumerate([first.channel.helpdesk_address.upper(), "other@helpdesk.test"]):
        db.session.add(
            Message(
                direction=Direction.IN,
                message_id=f"<late{n}@example.com>",
                content_hash=f"late{n}",
                to_addresses=to,
                text_body=f"late mail {n}",
            )
        )
    db.session.commit()

    # Not before the grace period is over.
    assert run_offboarding_erasure(now=NOW + timedelta(days=29)) == 0
    assert (
        db.session.scalar(select(func.count(Thread.id)).where(Thread.erased_at.is_not(None))) == 0
    )

    later = NOW + timedelta(days=30)
    assert run_offboarding_erasure(now=later, batch_size=1) == 1
    threads = db.session.scalars(select(Thread).order_by(Thread.id)).all()
    assert [t.erased_at for t in threads] == [later, later, None]
    texts = db.session.scalars(select(Message.text_body).order_by(Message.id)).all()
    assert texts == ["", "", "", "beta's buyer", "", "late mail 1"]
    assert db.session.scalar(select(func.count(Order.id))) == 0
    assert db.session.scalar(select(func.count(MailboxRemoval.id))) == 1
    db.session.refresh(organisation)
    assert organisation.data_erased_at == later
    # Two one-thread batches, the unrouted mail, the orders.
    assert kinds().count("organisation.data_erasing") == 4
    assert kinds()[-1] == "organisation.data_erased"
    assert db.session.get(Thread, theirs.id).messages[0].text_body == "beta's buyer"
    # Done: nothing more to do on the next run.
    assert run_offboarding_erasure(now=later + timedelta(days=1)) == 0


def test_the_grace_period_is_read_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("OFFBOARDING_GRACE_DAYS", raising=False)
    assert config_from_env(str(tmp_path))["OFFBOARDING_GRACE_DAYS"] == 30
    monkeypatch.setenv("OFFBOARDING_GRACE_DAYS", "7")
    assert config_from_env(str(tmp_path))["OFFBOARDING_GRACE_DAYS"] == 7
    monkeypatch.setenv("OFFBOARDING_GRACE_DAYS", "-1")
    with pytest.raises(ConfigError, match="OFFBOARDING_GRACE_DAYS"):
        config_from_env(str(tmp_path))


def test_a_closed_organisation_takes_no_new_channel_user_or_invitation(acme, make_user):
    organisation, *_ = acme
    admin = make_user(Role.ADMIN)
    offboarding.close_organisation(organisation, actor=admin, now=NOW, grace_days=30)
    db.session.commit()
    events = len(kinds())

    with pytest.raises(channel_service.ChannelError, match="Acme is closed: reopen it first"):
        channel_service.create_channel(
            organisation, "FR", actor=admin, inbound_domain="helpdesk.test"
        )
    with pytest.raises(user_service.AccountError, match="Acme is closed: reopen it first"):
        user_service.create_user(
            "late@acme.test", PASSWORD, role=Role.SELLER, organisation=organisation, actor=admin
        )
    with pytest.raises(invitations.InvitationError, match="Acme is closed: reopen it first"):
        invitations.invite(
            "late@acme.test",
            actor=admin,
            now=NOW,
            organisation=organisation,
            org_role=OrgRole.MEMBER,
        )
    db.session.rollback()
    assert len(kinds()) == events
    assert db.session.scalar(select(func.count(User.id)).where(User.email == "late@acme.test")) == 0

    offboarding.reopen_organisation(organisation, actor=admin, now=NOW + timedelta(days=1))
    db.session.commit()
    assert (
        channel_service.create_channel(
            organisation, "FR", actor=admin, inbound_domain="helpdesk.test"
        ).marketplace
        == "FR"
    )
