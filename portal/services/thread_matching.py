"""Which existing thread of a channel an inbound message continues: candidates in, decision out.

Pure: no database, no Flask, nothing from the rest of `portal` or from `ingest`. The
inbound service (`services/inbound.py`) queries the candidates `candidate_keys` asks
for, hands them to a `ThreadMatcher` and tells it what each batch records. Anything
with the attributes of `MailToMatch` (a `ParsedMessage`) and of `CandidateThread` (a
loaded `Thread`) will do, so the rules are tested with plain dataclasses.

The rules, in order:

1. In-Reply-To/References against the channel's stored messages (ours included);
   a message recorded earlier in the same batch counts, and is newer than any stored.
2. The Amazon key: the buyer's relay alias and the order ID, at any age; the alias
   alone (no order) for a pre-sale thread active within `MATCH_WINDOW`.
3. The normalised subject from the same sender, within `MATCH_WINDOW`; a different
   order is a different conversation, whatever the subject.

Never another channel's thread. Among several threads that fit, the one active last
wins; among equals, one opened in this batch, then the highest id.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, NamedTuple, Protocol, TypeVar

#: How long a buyer's pre-sale question, or a subject, keeps a conversation going.
MATCH_WINDOW = timedelta(days=30)

# Reply/forward prefixes in the languages of Amazon's marketplaces, repeated or counted.
_SUBJECT_PREFIX_RE = re.compile(
    r"^\s*((re|fwd?|aw|wg|tr|rv|sv|vs|antw|odp|r|enc|res|ynt|返信|転送)(\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)


def normalise_subject(subject: str) -> str:
    """The subject without reply/forward prefixes and with folded white space, lower-case."""
    previous = None
    subject = " ".join(subject.split())
    while previous != subject:
        previous = subject
        subject = _SUBJECT_PREFIX_RE.sub("", subject).strip()
    return subject.lower()[:500]


class MailToMatch(Protocol):
    """What the matcher reads of an inbound message (a `ParsedMessage` has it all)."""

    @property
    def in_reply_to(self) -> str | None: ...
    @property
    def references(self) -> Sequence[str]: ...
    @property
    def relay_alias(self) -> str | None: ...
    @property
    def from_address(self) -> str: ...
    @property
    def order_id(self) -> str | None: ...
    @property
    def subject(self) -> str: ...


class CandidateThread(Protocol):
    """What the matcher reads of a thread (a loaded `Thread` has it all)."""

    @property
    def id(self) -> int | None: ...  # None until a thread opened in this batch is flushed
    @property
    def channel_id(self) -> int | None: ...
    @property
    def buyer_address(self) -> str: ...
    @property
    def order_id(self) -> str | None: ...
    @property
    def normalized_subject(self) -> str: ...
    @property
    def last_message_at(self) -> datetime | None: ...


T = TypeVar("T", bound=CandidateThread)


class StoredReference(NamedTuple):
    """A stored message some mail may name in In-Reply-To/References."""

    channel_id: int
    message_id: str  # its Message-ID header
    row_id: int  # messages.id: the newest row wins when a Message-ID is stored twice
    thread_id: int


def references_of(mail: MailToMatch) -> list[str]:
    """The Message-IDs `mail` answers, the most telling first."""
    return [r for r in [mail.in_reply_to, *reversed(mail.references)] if r]


def sender_of(mail: MailToMatch) -> str:
    """Who a thread belongs to: the buyer's relay alias, else the From address."""
    return mail.relay_alias or mail.from_address


@dataclass(frozen=True)
class CandidateKeys:
    """What to look up for a batch: the stored messages and threads any of it may continue."""

    references: list[str]
    #: Threads of these buyers (on the batch's channels) that one of the keys below names.
    senders: list[str]
    orders: list[str]  # alias + order, at any age
    presale_aliases: list[str]  # alias without an order: recent threads without an order
    subjects: list[str]  # recent threads with one of these normalised subjects


def candidate_keys(mails: Iterable[MailToMatch]) -> CandidateKeys:
    """The keys whose stored messages and threads a `ThreadMatcher` for `mails` needs."""
    mails = list(mails)
    return CandidateKeys(
        references=sorted({r for mail in mails for r in references_of(mail)}),
        senders=sorted({s for mail in mails if (s := sender_of(mail))}),
        orders=sorted({m.order_id for m in mails if m.relay_alias and m.order_id}),
        presale_aliases=sorted({m.relay_alias for m in mails if m.relay_alias and not m.order_id}),
        subjects=sorted({s for m in mails if (s := normalise_subject(m.subject))}),
    )


class ThreadMatcher(Generic[T]):
    """Matches the messages of a batch, in order, against the candidates it was given.

    `threads` are the candidate threads (at least those `candidate_keys` names, and
    those the `references` point to); `references` the stored messages the batch's
    mail names. Messages recorded earlier in the same batch (not yet in the database)
    are told to the matcher with `add`, so a follow-up joins the thread its first
    message opened moments before, exactly as it would had they come in two polls.
    """

    def __init__(
        self, *, threads: Iterable[T], references: Iterable[StoredReference], now: datetime
    ) -> None:
        self.cutoff = now - MATCH_WINDOW
        # (channel id, Message-ID) -> (row id, thread id) of stored messages: the newest
        # row wins, as "ORDER BY id DESC LIMIT 1" would.
        self._stored: dict[tuple[int, str], tuple[int, int]] = {}
        for ref in references:
            key = (ref.channel_id, ref.message_id)
            if key not in self._stored or ref.row_id > self._stored[key][0]:
                self._stored[key] = (ref.row_id, ref.thread_id)
        # (channel id, Message-ID) -> (order added, thread) for messages of this batch.
        self._added: dict[tuple[int, str], tuple[int, T]] = {}
        # (channel id, buyer address) -> threads that may match by alias/order or subject.
        self._threads: dict[tuple[int, str], list[T]] = {}
        self._by_id: dict[int, T] = {}
        # Threads opened in this batch rank above every stored one in a tie.
        self._order: dict[int, int] = {}
        self._counter = itertools.count(1)
        for thread in threads:
            if thread.id is not None:
                self._by_id[thread.id] = thread
            if thread.channel_id is not None:
                self._remember(thread.channel_id, thread)

    def _remember(self, channel_id: int, thread: T) -> None:
        bucket = self._threads.setdefault((channel_id, thread.buyer_address), [])
        if not any(t is thread for t in bucket):
            bucket.append(thread)

    def _rank(self, thread: T) -> tuple[datetime, int, int]:
        # Newest activity first, as "ORDER BY last_message_at DESC"; among equals the
        # thread opened last (one of this batch, or the highest id).
        added = self._order.get(id(thread), 0)
        return (thread.last_message_at or self.cutoff, added, thread.id or 0)

    def _is_recent(self, thread: T) -> bool:
        return thread.last_message_at is not None and thread.last_message_at >= self.cutoff

    def match(self, channel_id: int, mail: MailToMatch) -> T | None:
        """The thread `mail` continues on the channel, or None for a new conversation."""
        for rule in (self._by_reference, self._by_amazon_key, self._by_subject):
            thread = rule(channel_id, mail)
            if thread is not None:
                return thread
        return None

    def _by_reference(self, channel_id: int, mail: MailToMatch) -> T | None:
        references = references_of(mail)
        added = [self._added[k] for r in references if (k := (channel_id, r)) in self._added]
        if added:
            return max(added, key=lambda pair: pair[0])[1]
        stored = [self._stored[k] for r in references if (k := (channel_id, r)) in self._stored]
        if stored:
            return self._by_id.get(max(stored)[1])
        return None

    def _buyer_threads(self, channel_id: int, mail: MailToMatch) -> list[T]:
        sender = sender_of(mail)
        return self._threads.get((channel_id, sender), []) if sender else []

    def _by_amazon_key(self, channel_id: int, mail: MailToMatch) -> T | None:
        if not mail.relay_alias:
            return None
        threads = self._buyer_threads(channel_id, mail)
        if mail.order_id:
            found = [t for t in threads if t.order_id == mail.order_id]
        else:
            found = [t for t in threads if t.order_id is None and self._is_recent(t)]
        return max(found, key=self._rank) if found else None

    def _by_subject(self, channel_id: int, mail: MailToMatch) -> T | None:
        subject = normalise_subject(mail.subject)
        if not subject or not sender_of(mail):
            return None
        found = [
            t
            for t in self._buyer_threads(channel_id, mail)
            if t.normalized_subject == subject
            and self._is_recent(t)
            # A different order is a different conversation, whatever the subject.
            and (not mail.order_id or t.order_id is None or t.order_id == mail.order_id)
        ]
        return max(found, key=self._rank) if found else None

    def add(self, channel_id: int, thread: T, message_id: str) -> None:
        """Tell the matcher a message of this batch was recorded in `thread` (maybe new)."""
        order = next(self._counter)
        self._added[(channel_id, message_id)] = (order, thread)
        self._order.setdefault(id(thread), order)
        self._remember(channel_id, thread)
