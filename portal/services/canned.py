"""Canned replies: reusable answers with placeholders, per organisation or global.

Templates are written by users, so they are never passed to `str.format`: that
would let `{buyer_name.__class__}` or `{0.__init__}` reach into Python objects.
`string.Formatter().parse` only splits the text; each field must be one of the
known placeholder names, with no attribute, index, conversion or format spec,
and rendering substitutes plain strings.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from string import Formatter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, or_, select

from portal.extensions import db
from portal.models import CannedReply, Order, Organisation, Role, User
from portal.services.audit import record_event
from portal.services.scoping import visible_organisation_ids

if TYPE_CHECKING:
    from portal.models import Thread

log = logging.getLogger(__name__)

#: Filled from the thread, its channel and the agent; a missing value renders as nothing.
THREAD_PLACEHOLDERS: tuple[str, ...] = (
    "buyer_name",
    "order_id",
    "marketplace",
    "agent_name",
    "seller_name",
)
#: Filled from the thread's stored Amazon order (issue 20). Without a value (no order
#: stored, its details purged, no package yet) the placeholder stays in the text as it
#: is: the composer flags it and the reply is refused until the agent replaces it, since
#: an empty string would tell the buyer "your parcel goes with ." instead.
ORDER_PLACEHOLDERS: tuple[str, ...] = (
    "item_title",
    "order_status",
    "delivery_window",
    "carrier",
    "tracking_number",
)
#: The placeholders a canned reply may use, in the order the help text lists them.
PLACEHOLDERS: tuple[str, ...] = THREAD_PLACEHOLDERS + ORDER_PLACEHOLDERS
PLACEHOLDER_HELP = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
ORDER_PLACEHOLDER_HELP = (
    ", ".join(f"{{{name}}}" for name in ORDER_PLACEHOLDERS)
    + " come from the Amazon order stored for the thread (several items' titles joined, "
    "the delivery window as dates); where the thread has no value for one (no order, its "
    "details purged, no package yet), it stays in the text and must be replaced before "
    "the reply can be sent."
)
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")

TITLE_MAX_LENGTH = 120
BODY_MAX_LENGTH = 10_000


class CannedReplyError(ValueError):
    """A canned reply that breaks a rule; the problems are shown to the user.

    `field_problems` maps a form field ("title" or "body") to its problems, so a
    view can show each one beside its field.
    """

    def __init__(self, problems: list[str] | str, *, field: str = "body") -> None:
        problems = [problems] if isinstance(problems, str) else list(problems)
        self.field_problems: dict[str, list[str]] = {field: problems} if problems else {}
        super().__init__(" ".join(problems))

    @classmethod
    def from_fields(cls, field_problems: dict[str, list[str]]) -> CannedReplyError:
        error = cls([p for problems in field_problems.values() for p in problems])
        error.field_problems = {k: v for k, v in field_problems.items() if v}
        return error

    @property
    def problems(self) -> list[str]:
        return [p for problems in self.field_problems.values() for p in problems]


# --- templates ---------------------------------------------------------------------


def _brace_problem(error: ValueError) -> str:
    text = str(error)
    if "Single '}'" in text:
        what = 'A "}" has no matching "{".'
    elif "Single '{'" in text or "expected '}'" in text:
        what = 'A "{" is never closed.'
    else:
        what = "The braces do not match."
    return f"{what} Write {{{{ or }}}} for a literal brace."


def _field_problem(field_name: str, format_spec: str, conversion: str | None) -> str | None:
    shown = "{" + field_name + (f"!{conversion}" if conversion else "")
    shown += (f":{format_spec}" if format_spec else "") + "}"
    base = field_name.split(".", 1)[0].split("[", 1)[0]
    if field_name == "" or base.isdigit():
        return f"{shown}: placeholders need a name, one of {PLACEHOLDER_HELP}."
    if base not in PLACEHOLDERS:
        return f"Unknown placeholder {shown}. Use one of {PLACEHOLDER_HELP}."
    if base != field_name or conversion is not None or format_spec:
        return (
            f"{shown}: a placeholder cannot have attributes, indexes, conversions or "
            f"formats; write just {{{base}}}."
        )
    return None


def _parse(body: str) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(literal text, placeholder or None) pieces and the problems found."""
    pieces: list[tuple[str, str | None]] = []
    problems: list[str] = []
    try:
        for literal, field_name, format_spec, conversion in Formatter().parse(body):
            if field_name is None:
                pieces.append((literal, None))
                continue
            problem = _field_problem(field_name, format_spec or "", conversion)
            if problem is not None and problem not in problems:
                problems.append(problem)
            pieces.append((literal, field_name))
    except ValueError as exc:
        problems.append(_brace_problem(exc))
    return pieces, problems


def validate_template(body: str) -> None:
    """Raise CannedReplyError listing unknown or unsafe placeholders and stray braces."""
    _, problems = _parse(body)
    if problems:
        raise CannedReplyError(problems)


def render_canned(
    body: str,
    *,
    buyer_name: str | None,
    order_id: str | None,
    marketplace: str | None,
    agent_name: str | None,
    seller_name: str | None,
    item_title: str | None = None,
    order_status: str | None = None,
    delivery_window: str | None = None,
    carrier: str | None = None,
    tracking_number: str | None = None,
) -> str:
    """`body` with its placeholders filled in. A missing value of the thread's renders as
    nothing; a missing value of the order's leaves its placeholder (unfilled_placeholders
    finds it)."""
    values = {
        "buyer_name": buyer_name,
        "order_id": order_id,
        "marketplace": marketplace,
        "agent_name": agent_name,
        "seller_name": seller_name,
        "item_title": item_title,
        "order_status": order_status,
        "delivery_window": delivery_window,
        "carrier": carrier,
        "tracking_number": tracking_number,
    }
    pieces, problems = _parse(body)
    if problems:
        raise CannedReplyError(problems)
    out = []
    for literal, field_name in pieces:
        out.append(literal)
        if field_name is not None:
            value = values[field_name]
            if not value and field_name in ORDER_PLACEHOLDERS:
                out.append(f"{{{field_name}}}")
            else:
                out.append("" if value is None else str(value))
    return "".join(out)


def unfilled_placeholders(text: str) -> list[str]:
    """The placeholders still in `text` (a reply to send), each once, in order: a reply
    holding one is not sent."""
    return list(dict.fromkeys(_PLACEHOLDER_RE.findall(text or "")))


def unfilled_message(names: list[str]) -> str:
    """What the composer says of the placeholders `names` left in a reply."""
    shown = ", ".join(f"{{{name}}}" for name in names)
    it = "it" if len(names) == 1 else "them"
    return (
        f"This thread has no value for {shown}: replace {it} with the words to send, "
        f"or delete {it}."
    )


def context_for_thread(thread: Thread, agent: User | None) -> dict[str, str | None]:
    """The placeholder values for a reply on `thread` written by `agent`."""
    channel = thread.channel
    try:
        marketplace = channel.marketplace_info.name
    except LookupError:
        marketplace = channel.marketplace
    # Only the agent's name: display_name falls back to the e-mail address, which
    # Amazon does not allow in a message to a buyer.
    agent_name = (agent.name or "").strip() if agent is not None else ""
    return {
        "buyer_name": thread.buyer_name or "",
        "order_id": thread.order_id or "",
        "marketplace": marketplace,
        "agent_name": agent_name,
        "seller_name": channel.organisation.name,
    } | order_values(_stored_order(thread))


def _stored_order(thread: Thread) -> Order | None:
    if not thread.order_id:
        return None
    return db.session.scalar(
        select(Order).where(
            Order.channel_id == thread.channel_id, Order.order_id == thread.order_id
        )
    )


#: An order's fulfilment status as a buyer reads it; others are Amazon's word in lower case.
_STATUS_WORDS = {
    "PENDING_AVAILABILITY": "awaiting availability",
    "PENDING": "pending",
    "UNSHIPPED": "not yet shipped",
    "PARTIALLY_SHIPPED": "partly shipped",
    "SHIPPED": "shipped",
    "CANCELLED": "cancelled",
    "UNFULFILLABLE": "unfulfillable",
}
_MONTH_NAMES = (
    "", "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)  # fmt: skip


def order_values(order: Order | None) -> dict[str, str | None]:
    """The order placeholders' values from a stored order; None where it has none (no
    order, details purged, no package yet)."""
    if order is None:
        return dict.fromkeys(ORDER_PLACEHOLDERS)
    packages = [p for p in order.packages or [] if isinstance(p, dict)]
    return {
        "item_title": _joined([i.get("title") for i in order.items or [] if isinstance(i, dict)]),
        "order_status": _status_words(order),
        "delivery_window": _date_range(order.deliver_by_earliest_at, order.deliver_by_latest_at),
        "carrier": _joined([p.get("carrier") for p in packages], sep=", "),
        "tracking_number": _joined([p.get("tracking_number") for p in packages], sep=", "),
    }


def _joined(values: list[Any], *, sep: str | None = None) -> str | None:
    """Distinct non-empty values in order: "A", "A and B", "A, B and C" (or joined by
    `sep`); None when there are none."""
    texts = list(dict.fromkeys(v.strip() for v in values if isinstance(v, str) and v.strip()))
    if not texts:
        return None
    if sep is not None or len(texts) == 1:
        return (sep or "").join(texts)
    return ", ".join(texts[:-1]) + " and " + texts[-1]


def _status_words(order: Order) -> str | None:
    packages = [p for p in order.packages or [] if isinstance(p, dict)]
    if packages and all(p.get("status") == "DELIVERED" for p in packages):
        return "delivered"
    status = order.fulfillment_status
    if not status:
        return None
    return _STATUS_WORDS.get(status, status.replace("_", " ").lower())


def _date_range(earliest: datetime | None, latest: datetime | None) -> str | None:
    """ "3 March 2026", "3–5 March 2026", "28 February – 3 March 2026" (UTC dates)."""
    if earliest is None and latest is None:
        return None
    first, last = (earliest or latest).date(), (latest or earliest).date()  # type: ignore[union-attr]
    if first > last:
        first, last = last, first

    def day(d, *, month: bool = True, year: bool = True) -> str:
        return (
            f"{d.day}"
            + (f" {_MONTH_NAMES[d.month]}" if month else "")
            + (f" {d.year}" if year else "")
        )

    if first == last:
        return day(last)
    if (first.year, first.month) == (last.year, last.month):
        return f"{day(first, month=False, year=False)}–{day(last)}"
    if first.year == last.year:
        return f"{day(first, year=False)} – {day(last)}"
    return f"{day(first)} – {day(last)}"


# --- who may see and manage which reply ----------------------------------------------


def can_manage_canned_replies(user: User, organisation_id: int | None) -> bool:
    """Admins manage every reply; agents their assigned organisations'; sellers their own."""
    if user.role == Role.ADMIN:
        return True
    if organisation_id is None:
        return False
    if user.role == Role.AGENT:
        return any(org.id == organisation_id for org in user.assigned_organisations)
    return user.role == Role.SELLER and user.organisation_id == organisation_id


def manageable_organisations(user: User) -> list[Organisation]:
    """The organisations whose canned replies `user` may create (globals: admins only)."""
    if user.role == Role.ADMIN:
        return list(
            db.session.scalars(select(Organisation).order_by(func.lower(Organisation.name)))
        )
    if user.role == Role.AGENT:
        return list(user.assigned_organisations)
    return [user.organisation] if user.organisation is not None else []


def _visible(stmt: Select, user: User) -> Select:
    visible = visible_organisation_ids(user)
    if visible is None:
        return stmt
    return stmt.where(
        or_(CannedReply.organisation_id.is_(None), CannedReply.organisation_id.in_(visible))
    )


def get_visible_canned_reply(reply_id: int, user: User) -> CannedReply | None:
    """The reply if `user` may see it (global ones: everyone), else None."""
    stmt = _visible(select(CannedReply).where(CannedReply.id == reply_id), user)
    return db.session.scalar(stmt)


def list_canned_replies_for(user: User, organisation_id: int | None = None) -> list[CannedReply]:
    """Global replies plus those of the organisations `user` may see, globals first.

    With `organisation_id`, only the replies usable on that organisation's threads:
    its own and the global ones.
    """
    stmt = _visible(select(CannedReply), user)
    if organisation_id is not None:
        stmt = stmt.where(
            or_(
                CannedReply.organisation_id.is_(None),
                CannedReply.organisation_id == organisation_id,
            )
        )
    stmt = stmt.outerjoin(Organisation, Organisation.id == CannedReply.organisation_id).order_by(
        CannedReply.organisation_id.is_not(None),
        func.lower(Organisation.name),
        func.lower(CannedReply.title),
        CannedReply.id,
    )
    return list(db.session.scalars(stmt))


def organisation_names(replies: list[CannedReply]) -> dict[int, str]:
    """Organisation id -> name for the organisations of `replies` (one query)."""
    ids = {r.organisation_id for r in replies if r.organisation_id is not None}
    if not ids:
        return {}
    rows = db.session.execute(
        select(Organisation.id, Organisation.name).where(Organisation.id.in_(ids))
    )
    return {org_id: name for org_id, name in rows}


def is_title_taken(
    title: str, *, organisation_id: int | None, exclude_id: int | None = None
) -> bool:
    """True when the organisation (or the globals, for None) already has this title."""
    stmt = select(CannedReply.id).where(
        func.lower(CannedReply.title) == title.strip().lower(),
        CannedReply.organisation_id.is_(None)
        if organisation_id is None
        else CannedReply.organisation_id == organisation_id,
    )
    if exclude_id is not None:
        stmt = stmt.where(CannedReply.id != exclude_id)
    return db.session.scalar(stmt.limit(1)) is not None


def title_taken_message(title: str, *, organisation_id: int | None) -> str:
    where = "among the global replies" if organisation_id is None else "for this organisation"
    return (
        f'There is already a canned reply called "{title.strip()}" {where}. Choose another title.'
    )


# --- changes ---------------------------------------------------------------------------


def _clean(
    title: str, body: str, *, organisation_id: int | None, exclude_id: int | None
) -> tuple[str, str]:
    title = (title or "").strip()
    body = body or ""
    title_problems: list[str] = []
    body_problems: list[str] = []
    if not title:
        title_problems.append("Give the canned reply a title.")
    elif len(title) > TITLE_MAX_LENGTH:
        title_problems.append(f"The title can be at most {TITLE_MAX_LENGTH} characters long.")
    elif is_title_taken(title, organisation_id=organisation_id, exclude_id=exclude_id):
        # The unique constraint cannot catch this for globals: NULLs never collide.
        title_problems.append(title_taken_message(title, organisation_id=organisation_id))
    if not body.strip():
        body_problems.append("Write the text of the canned reply.")
    elif len(body) > BODY_MAX_LENGTH:
        body_problems.append(f"The text can be at most {BODY_MAX_LENGTH} characters long.")
    else:
        body_problems += _parse(body)[1]
    if title_problems or body_problems:
        raise CannedReplyError.from_fields({"title": title_problems, "body": body_problems})
    return title, body


def create_canned_reply(
    *, organisation: Organisation | None, title: str, body: str, actor: User | None
) -> CannedReply:
    """Add a canned reply to `organisation`, or a global one for None."""
    organisation_id = organisation.id if organisation is not None else None
    title, body = _clean(title, body, organisation_id=organisation_id, exclude_id=None)
    reply = CannedReply(
        organisation_id=organisation_id,
        title=title,
        body=body,
        created_by_id=actor.id if actor is not None else None,
    )
    db.session.add(reply)
    db.session.flush()
    record_event(
        "canned_reply.created",
        actor=actor,
        organisation_id=organisation_id,
        target=reply,
        details={"title": title},
    )
    return reply


def update_canned_reply(
    reply: CannedReply, *, title: str, body: str, actor: User | None
) -> CannedReply:
    """Change the title and text of `reply`; audited only when something changed."""
    title, body = _clean(title, body, organisation_id=reply.organisation_id, exclude_id=reply.id)
    changed = [
        name for name, new in (("title", title), ("body", body)) if getattr(reply, name) != new
    ]
    if not changed:
        return reply
    details: dict[str, object] = {"changed": changed, "title": title}
    if "title" in changed:
        details["old_title"] = reply.title
    reply.title = title
    reply.body = body
    db.session.flush()
    record_event(
        "canned_reply.updated",
        actor=actor,
        organisation_id=reply.organisation_id,
        target=reply,
        details=details,
    )
    return reply


def delete_canned_reply(reply: CannedReply, *, actor: User | None) -> None:
    """Delete `reply`, keeping its title in the audit log."""
    record_event(
        "canned_reply.deleted",
        actor=actor,
        organisation_id=reply.organisation_id,
        target=reply,
        details={"title": reply.title},
    )
    db.session.delete(reply)
    db.session.flush()
