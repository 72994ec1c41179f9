"""Maildir transport: the embedded default source (a file in new/ is a new message)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ingest.mail.parse import content_hash
from ingest.mail.source import FetchedMail, SourceSettings

log = logging.getLogger(__name__)


class MaildirSource:
    """Reads new/ of a Maildir; processed files move to cur/ with the Seen flag.

    Maildir has no UIDs: the file still sitting in new/ is the checkpoint, and a
    crash between commit and move is caught by the content de-duplication.
    """

    uidvalidity: int | None = None

    def __init__(self, settings: SourceSettings) -> None:
        self.root = Path(settings.path)

    def __enter__(self) -> MaildirSource:
        for sub in ("new", "cur", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def pending(self, after_uid: int) -> list[str]:
        new = self.root / "new"
        names = [e.name for e in os.scandir(new) if e.is_file() and not e.name.startswith(".")]
        # Oldest first, so conversations are threaded in the order they were written.
        return sorted(names, key=lambda n: ((new / n).stat().st_mtime, n))

    def batches(
        self, keys: list[str], *, max_count: int, max_bytes: int
    ) -> Iterator[list[FetchedMail]]:
        batch: list[FetchedMail] = []
        total = 0
        for name in keys:
            try:
                raw = (self.root / "new" / name).read_bytes()
            except FileNotFoundError:  # taken by another reader meanwhile
                continue
            if batch and (len(batch) >= max_count or total + len(raw) > max_bytes):
                yield batch
                batch, total = [], 0
            batch.append(FetchedMail(key=name, uid=None, raw=raw))
            total += len(raw)
        if batch:
            yield batch

    def mark_processed(self, keys: list[str]) -> None:
        for name in keys:
            source = self.root / "new" / name
            base = name.split(":", 1)[0]
            try:
                source.rename(self.root / "cur" / f"{base}:2,S")
            except FileNotFoundError:
                log.info("Maildir file %s was already moved", name)

    def remove_erased(self, *, uids: list[int], contents: list[tuple[str, str]]) -> int:
        """Delete the files (in new/ or cur/) of mail erased in the portal, known by
        content hash (Maildir has no UIDs); returns how many went."""
        hashes = {digest for _, digest in contents}
        removed = 0
        for sub in ("new", "cur"):
            for entry in os.scandir(self.root / sub):
                if not entry.is_file() or entry.name.startswith("."):
                    continue
                path = Path(entry.path)
                try:
                    if content_hash(path.read_bytes()) in hashes:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:  # moved or deleted meanwhile
                    continue
        if removed:
            log.info("Deleted %d erased message(s) from %s", removed, self.root)
        return removed

    def unprocessed(self, up_to_uid: int) -> list[str]:
        # No checkpoint but new/ itself: what is still there is simply fetched again.
        return []

    def backlog(self, after_uid: int) -> int:
        return len(self.pending(after_uid))
