"""Bulk actions: one of the thread actions applied to threads selected in the inbox.

Each thread goes through the same service as its own page's action, so each change is
audited once per thread, and a thread the action leaves unchanged is not audited.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select

from portal.extensions import db
from portal.models import Thread, ThreadStatus, User
from portal.services import alerts
from portal.services import threads as thread_service
from portal.services.scoping import scope_to_user
from portal.sqltypes import utcnow

#: The actions, by the value the inbox's form sends.
ACTIONS = {
    "close": "Close",
    "reopen": "Reopen",
    "assign": "Assign",
    "tag": "Tag",
    "no_response": "No response needed",
}


def visible_threads(thread_ids: Collection[int], user: User) -> list[Thread]:
    """The threads of `thread_ids` that `user` may see, by id."""
    stmt = select(Thread).where(Thread.id.in_(sorted(set(thread_ids)))).order_by(Thread.id)
    return list(db.session.scalars(scope_to_user(stmt, Thread.organisation_id, user)))


def apply_bulk(
    threads: list[Thread],
    action: str,
    *,
    actor: User,
    assignee: User | None = None,
    tag: str = "",
) -> int:
    """Apply `action` to each of `threads`; returns how many it changed.

    Raises ThreadActionError (nothing flushed is kept by a caller that rolls back)
    when the action cannot apply to one of them, such as an assignee who does not
    work for one thread's seller."""
    if action == "tag":
        tag = thread_service.clean_tag_name(tag)
    changed = 0
    assigned: list[Thread] = []
    for thread in threads:
        if action in ("close", "reopen"):
            status = ThreadStatus.CLOSED if action == "close" else ThreadStatus.OPEN
            changed += thread_service.set_thread_status(thread, status, actor=actor)
        elif action == "assign":
            if thread_service.assign_thread(thread, assignee, actor=actor, notify=False):
                changed += 1
                assigned.append(thread)
        elif action == "tag":
            had = len(thread.tags)
            thread_service.add_tag(thread, tag, actor=actor)
            changed += len(thread.tags) > had
        elif action == "no_response":
            changed += bool(thread_service.mark_no_response_needed(thread, actor=actor))
        else:
            raise thread_service.ThreadActionError(f"Unknown action {action!r}.")
    if assigned and assignee is not None:
        alerts.threads_assigned(assigned, assignee, actor=actor, now=utcnow())
    return changed
