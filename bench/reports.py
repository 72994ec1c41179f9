#!/usr/bin/env python3
"""Reports benchmark: the dashboard and /reports at 100k threads against a bare page.

Fills (or reuses) bench/inbox.py's database of 100,000 threads and 500,000 messages
(bulk inserts; its closed threads get a closing time once, as the app would have set
it, so time to close has something to count), then requests through the real app,
logged in through the real login form:

  as the bench's admin (every organisation):
    bare         bench/inbox.py's trivial page of the same app: the floor
    dashboard    /dashboard
    report-30    /reports?period=30
    report-90    /reports?period=90
    filtered     /reports?period=90&marketplace=DE&agent=<an agent>&sort=median&dir=desc
  as the seller with the most threads (its own organisation):
    bare, dashboard (the 24-hour rate for 7/30/90 days per channel), report-30, report-90

The pages run as in production, with kept figures (REPORTS_FRESH_SECONDS, 600 s): the
warm-up rounds compute each report once, as the worker keeps the reports people open
computed, and the timed requests show those figures. `--computed` turns keeping off,
so that every request computes its figures. Either way it then prints what computing
each report cost (the worker's work per snapshot and pass).

After warm-up rounds it requests each login's pages N times, interleaved, and prints
median and p95 latency in ms and each page's median over that login's bare page,
ending with `worst ratio=X.XX`. Target (issue 22): <= 5. It asserts nothing.

    .venv/bin/python bench/reports.py                          # SQLite in a temp dir
    .venv/bin/python bench/reports.py --keep /tmp/reports.db   # fill once, reuse later
    .venv/bin/python bench/reports.py --postgres               # a throwaway PostgreSQL
    .venv/bin/python bench/reports.py --keep /tmp/reports.db --computed   # computed per request
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, where bench/ingest.py would shadow the
# `ingest` package; put the project root there instead (portal, ingest, tests, bench).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench.common import log_in  # noqa: E402 (after the path fix above)
from bench.inbox import (  # noqa: E402
    ADMIN_EMAIL,
    PASSWORD,
    Page,
    _app_config,
    _say,
    add_bare_page,
    add_database_args,
    check_database_args,
    measure,
    open_database,
    prepare,
)

TARGET_RATIO = 5.0
#: Marks a database whose closed threads got their closing time (a row in `settings`).
MARKER_KEY = "bench.reports"


def prepare_reports(app: Any) -> tuple[str, int]:
    """The seller to log in as (the organisation with most threads) and an agent's id;
    on the first run on this database, closed threads get closed_at (an hour after
    their last message), which bench/inbox.py's fill leaves empty."""
    from sqlalchemy import func, select, text, update

    from portal.extensions import db
    from portal.models import Organisation, Role, Setting, Thread, ThreadStatus, User

    with app.app_context():
        if db.session.get(Setting, MARKER_KEY) is None:
            if db.engine.dialect.name == "postgresql":
                closed_at = Thread.last_message_at + text("interval '1 hour'")
            else:  # SQLite keeps naive text timestamps; strftime keeps the fraction
                closed_at = func.strftime("%Y-%m-%d %H:%M:%f", Thread.last_message_at, "+1 hour")
            db.session.execute(
                update(Thread)
                .where(Thread.status == ThreadStatus.CLOSED, Thread.closed_at.is_(None))
                .values(closed_at=closed_at)
            )
            db.session.add(Setting(key=MARKER_KEY, value={"closed_at": "last message + 1 h"}))
            db.session.commit()
        name = db.session.scalar(
            select(Organisation.name)
            .join(Thread, Thread.organisation_id == Organisation.id)
            .group_by(Organisation.id, Organisation.name)
            .order_by(func.count().desc())
            .limit(1)
        )
        agent_id = db.session.scalar(
            select(User.id).where(User.role == Role.AGENT).order_by(User.id).limit(1)
        )
        db.session.remove()
    return f"seller@{re.sub(r'[^a-z]+', '', name.lower())}.example", agent_id


def report(label: str, logins: list[tuple[str, list[Page]]]) -> str:
    lines = [f"Dashboard and reports against the bare page, {label}", ""]
    worst = 0.0
    for who, pages in logins:
        bare = pages[0]
        lines.append(f"  as {who}")
        lines.append(f"  {'page':<11}{'median ms':>11}{'p95 ms':>9}{'/bare':>8}   url")
        for page in pages:
            ratio = page.median_ms / bare.median_ms
            if page is not bare:
                worst = max(worst, ratio)
            lines.append(
                f"  {page.name:<11}{page.median_ms:>11.2f}{page.p95_ms:>9.2f}{ratio:>8.2f}"
                f"   {page.url}"
            )
        lines.append("")
    met = "met" if worst <= TARGET_RATIO else "NOT MET"
    lines += [
        f"Target: every page <= {TARGET_RATIO}x the bare page: {met}",
        f"worst ratio={worst:.2f}",
    ]
    return "\n".join(lines)


def computing_costs(app: Any) -> str:
    """What computing each page's figures took: timed here, each report computed once
    more in one process (as the worker's pass computes them), whatever the mode."""
    import time

    from portal.extensions import db
    from portal.models import ReportSnapshot
    from portal.services import report_snapshots
    from portal.sqltypes import utcnow

    with app.app_context():
        kept = db.session.scalars(db.select(ReportSnapshot)).all()
        params = [snapshot.params for snapshot in kept]
        db.session.rollback()
        lines = ["Computing the figures once each (the worker's pass), s:"]
        total = 0.0
        for each in params or []:
            started = time.perf_counter()
            report_snapshots.figures(each, now=utcnow(), fresh_seconds=0)
            seconds = time.perf_counter() - started
            total += seconds
            lines.append(f"  {seconds:8.2f}   {_describe(each)}")
            db.session.rollback()
        if not params:
            lines.append("  (none kept: --computed; see the pages' own times above)")
        else:
            lines.append(f"  {total:8.2f}   in all, {len(params)} reports")
        db.session.remove()
    return "\n".join(lines)


def _describe(params: dict[str, Any]) -> str:
    shown = {k: v for k, v in params.items() if v is not None and k != "kind"}
    if len(shown.get("organisation_ids", [])) > 3:
        shown["organisation_ids"] = f"{len(shown['organisation_ids'])} organisations"
    return f"{params['kind']} " + " ".join(f"{k}={v}" for k, v in shown.items())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_database_args(parser)
    parser.add_argument(
        "--computed",
        action="store_true",
        help="compute the figures for every request (REPORTS_FRESH_SECONDS=0) instead of "
        "showing kept ones",
    )
    args = parser.parse_args(argv)
    check_database_args(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from portal import create_app

    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="sellerdesk-bench-reports-"))
    postgres = None
    try:
        url, label, postgres = open_database(args, workdir)
        config = _app_config(url, workdir)
        config["REPORTS_FRESH_SECONDS"] = 0 if args.computed else 600
        app = create_app(config)
        add_bare_page(app)
        prepare(app, args)
        seller, agent_id = prepare_reports(app)
        filtered = f"/reports?period=90&marketplace=DE&agent={agent_id}&sort=median&dir=desc"
        logins = [
            (ADMIN_EMAIL, [Page("bare", "/bench-bare"), Page("dashboard", "/dashboard"),
                           Page("report-30", "/reports?period=30"),
                           Page("report-90", "/reports?period=90"), Page("filtered", filtered)]),
            (seller, [Page("bare", "/bench-bare"), Page("dashboard", "/dashboard"),
                      Page("report-30", "/reports?period=30"),
                      Page("report-90", "/reports?period=90")]),
        ]  # fmt: skip
        for email, pages in logins:
            client = app.test_client()
            log_in(client, email, PASSWORD)
            _say(f"measuring {len(pages)} pages as {email}, {args.runs} runs each …")
            measure(client, pages, runs=args.runs, warmup=args.warmup)
        mode = "computed per request" if args.computed else "kept figures"
        print(report(f"{label}, {mode}", logins))
        print()
        print(computing_costs(app))
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
