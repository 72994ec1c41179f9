"""Which existing thread of a channel an inbound message belongs to."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select

from ingest.parse import ParsedMessage
from portal.extensions import db
from portal.models import Channel, Message, Thread
from portal.services.threads import normalise_subject

#: How long a buyer's pre-sale question, or a subject, keeps a conversation going.
MATCH_WINDOW = timedelta(days=30)


def find_thread(channel: Channel, parsed: ParsedMessage, *, now: datetime) -> Thread | None:
    """The thread of `channel` this message continues, or None for a new conversation.

    Order: In-Reply-To/References against stored messages (ours included); the
    Amazon key (buyer relay alias + order ID; alias alone for pre-sale questions);
    then the normalised subject from the same sender. Never another channel's thread.
    """
    return ThreadMatcher([(channel, parsed)], now=now).match(channel, parsed)


def _references(parsed: ParsedMessage) -> list[str]:
    return [r for r in [parsed.in_reply_to, *reversed(parsed.references)] if r]


def _sender(parsed: ParsedMessage) -> str:
    return parsed.relay_alias or parsed.from_address


class ThreadMatcher:
    """`find_thread` for a whole batch: two or three queries up front, then every message
    is matched in memory, in order.

    The queries fetch every stored message or thread any message of the batch could
    match. Messages recorded earlier in the same batch (not yet flushed) are told to
    the matcher with `add`, so a follow-up joins the thread its first message opened
    moments before, exactly as it would had they come in two polls.
    """

    def __init__(self, items: Iterable[tuple[Channel, ParsedMessage]], *, now: datetime) -> None:
        self.cutoff = now - MATCH_WINDOW
        # (channel id, Message-ID) -> (message id, thread id) of stored messages: the
        # newest wins, as "ORDER BY id DESC LIMIT 1" would.
        self._stored: dict[tuple[int, str], tuple[int, int]] = {}
        # (channel id, Message-ID) -> (order added, thread) for messages of this batch.
        self._added: dict[tuple[int, str], tuple[int, Thread]] = {}
        # (channel id, buyer address) -> threads that may match by alias/order or subject.
        self._threads: dict[tuple[int, str], list[Thread]] = {}
        self._by_id: dict[int, Thread] = {}
        # Threads opened in this batch rank above every stored one in a tie.
        self._order: dict[int, int] = {}
        self._counter = itertools.count(1)
        self._prefetch(list(items))

    # -- the queries ---------------------------------------------------------------------

    def _prefetch(self, items: list[tuple[Channel, ParsedMessage]]) -> None:
        if not items:
            return
        channel_ids = sorted({channel.id for channel, _ in items})
        references = sorted({r for _, parsed in items for r in _references(parsed)})
        thread_ids: set[int] = set()
        if references:
            rows = db.session.execute(
                select(Message.id, Message.channel_id, Message.message_id, Message.thread_id).where(
                    Message.channel_id.in_(channel_ids),
                    Message.message_id.in_(references),
                    Message.thread_id.is_not(None),
                )
            )
            for row in rows:
                key = (row.channel_id, row.message_id)
                if key not in self._stored or row.id > self._stored[key][0]:
                    self._stored[key] = (row.id, row.thread_id)
            thread_ids = {thread_id for _, thread_id in self._stored.values()}

        senders = {s for _, parsed in items if (s := _sender(parsed))}
        # The Amazon key: alias + order (at any age), or alias alone for a recent
        # pre-sale thread; or a recent thread of the same sender and subject.
        orders = sorted({p.order_id for _, p in items if p.relay_alias and p.order_id})
        presale = sorted({p.relay_alias for _, p in items if p.relay_alias and not p.order_id})
        subjects = sorted({s for _, p in items if (s := normalise_subject(p.subject))})
        recent_conditions = []
        if subjects:
            recent_conditions.append(Thread.normalized_subject.in_(subjects))
        if presale:
            recent_conditions.append(Thread.order_id.is_(None) & Thread.buyer_address.in_(presale))
        conditions = []
        if orders:
            conditions.append(Thread.order_id.in_(orders))
        if recent_conditions:
            conditions.append(and_(Thread.last_message_at >= self.cutoff, or_(*recent_conditions)))
        candidates = or_(*conditions) if conditions else None
        wanted = []
        if senders and candidates is not None:
            wanted.append(
                Thread.channel_id.in_(channel_ids)
                & Thread.buyer_address.in_(sorted(senders))
                & candidates
            )
        if thread_ids:
            wanted.append(Thread.id.in_(sorted(thread_ids)))
        if not wanted:
            return
        for thread in db.session.scalars(select(Thread).where(or_(*wanted))):
            self._by_id[thread.id] = thread
            if thread.buyer_address in senders and thread.channel_id in channel_ids:
                self._remember(thread.channel_id, thread)

    def _remember(self, channel_id: int, thread: Thread) -> None:
        bucket = self._threads.setdefault((channel_id, thread.buyer_address), [])
        if not any(t is thread for t in bucket):
            bucket.append(thread)

    # -- matching ------------------------------------------------------------------------

    def _rank(self, thread: Thread) -> tuple[datetime, int, int]:
        # Newest activity first, as "ORDER BY last_message_at DESC"; among equals the
        # thread opened last (one of this batch, or the highest id).
        added = self._order.get(id(thread), 0)
        return (thread.last_message_at or self.cutoff, added, thread.id or 0)

    def match(self, channel: Channel, parsed: ParsedMessage) -> Thread | None:
        """The thread `parsed` continues on `channel`, or None: `find_thread`'s rules."""
        references = _references(parsed)
        if references:
            # A message of this batch is newer than any stored one.
            added = [self._added[k] for r in references if (k := (channel.id, r)) in self._added]
            if added:
                return max(added, key=lambda pair: pair[0])[1]
            stored = [self._stored[k] for r in references if (k := (channel.id, r)) in self._stored]
            if stored:
                thread = self._by_id.get(max(stored)[1])
                if thread is not None:
                    return thread

        sender = _sender(parsed)
        threads = self._threads.get((channel.id, sender), []) if sender else []
        if parsed.relay_alias:
            if parsed.order_id:
                found = [t for t in threads if t.order_id == parsed.order_id]
            else:
                found = [t for t in threads if t.order_id is None and self._is_recent(t)]
            if found:
                return max(found, key=self._rank)

        subject = normalise_subject(parsed.subject)
        if subject and sender:
            found = [
                t
                for t in threads
                if t.normalized_subject == subject
                and self._is_recent(t)
                # A different order is a different conversation, whatever the subject.
                and (not parsed.order_id or t.order_id is None or t.order_id == parsed.order_id)
            ]
            if found:
                return max(found, key=self._rank)
        return None

    def _is_recent(self, thread: Thread) -> bool:
        return thread.last_message_at is not None and thread.last_message_at >= self.cutoff

    def add(self, channel: Channel, thread: Thread, message_id: str) -> None:
        """Tell the matcher a message of this batch was recorded in `thread` (maybe new)."""
        order = next(self._counter)
        self._added[(channel.id, message_id)] = (order, thread)
        self._order.setdefault(id(thread), order)
        self._remember(channel.id, thread)
