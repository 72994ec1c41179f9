"""Parsing in worker processes, so that one batch is parsed while the batch before is stored.

Parsing is pure (`ingest.mail.parse`) and the costliest step per message; the ingest
process meanwhile fetches, routes, threads and writes. Each worker is this module
run as `python -m ingest.parse_workers`: it reads pickled requests on stdin and
writes pickled answers on stdout. It imports the parser only (no Flask, no
database).

A pipe rather than `multiprocessing`: when the ingest process dies, even by
SIGKILL, its workers read end-of-file and exit. The workers of a
ProcessPoolExecutor hold their own queue's write end and would linger.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ingest.mail import parse
from ingest.mail.source import FetchedMail

log = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parents[1]


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The worker's loop: (max attachment bytes, [raw, …]) in, [ParsedMessage or None, …] out.

    None stands for mail the parser rejected: the ingest process parses it again
    and quarantines it with the reason, as it does with mail it parses itself.
    """
    while True:
        try:
            max_bytes, raws = pickle.load(stdin)  # noqa: S301 (our parent's pipe)
        except EOFError:
            return
        results: list[parse.ParsedMessage | None] = []
        for raw in raws:
            try:
                results.append(parse.parse_message(raw, max_attachment_bytes=max_bytes))
            except Exception:
                results.append(None)
        del raws  # the next request's bytes should not meet these in memory
        try:
            pickle.dump(results, stdout, protocol=pickle.HIGHEST_PROTOCOL)
            stdout.flush()
        except OSError:  # the ingest process stopped listening (it gave up on this poll)
            return
        del results


def main() -> None:
    # Ctrl-C reaches the whole process group; the ingest process decides when to stop,
    # and its workers end when it closes their pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Answers go out on the original stdout; anything printed goes to stderr instead.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=int(os.environ.get("SELLERDESK_PARSE_LOG_LEVEL", logging.WARNING)),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    serve(sys.stdin.buffer, answers)
    with contextlib.suppress(OSError):
        answers.flush()
    # Tearing down the interpreter's caches takes long and is of no use here.
    os._exit(0)


class ParseWorker:
    """One worker process; at most one request outstanding, answered in order."""

    def __init__(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])),
            "SELLERDESK_PARSE_LOG_LEVEL": str(logging.getLogger("ingest").getEffectiveLevel()),
        }
        self.proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", "ingest.parse_workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.alive = True

    def send(self, max_attachment_bytes: int, raws: list[bytes]) -> bool:
        """Hand over `raws`; False (and the worker is dropped) when it is gone."""
        assert self.proc.stdin is not None  # noqa: S101 (type narrowing: started with a pipe)
        try:
            pickle.dump((max_attachment_bytes, raws), self.proc.stdin, pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (OSError, ValueError):
            self._lost()
            return False
        return True

    def receive(self, count: int) -> list[parse.ParsedMessage | None]:
        """The answer to the request sent last: `count` results, or None for each if the
        worker died meanwhile (that mail is then parsed in the ingest process)."""
        assert self.proc.stdout is not None  # noqa: S101 (type narrowing: started with a pipe)
        try:
            results = pickle.load(self.proc.stdout)  # noqa: S301 (our own child's pipe)
        except Exception:  # EOFError when it died; anything else: a garbled answer
            self._lost()
            return [None] * count
        return results if isinstance(results, list) and len(results) == count else [None] * count

    def _lost(self) -> None:
        if self.alive:
            log.warning("Parse worker %s ended; parsing in the ingest process", self.proc.pid)
        self.alive = False

    def peak_rss_mb(self) -> float | None:
        """The worker's peak resident set (VmHWM), while it runs (Linux)."""
        with contextlib.suppress(OSError, StopIteration, ValueError):
            with open(f"/proc/{self.proc.pid}/status") as fh:
                line = next(line for line in fh if line.startswith("VmHWM:"))
            return int(line.split()[1]) / 1024
        return None

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ParseWorkers:
    """Hands fetched batches to the workers, split among them, and collects the answers.

    `submit` a batch, `collect` (wait for) it once the batch before is stored, and
    take its `results`. Only one batch is out at a time, since a worker answers one
    request at a time.
    """

    def __init__(self, count: int, *, max_attachment_bytes: int) -> None:
        self.max_attachment_bytes = max_attachment_bytes
        self.workers: list[ParseWorker] = []
        try:
            for _ in range(count):
                self.workers.append(ParseWorker())
        except OSError:
            self.close()
            raise
        # id(batch) -> [(worker or None, how many messages)] while being parsed
        self._sent: dict[int, list[tuple[ParseWorker | None, int]]] = {}
        # id(batch) -> the results, once collected
        self._done: dict[int, list[parse.ParsedMessage | None]] = {}

    def submit(self, batch: list[FetchedMail]) -> None:
        """Start parsing `batch`."""
        workers = [w for w in self.workers if w.alive]
        if not workers or not batch:
            return
        size = -(-len(batch) // len(workers))
        parts: list[tuple[ParseWorker | None, int]] = []
        for worker, start in zip(workers, range(0, len(batch), size), strict=False):
            raws = [mail.raw for mail in batch[start : start + size]]
            sent = worker.send(self.max_attachment_bytes, raws)
            parts.append((worker if sent else None, len(raws)))
        self._sent[id(batch)] = parts

    def collect(self, batch: list[FetchedMail]) -> None:
        """Wait for the workers' answers on `batch`."""
        parts = self._sent.pop(id(batch), None)
        if parts is None:
            return
        results: list[parse.ParsedMessage | None] = []
        for worker, count in parts:
            results += worker.receive(count) if worker is not None else [None] * count
        self._done[id(batch)] = results

    def results(self, batch: list[FetchedMail]) -> list[parse.ParsedMessage | None] | None:
        """What the workers made of `batch`, None where the ingest process must parse;
        None for a batch they never had."""
        self.collect(batch)
        return self._done.pop(id(batch), None)

    def close(self) -> None:
        for worker in self.workers:
            peak = worker.peak_rss_mb()
            worker.close()
            log.debug("Parse worker %s stopped (peak RSS %s MB)", worker.proc.pid, peak)


def fetch_ahead(
    batches: Iterator[list[FetchedMail]], workers: ParseWorkers | None
) -> Iterator[list[FetchedMail]]:
    """The batches; with workers, batch k is handed out once batch k+1 is fetched and
    submitted, so the workers parse k+1 while the caller stores k."""
    if workers is None:
        yield from batches
        return
    pending = next(batches, None)
    if pending is not None:
        workers.submit(pending)
    while pending is not None:
        following = next(batches, None)  # fetched while the workers parse `pending`
        workers.collect(pending)
        if following is not None:
            workers.submit(following)
        current, pending = pending, following
        del following
        yield current
        # Stored by now: let go of it before the next fetch, so that no more than two
        # batches are ever in hand.
        del current


if __name__ == "__main__":
    main()
