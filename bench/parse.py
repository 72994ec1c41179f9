"""`ingest.mail.parse.parse_message` alone, in one process: the fixtures and the benchmark mix.

    .venv/bin/python bench/parse.py            # the fixtures and the first 2,000 corpus mails
    .venv/bin/python bench/parse.py -n 5000
    .venv/bin/python bench/parse.py --corpus real -n 5000   # the real-world draw, by family

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
import tempfile
import time
from collections import defaultdict
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
    parser.add_argument(
        "--corpus", choices=("amazon", "real"), default="amazon",
        help="amazon: the Amazon mix (default); real: bench/ingest.py's real-world draw",
    )  # fmt: skip
    args = parser.parse_args()
    if args.corpus == "real":
        real_world(args.n)
        return
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


def real_world(n: int) -> None:
    """One round over the real-world draw (seed 1): the mean, and where the time goes."""
    from bench.realworld import RealWorldCorpus, default_cache_dir

    with tempfile.TemporaryDirectory() as tmp:
        corpus = RealWorldCorpus(
            n, start=datetime(2026, 11, 1, tzinfo=UTC), seed=1, cache=default_cache_dir(),
            spool=Path(tmp) / "spool",
        )  # fmt: skip
        mails = [(corpus.kind(i).split(":")[0], corpus.message(i)) for i in range(n)]
    ms_per_message([raw for _, raw in mails[:50]], 1)  # imports, compiled patterns
    seconds: dict[str, list[float]] = defaultdict(list)
    gc.collect()
    for family, raw in mails:
        started = time.perf_counter()
        with contextlib.suppress(parse.UnparseableMessage):
            parse.parse_message(raw)
        seconds[family].append(time.perf_counter() - started)
    total = sum(sum(v) for v in seconds.values())
    print(f"real-world draw ({n}): {total / n * 1000:.3f} ms/msg")
    for family, spent in sorted(seconds.items(), key=lambda kv: -sum(kv[1])):
        print(
            f"  {family:<16} {len(spent):>5} msgs {sum(spent) / len(spent) * 1000:8.2f} ms/msg"
            f"  {sum(spent) / total:4.0%} of the time, slowest {max(spent) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
