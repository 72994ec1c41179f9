"""The buyer's history beside a thread (services/buyer_history.py): the organisation's
other threads of the buyer and of the order, only what the viewer may see, bounded and
read through indexes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from portal.extensions import db
from portal.models import Role, ThreadStatus
from portal.services.buyer_history import HISTORY_LIMIT, buyer_history
from portal.sqltypes import utcnow

ALIAS = "q7k2m9x4r1@marketplace.amazon.co.uk"
ORDER = "203-1111111-2222222"


@pytest.fixture
def seller(make_org, make_channel):
    """Kite & Co with UK and DE channels."""
    org = make_org("Kite & Co")
    make_channel("UK", organisation=org)
    make_channel("DE", organisation=org)
    return org


def channel(org, code):
    return next(c for c in org.channels if c.marketplace == code)


def ids(entries):
    return [e.thread_id for e in entries]


def test_the_buyers_and_the_orders_threads_across_the_organisations_channels(
    seller, make_thread, make_user
):
    now = utcnow()
    uk, de = channel(seller, "UK"), channel(seller, "DE")
    this = make_thread(uk, buyer_address=ALIAS, order_id=ORDER, received_at=now)
    same_buyer_de = make_thread(
        de,
        buyer_address=ALIAS,
        order_id="303-3333333-4444444",
        status=ThreadStatus.CLOSED,
        received_at=now - timedelta(days=3),
    )
    same_order = make_thread(
        uk,
        buyer_address="other@marketplace.amazon.co.uk",
        order_id=ORDER,
        received_at=now - timedelta(days=1),
    )
    both = make_thread(uk, buyer_address=ALIAS, order_id=ORDER, received_at=now - timedelta(days=2))
    make_thread(uk, buyer_address="stranger@marketplace.amazon.co.uk", order_id=None)
    admin = make_user(Role.ADMIN)

    entries = buyer_history(this, admin)
    assert ids(entries) == [same_order.id, both.id, same_buyer_de.id]  # newest first
    by_id = {e.thread_id: e for e in entries}
    assert (by_id[same_order.id].is_same_buyer, by_id[same_order.id].is_same_order) == (
        False,
        True,
    )
    assert (by_id[both.id].is_same_buyer, by_id[both.id].is_same_order) == (True, True)
    entry = by_id[same_buyer_de.id]
    assert (entry.is_same_buyer, entry.is_same_order) == (True, False)
    assert (entry.marketplace, entry.status, entry.order_id) == (
        "DE",
        ThreadStatus.CLOSED,
        "303-3333333-4444444",
    )
    assert entry.last_message_at == same_buyer_de.last_message_at
    assert entry.created_at is not None


def test_another_organisations_thread_of_the_same_alias_or_order_never_shows(
    seller, make_org, make_channel, make_thread, make_user
):
    this = make_thread(channel(seller, "UK"), buyer_address=ALIAS, order_id=ORDER)
    other_org = make_org("Rival Ltd")
    rival_uk = make_channel("UK", organisation=other_org)
    rival = make_thread(rival_uk, buyer_address=ALIAS, order_id=ORDER)
    own = make_thread(channel(seller, "DE"), buyer_address=ALIAS, order_id=None)
    # Not for the admin, who may see both organisations; not for an agent of both.
    for viewer in (
        make_user(Role.ADMIN),
        make_user(Role.AGENT, assigned=[seller, other_org]),
        make_user(Role.SELLER, organisation=seller),
    ):
        assert ids(buyer_history(this, viewer)) == [own.id]
    # And the rival's thread shows none of Kite's.
    assert ids(buyer_history(rival, make_user(Role.ADMIN))) == []


def test_only_what_the_viewer_may_see(seller, make_org, make_thread, make_user):
    this = make_thread(channel(seller, "UK"), buyer_address=ALIAS, order_id=ORDER)
    make_thread(channel(seller, "DE"), buyer_address=ALIAS)
    assert len(buyer_history(this, make_user(Role.AGENT, assigned=[seller]))) == 1
    # Given a thread they cannot see (the page would have answered 404), they get nothing.
    other = make_org("Elsewhere")
    assert buyer_history(this, make_user(Role.AGENT, assigned=[other])) == []
    assert buyer_history(this, make_user(Role.AGENT)) == []
    assert buyer_history(this, make_user(Role.SELLER, organisation=other)) == []


def test_bounded_to_the_newest(seller, make_thread, make_user):
    now = utcnow()
    this = make_thread(channel(seller, "UK"), buyer_address=ALIAS, order_id=None, received_at=now)
    older = [
        make_thread(
            channel(seller, "UK"),
            buyer_address=ALIAS,
            order_id=None,
            received_at=now - timedelta(hours=i + 1),
            texts=(),
        )
        for i in range(HISTORY_LIMIT + 3)
    ]
    entries = buyer_history(this, make_user(Role.ADMIN))
    assert ids(entries) == [t.id for t in older[:HISTORY_LIMIT]]
    assert ids(buyer_history(this, make_user(Role.ADMIN), limit=2)) == [older[0].id, older[1].id]


def test_a_thread_without_alias_or_order_has_no_history(seller, make_thread, make_user):
    this = make_thread(channel(seller, "UK"), buyer_address=ALIAS, order_id=None)
    this.buyer_address = ""
    make_thread(channel(seller, "UK"), buyer_address="", order_id=None)
    assert buyer_history(this, make_user(Role.ADMIN)) == []


def test_the_query_reads_threads_through_indexes(seller, make_thread, make_user):
    this = make_thread(channel(seller, "UK"), buyer_address=ALIAS, order_id=ORDER)
    for i in range(30):
        make_thread(channel(seller, "DE"), buyer_address=f"b{i}@marketplace.amazon.de", texts=())
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "buyer_address" in statement and "UNION" in statement.upper():
            captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        buyer_history(this, make_user(Role.AGENT, assigned=[seller]))
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    ((statement, parameters),) = captured
    connection = db.session.connection()
    if db.engine.dialect.name == "postgresql":
        # A handful of rows: make sequential scans dear, so the plan shows whether each
        # condition can use an index at all.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters)
        plan = "\n".join(row[0] for row in rows)
        db.session.rollback()
        # Each condition is an index condition; which index serves the order ID depends
        # on the statistics of the suite's shared database (ix_threads_order_id, or
        # ix_threads_channel_buyer with the channel: the full suite once chose the latter).
        conditions = [line for line in plan.splitlines() if "Index Cond" in line]
        assert any("buyer_address" in line for line in conditions), plan
        assert any("order_id" in line for line in conditions), plan
        assert "Seq Scan on threads" not in plan, plan
    else:
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        plan = "\n".join(row[-1] for row in rows)
        db.session.rollback()
        assert "ix_threads_channel_buyer" in plan, plan
        assert "ix_threads_order_id" in plan, plan
        assert not [line for line in plan.splitlines() if line.startswith("SCAN threads")], plan
