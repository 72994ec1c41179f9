#!/usr/bin/env python3
"""Order prefetch benchmark: one ingest pass with the worker's order job running beside it
against the same pass without.

The worker runs its jobs in threads of one process: the mail pass (`poll_all`) and, when
SP-API is configured, the order pass (ingest/orders.py `refresh_orders`, every 30 s),
which asks Amazon for the orders of new threads and stores them. This bench times the
mail pass over N messages of the Amazon corpus (bench/corpus.py) dropped into a
Maildir, in this process, on a fresh SQLite database each run:

  off   SP-API not configured: no order pass (what ingest was before issue 20)
  on    every channel authorised with the SP-API stand-in (tests/spapi_standin.py, a
        real HTTP server answering any order ID with Amazon's example order), and the
        order pass run back to back in a second thread (one pass, then 1 s, then the
        next; --pause) for as long as the mail pass lasts: harsher than the worker's 30 s. Its
        client keeps Amazon's rate limit (getOrder 0.5/s, burst 30 per seller and
        region), so most orders of a burst are recorded as "rate limited" and asked
        for later, each such answer a write of its own, as in production

alternating off and on ROUNDS times, and prints every pass's seconds, each mode's
median and spread, the orders the on runs stored, and `on/off ratio=X.XX` beside the
off runs' own spread (max/min), the noise the ratio is read against. SQLite, where
the order pass's commits wait for the same database lock as the mail pass's, is the
harsher case. It asserts nothing: it prints figures.

    .venv/bin/python bench/order_prefetch.py                 # N=2000, 3 rounds
    .venv/bin/python bench/order_prefetch.py -n 5000 --rounds 5
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, where bench/ingest.py would shadow the
# `ingest` package; put the project root there instead (portal, ingest, tests, bench).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

REFRESH_TOKEN = "Atzr|IwEBIbench-order-prefetch-refresh-token-0123456789abcdefWXYZ"  # noqa: S105
#: Pause between two order passes in the on runs, by default (the worker waits 30 s).
PASS_PAUSE = 1.0


class _AnyOrder(dict):
    """The stand-in's orders: Amazon's first example order under whatever ID is asked."""

    def __init__(self, example: dict[str, Any]) -> None:
        super().__init__()
        self.example = example

    def get(self, order_id: str, default: Any = None) -> dict[str, Any]:
        answer = copy.deepcopy(self.example)
        answer["order"]["orderId"] = order_id
        return answer


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _drop_corpus(maildir: Path, n: int, seed: int) -> None:
    from bench.corpus import Corpus

    corpus = Corpus(start=datetime(2026, 11, 1, tzinfo=UTC), seed=seed)
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = maildir / "new" / f"{1_700_000_000 + i}.{i}.bench"
        path.write_bytes(corpus.message(i))
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))


def _app(workdir: Path, standin: Any | None) -> Any:
    from cryptography.fernet import Fernet

    from portal import create_app

    config = {
        "SECRET_KEY": "sellerdesk-bench",
        "TOKEN_KEY": Fernet.generate_key().decode(),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir / 'bench.db'}",
        "MAIL_SOURCE": f"maildir:{workdir / 'maildir'}",
        "SMTP_URL": f"outbox:{workdir / 'outbox'}",
        "INBOUND_DOMAIN": "helpdesk.test",
        "LWA_CLIENT_ID": "",
        "LWA_CLIENT_SECRET": "",
    }
    if standin is not None:
        config |= standin.config()
    return create_app(config)


def _prepare(app: Any, *, authorise: bool, standin: Any | None) -> None:
    """Schema by the real migrations, one seller with the corpus's channels, and (on) an
    SP-API authorisation per region."""
    from flask_migrate import upgrade

    from bench.corpus import CHANNEL_ADDRESSES, INBOUND_DOMAIN
    from portal.extensions import db
    from portal.services import channels as channel_service
    from portal.services import spapi as spapi_service
    from portal.services import users as user_service

    with app.app_context():
        upgrade()
        org = user_service.get_or_create_organisation("Bench Seller Ltd", actor=None)
        channels = []
        for code, address in CHANNEL_ADDRESSES.items():
            channel = channel_service.create_channel(
                org, code, actor=None, inbound_domain=INBOUND_DOMAIN
            )
            channel.helpdesk_address = address
            channels.append(channel)
        db.session.flush()
        if authorise and standin is not None:
            regions = {}
            for channel in channels:
                regions.setdefault(channel.marketplace_info.region, channel)
            for channel in regions.values():
                spapi_service.store_refresh_token(
                    channel,
                    selling_partner_id=standin.selling_partner_id,
                    refresh_token=REFRESH_TOKEN,
                    actor=None,
                )
        db.session.commit()
        db.session.remove()


def _order_passes(app: Any, stop: threading.Event, counts: dict[str, int], pause: float) -> None:
    """The worker's order job, back to back until `stop`."""
    from ingest.orders import refresh_orders
    from portal.extensions import db
    from portal.services.orders import amazon_api
    from portal.sqltypes import utcnow

    while not stop.is_set():
        with app.app_context():
            try:
                summary = refresh_orders(amazon_api(app.config, app.extensions), now=utcnow())
            except Exception as exc:  # noqa: BLE001 (a locked database: the next pass tries again)
                db.session.rollback()
                counts["errors"] += 1
                _say(f"  order pass failed: {exc}")
            else:
                counts["passes"] += 1
                counts["fetched"] += summary.fetched
                counts["not_fetched"] += sum(summary.failed.values())
            db.session.remove()
        stop.wait(pause)


def run_once(mode: str, args: argparse.Namespace, standin: Any, base: Path) -> dict[str, Any]:
    """One fresh database and Maildir, one timed mail pass (with the order passes, on)."""
    from ingest.pipeline import poll_all
    from portal.extensions import db

    workdir = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=base))
    _drop_corpus(workdir / "maildir", args.messages, args.seed)
    on = mode == "on"
    app = _app(workdir, standin if on else None)
    _prepare(app, authorise=on, standin=standin)
    counts = {"passes": 0, "fetched": 0, "not_fetched": 0, "errors": 0}
    stop = threading.Event()
    orders = threading.Thread(
        target=_order_passes, args=(app, stop, counts, args.pause), daemon=True
    )
    with app.app_context():
        started = time.perf_counter()
        if on:
            orders.start()
        summary = poll_all(force=True)
        seconds = time.perf_counter() - started
        db.session.remove()
    stop.set()
    if on:
        orders.join(timeout=60)
    with app.app_context():
        db.engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)
    return {"mode": mode, "seconds": seconds, "stored": summary.stored, **counts}


def report(runs: list[dict[str, Any]], n: int, pause: float) -> str:
    lines = [
        f"Ingest of N={n} corpus messages, SQLite, with the order pass every {pause:g} s "
        "beside it (on) and without (off)",
        "",
    ]
    lines.append(f"  {'run':<5}{'mode':<6}{'seconds':>9}{'msg/s':>8}{'stored':>8}   order passes")
    for number, run in enumerate(runs, start=1):
        passes = (
            f"{run['passes']} passes, {run['fetched']} orders fetched, "
            f"{run['not_fetched']} not fetched (rate limit), {run['errors']} failed"
            if run["mode"] == "on"
            else "-"
        )
        lines.append(
            f"  {number:<5}{run['mode']:<6}{run['seconds']:>9.2f}{n / run['seconds']:>8.0f}"
            f"{run['stored']:>8}   {passes}"
        )
    off = [r["seconds"] for r in runs if r["mode"] == "off"]
    on = [r["seconds"] for r in runs if r["mode"] == "on"]
    ratio = statistics.median(on) / statistics.median(off)
    noise = max(off) / min(off)
    lines += [
        "",
        f"  off: median {statistics.median(off):.2f} s, {min(off):.2f}–{max(off):.2f}",
        f"  on:  median {statistics.median(on):.2f} s, {min(on):.2f}–{max(on):.2f}",
        f"Target: on within the off runs' own spread: {'met' if ratio <= noise else 'NOT MET'}",
        f"on/off ratio={ratio:.2f} off spread={noise:.2f}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--messages", type=int, default=2000, help="N (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument(
        "--pause",
        type=float,
        default=PASS_PAUSE,
        help=f"seconds between order passes (default {PASS_PAUSE:g}; the worker's is 30)",
    )
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rounds < 1:
        parser.error("need at least one message and one round")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import logging

    # The corpus's fixtures include mail that is quarantined on purpose: errors only.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    from tests.spapi_standin import EXAMPLE_ORDERS, SpapiStandIn

    standin = SpapiStandIn()
    standin.start()
    standin.reset()
    standin.orders = _AnyOrder(next(iter(EXAMPLE_ORDERS.values())))
    standin.accept_refresh_token(REFRESH_TOKEN)
    base = Path(tempfile.mkdtemp(prefix="sellerdesk-bench-prefetch-"))
    runs = []
    try:
        for number in range(args.rounds):
            for mode in ("off", "on"):
                _say(f"round {number + 1}/{args.rounds}: {mode} …")
                runs.append(run_once(mode, args, standin, base))
                _say(f"  {runs[-1]}")
        print(report(runs, args.messages, args.pause))
    finally:
        standin.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
