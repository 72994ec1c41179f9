"""Report figures computed ahead (issue 22, Speed).

A report reads every message of its period that needs an answer; at 500,000 messages
that takes far longer than a page should, however the query is shaped. So the figures
of each report asked for (a kind, organisations, filters, a period) are kept in
`report_snapshots` with the time they were computed for, and a page shows them while
they are younger than REPORTS_FRESH_SECONDS, saying "as of" when. An older or missing
snapshot is computed on the spot and kept. The worker recomputes the snapshots read in
the last day before they get that old, so the reports people look at open from a
snapshot; the others are forgotten after a day.

REPORTS_FRESH_SECONDS 0 turns this off: every page computes its figures and keeps
nothing. The CLI's `flask report` always computes.

The figures themselves come from services/reports.py, unchanged; this module only
decides when to compute them, and writes them as JSON (never pickle: a row must not be
able to run code when read).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from portal.extensions import db
from portal.models import ReportSnapshot
from portal.services import reports as report_service
from portal.services.reports import AgentFigures, Day, Figures
from portal.sqltypes import upsert_insert

log = logging.getLogger(__name__)

#: Snapshots nobody read for this long are no longer recomputed, and are deleted.
KEEP_UNREAD = timedelta(days=1)
#: A page marks a snapshot read at most this often (a write per page view would cost
#: more than the snapshot saves on SQLite).
READ_MARK = timedelta(hours=1)
#: "Refresh now" recomputes at most this often per report.
REFRESH_AT_MOST_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class ReportPage:
    """Everything /reports and its CSV show for one scope and period."""

    start: datetime
    end: datetime
    #: The moment the figures were computed for ("as of").
    now: datetime
    #: Per channel, then the total (channel_report's order).
    rows: list[Figures]
    days: list[Day]
    agents: list[AgentFigures]
    distribution: list[tuple[str, str, int]]
    assignees: list[tuple[str | None, int]]
    backlog: dict[str, int]


@dataclass(frozen=True)
class Snapshot:
    """Figures and the time they were computed for; `kept` False when computed for this
    page only (snapshots turned off); `written` when the session has a write to commit
    (a snapshot kept or marked read)."""

    figures: Any
    computed_at: datetime
    kept: bool
    written: bool = False


def report_params(
    *,
    organisation_ids: Sequence[int],
    channel_id: int | None = None,
    marketplace: str | None = None,
    agent_id: int | None = None,
    days: int | None = None,
    start: date | None = None,
    end: date | None = None,
) -> dict[str, Any]:
    """The parameters of a /reports page: the last `days` days up to when it is computed,
    or the UTC days `start` to `end` inclusive (cut at that moment)."""
    if (days is None) == (start is None or end is None):
        raise ValueError("a report covers either the last N days or a start and an end day")
    period = {"days": days} if days is not None else {"start": str(start), "end": str(end)}
    return {
        "kind": "report",
        "organisation_ids": sorted(set(organisation_ids)),
        "channel_id": channel_id,
        "marketplace": marketplace,
        "agent_id": agent_id,
        **period,
    }


def rates_params(*, organisation_id: int) -> dict[str, Any]:
    """The parameters of the seller dashboard's 24-hour rates for 7/30/90 days."""
    return {"kind": "rates", "organisation_id": organisation_id}


def _period(params: dict[str, Any], now: datetime) -> tuple[datetime, datetime]:
    if params.get("days") is not None:
        return now - timedelta(days=params["days"]), now
    start = datetime.combine(date.fromisoformat(params["start"]), datetime.min.time(), UTC)
    end = datetime.combine(date.fromisoformat(params["end"]), datetime.min.time(), UTC)
    return start, min(end + timedelta(days=1), now)


def _compute_report(params: dict[str, Any], now: datetime) -> dict[str, Any]:
    start, end = _period(params, now)
    scope = {
        "organisation_ids": params["organisation_ids"],
        "channel_id": params["channel_id"],
        "marketplace": params["marketplace"],
        "agent_id": params["agent_id"],
    }
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "rows": [
            asdict(f) for f in report_service.channel_report(start=start, end=end, now=now, **scope)
        ],
        "days": [
            [d.day.isoformat(), d.messages, d.answered_24h]
            for d in report_service.messages_per_day(start=start, end=end, **scope)
        ],
        "agents": [asdict(a) for a in report_service.agent_report(start=start, end=end, **scope)],
        "distribution": report_service.response_distribution(start=start, end=end, **scope),
        "assignees": report_service.open_threads_per_assignee(**scope),
        "backlog": report_service.backlog(now=now, **scope),
    }


def _report_page(figures: dict[str, Any], now: datetime) -> ReportPage:
    return ReportPage(
        start=datetime.fromisoformat(figures["start"]),
        end=datetime.fromisoformat(figures["end"]),
        now=now,
        rows=[Figures(**row) for row in figures["rows"]],
        days=[Day(date.fromisoformat(day), n, answered) for day, n, answered in figures["days"]],
        agents=[AgentFigures(**row) for row in figures["agents"]],
        distribution=[(key, label, n) for key, label, n in figures["distribution"]],
        assignees=[(name, n) for name, n in figures["assignees"]],
        backlog=dict(figures["backlog"]),
    )


def _compute_rates(params: dict[str, Any], now: datetime) -> list[Any]:
    rows = report_service.response_rates(organisation_id=params["organisation_id"], now=now)
    return [[scope, [asdict(f) for f in figures]] for scope, figures in rows]


def _rates(figures: list[Any], now: datetime) -> list[tuple[str, list[Figures]]]:
    return [(scope, [Figures(**f) for f in per_period]) for scope, per_period in figures]


#: kind: (compute the JSON-ready figures, read them back).
_KINDS: dict[str, tuple[Callable[[dict, datetime], Any], Callable[[Any, datetime], Any]]] = {
    "report": (_compute_report, _report_page),
    "rates": (_compute_rates, _rates),
}


def _key(params: dict[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _compute(params: dict[str, Any], now: datetime) -> tuple[Any, float]:
    compute, _ = _KINDS[params["kind"]]
    started = time.perf_counter()
    figures = compute(params, now)
    # Through JSON and back, so that a page shows exactly what a kept snapshot would.
    return json.loads(json.dumps(figures)), time.perf_counter() - started


def _keep(
    params: dict[str, Any], figures: Any, now: datetime, seconds: float, *, read: bool
) -> None:
    """Write the snapshot; `read` marks it read (a page's), else it keeps its read time
    (the worker's: recomputing must not keep a snapshot nobody reads alive)."""
    table = ReportSnapshot.__table__
    values = {
        "key": _key(params),
        "params": params,
        "figures": figures,
        "computed_at": now,
        "compute_seconds": seconds,
        "read_at": now,
    }
    insert = upsert_insert(db.session.get_bind().dialect.name, table).values(**values)
    # One statement: two pages computing the same report at once must not collide.
    db.session.execute(
        insert.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                k: v
                for k, v in values.items()
                if k not in ("key", "params") and (read or k != "read_at")
            },
        )
    )


def figures(params: dict[str, Any], *, now: datetime, fresh_seconds: int) -> Snapshot:
    """The figures `params` name: a kept snapshot younger than `fresh_seconds`, else
    computed for `now` (and kept, unless `fresh_seconds` is 0). The caller commits when
    the snapshot says it was written."""
    _, read = _KINDS[params["kind"]]
    if fresh_seconds <= 0:
        computed, _ = _compute(params, now)
        return Snapshot(read(computed, now), now, kept=False)
    kept = db.session.scalar(select(ReportSnapshot).where(ReportSnapshot.key == _key(params)))
    if kept is not None and kept.computed_at > now - timedelta(seconds=fresh_seconds):
        marked = kept.read_at < now - READ_MARK
        if marked:
            kept.read_at = now
        figures = read(kept.figures, kept.computed_at)
        return Snapshot(figures, kept.computed_at, kept=True, written=marked)
    return recompute(params, now=now)


def recompute(params: dict[str, Any], *, now: datetime) -> Snapshot:
    """Compute `params`'s figures for `now` and keep them. The caller commits."""
    _, read = _KINDS[params["kind"]]
    computed, seconds = _compute(params, now)
    _keep(params, computed, now, seconds, read=True)
    return Snapshot(read(computed, now), now, kept=True, written=True)


def may_refresh(params: dict[str, Any], *, now: datetime) -> bool:
    """Whether "Refresh now" may recompute `params` (not again within a minute)."""
    computed_at = db.session.scalar(
        select(ReportSnapshot.computed_at).where(ReportSnapshot.key == _key(params))
    )
    return computed_at is None or computed_at <= now - REFRESH_AT_MOST_EVERY


def refresh(*, now: datetime, fresh_seconds: int, clock: Callable[[], datetime]) -> int:
    """The worker's pass: recompute each snapshot read in the last day that is older than
    half of `fresh_seconds` (committing each), and delete those nobody read for a day.
    Returns how many it recomputed. `clock` gives each recomputation its own "now"."""
    db.session.execute(delete(ReportSnapshot).where(ReportSnapshot.read_at < now - KEEP_UNREAD))
    db.session.commit()
    due = db.session.execute(
        select(ReportSnapshot.id, ReportSnapshot.params)
        .where(ReportSnapshot.computed_at <= now - timedelta(seconds=fresh_seconds / 2))
        .order_by(ReportSnapshot.computed_at)
    ).all()
    done = 0
    for snapshot_id, params in due:
        if params.get("kind") not in _KINDS:
            continue  # written by a newer version of the app: leave it to that one
        moment = clock()
        computed, seconds = _compute(params, moment)
        _keep(params, computed, moment, seconds, read=False)
        db.session.commit()
        done += 1
        log.debug("Report snapshot %s recomputed in %.2f s", snapshot_id, seconds)
    return done
