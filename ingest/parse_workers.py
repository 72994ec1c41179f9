"""Parsing in worker processes, so that one batch is parsed while the batch before is stored.

Parsing is pure (`ingest.mail.parse`) and the costliest step per message; the ingest
process meanwhile fetches, routes, threads and writes. Each worker is this module
run as `python -m ingest.parse_workers`: it reads pickled requests on stdin and
writes pickled answers on stdout. It imports the parser only (no Flask, no
database).

A pipe rather than `multiprocessing`: when the ingest process dies, even by
SIGKILL, its workers read end-of-file and exit. The workers of a
ProcessPoolExecutor hold their own queue's write end and would linger.

No single message holds up a mailbox: a worker parses each mail under
INGEST_PARSE_SECONDS (the parser gives up at its next check, and the mail is
quarantined as too slow to parse), and answers each mail as soon as it is parsed. A
worker that gives no answer for twice that long is stuck in a step the parser cannot
interrupt: the ingest process kills it, quarantines the mail it was on, and hands the
rest of its share to a new worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import functools
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ingest.mail import parse
from ingest.mail.parse_result import Unparsed, parse_inbound, too_slow
from ingest.mail.source import FetchedMail

log = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parents[1]

#: Each answer is one pickled result behind its length.
_LENGTH = struct.Struct("!Q")
#: A worker silent this many times INGEST_PARSE_SECONDS is killed: it had its own
#: deadline and missed it, so it is inside a step that does not return.
STUCK_FACTOR = 2
#: How long a new worker may take to start (the interpreter and the parser's imports)
#: before its first answer is timed: on a busy machine that alone can take seconds,
#: far longer than a short INGEST_PARSE_SECONDS, and must not count as a stuck parse.
STARTUP_SECONDS = 60.0
#: What a worker writes once it is ready to parse: a length no pickled answer has.
_READY = _LENGTH.pack(0)
#: What the pipe a worker answers on holds (Linux; its default is 64 KB). The worker
#: parses a batch while this process stores the batch before and reads no answers; with
#: a full pipe the worker stops at its next answer until this process reads again.
ANSWER_PIPE_BYTES = 1024 * 1024

#: What a worker makes of one mail: parsed, or why it is quarantined.
Result = parse.ParsedMessage | Unparsed


def give_back_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim).

    Raw mail, parsed texts and the rows of a batch are large blocks, freed once the
    batch is stored. glibc keeps freed heap memory for later use, and as blocks of
    changing sizes come and go, what it keeps grows with the poll: the process's
    resident size crept up with N though it held no more objects (bench/README.md).
    Elsewhere (not glibc) there is nothing to call, and nothing happens."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The worker's loop: (max attachment bytes, time limit, [raw, …]) in; for each raw,
    as soon as it is parsed, its ParsedMessage or Unparsed out (`parse_inbound`)."""
    while True:
        try:
            max_bytes, time_limit, raws = pickle.load(stdin)  # noqa: S301 (our parent's pipe)
        except EOFError:
            return
        raws.reverse()
        while raws:
            # Popped, so that the bytes of mail already answered are let go of.
            raw = raws.pop()
            result = parse_inbound(raw, max_attachment_bytes=max_bytes, time_limit=time_limit)
            del raw
            answer = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            del result
            try:
                stdout.write(_LENGTH.pack(len(answer)))
                stdout.write(answer)
                stdout.flush()
            except OSError:  # the ingest process stopped listening (it gave up on this poll)
                return
            del answer
        give_back_free_memory()


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
    answers.write(_READY)
    answers.flush()
    serve(sys.stdin.buffer, answers)
    with contextlib.suppress(OSError):
        answers.flush()
    # Tearing down the interpreter's caches takes long and is of no use here.
    os._exit(0)


class ParseWorker:
    """One worker process; at most one request outstanding, answered mail by mail."""

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
        assert self.proc.stdout is not None  # noqa: S101 (type narrowing: started with a pipe)
        _widen_pipe(self.proc.stdout.fileno())
        self.alive = True
        self.ready = False

    def wait_ready(self, wait: float = STARTUP_SECONDS) -> None:
        """Wait until the worker has started; TimeoutError when it has not within `wait`
        seconds, EOFError when it died (or said something else first)."""
        if self.ready:
            return
        assert self.proc.stdout is not None  # noqa: S101 (type narrowing: started with a pipe)
        fd = self.proc.stdout.fileno()
        if bytes(_read_exactly(fd, _LENGTH.size, time.monotonic() + wait)) != _READY:
            raise EOFError("the parse worker did not start as expected")
        self.ready = True

    def send(self, max_attachment_bytes: int, time_limit: float | None, raws: list[bytes]) -> bool:
        """Hand over `raws`; False (and the worker is dropped) when it is gone."""
        assert self.proc.stdin is not None  # noqa: S101 (type narrowing: started with a pipe)
        try:
            pickle.dump(
                (max_attachment_bytes, time_limit, raws), self.proc.stdin, pickle.HIGHEST_PROTOCOL
            )
            self.proc.stdin.flush()
        except (OSError, ValueError):
            self._lost()
            return False
        return True

    def receive(self, wait: float | None) -> Result | None:
        """The answer on the next mail of the request sent last; None if the worker died
        meanwhile (that mail is then parsed in the ingest process). Raises TimeoutError
        when no answer came within `wait` seconds (None: wait as long as it takes)."""
        assert self.proc.stdout is not None  # noqa: S101 (type narrowing: started with a pipe)
        # Read from the pipe itself, never through its buffer, so that select() sees
        # every byte not yet read.
        fd = self.proc.stdout.fileno()
        try:
            # The time limit is on parsing, not on the worker's start-up.
            self.wait_ready()
            until = None if wait is None else time.monotonic() + wait
            (length,) = _LENGTH.unpack(_read_exactly(fd, _LENGTH.size, until))
            result = pickle.loads(_read_exactly(fd, length, until))  # noqa: S301 (our own child)
        except TimeoutError:
            raise
        except Exception:  # EOFError when it died; anything else: a garbled answer
            self._lost()
            return None
        return result if isinstance(result, parse.ParsedMessage | Unparsed) else None

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

    def kill(self) -> None:
        """Stop a worker that no longer answers."""
        self.alive = False
        self.proc.kill()
        self.close()

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


def _widen_pipe(fd: int) -> None:
    """Let the pipe `fd` hold ANSWER_PIPE_BYTES, where the system allows it."""
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsize is None:  # not Linux: the pipe stays as it is
        return
    try:
        fcntl.fcntl(fd, setsize, ANSWER_PIPE_BYTES)
    except OSError:  # above /proc/sys/fs/pipe-max-size, or the user's pipe quota is spent
        log.debug("Could not widen the parse worker's pipe", exc_info=True)


def _read_exactly(fd: int, size: int, until: float | None) -> bytearray:
    """`size` bytes from `fd`; EOFError at its end, TimeoutError past `until`."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    while done < size:
        if until is not None:
            left = until - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        got = os.readv(fd, [view[done:]])
        if not got:
            raise EOFError
        done += got
    return buffer


class ParseWorkers:
    """Hands fetched batches to the workers, split among them, and collects the answers.

    `submit` a batch, `collect` (wait for) it once the batch before is stored, and
    take its `results`. Only one batch is out at a time, since a worker answers one
    request at a time.
    """

    def __init__(
        self, count: int, *, max_attachment_bytes: int, time_limit: float | None = None
    ) -> None:
        self.max_attachment_bytes = max_attachment_bytes
        self.time_limit = time_limit
        self.workers: list[ParseWorker] = []
        try:
            for _ in range(count):
                self.workers.append(ParseWorker())
        except OSError:
            self.close()
            raise
        # id(batch) -> [(worker or None, first index, how many messages)] while being parsed
        self._sent: dict[int, list[tuple[ParseWorker | None, int, int]]] = {}
        # id(batch) -> the results, once collected
        self._done: dict[int, list[Result | None]] = {}

    def submit(self, batch: list[FetchedMail]) -> None:
        """Start parsing `batch`."""
        workers = [w for w in self.workers if w.alive]
        if not workers or not batch:
            return
        size = -(-len(batch) // len(workers))
        parts: list[tuple[ParseWorker | None, int, int]] = []
        for worker, start in zip(workers, range(0, len(batch), size), strict=False):
            raws = [mail.raw for mail in batch[start : start + size]]
            sent = worker.send(self.max_attachment_bytes, self.time_limit, raws)
            parts.append((worker if sent else None, start, len(raws)))
        self._sent[id(batch)] = parts

    def collect(self, batch: list[FetchedMail]) -> None:
        """Wait for the workers' answers on `batch`."""
        parts = self._sent.pop(id(batch), None)
        if parts is None:
            return
        results: list[Result | None] = []
        for worker, start, count in parts:
            results += self._answers(worker, batch[start : start + count])
        self._done[id(batch)] = results

    def _answers(self, worker: ParseWorker | None, share: list[FetchedMail]) -> list[Result | None]:
        """The answers of `worker` on the mail it was sent; a worker stuck on one mail is
        replaced, that mail answered too slow to parse, and the rest sent to the new one."""
        wait = None if self.time_limit is None else self.time_limit * STUCK_FACTOR
        answers: list[Result | None] = []
        while len(answers) < len(share):
            if worker is None or not worker.alive:
                return answers + [None] * (len(share) - len(answers))
            try:
                answers.append(worker.receive(wait))
                continue
            except TimeoutError:
                stuck = share[len(answers)]
            log.warning(
                "Parse worker %s gave no answer on message %s for %s s; killing it",
                worker.proc.pid,
                stuck.key,
                wait,
            )
            worker.kill()
            answers.append(too_slow(stuck.raw, self.time_limit or 0))
            worker = self._replace(worker)
            rest = [mail.raw for mail in share[len(answers) :]]
            if worker is not None and rest:
                worker.send(self.max_attachment_bytes, self.time_limit, rest)
            del rest
        return answers

    def _replace(self, dead: ParseWorker) -> ParseWorker | None:
        """A new worker in the place of `dead`; None if none starts."""
        index = self.workers.index(dead)
        try:
            self.workers[index] = ParseWorker()
        except OSError:
            log.warning("Could not restart a parse worker; parsing in this process", exc_info=True)
            return None
        return self.workers[index]

    def results(self, batch: list[FetchedMail]) -> list[Result | None] | None:
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
