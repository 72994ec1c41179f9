"""Reply drafts, per user and thread: saved while the user types, used when the reply
is sent, and deleted then or when discarded. Private to their author: not audited."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.models import Draft, DraftAttachment, Thread, User
from portal.services.outbox import MAX_ATTACHMENTS_BYTES
from portal.sqltypes import utcnow


class DraftError(ValueError):
    """A draft that cannot be saved as asked; the message is shown to the user."""


def get_draft(user: User, thread: Thread, *, with_data: bool = False) -> Draft | None:
    """The user's draft for the thread (with its attachments' bytes when `with_data`)."""
    load = selectinload(Draft.attachments)
    if with_data:
        load = load.undefer(DraftAttachment.data)
    return db.session.scalar(
        select(Draft).where(Draft.user_id == user.id, Draft.thread_id == thread.id).options(load)
    )


def save_draft(
    user: User,
    thread: Thread,
    *,
    body: str,
    add: Sequence[tuple[str, str, bytes]] = (),
    remove: Collection[int] = (),
    now: datetime | None = None,
) -> Draft:
    """Keep `body` as the user's draft for the thread, with the files of `add`
    (filename, content type, bytes) added and the attachments of ids `remove` taken
    off; DraftError when the attachments would pass Amazon's total size."""
    draft = get_draft(user, thread)
    if draft is None:
        draft = Draft(user_id=user.id, thread_id=thread.id, body="")
        db.session.add(draft)
    draft.body = body or ""
    draft.updated_at = now or utcnow()
    kept = [a for a in draft.attachments if a.id not in set(remove)]
    if sum(a.size for a in kept) + sum(len(data) for _, _, data in add) > MAX_ATTACHMENTS_BYTES:
        raise DraftError("Attachments may total 10 MB at most (Amazon's limit).")
    draft.attachments = kept + [
        DraftAttachment(filename=filename[:255], content_type=kind[:255], size=len(data), data=data)
        for filename, kind, data in add
    ]
    db.session.flush()
    return draft


def draft_files(draft: Draft | None) -> list[tuple[str, str, bytes]]:
    """The draft's attachments as the outbox takes them (their bytes loaded)."""
    if draft is None:
        return []
    return [(a.filename, a.content_type, a.data) for a in draft.attachments]


def discard_draft(user: User, thread: Thread) -> bool:
    """Delete the user's draft for the thread; False when there was none."""
    draft = get_draft(user, thread)
    if draft is None:
        return False
    db.session.delete(draft)
    db.session.flush()
    return True
