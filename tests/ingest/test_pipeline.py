"""The pipeline end to end on a Maildir source: a poll stores, de-duplicates and quarantines,
flags what it stored and reports; the decisions themselves are tests/services/test_inbound.py's."""

from __future__ import annotations

from sqlalchemy import event, text

from ingest.mail.maildir import MaildirSource
from ingest.mail.parse import content_hash, synthetic_message_id
from ingest.pipeline import poll_all, settle_worker_process
from portal import cli
from portal.extensions import WORKER_PAGE_CACHE, WORKER_STATEMENT_CACHE, db
from portal.models import Mailbox, MailboxRemoval, Message, Thread, ThreadStatus
from portal.services import buyer_data
from portal.sqltypes import utcnow
from tests.helpers import stored_messages as messages


def test_poll_stores_routes_and_threads(uk, drop_mail, maildir):
    drop_mail("amazon_uk_inquiry.eml")
    drop_mail("amazon_uk_followup.eml")
    summary = poll_all()
    assert summary.line() == "fetched=2 stored=2 duplicate=0 unrouted=0 quarantined=0 errors=0"
    first, second = messages()
    assert first.channel_id == second.channel_id == uk.id
    # Different subjects, same buyer alias and order: one conversation.
    assert first.thread_id == second.thread_id
    thread = db.session.get(Thread, first.thread_id)
    assert thread.order_id == "203-1234567-1234567"
    assert thread.buyer_name == "Jane Doe"
    assert thread.status == ThreadStatus.OPEN
    assert first.raw.startswith(b"Return-Path:")
    assert first.visible_text.startswith("Hello, my parcel")
    db.session.refresh(uk)
    assert uk.first_message_at is not None
    # Processed mail leaves new/ for cur/ with the Seen flag; a second poll finds nothing.
    assert list((maildir / "new").iterdir()) == []
    assert sorted(p.name.split(":")[1] for p in (maildir / "cur").iterdir()) == ["2,S", "2,S"]
    assert poll_all().line() == "fetched=0 stored=0 duplicate=0 unrouted=0 quarantined=0 errors=0"


def test_same_mail_delivered_twice_is_stored_once(uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    drop_mail("amazon_uk_inquiry.eml")
    assert poll_all().line() == "fetched=2 stored=1 duplicate=1 unrouted=0 quarantined=0 errors=0"
    drop_mail("amazon_uk_inquiry.eml")
    assert poll_all().duplicate == 1
    assert len(messages()) == 1


def test_unrouted_mail_is_kept(uk, drop_mail):
    drop_mail("no_message_id.eml")
    assert poll_all().line() == "fetched=1 stored=0 duplicate=0 unrouted=1 quarantined=0 errors=0"
    (message,) = messages()
    assert message.is_unrouted and message.thread_id is None and message.raw


def test_unparseable_mail_is_quarantined_and_poll_goes_on(uk, drop_mail):
    drop_mail("not_mail.eml")
    drop_mail("amazon_uk_inquiry.eml")
    assert poll_all().line() == "fetched=2 stored=1 duplicate=0 unrouted=0 quarantined=1 errors=0"
    quarantined = db.session.scalar(
        db.select(Message).where(Message.quarantine_reason.is_not(None))
    )
    assert "not an e-mail" in quarantined.quarantine_reason
    assert quarantined.raw.startswith(b"\x00\x01")
    drop_mail("not_mail.eml")
    assert poll_all().duplicate == 1


def test_broken_mime_is_stored_not_dropped(uk, drop_mail):
    drop_mail("broken_mime.eml")
    assert poll_all().stored == 1


def test_bad_mail_source_is_an_error_not_a_crash(app, uk):
    app.config["MAIL_SOURCE"] = "pop3://nope"
    summary = poll_all()
    assert summary.errors == 1


def test_mailbox_health_is_recorded(uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    poll_all()
    mailbox = db.session.scalar(db.select(Mailbox))
    assert mailbox.last_success_at is not None
    assert mailbox.last_poll_summary.startswith("fetched=1 stored=1")
    assert mailbox.lease_owner is None  # released after the pass


def test_ingest_poll_cli_prints_summary(runner, uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    result = runner.invoke(args=["ingest", "poll"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "fetched=1 stored=1 duplicate=0 unrouted=0 quarantined=0 errors=0 waiting=0"
    )


def _mail_arriving_during_each_pass(monkeypatch, drop_mail, passes: int) -> None:
    """Deliver one more mail just before each of the first `passes` passes looks for what
    is still waiting (as mail arriving while a pass stores)."""
    real_backlog = MaildirSource.backlog
    arrivals = iter(range(passes))

    def backlog(self, after_uid):
        if next(arrivals, None) is not None:
            drop_mail("amazon_uk_inquiry.eml", replace={"<": "<later-"})
        return real_backlog(self, after_uid)

    monkeypatch.setattr(MaildirSource, "backlog", backlog)


def test_ingest_poll_cli_polls_again_while_mail_arrived_during_a_pass(
    runner, uk, drop_mail, monkeypatch
):
    drop_mail("amazon_uk_inquiry.eml")
    _mail_arriving_during_each_pass(monkeypatch, drop_mail, passes=2)
    result = runner.invoke(args=["ingest", "poll"])
    assert result.exit_code == 0, result.output
    # Three passes: the mail, then each arrival; the third found nothing more.
    assert result.output.strip() == (
        "fetched=3 stored=2 duplicate=1 unrouted=0 quarantined=0 errors=0 waiting=0"
    )


def test_ingest_poll_cli_stops_after_its_last_pass_and_says_what_waits(
    runner, uk, drop_mail, monkeypatch
):
    monkeypatch.setattr(cli, "MAX_POLL_PASSES", 2)
    drop_mail("amazon_uk_inquiry.eml")
    _mail_arriving_during_each_pass(monkeypatch, drop_mail, passes=5)
    result = runner.invoke(args=["ingest", "poll"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("waiting=1")
    assert result.output.startswith("fetched=2 ")


def test_the_worker_keeps_small_caches_on_sqlite_only(app):
    # The web process's 16 MB per connection (extensions._sqlite_pragmas) would be most
    # of the worker's resident size; the worker's connections keep SQLite's default.
    # They also keep fewer prepared statements than Python's 128, which had filled with
    # lookups of earlier batches.
    def cache_size() -> int:
        size = db.session.execute(text("PRAGMA cache_size")).scalar()
        db.session.remove()
        return size

    if db.engine.dialect.name != "sqlite":
        # PostgreSQL has no such pragma: its connections are left as they are (a
        # connection made after the worker settled still works).
        settle_worker_process()
        db.engine.dispose()
        assert db.session.execute(text("SELECT 1")).scalar() == 1
        return
    assert cache_size() == -16000
    settle_worker_process()
    asked: list[dict] = []

    def record(dialect, connection_record, cargs, cparams) -> None:
        asked.append(dict(cparams))

    # Listeners run in the order added: this one sees what the worker's asked for.
    event.listen(db.engine, "do_connect", record)
    try:
        assert cache_size() == WORKER_PAGE_CACHE == -2000
    finally:
        event.remove(db.engine, "do_connect", record)
    assert [a.get("cached_statements") for a in asked] == [WORKER_STATEMENT_CACHE]


BRACKETLESS = (
    b"From: Jane Doe <jane@example.com>\nTo: uk-chan01@helpdesk.test\n"
    b"Subject: Broken client\nDate: Thu, 03 Dec 2026 10:00:00 +0000\n"
    b"Message-ID: 1733220000.42@old-webmail.example.com\n\nWhere is my order?\n"
)
REPLY_CITING_IT = (
    b"From: Jane's other address <jane.doe@example.org>\nTo: uk-chan01@helpdesk.test\n"
    b"Subject: something else entirely\nDate: Thu, 03 Dec 2026 11:00:00 +0000\n"
    b"Message-ID: <reply-1@example.org>\n"
    b"In-Reply-To: 1733220000.42@old-webmail.example.com\n\nStill waiting.\n"
)


def test_a_reply_citing_a_bracketless_message_id_joins_its_thread(uk, drop_mail):
    drop_mail(BRACKETLESS)
    drop_mail(REPLY_CITING_IT)
    assert poll_all().stored == 2
    first, reply = messages()
    assert first.message_id == "1733220000.42@old-webmail.example.com"
    # Another sender and subject: only the cited id can put it in the same thread.
    assert reply.thread_id == first.thread_id


def test_mail_stored_under_the_made_up_id_of_earlier_versions_is_not_stored_again(uk, drop_mail):
    drop_mail(BRACKETLESS)
    poll_all()
    (stored,) = messages()
    # As versions that replaced a bracketless id stored it; then the mail comes again
    # (a UIDVALIDITY reset, a copy left in the Maildir).
    stored.message_id = synthetic_message_id(stored.content_hash)
    db.session.commit()
    drop_mail(BRACKETLESS)
    assert poll_all().line() == "fetched=1 stored=0 duplicate=1 unrouted=0 quarantined=0 errors=0"
    assert len(messages()) == 1


def test_an_erased_buyers_mail_is_deleted_from_the_maildir(uk, drop_mail, maildir):
    drop_mail("amazon_uk_inquiry.eml")
    drop_mail(BRACKETLESS)
    assert poll_all().stored == 2
    assert len(list((maildir / "cur").iterdir())) == 2
    thread = db.session.scalar(db.select(Thread).order_by(Thread.id))
    buyer_data.erase_buyer(uk.organisation, thread.buyer_address, actor=None, now=utcnow())
    db.session.commit()
    assert poll_all().fetched == 0
    [left] = (maildir / "cur").iterdir()
    assert (
        content_hash(left.read_bytes())
        != db.session.get(Thread, thread.id).messages[0].content_hash
    )
    assert db.session.scalar(db.select(db.func.count(MailboxRemoval.id))) == 0


def test_an_erased_buyers_mail_delivered_again_stays_out(uk, drop_mail):
    drop_mail("amazon_uk_inquiry.eml")
    assert poll_all().stored == 1
    thread = db.session.scalar(db.select(Thread))
    buyer_data.erase_buyer(uk.organisation, thread.buyer_address, actor=None, now=utcnow())
    db.session.commit()
    poll_all()  # deletes it from the Maildir (test above)
    drop_mail("amazon_uk_inquiry.eml")
    summary = poll_all()
    assert (summary.fetched, summary.stored, summary.duplicate) == (1, 0, 1)
    db.session.expire_all()
    assert [m.text_body for m in db.session.get(Thread, thread.id).messages] == [""]
