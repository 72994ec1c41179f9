#!/usr/bin/env python3
"""Inbox benchmark: the inbox page at 100k threads against a bare page of the same app.

Fills a database with 100,000 threads and 500,000 messages by bulk inserts
(several sellers with channels on UK, DE, US, JP…, buyers' relay aliases, order
IDs, mostly closed threads with some open and pending, assignees, tags), then
requests these pages through the real app with Flask's test client, logged in
as an admin through the real login form:

  bare      a template extending base.html with a trivial body, on a route the
            bench adds to the same app (same session, login and CSRF path): the floor
  first     /inbox?status=all
  filtered  /inbox?status=open&marketplace=DE&assignee=unassigned
  search    /inbox?status=all&q=<a word in some message texts, never in a subject>
  order     /inbox?status=all&q=<one thread's order ID>
  deep      /inbox?status=all&after=<the cursor 200 pages deep>

After warm-up rounds it requests every page N times, interleaved, and prints
median and p95 latency in ms and each page's median over the bare page's,
ending with `worst ratio=X.XX`. Target: every inbox page <= 3x the bare page.
It asserts nothing: it prints figures.

The database is SQLite in a temp dir by default; `--keep PATH` fills PATH once
and reuses it on later runs. `--database-url URL` (or DATABASE_URL) uses that
database instead, which must be empty or a database this bench filled;
`--postgres` starts a throwaway PostgreSQL (tests/servers.py) for one run.

    .venv/bin/python bench/inbox.py                          # SQLite in a temp dir
    .venv/bin/python bench/inbox.py --keep /tmp/inbox.db     # fill once, reuse later
    .venv/bin/python bench/inbox.py --postgres               # a throwaway PostgreSQL
    .venv/bin/python bench/inbox.py --database-url postgresql+psycopg://u:p@host/db
    .venv/bin/python bench/inbox.py --explain                # each page's SQL, timed, with plans
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, where bench/ingest.py would shadow the
# `ingest` package; put the project root there instead (portal, ingest, tests, bench).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench.common import log_in  # noqa: E402

TARGET_RATIO = 3.0
CHUNK = 10_000  # rows per INSERT batch, one transaction each
#: Marks a database this bench filled (a row in `settings`), with what it holds.
MARKER_KEY = "bench.inbox"
ADMIN_EMAIL = "bench-admin@example.com"
PASSWORD = "bench-password-1234"  # noqa: S105 (a bench account on a bench database)
#: In the item lines of some buyers' messages; never in a subject, name or address.
SEARCH_WORD = "dehumidifier"
SEARCH_SHARE = 0.002  # of threads whose order includes the dehumidifier
SPAN = timedelta(days=730)  # the threads' activity spans two years up to now

# code, relay TLD, language (bench.corpus.LANGUAGES), weight
MARKETS = [
    ("UK", "co.uk", "en", 30),
    ("DE", "de", "de", 22),
    ("US", "com", "en", 20),
    ("FR", "fr", "fr", 9),
    ("IT", "it", "it", 6),
    ("ES", "es", "es", 6),
    ("JP", "co.jp", "ja", 5),
    ("CA", "ca", "en", 2),
]
#: Seller organisation -> its marketplaces (every one has UK or DE, and most have several).
SELLERS = {
    "Hartley Home Ltd": ("UK", "DE", "FR", "IT", "ES"),
    "Brightwater Outdoor": ("UK", "US", "CA"),
    "Kobold Küchenwaren GmbH": ("DE", "FR", "IT", "ES", "UK"),
    "Sakura Living": ("JP", "US", "UK"),
    "Northfield Pet Supplies": ("UK", "DE", "US"),
    "Atelier Lumière": ("FR", "DE", "IT", "ES"),
    "Greenleaf Garden Co": ("UK", "DE"),
    "Pacific Tech Accessories": ("US", "CA", "JP", "UK", "DE"),
}
AGENTS = 8  # each works three or four of the sellers
TAGS = ("refund", "damaged", "late-delivery", "vat-invoice", "return", "vip", "fba", "escalated")

FIRST_NAMES = {
    "en": ("Oliver", "Amelia", "Harry", "Emily", "Jack", "Isla", "George", "Ava", "Noah", "Mia",
           "Charlie", "Sophie", "James", "Grace", "William", "Lily", "Thomas", "Chloe", "Daniel",
           "Ella", "Michael", "Olivia", "Ethan", "Hannah", "Ryan", "Megan"),
    "de": ("Max", "Sophie", "Lukas", "Anna", "Jonas", "Lea", "Leon", "Marie", "Felix", "Emma",
           "Paul", "Mia", "Jürgen", "Ursula", "Dieter", "Sabine", "Tobias", "Katrin"),
    "fr": ("Léa", "Hugo", "Chloé", "Théo", "Manon", "Louis", "Camille", "Jules", "Inès", "Lucas"),
    "it": ("Luca", "Giulia", "Matteo", "Francesca", "Marco", "Chiara", "Andrea", "Sara"),
    "es": ("Ana", "Javier", "Lucía", "Pablo", "Carmen", "Diego", "Marta", "Sergio"),
    "ja": ("太郎", "花子", "一郎", "美咲", "健太", "陽菜", "翔", "さくら"),
}  # fmt: skip
LAST_NAMES = {
    "en": ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
           "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green",
           "Hall", "Wood", "Jackson", "Clarke", "Miller", "Garcia", "Martinez", "Anderson"),
    "de": ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
           "Schulz", "Hoffmann", "Schäfer", "Koch", "Weiß", "Köhler", "Groß", "Krüger"),
    "fr": ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Lefèvre", "Moreau", "Laurent"),
    "it": ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Ricci", "Greco"),
    "es": ("García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez"),
    "ja": ("山田", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "中村"),
}  # fmt: skip
ITEMS = (
    "Garden Kneeler Pad, Green",
    "Stainless Steel Water Bottle 750ml, Vacuum Insulated",
    "USB-C Cable 2m (2-pack), Braided Nylon, 60W Fast Charging",
    "Bamboo Cutting Board Set of 3 with Juice Groove",
    "LED Desk Lamp with Wireless Charger, Dimmable",
    "Merino Wool Hiking Socks, 3 Pairs, Size 43-46",
    "Silicone Baking Mats (2-pack), Non-Stick, BPA Free",
    "Replacement Filter Cartridges for Water Jug, 6 Pack",
    "Cast Iron Skillet 26cm, Pre-Seasoned",
    "Orthopaedic Memory Foam Dog Bed, Large, Grey",
    "Wireless Earbuds with Charging Case, Noise Cancelling",
    "Ceramic Plant Pots Set of 4 with Drainage Saucers",
    "Insulated Lunch Bag for Adults, Leakproof",
    "Adjustable Dumbbell Set 2x10kg with Storage Tray",
    "Kids' Waterproof Rain Jacket, Navy, Age 6-7",
    "Magnetic Phone Mount for Car Air Vent",
    "Electric Milk Frother, Handheld, Rechargeable",
    "Solar Garden Lights, Warm White, 8 Pack",
    "Laptop Stand, Aluminium, Foldable and Adjustable",
    "Scented Soy Candle Gift Set, Lavender and Cedar",
)
SEARCH_ITEM = "Compact Dehumidifier 12L with Humidity Display and Auto Shut-Off"

# Words for the buyers' own sentences, so texts vary beyond the canned questions.
# fmt: off
_SUBJECTS = ("the parcel", "the box", "my order", "the item", "the replacement", "the courier",
             "the lid", "the charger", "the strap", "the instructions", "the colour", "the handle",
             "the second one", "the invoice", "the label", "the seal", "the cable", "the packaging")
_VERBS = ("arrived", "stopped working", "was missing", "looked used", "smelled odd", "broke",
          "was delayed again", "went to the wrong address", "came without a manual", "leaked",
          "was scratched", "does not fit", "was returned to sender", "is still in transit")
_WHEN = ("yesterday", "this morning", "on Monday", "after two days", "last week", "on arrival",
         "after the first wash", "within an hour", "at the depot", "before the weekend")
_ASKS = ("Could you please help?", "What do you suggest?", "Please let me know what to do.",
         "I would like a refund.", "Can you send a replacement?", "Is there a warranty?",
         "Please call me back.", "I need this resolved before my trip.", "Thanks in advance.",
         "Can I return it with the free label?", "Do you have another one in stock?")
_REPLIES = ("Thank you for your message and sorry for the trouble with {what}.",
            "We have sent a replacement today; you will receive tracking shortly.",
            "We have issued a full refund to your original payment method.",
            "Could you send us a photo of the damage so we can pass it to the courier?",
            "Your parcel is with the carrier and should arrive within two working days.",
            "Please use the prepaid return label in your Amazon account.",
            "We have attached the VAT invoice to this message.",
            "The item is back in stock next week and we will reserve one for you.")
_NOTES = ("Called the courier, claim opened.", "Buyer is a repeat customer, be generous.",
          "Checked stock: two units left in the warehouse.", "Refund approved by the seller.",
          "Waiting for the photo before we refund.", "Possible A-to-z claim, handle first.")
# fmt: on


# --------------------------------------------------------------------------- helpers


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _app_config(database_url: str, tmp: Path) -> dict[str, Any]:
    from cryptography.fernet import Fernet

    return {
        "SECRET_KEY": "sellerdesk-bench",
        "TOKEN_KEY": Fernet.generate_key().decode(),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MAIL_SOURCE": f"maildir:{tmp / 'maildir'}",
        "SMTP_URL": f"outbox:{tmp / 'outbox'}",
        "INBOUND_DOMAIN": "helpdesk.test",
    }


def _normalise_url(url: str) -> str:
    # As the app reads DATABASE_URL: postgres:// and postgresql:// mean psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: a value that was really measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


# --------------------------------------------------------------------------- the data


@dataclass
class ChannelInfo:
    id: int
    organisation_id: int
    organisation: str
    marketplace: str
    tld: str
    language: str
    address: str
    agents: tuple[int, ...]
    tags: tuple[int, ...]


@dataclass
class ThreadPlan:
    """One conversation, planned before anything is written."""

    channel: ChannelInfo
    kinds: str  # one letter per message: i(nbound), o(utbound reply), n(ote)
    times: list[datetime]
    name: str = ""
    alias: str = ""
    order: str | None = None
    items: tuple[str, ...] = ()
    status: str = "closed"
    assignee: int | None = None
    awaiting: datetime | None = None
    tags: tuple[int, ...] = ()
    id: int = 0


def _weighted(rng: random.Random, pairs: list[tuple[Any, float]]) -> Any:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


_NEXT_KIND = {
    "i": [("o", 0.62), ("i", 0.28), ("n", 0.10)],
    "o": [("i", 0.85), ("o", 0.10), ("n", 0.05)],
    "n": [("o", 0.70), ("i", 0.30)],
}


def _gap(rng: random.Random, kind: str) -> timedelta:
    """Time before a message of `kind`: buyers take longer to answer than agents."""
    if kind == "n":
        return timedelta(minutes=rng.uniform(3, 90))
    if kind == "o":
        return timedelta(minutes=rng.uniform(8, 20 * 60))
    return timedelta(hours=rng.uniform(0.5, 72))


def plan_threads(
    rng: random.Random, channels: list[ChannelInfo], n_threads: int, n_messages: int, now: datetime
) -> list[ThreadPlan]:
    """Every thread's channel, buyer, messages and status, in order of creation."""
    # Message counts: one each, the rest spread with a heavy tail (a few long threads).
    weights = [min(rng.paretovariate(1.3), 60.0) for _ in range(n_threads)]
    extra = Counter(rng.choices(range(n_threads), cum_weights=list(accumulate(weights)),
                                k=max(0, n_messages - n_threads)))  # fmt: skip
    by_market: dict[str, list[ChannelInfo]] = {}
    for channel in channels:
        by_market.setdefault(channel.marketplace, []).append(channel)
    market_weights = [(code, w) for code, _, _, w in MARKETS if code in by_market]
    plans = []
    for index in range(n_threads):
        channel = rng.choice(by_market[_weighted(rng, market_weights)])
        count = 1 + extra[index]
        kinds = ["i"]
        for _ in range(count - 1):
            kinds.append(_weighted(rng, _NEXT_KIND[kinds[-1]]))
        offsets = [timedelta(0)]
        for kind in kinds[1:]:
            offsets.append(offsets[-1] + _gap(rng, kind))
        # Start so the last message is in the past; more threads lately (a growing seller).
        age = SPAN * (rng.random() ** 1.6)
        start = now - age - offsets[-1] - timedelta(minutes=rng.uniform(1, 60))
        plan = ThreadPlan(channel=channel, kinds="", times=[start + o for o in offsets])
        idle = now - plan.times[-1]
        if idle < timedelta(days=3):
            plan.status = _weighted(rng, [("open", 0.6), ("pending", 0.15), ("closed", 0.25)])
        elif idle < timedelta(days=14):
            plan.status = _weighted(rng, [("open", 0.3), ("pending", 0.15), ("closed", 0.55)])
        else:
            plan.status = _weighted(rng, [("open", 0.015), ("pending", 0.015), ("closed", 0.97)])
        # Open: the buyer wrote last. Pending: we answered and wait for the buyer.
        if plan.status == "open" and count > 1:
            kinds[-1] = "i"
        elif plan.status == "pending" and count > 1:
            kinds[-1] = "o"
        plan.kinds = "".join(kinds)
        if plan.status == "open":
            last_reply = plan.kinds.rfind("o")
            first_waiting = plan.kinds.index("i", last_reply + 1)
            plan.awaiting = plan.times[first_waiting]

        first, last = (
            rng.choice(FIRST_NAMES[channel.language]),
            rng.choice(LAST_NAMES[channel.language]),
        )
        plan.name = f"{last} {first}" if channel.language == "ja" else f"{first} {last}"
        if channel.language == "en" and rng.random() < 0.2:
            plan.name = f"{first} {last[0]}."
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        plan.alias = (
            "".join(rng.choice(alphabet) for _ in range(15)) + f"@marketplace.amazon.{channel.tld}"
        )
        if rng.random() < 0.85:
            plan.order = (
                f"{rng.randint(200, 699)}-{rng.randint(0, 9999999):07d}-"
                f"{rng.randint(0, 9999999):07d}"
            )
        plan.items = tuple(rng.sample(ITEMS, rng.choice((1, 1, 1, 2, 3))))
        if rng.random() < SEARCH_SHARE:
            plan.items = (SEARCH_ITEM, *plan.items[1:])
        if channel.agents and rng.random() < (0.35 if plan.status == "open" else 0.6):
            plan.assignee = rng.choice(channel.agents)
        if rng.random() < 0.12:
            plan.tags = tuple(rng.sample(channel.tags, rng.choice((1, 1, 2))))
        plans.append(plan)
    plans.sort(key=lambda p: p.times[0])
    for number, plan in enumerate(plans, start=1):
        plan.id = number
    return plans


def _subject(plan: ThreadPlan) -> str:
    from bench.corpus import LANGUAGES

    lang = LANGUAGES[plan.channel.language]
    if plan.order:
        return lang.subject.format(name=plan.name, order=plan.order)
    return lang.presale_subject.format(name=plan.name)


def _buyer_text(rng: random.Random, plan: ThreadPlan, first: bool) -> str:
    from bench.corpus import LANGUAGES

    lang = LANGUAGES[plan.channel.language]
    parts = [rng.choice(lang.questions)] if first or rng.random() < 0.5 else []
    # Buyers everywhere write some English on the EU marketplaces; keep the words varied.
    for _ in range(rng.choice((1, 2, 3)) if plan.channel.language == "en" else rng.choice((0, 1))):
        subject, verb = rng.choice(_SUBJECTS), rng.choice(_VERBS)
        parts.append(f"{subject.capitalize()} {verb} {rng.choice(_WHEN)}.")
    parts.append(rng.choice(_ASKS) if plan.channel.language == "en" else rng.choice(lang.questions))
    return " ".join(parts) + f"\n\n{plan.name}"


def _relay_text(plan: ThreadPlan, buyer_text: str) -> str:
    """The text part of a buyer's mail as Amazon relays it (markers, order, disclaimer)."""
    from bench.corpus import LANGUAGES

    lang = LANGUAGES[plan.channel.language]
    lines = [lang.begin, "", buyer_text, "", lang.end, ""]
    if plan.order:
        lines.append(f"{lang.order_label}: {plan.order}")
        lines += [f"# {lang.quantity.format(n=1)} {item}" for item in plan.items]
        lines.append("")
    lines += [lang.respond, "", lang.disclaimer]
    return "\n".join(lines)


def _message_rows(
    rng: random.Random, plan: ThreadPlan, seq: int, message_id: int, subject: str
) -> dict[str, Any]:
    kind, when = plan.kinds[seq], plan.times[seq]
    channel = plan.channel
    # Every row has every key: one executemany takes its columns from the first row.
    row: dict[str, Any] = {
        "id": message_id,
        "thread_id": plan.id,
        "channel_id": channel.id,
        "subject": subject if seq == 0 else f"RE: {subject}",
        "order_id": plan.order,
        "created_at": when,
        "sent_at": when,
        "is_internal_note": kind == "n",
        "delivered_to": "",
        "to_addresses": "",
        "size": 0,
        "send_status": None,
        "send_attempts": 0,
        "author_id": None,
    }
    if kind == "i":
        visible = _buyer_text(rng, plan, first=seq == 0)
        text = _relay_text(plan, visible)
        digest = hashlib.sha256(f"{plan.id}:{seq}:{text}".encode()).hexdigest()
        row.update(
            direction="in",
            message_id=f"<0102018c{digest[:8]}-{digest[8:12]}-{digest[12:28]}-{message_id:07d}"
            "@eu-west-1.amazonses.com>",
            from_name=plan.name,
            from_address=plan.alias,
            to_addresses=channel.address,
            delivered_to=channel.address,
            size=len(text.encode()) * 3,  # the raw mail is bigger: headers, HTML part
        )
    elif kind == "o":
        first = plan.name.split()[0]
        what = rng.choice(plan.items).split(",")[0]
        body = [f"Dear {first},", ""]
        body += [r.format(what=what) for r in rng.sample(_REPLIES, rng.choice((1, 2, 3)))]
        body += ["", "Kind regards,", channel.organisation]
        visible = text = "\n".join(body)
        digest = hashlib.sha256(f"{plan.id}:{seq}:{text}".encode()).hexdigest()
        row.update(
            direction="out",
            message_id=f"<{digest[:24]}.{message_id}@{channel.address.split('@')[1]}>",
            from_name=channel.organisation,
            from_address=channel.address,
            to_addresses=plan.alias,
            send_status="sent",
            send_attempts=1,
            author_id=plan.assignee or (rng.choice(channel.agents) if channel.agents else None),
            size=len(text.encode()) + 900,
        )
    else:
        visible = text = rng.choice(_NOTES)
        digest = hashlib.sha256(f"{plan.id}:{seq}:{text}".encode()).hexdigest()
        row.update(
            direction="out",
            message_id=f"<note-{digest[:32]}@sellerdesk.invalid>",
            subject="",
            from_name="Agent",
            from_address="agent@example.com",
            author_id=channel.agents[0] if channel.agents else None,
        )
    row.update(
        text_body=text,
        visible_text=visible,
        snippet=" ".join(visible.split())[:300],
        content_hash=digest,
    )
    return row


# --------------------------------------------------------------------------- filling


@dataclass
class Dataset:
    threads: int
    messages: int
    seed: int
    filled_in: float | None = None  # seconds; None when reused
    search_threads: int = 0
    order_id: str = ""


def _marker(threads: int, messages: int, seed: int) -> dict[str, Any]:
    return {"threads": threads, "messages": messages, "seed": seed}


def prepare(app: Any, args: argparse.Namespace) -> Dataset:
    """Migrate, then fill the database (or reuse this bench's earlier fill of it)."""
    from flask_migrate import upgrade
    from sqlalchemy import func, inspect, select

    from portal.extensions import db
    from portal.models import Setting, Thread

    dataset = Dataset(args.threads, args.messages, args.seed)
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
        upgrade()  # a no-op on an up-to-date database; applies newer migrations to a kept one
        marker = db.session.get(Setting, MARKER_KEY)
        wanted = _marker(args.threads, args.messages, args.seed)
        if marker is not None:
            if marker.value != wanted:
                raise SystemExit(
                    f"the database holds another fill of this bench ({marker.value}); "
                    f"delete it or give the same --threads/--messages/--seed"
                )
            _say(f"reusing the filled database ({args.threads} threads)")
        else:
            has_threads = "threads" in tables and db.session.scalar(
                select(func.count()).select_from(Thread)
            )
            if has_threads:
                raise SystemExit(
                    "the database holds threads but no completed fill of this bench (another "
                    "app's data, or an interrupted fill); give an empty database or delete it"
                )
            started = time.perf_counter()
            fill(args, db)
            dataset.filled_in = time.perf_counter() - started
        _after_fill(app, args, db, dataset)
        db.session.remove()
    return dataset


def fill(args: argparse.Namespace, db: Any) -> None:
    """Sellers, channels, agents and tags by the services; threads and messages in bulk."""
    from sqlalchemy import insert, text

    from portal.models import (
        ChannelStatus,
        Message,
        Role,
        Setting,
        Tag,
        Thread,
        thread_tags,
    )
    from portal.services import channels as channel_service
    from portal.services import users as user_service

    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    user_service.create_user(ADMIN_EMAIL, PASSWORD, role=Role.ADMIN, name="Bench Admin")
    organisations = {
        name: user_service.get_or_create_organisation(name, actor=None) for name in SELLERS
    }
    agents = [
        user_service.create_user(
            f"agent{n}@example.com", PASSWORD, role=Role.AGENT, name=f"Agent {n}"
        )
        for n in range(1, AGENTS + 1)
    ]
    names = list(SELLERS)
    works: dict[str, list[int]] = {name: [] for name in names}
    for agent in agents:
        for name in rng.sample(names, rng.choice((3, 4))):
            user_service.assign_agent(agent, organisations[name], actor=None)
            works[name].append(agent.id)
    channels = []
    markets = {code: (tld, lang) for code, tld, lang, _ in MARKETS}
    for name, codes in SELLERS.items():
        org = organisations[name]
        user_service.create_user(
            f"seller@{re.sub(r'[^a-z]+', '', name.lower())}.example",
            PASSWORD,
            role=Role.SELLER,
            organisation=org,
        )
        tags = []
        for tag_name in TAGS:
            tag = Tag(organisation_id=org.id, name=tag_name)
            db.session.add(tag)
            tags.append(tag)
        db.session.flush()
        for code in codes:
            channel = channel_service.create_channel(
                org, code, actor=None, inbound_domain="helpdesk.test"
            )
            channel.status = ChannelStatus.ACTIVE
            tld, lang = markets[code]
            channels.append(
                ChannelInfo(channel.id, org.id, name, code, tld, lang, channel.helpdesk_address,
                            tuple(works[name]), tuple(t.id for t in tags))
            )  # fmt: skip
    db.session.commit()

    started = time.perf_counter()
    plans = plan_threads(rng, channels, args.threads, args.messages, now)
    _say(f"planned {len(plans)} threads in {time.perf_counter() - started:.1f} s")

    subjects = {}
    started = time.perf_counter()
    for start in range(0, len(plans), CHUNK):
        rows, tag_rows = [], []
        for plan in plans[start : start + CHUNK]:
            subject = subjects[plan.id] = _subject(plan)
            last = max(t for k, t in zip(plan.kinds, plan.times, strict=True) if k != "n")
            rows.append({
                "id": plan.id, "channel_id": plan.channel.id,
                "organisation_id": plan.channel.organisation_id, "subject": subject,
                "normalized_subject": subject.lower(), "buyer_name": plan.name,
                "buyer_address": plan.alias, "order_id": plan.order, "status": plan.status,
                "assignee_id": plan.assignee, "created_at": plan.times[0],
                "last_message_at": last, "awaiting_reply_since": plan.awaiting,
            })  # fmt: skip
            tag_rows += [{"thread_id": plan.id, "tag_id": tag} for tag in plan.tags]
        with db.engine.begin() as conn:
            conn.execute(insert(Thread), rows)
            if tag_rows:
                conn.execute(insert(thread_tags), tag_rows)
    _say(f"inserted {len(plans)} threads in {time.perf_counter() - started:.1f} s")

    # Messages in the order they arrived, as ingestion would have stored them: one
    # thread's messages are spread over the table, not side by side.
    started = time.perf_counter()
    order = sorted(
        ((when, index, seq) for index, plan in enumerate(plans) for seq, when in enumerate(plan.times)),
    )  # fmt: skip
    message_id = 0
    for start in range(0, len(order), CHUNK):
        rows = []
        for _, index, seq in order[start : start + CHUNK]:
            plan = plans[index]
            message_id += 1
            rows.append(_message_rows(rng, plan, seq, message_id, subjects[plan.id]))
        with db.engine.begin() as conn:
            conn.execute(insert(Message), rows)
        if (start // CHUNK) % 10 == 9:
            rate = (start + len(rows)) / (time.perf_counter() - started)
            _say(f"  {start + len(rows)} messages ({rate:.0f}/s)")
    _say(f"inserted {len(order)} messages in {time.perf_counter() - started:.1f} s")

    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # The rows carry their ids; move the sequences past them for later inserts.
            for table in ("threads", "messages"):
                setval = (
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 (constant names)
                    f"(SELECT max(id) FROM {table}))"
                )
                conn.execute(text(setval))
        conn.execute(
            insert(Setting),
            [{"key": MARKER_KEY, "value": _marker(args.threads, args.messages, args.seed)}],
        )


def _after_fill(app: Any, args: argparse.Namespace, db: Any, dataset: Dataset) -> None:
    """Statistics as a running database has them, and the figures the report quotes."""
    from sqlalchemy import func, select, text

    from portal.models import Message, Thread

    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # Autovacuum analyses (and, since 13, vacuums) freshly inserted tables by
            # itself within a minute; do it now so every run sees the same steady state.
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        elif args.analyze:
            conn.execute(text("ANALYZE"))
            conn.commit()
    dataset.search_threads = db.session.scalar(
        select(func.count(func.distinct(Message.thread_id))).where(
            func.lower(Message.text_body).like(f"%{SEARCH_WORD}%")
        )
    )
    dataset.order_id = db.session.scalar(
        select(Thread.order_id)
        .where(Thread.id >= args.threads // 2, Thread.order_id.is_not(None))
        .order_by(Thread.id)
        .limit(1)
    )


# --------------------------------------------------------------------------- measuring


BARE_TEMPLATE = """{% extends 'base.html' %}
{% block title %}Bench{% endblock %}
{% block content %}<h1>Bench</h1><p>A bare page of the same app.</p>{% endblock %}
"""


def add_bare_page(app: Any) -> None:
    """/bench-bare: base.html with a trivial body, behind the same login as the inbox."""
    from flask import render_template
    from flask_login import login_required
    from jinja2 import ChoiceLoader, DictLoader

    # A real template by name (compiled once, cached) like the inbox's, not
    # render_template_string, which would compile it on every request.
    app.jinja_env.loader = ChoiceLoader(
        [app.jinja_env.loader, DictLoader({"bench/bare.html": BARE_TEMPLATE})]
    )

    @login_required
    def bare():
        return render_template("bench/bare.html")

    app.add_url_rule("/bench-bare", "bench_bare", bare)


def deep_cursor(app: Any, pages: int) -> str:
    """The `after` cursor of page `pages + 1` of /inbox?status=all, as its pager links it."""
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import User
    from portal.services.inbox import InboxQuery, list_inbox

    with app.app_context():
        admin = db.session.scalar(select(User).where(User.email == ADMIN_EMAIL))
        cursor = None
        for _ in range(pages):
            page = list_inbox(admin, InboxQuery(status="all", cursor=cursor))
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        db.session.remove()
    if cursor is None:
        raise RuntimeError("the inbox has a single page: nothing deep to measure")
    return cursor


@dataclass
class Page:
    name: str
    url: str
    times: list[float] = field(default_factory=list)  # seconds
    rows: int = 0

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times) * 1e3

    @property
    def p95_ms(self) -> float:
        return _percentile(self.times, 95) * 1e3


def pages_to_measure(dataset: Dataset, cursor: str) -> list[Page]:
    def inbox(**params: str) -> str:
        return "/inbox?" + urlencode(params)

    return [
        Page("bare", "/bench-bare"),
        Page("first", inbox(status="all")),
        Page("filtered", inbox(status="open", marketplace="DE", assignee="unassigned")),
        Page("search", inbox(status="all", q=SEARCH_WORD)),
        Page("order", inbox(status="all", q=dataset.order_id)),
        Page("deep", inbox(status="all", after=cursor)),
    ]


def _get(client: Any, page: Page) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.get(page.url)
    body = response.get_data(as_text=True)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{page.url} answered {response.status_code}")
    return elapsed, body


def measure(client: Any, pages: list[Page], *, runs: int, warmup: int) -> None:
    """Warm up, then request every page `runs` times, interleaved so drift hits all alike."""
    for _ in range(warmup):
        for page in pages:
            _get(client, page)
    for n in range(runs):
        for page in pages:
            elapsed, body = _get(client, page)
            page.times.append(elapsed)
            page.rows = body.count('<td class="buyer">')
        if n == 0 or (n + 1) % 10 == 0:
            _say(f"  run {n + 1}/{runs}")


def explain(app: Any, client: Any, pages: list[Page]) -> str:
    """Where each page's time goes: its SQL statements, the template, and the plan of the slowest.

    A statement is timed again on its own with every row fetched: the cursor events
    alone would miss SQLite, which finds the rows only as they are fetched.
    """
    from flask import before_render_template, template_rendered
    from sqlalchemy import event

    from portal.extensions import db

    with app.app_context():
        engine = db.engine
    captured: list[tuple[str, Any]] = []
    render: list[float] = []
    recording = False

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if recording:  # not while _fetch_time runs them again
            captured.append((statement, parameters))

    def on_render_start(sender, template, context, **extra):
        render.append(-time.perf_counter())

    def on_render_end(sender, template, context, **extra):
        render.append(time.perf_counter())

    lines = ["", "Where the time goes (one request per page; ms):"]
    event.listen(engine, "before_cursor_execute", on_execute)
    before_render_template.connect(on_render_start, app)
    template_rendered.connect(on_render_end, app)
    try:
        for page in pages:
            captured.clear()
            render.clear()
            recording = True
            elapsed, _ = _get(client, page)
            recording = False
            timed = [(_fetch_time(engine, st, params), st, params) for st, params in captured]
            sql = sum(t for t, _, _ in timed)
            template = sum(render)
            lines.append(
                f"\n[{page.name}] {elapsed * 1e3:.1f} in all: {len(timed)} statements "
                f"{sql * 1e3:.1f}, template {template * 1e3:.1f}, the rest (view, ORM, "
                f"session) {(elapsed - sql - template) * 1e3:.1f}"
            )
            for seconds, statement, _params in sorted(timed, key=lambda c: -c[0])[:3]:
                flat = " ".join(statement.split())
                lines.append(
                    f"  {seconds * 1e3:8.2f}  {flat[:140]}{'…' if len(flat) > 140 else ''}"
                )
            if page.name != "bare" and timed:
                _, statement, params = max(timed, key=lambda c: c[0])
                lines += ["  plan of the slowest:"] + [
                    f"    {line}" for line in _plan(engine, statement, params)
                ]
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        before_render_template.disconnect(on_render_start, app)
        template_rendered.disconnect(on_render_end, app)
    return "\n".join(lines)


def _fetch_time(engine: Any, statement: str, params: Any) -> float:
    """Best of three runs of `statement`, all rows fetched, in seconds."""
    best = float("inf")
    with engine.connect() as conn:
        for _ in range(3):
            started = time.perf_counter()
            conn.exec_driver_sql(statement, params).fetchall()
            best = min(best, time.perf_counter() - started)
        conn.rollback()
    return best


def _plan(engine: Any, statement: str, params: Any) -> list[str]:
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
            return [row[0] for row in rows]
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
        return [row[3] for row in rows]


# --------------------------------------------------------------------------- report


def report(args: argparse.Namespace, db_label: str, dataset: Dataset, pages: list[Page]) -> str:
    import platform
    import sqlite3

    bare = pages[0]
    how = f"filled in {dataset.filled_in:.0f} s" if dataset.filled_in is not None else "reused"
    lines = [
        "Sellerdesk inbox benchmark",
        f"  Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        f"  database {db_label}: {dataset.threads:,} threads, {dataset.messages:,} messages "
        f"({how})",
        f"  search '{SEARCH_WORD}' is in messages of {dataset.search_threads} threads (no "
        f"subject); order search {dataset.order_id}; deep = {args.deep} pages in",
        f"  {args.runs} runs per page after {args.warmup} warm-up rounds, interleaved; "
        "logged in as an admin",
        "",
        f"  {'page':<10}{'rows':>5}{'median ms':>11}{'p95 ms':>9}{'ratio':>8}   URL",
    ]
    for page in pages:
        ratio = page.median_ms / bare.median_ms
        rows = "-" if page is bare else str(page.rows)
        url = page.url if len(page.url) <= 70 else page.url[:69] + "…"
        lines.append(
            f"  {page.name:<10}{rows:>5}{page.median_ms:>11.2f}{page.p95_ms:>9.2f}"
            f"{ratio:>8.2f}   {url}"
        )
    worst = max(pages[1:], key=lambda p: p.median_ms)
    ratio = worst.median_ms / bare.median_ms
    met = "met" if ratio <= TARGET_RATIO else "NOT MET"
    lines += [
        "",
        f"Target: every inbox page <= {TARGET_RATIO:.0f}x the bare page: {met} "
        f"(worst: {worst.name})",
        f"worst ratio={ratio:.2f}",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deep", type=int, default=200, help="pages in for the deep page (200)")
    add_database_args(parser)
    parser.add_argument(
        "--explain", action="store_true", help="also print each page's queries, timed, and plans"
    )
    args = parser.parse_args(argv)
    check_database_args(parser, args)
    return args


def add_database_args(parser: argparse.ArgumentParser) -> None:
    """The data set's size and seed and where it lives (bench/thread_page.py shares them)."""
    parser.add_argument("--threads", type=int, default=100_000, help="default 100000")
    parser.add_argument("--messages", type=int, default=500_000, help="default 500000")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per page (30)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up rounds (3)")
    parser.add_argument("--seed", type=int, default=1, help="data seed (1)")
    parser.add_argument(
        "--keep",
        metavar="PATH",
        help="SQLite file to fill once and reuse on later runs (default: a temp file, deleted)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="use this database (default $DATABASE_URL, else SQLite); it must be empty or "
        "filled earlier by this bench, and keeps the data",
    )
    parser.add_argument(
        "--postgres", action="store_true", help="start a throwaway PostgreSQL and use it"
    )
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="run ANALYZE on SQLite after filling (the app never does; PostgreSQL always is)",
    )


def check_database_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if sum(bool(x) for x in (args.keep, args.database_url, args.postgres)) > 1:
        parser.error("--keep, --database-url (DATABASE_URL) and --postgres exclude each other")
    if args.threads < 1 or args.messages < args.threads:
        parser.error("need at least one thread and at least one message per thread")
    if args.runs < 1:
        parser.error("--runs must be at least 1")


def open_database(args: argparse.Namespace, workdir: Path) -> tuple[str, str, Any]:
    """The database URL, its label for the report, and the throwaway PostgreSQL started
    for --postgres (None otherwise; the caller stops it)."""
    if args.postgres:
        from tests.servers import PostgresServer

        postgres = PostgresServer(workdir / "postgres")
        postgres.start()
        return postgres.url(), "postgresql (throwaway)", postgres
    if args.database_url:
        from sqlalchemy.engine import make_url

        url = _normalise_url(args.database_url)
        return url, make_url(url).render_as_string(hide_password=True), None
    path = Path(args.keep).resolve() if args.keep else workdir / "inbox.db"
    return f"sqlite:///{path}", f"sqlite {path}", None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def report_for(app, client, label, dataset, pages):
        text = report(args, label, dataset, pages)
        return text + "\n" + explain(app, client, pages) if args.explain else text

    return run_pages(
        args,
        prefix="sellerdesk-bench-inbox-",
        pages_for=lambda app, dataset: pages_to_measure(dataset, deep_cursor(app, args.deep)),
        report_for=report_for,
    )


def run_pages(
    args: argparse.Namespace,
    *,
    prefix: str,
    pages_for: Callable[[Any, Dataset], list[Page]],
    report_for: Callable[[Any, Any, str, Dataset, list[Page]], str],
) -> int:
    """Fill (or reuse) the database, log in, measure `pages_for`'s pages and print
    `report_for`'s report (bench/thread_page.py runs its pages through this too)."""
    import logging

    # Quiet setup (migrations, services); create_app leaves a configured root logger alone.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from portal import create_app

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    postgres = None
    try:
        url, label, postgres = open_database(args, workdir)
        app = create_app(_app_config(url, workdir))
        add_bare_page(app)
        dataset = prepare(app, args)
        pages = pages_for(app, dataset)
        client = app.test_client()
        log_in(client, ADMIN_EMAIL, PASSWORD)
        _say(f"measuring {len(pages)} pages, {args.runs} runs each …")
        measure(client, pages, runs=args.runs, warmup=args.warmup)
        print(report_for(app, client, label, dataset, pages))
        with app.app_context():
            from portal.extensions import db

            db.engine.dispose()
    finally:
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
