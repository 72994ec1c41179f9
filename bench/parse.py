"""`ingest.mail.parse.parse_message` alone, in one process: the fixtures and the benchmark mix.

    .venv/bin/python bench/parse.py            # the fixtures and the first 2,000 corpus mails
    .venv/bin/python bench/parse.py -n 5000

Prints milliseconds per message: the best of 50 rounds over tests/data/mail/*.eml and
of 3 rounds over the mix (the best round is the one the shared machine disturbed least),
and how many of the mix fast-mail-parser read (the rest the email package read).
Run it from another checkout (e.g. a `git worktree add`) to compare two commits.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path.cwd()
sys.path.insert(0, str(ROOT))

from bench.corpus import FIXTURES, Corpus  # noqa: E402 (the checkout in the current directory)
from ingest.mail import parse  # noqa: E402


def ms_per_message(raws: list[bytes], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        for raw in raws:
            with contextlib.suppress(parse.UnparseableMessage):
                parse.parse_message(raw)
        best = min(best, time.perf_counter() - started)
    return best / len(raws) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="corpus mails (default 2000)")
    args = parser.parse_args()
    fixtures = [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))]
    corpus = Corpus(start=datetime(2026, 11, 1, tzinfo=UTC))
    mix = [corpus.message(i) for i in range(args.n)]
    ms_per_message(fixtures + mix[:50], 1)  # imports, compiled patterns
    print(f"fixtures ({len(fixtures)}): {ms_per_message(fixtures, 50):.3f} ms/msg")
    print(f"bench mix ({len(mix)}): {ms_per_message(mix, 3):.3f} ms/msg")
    try:
        from ingest.mail.fast_reader import read_fast
    except ImportError:  # a checkout from before the parser was split into modules
        read_fast = getattr(parse, "_read_fast", None)
    if read_fast is not None:
        fast = sum(read_fast(parse._lf_endings(r), 10**9) is not None for r in mix)
        print(f"  read by fast-mail-parser: {fast} of {len(mix)}")


if __name__ == "__main__":
    main()
