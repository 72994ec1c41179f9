"""The thread matcher's rules, without a database: candidates in, decision out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from portal.services.thread_matching import (
    MATCH_WINDOW,
    StoredReference,
    ThreadMatcher,
    candidate_keys,
    normalise_subject,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
UK, DE = 1, 2
ALIAS = "jane-x1y2@marketplace.amazon.co.uk"
ORDER = "203-1234567-1234567"


@dataclass
class Mail:
    subject: str = "Where is my parcel?"
    from_address: str = "buyer@example.com"
    relay_alias: str | None = None
    order_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)


@dataclass
class Thread:
    id: int | None
    channel_id: int | None = UK
    buyer_address: str = "buyer@example.com"
    order_id: str | None = None
    normalized_subject: str = "where is my parcel?"
    last_message_at: datetime | None = NOW - timedelta(days=1)


def matcher(threads=(), references=()) -> ThreadMatcher:
    return ThreadMatcher(threads=threads, references=references, now=NOW)


def ref(message_id: str, thread: Thread, *, row_id: int = 1, channel_id: int = UK):
    return StoredReference(channel_id, message_id, row_id, thread.id)


# --- In-Reply-To / References ------------------------------------------------------------


def test_in_reply_to_finds_the_thread_of_the_stored_message_whatever_sender_and_subject():
    thread = Thread(1, buyer_address="someone@example.com", normalized_subject="first")
    m = matcher([thread], [ref("<t1@example.com>", thread)])
    mail = Mail(subject="Totally different", in_reply_to="<t1@example.com>")
    assert m.match(UK, mail) is thread


def test_references_count_and_the_last_one_is_the_most_telling():
    older, newer = Thread(1), Thread(2)
    m = matcher(
        [older, newer],
        [ref("<a@x>", older, row_id=1), ref("<b@x>", newer, row_id=2)],
    )
    assert m.match(UK, Mail(subject="x", references=["<unknown@x>", "<a@x>"])) is older
    # Several stored: the newest stored message's thread.
    assert m.match(UK, Mail(subject="x", references=["<a@x>", "<b@x>"])) is newer


def test_a_message_id_stored_twice_takes_the_newest_row():
    first, second = Thread(1), Thread(2)
    m = matcher([first, second], [ref("<a@x>", second, row_id=9), ref("<a@x>", first, row_id=3)])
    assert m.match(UK, Mail(in_reply_to="<a@x>", subject="x")) is second


def test_references_win_over_the_amazon_key_and_the_subject():
    by_reference = Thread(1, buyer_address="other@example.com", normalized_subject="other")
    by_key = Thread(2, buyer_address=ALIAS, order_id=ORDER, last_message_at=NOW)
    m = matcher([by_reference, by_key], [ref("<a@x>", by_reference)])
    mail = Mail(relay_alias=ALIAS, order_id=ORDER, in_reply_to="<a@x>")
    assert m.match(UK, mail) is by_reference


def test_a_reference_to_a_thread_not_given_falls_back_to_the_other_rules():
    by_subject = Thread(2)
    m = matcher([by_subject], [StoredReference(UK, "<a@x>", 1, 99)])
    assert m.match(UK, Mail(in_reply_to="<a@x>")) is by_subject


# --- the Amazon key ----------------------------------------------------------------------


def test_alias_and_order_match_at_any_age_and_any_subject():
    old = Thread(
        1,
        buyer_address=ALIAS,
        order_id=ORDER,
        normalized_subject="inquiry from amazon customer",
        last_message_at=NOW - timedelta(days=400),
    )
    mail = Mail(subject="Something else", relay_alias=ALIAS, order_id=ORDER)
    assert matcher([old]).match(UK, mail) is old


def test_alias_alone_matches_a_pre_sale_thread_within_the_window_only():
    mail = Mail(subject="Question before buying", relay_alias=ALIAS)
    recent = Thread(1, buyer_address=ALIAS, normalized_subject="another question")
    assert matcher([recent]).match(UK, mail) is recent
    stale = Thread(
        1,
        buyer_address=ALIAS,
        normalized_subject="another question",
        last_message_at=NOW - MATCH_WINDOW - timedelta(minutes=1),
    )
    assert matcher([stale]).match(UK, mail) is None
    # A thread about an order is no pre-sale thread.
    ordered = Thread(1, buyer_address=ALIAS, order_id=ORDER, normalized_subject="x")
    assert matcher([ordered]).match(UK, mail) is None


def test_a_different_order_is_a_different_conversation():
    thread = Thread(1, buyer_address=ALIAS, order_id=ORDER)
    mail = Mail(relay_alias=ALIAS, order_id="203-9999999-9999999")
    assert matcher([thread]).match(UK, mail) is None


def test_the_alias_is_the_sender_not_the_from_address():
    thread = Thread(1, buyer_address=ALIAS, order_id=ORDER)
    mail = Mail(from_address="relay@amazon.co.uk", relay_alias=ALIAS, order_id=ORDER)
    assert matcher([thread]).match(UK, mail) is thread


# --- the subject -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "normalised"),
    [
        ("Re: Question about size", "question about size"),
        ("AW: RE[2]: Question   about\tsize", "question about size"),
        ("Fwd: TR: rv: Question", "question"),
        ("返信: 質問", "質問"),
        ("Re:", ""),
    ],
)
def test_normalise_subject(subject, normalised):
    assert normalise_subject(subject) == normalised


def test_the_normalised_subject_from_the_same_sender_within_the_window():
    thread = Thread(1, normalized_subject="question about size")
    assert matcher([thread]).match(UK, Mail(subject="AW: RE[2]: Question about size")) is thread
    other_sender = Mail(subject="Re: Question about size", from_address="b@example.com")
    assert matcher([thread]).match(UK, other_sender) is None
    stale = Thread(
        1,
        normalized_subject="question about size",
        last_message_at=NOW - MATCH_WINDOW - timedelta(minutes=1),
    )
    assert matcher([stale]).match(UK, Mail(subject="Re: Question about size")) is None


def test_the_subject_never_joins_a_thread_about_another_order():
    thread = Thread(1, order_id=ORDER)
    assert matcher([thread]).match(UK, Mail(order_id="203-9999999-9999999")) is None
    assert matcher([thread]).match(UK, Mail(order_id=ORDER)) is thread
    assert matcher([thread]).match(UK, Mail()) is thread  # the mail names no order
    no_order = Thread(1)
    assert matcher([no_order]).match(UK, Mail(order_id=ORDER)) is no_order


def test_an_empty_subject_matches_nothing_by_subject():
    thread = Thread(1, normalized_subject="")
    assert matcher([thread]).match(UK, Mail(subject="Re: ")) is None


# --- channels, ties and the batch --------------------------------------------------------


def test_never_another_channels_thread():
    thread = Thread(1, channel_id=UK, buyer_address=ALIAS, order_id=ORDER)
    m = matcher([thread], [ref("<a@x>", thread)])
    assert m.match(DE, Mail(relay_alias=ALIAS, order_id=ORDER, in_reply_to="<a@x>")) is None
    assert m.match(DE, Mail(subject="Where is my parcel?")) is None


def test_the_thread_active_last_wins_then_the_highest_id():
    older = Thread(1, last_message_at=NOW - timedelta(days=3))
    newer = Thread(2, last_message_at=NOW - timedelta(days=2))
    assert matcher([newer, older]).match(UK, Mail()) is newer
    same_a, same_b = Thread(5), Thread(4)
    assert matcher([same_a, same_b]).match(UK, Mail()) is same_a


def test_a_follow_up_joins_the_thread_its_first_message_opened_in_the_same_batch():
    m = matcher()
    first = Mail(subject="Parcel missing", from_address="a@example.com")
    assert m.match(UK, first) is None
    opened = Thread(None, buyer_address="a@example.com", normalized_subject="parcel missing")
    m.add(UK, opened, "<first@example.com>")
    reply = Mail(subject="Other", from_address="b@example.com", in_reply_to="<first@example.com>")
    assert m.match(UK, reply) is opened
    assert m.match(UK, Mail(subject="Re: Parcel missing", from_address="a@example.com")) is opened
    assert m.match(DE, reply) is None  # added on UK only


def test_a_message_of_the_batch_is_newer_than_any_stored_one_with_that_message_id():
    stored = Thread(1)
    m = matcher([stored], [ref("<a@x>", stored, row_id=1000)])
    opened = Thread(None)
    m.add(UK, opened, "<a@x>")
    assert m.match(UK, Mail(in_reply_to="<a@x>", subject="x")) is opened


def test_batch_added_threads_win_ties():
    stored = Thread(7, buyer_address=ALIAS, order_id=ORDER, last_message_at=NOW)
    opened = Thread(None, buyer_address=ALIAS, order_id=ORDER, last_message_at=NOW)
    m = matcher([stored])
    m.add(UK, opened, "<new@x>")
    assert m.match(UK, Mail(relay_alias=ALIAS, order_id=ORDER)) is opened
    # Two opened in the batch: the later one.
    later = Thread(None, buyer_address=ALIAS, order_id=ORDER, last_message_at=NOW)
    m.add(UK, later, "<newer@x>")
    assert m.match(UK, Mail(relay_alias=ALIAS, order_id=ORDER)) is later


# --- what the service looks up -----------------------------------------------------------


def test_candidate_keys_name_what_the_rules_may_match():
    keys = candidate_keys(
        [
            Mail(subject="Re: Hello", in_reply_to="<b@x>", references=["<a@x>", "<b@x>"]),
            Mail(subject="Re:", relay_alias=ALIAS, order_id=ORDER),
            Mail(subject="Pre-sale", relay_alias="other@marketplace.amazon.de"),
        ]
    )
    assert keys.references == ["<a@x>", "<b@x>"]
    assert keys.senders == ["buyer@example.com", ALIAS, "other@marketplace.amazon.de"]
    assert keys.orders == [ORDER]
    assert keys.presale_aliases == ["other@marketplace.amazon.de"]
    assert keys.subjects == ["hello", "pre-sale"]
