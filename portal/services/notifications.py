"""Browser notifications: what a user who opted in is told while a Sellerdesk tab is open.

- A new thread on the channels the user works (the threads their inbox shows).
- A thread assigned to them by someone else (`threads.handed_over_at`).
- A thread of theirs 2 hours before Amazon's 24-hour deadline.

Nothing is queued: the events are read from the threads themselves, between the user's
cursor (`users.notified_through`) and now less SETTLE, scoped exactly as the inbox is.
`claim_notifications` moves the cursor with a compare-and-set UPDATE, so when several
tabs ask at once one of them gets the events and the others none: each notification is
shown once per user. Without events the cursor stays, so a thread stamped before a poll
and committed after it is still found by the next one; BACKLOG bounds how far back a
user coming back after a while is told (their inbox says the rest).

Nothing here commits; the caller's commit makes the claim.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from portal.extensions import db
from portal.models import Thread, ThreadStatus, User
from portal.services.audit import record_event
from portal.services.scoping import scope_to_user
from portal.services.users import local_time

log = logging.getLogger(__name__)

RESPONSE_WINDOW = timedelta(hours=24)
DEADLINE_WARNING = timedelta(hours=2)
#: Events younger than this wait for the next ask: the transaction that stamped them
#: may not have committed yet.
SETTLE = timedelta(seconds=2)
#: A user's tabs are told at most this far back.
BACKLOG = timedelta(minutes=10)
#: At most this many notifications at once; the rest is one "and N more".
MAX_SHOWN = 5
_OPEN = (ThreadStatus.OPEN, ThreadStatus.PENDING)


@dataclass(frozen=True, slots=True)
class BrowserNotification:
    """One notification: what the browser shows, and the thread a click opens."""

    kind: str  # "new", "assigned", "deadline" or "more"
    thread_id: int | None
    title: str
    body: str
    #: The browser's tag: the same event never shows twice in one browser either.
    tag: str


def set_browser_notifications(user: User, enabled: bool, *, now: datetime) -> bool:
    """The user's own choice (audited); turning them on starts from now. False when unchanged."""
    if user.browser_notifications == enabled:
        return False
    user.browser_notifications = enabled
    user.notified_through = now if enabled else None
    record_event(
        "user.notifications_changed",
        actor=user,
        organisation_id=user.organisation_id,
        target=user,
        details={"browser": enabled},
    )
    db.session.flush()
    return True


def _describe(thread: Thread) -> str:
    parts = [thread.channel.marketplace_info.name]
    if thread.order_id:
        parts.append(f"order {thread.order_id}")
    return " · ".join(parts)


def pending_notifications(
    user: User, *, now: datetime
) -> tuple[datetime, list[BrowserNotification]]:
    """The user's events not yet given, oldest first, and the time they run up to."""
    through = now - SETTLE
    if not user.browser_notifications or user.notified_through is None:
        return through, []
    since = max(user.notified_through, now - BACKLOG)
    if since >= through:
        return through, []
    found: list[tuple[datetime, BrowserNotification]] = []

    # Every new or handed-over thread was updated since: the updated_at index narrows
    # the search to what changed in the window.
    changed = scope_to_user(
        select(Thread).where(Thread.updated_at > since), Thread.organisation_id, user
    )
    for thread in db.session.scalars(
        changed.where(Thread.created_at > since, Thread.created_at <= through).where(
            Thread.status != ThreadStatus.CLOSED
        )
    ):
        found.append(
            (
                thread.created_at,
                BrowserNotification(
                    "new",
                    thread.id,
                    f"New: {thread.subject or 'a conversation'}"[:120],
                    _describe(thread),
                    f"new-{thread.id}",
                ),
            )
        )
    for thread in db.session.scalars(
        changed.where(
            Thread.assignee_id == user.id,
            Thread.handed_over_at > since,
            Thread.handed_over_at <= through,
        )
    ):
        found.append(
            (
                thread.handed_over_at,
                BrowserNotification(
                    "assigned",
                    thread.id,
                    f"Assigned to you: {thread.subject or 'a conversation'}"[:120],
                    _describe(thread),
                    f"assigned-{thread.id}-{thread.handed_over_at:%Y%m%d%H%M%S}",
                ),
            )
        )
    # A deadline is 2 hours away when the buyer has waited 22 hours.
    waited = RESPONSE_WINDOW - DEADLINE_WARNING
    due = scope_to_user(
        select(Thread).where(
            Thread.assignee_id == user.id,
            Thread.status.in_(_OPEN),
            Thread.awaiting_reply_since > since - waited,
            Thread.awaiting_reply_since <= through - waited,
        ),
        Thread.organisation_id,
        user,
    )
    for thread in db.session.scalars(due):
        # In the user's own zone, as their pages show times.
        deadline = local_time(user, thread.awaiting_reply_since + RESPONSE_WINDOW)
        found.append(
            (
                thread.awaiting_reply_since + waited,
                BrowserNotification(
                    "deadline",
                    thread.id,
                    f"Due in 2 hours: {thread.subject or 'a conversation'}"[:120],
                    f"Amazon expects an answer by {deadline:%H:%M} {deadline.tzname() or 'UTC'}"
                    f" · {_describe(thread)}",
                    f"deadline-{thread.id}-{thread.awaiting_reply_since:%Y%m%d%H%M%S}",
                ),
            )
        )
    found.sort(key=lambda pair: pair[0])
    events = [event for _, event in found]
    if len(events) > MAX_SHOWN:
        more = len(events) - MAX_SHOWN + 1
        events = events[: MAX_SHOWN - 1] + [
            BrowserNotification(
                "more", None, f"{more} more in your inbox", "", f"more-{through:%Y%m%d%H%M%S}"
            )
        ]
    return through, events


def claim_notifications(user: User, *, now: datetime) -> list[BrowserNotification]:
    """The events for one of the user's tabs: those not yet given, moving the user's
    cursor past them; another tab asking at the same time gets none of them."""
    through, events = pending_notifications(user, now=now)
    if not events:
        return []
    claimed = db.session.execute(
        update(User)
        .where(User.id == user.id, User.notified_through == user.notified_through)
        .values(notified_through=through)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        return []  # another tab took them
    db.session.refresh(user, ["notified_through"])
    log.info("Browser notifications for user %s: %d", user.id, len(events))
    return events
