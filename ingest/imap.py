"""IMAP transport: connect, select, list new UIDs, fetch raw bytes, mark processed."""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from portal.services.mailboxes import SourceSettings

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30


@dataclass
class FetchedMail:
    #: What `mark_processed` needs to find it again: an IMAP UID or a Maildir key.
    key: int | str
    uid: int | None
    raw: bytes


class ImapSource:
    """One logged-in IMAP session on one folder. Use as a context manager."""

    def __init__(self, settings: SourceSettings, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.settings = settings
        self.timeout = timeout
        self.client: IMAPClient | None = None
        self.uidvalidity: int | None = None

    def __enter__(self) -> ImapSource:
        s = self.settings
        context = ssl.create_default_context() if s.security in ("tls", "starttls") else None
        self.client = IMAPClient(
            s.host,
            port=s.port,
            ssl=s.security == "tls",
            ssl_context=context if s.security == "tls" else None,
            timeout=self.timeout,
        )
        try:
            if s.security == "starttls":
                self.client.starttls(context)
            self.client.login(s.username, s.password)
            # Not read-only: we set \Seen (or move) once a message is committed.
            info = self.client.select_folder(s.folder)
        except BaseException:
            self._logout()
            raise
        self.uidvalidity = int(info[b"UIDVALIDITY"])
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._logout()

    def _logout(self) -> None:
        if self.client is None:
            return
        try:
            self.client.logout()
        except (IMAPClientError, OSError):
            with contextlib.suppress(OSError):
                self.client.shutdown()
        self.client = None

    def pending(self, after_uid: int) -> list[int]:
        """UIDs above the checkpoint, oldest first."""
        assert self.client is not None
        # "UID n:*" always matches the highest UID, even when it is below n.
        uids = self.client.search(["UID", f"{after_uid + 1}:*"])
        return sorted(uid for uid in uids if uid > after_uid)

    def batches(
        self, keys: list[int], *, max_count: int, max_bytes: int
    ) -> Iterator[list[FetchedMail]]:
        """Fetch `keys` with BODY.PEEK[] (leaves \\Seen alone) in bounded batches."""
        assert self.client is not None
        for start in range(0, len(keys), max_count * 4):
            window = keys[start : start + max_count * 4]
            sizes = self.client.fetch(window, ["RFC822.SIZE"])
            batch: list[int] = []
            total = 0
            for uid in window:
                size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
                if batch and (len(batch) >= max_count or total + size > max_bytes):
                    yield self._fetch(batch)
                    batch, total = [], 0
                batch.append(uid)
                total += size
            if batch:
                yield self._fetch(batch)

    def _fetch(self, uids: list[int]) -> list[FetchedMail]:
        assert self.client is not None
        data = self.client.fetch(uids, ["BODY.PEEK[]"])
        result = []
        for uid in uids:
            item = data.get(uid)
            if item is None:  # expunged meanwhile by someone else
                log.warning(
                    "UID %s vanished from %s before it was fetched", uid, self.settings.folder
                )
                continue
            result.append(FetchedMail(key=uid, uid=uid, raw=bytes(item[b"BODY[]"])))
        return result

    def mark_processed(self, keys: list[int]) -> None:
        """Flag committed mail \\Seen, or move it to the processed folder when configured."""
        assert self.client is not None
        if not keys:
            return
        folder = self.settings.processed_folder
        if folder:
            if not self.client.folder_exists(folder):
                self.client.create_folder(folder)
            if self.client.has_capability("MOVE"):
                self.client.move(keys, folder)
            else:
                self.client.copy(keys, folder)
                self.client.delete_messages(keys)
                if self.client.has_capability("UIDPLUS"):
                    self.client.uid_expunge(keys)
                else:
                    self.client.expunge()
        else:
            self.client.add_flags(keys, [b"\\Seen"])

    def backlog(self, after_uid: int) -> int:
        return len(self.pending(after_uid))
