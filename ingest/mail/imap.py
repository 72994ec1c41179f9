"""IMAP transport: connect, select, list new UIDs, fetch raw bytes, mark processed."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from ingest.mail.parse import content_hash, raw_hash
from ingest.mail.source import FetchedMail, SourceSettings
from ingest.mail.tls import client_context

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30
#: How often a waiting IDLE wakes up to see whether it was asked to stop.
IDLE_TICK_SECONDS = 1.0


class IdleAborted(ConnectionError):
    """The server ended the IDLE session (BYE, or the connection closed)."""


def quiet_imaplib(client: IMAPClient) -> None:
    """Turn imaplib's trace off unless its logger would show it.

    IMAPClient routes imaplib's trace to the `imapclient.imaplib` logger and sets
    imaplib's debug level to 5, at which imaplib formats every response it reads, the
    repr of each fetched message included, before the logger throws it away: about a
    fifth of the ingest process's time in a large poll (bench/README.md). IMAPClient
    offers no setting for it, hence its private `_imap`.
    """
    if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        client._imap.debug = 0


class ImapSource:
    """One logged-in IMAP session on one folder. Use as a context manager."""

    def __init__(
        self, settings: SourceSettings, *, timeout: float = TIMEOUT_SECONDS, readonly: bool = False
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        #: EXAMINE instead of SELECT: for a session that only watches (IDLE).
        self.readonly = readonly
        self.client: IMAPClient | None = None
        self.uidvalidity: int | None = None
        self.idling = False

    def __enter__(self) -> ImapSource:
        s = self.settings
        context = (
            client_context(ca_file=s.ca_file, verify=s.verify)
            if s.security in ("tls", "starttls")
            else None
        )
        self.client = IMAPClient(
            s.host,
            port=s.port,
            ssl=s.security == "tls",
            ssl_context=context if s.security == "tls" else None,
            timeout=self.timeout,
        )
        quiet_imaplib(self.client)
        try:
            if s.security == "starttls":
                self.client.starttls(context)
            if s.oauth_token:
                self.client.oauth2_login(s.username, s.oauth_token)
            else:
                self.client.login(s.username, s.password)
            # Not read-only (unless only watching): we set \Seen (or move) once a
            # message is committed.
            info = self.client.select_folder(s.folder, readonly=self.readonly)
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
        if self.idling:
            # LOGOUT inside IDLE would be taken for the end of IDLE; just hang up.
            with contextlib.suppress(OSError):
                self.client.shutdown()
            self.client = None
            self.idling = False
            return
        try:
            self.client.logout()
        except (IMAPClientError, OSError):
            with contextlib.suppress(OSError):
                self.client.shutdown()
        self.client = None

    def pending(self, after_uid: int) -> list[int]:
        """UIDs above the checkpoint, oldest first."""
        assert self.client is not None  # noqa: S101 (type narrowing: the session is open here)
        # "UID n:*" always matches the highest UID, even when it is below n.
        uids = self.client.search(["UID", f"{after_uid + 1}:*"])
        return sorted(uid for uid in uids if uid > after_uid)

    def batches(
        self, keys: list[int], *, max_count: int, max_bytes: int
    ) -> Iterator[list[FetchedMail]]:
        """Fetch `keys` with BODY.PEEK[] (leaves \\Seen alone) in bounded batches."""
        assert self.client is not None  # noqa: S101 (type narrowing: the session is open here)
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
        assert self.client is not None  # noqa: S101 (type narrowing: the session is open here)
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
        assert self.client is not None  # noqa: S101 (type narrowing: the session is open here)
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
            # SILENT: the server does not answer with every message's new flags, which
            # imapclient would parse only for them to be thrown away.
            self.client.add_flags(keys, [b"\\Seen"], silent=True)

    def backlog(self, after_uid: int) -> int:
        return len(self.pending(after_uid))

    def remove_erased(self, *, uids: list[int], contents: list[tuple[str, str]]) -> int:
        """Delete mail erased in the portal: `uids` of the selected folder, and mail whose
        (Message-ID, content hash) is in `contents`, here and in the processed folder
        (where moved mail has other UIDs, as has all mail after a UIDVALIDITY reset).
        Flags it \\Deleted and expunges those UIDs only (UIDPLUS; without it the flag
        stays for the next expunge, so no one else's deleted mail goes with it).
        Returns how many messages were deleted."""
        assert self.client is not None  # noqa: S101 (type narrowing: the session is open here)
        removed = self._remove_here(uids, contents)
        folder = self.settings.processed_folder
        if folder and self.client.folder_exists(folder):
            self.client.select_folder(folder)
            try:
                removed += self._remove_here([], contents)
            finally:
                self.client.select_folder(self.settings.folder, readonly=self.readonly)
        return removed

    def _remove_here(self, uids: list[int], contents: list[tuple[str, str]]) -> int:
        assert self.client is not None  # noqa: S101 (type narrowing: the session is open here)
        targets: set[int] = set()
        if uids:
            targets.update(self.client.search(["UID", ",".join(str(u) for u in sorted(uids))]))
            targets &= set(uids)
        wanted = set(contents)
        for message_id in sorted({message_id for message_id, _ in contents}):
            found = self.client.search(["HEADER", "Message-ID", message_id])
            found = [uid for uid in found if uid not in targets]
            if not found:
                continue
            data = self.client.fetch(found, ["BODY.PEEK[]"])
            for uid, item in data.items():
                raw = bytes(item[b"BODY[]"])
                # Stored under either hash: mail stored before issue 24 hashed every byte.
                if {(message_id, content_hash(raw)), (message_id, raw_hash(raw))} & wanted:
                    targets.add(uid)
        if not targets:
            return 0
        keys = sorted(targets)
        self.client.add_flags(keys, [b"\\Deleted"], silent=True)
        if self.client.has_capability("UIDPLUS"):
            self.client.uid_expunge(keys)
        log.info("Deleted %d erased message(s) from %s", len(keys), self.settings.folder)
        return len(keys)

    def unprocessed(self, up_to_uid: int) -> list[int]:
        """UIDs at or below the checkpoint (so committed) that were never flagged or moved:
        a worker died, or the connection dropped, between the commit and `mark_processed`."""
        assert self.client is not None  # noqa: S101 (type narrowing: the session is open here)
        if up_to_uid < 1:
            return []
        criteria = ["UID", f"1:{up_to_uid}"]
        if not self.settings.processed_folder:  # processed mail is moved out of the folder
            criteria.insert(0, "UNSEEN")
        return sorted(uid for uid in self.client.search(criteria) if uid <= up_to_uid)

    # -- IDLE (RFC 2177) ------------------------------------------------------------------

    def supports_idle(self) -> bool:
        assert self.client is not None  # noqa: S101 (type narrowing: the session is open here)
        return bool(self.client.has_capability("IDLE"))

    def start_idle(self) -> None:
        """Enter IDLE: from now on the server announces new mail (EXISTS) unasked."""
        assert self.client is not None and not self.idling  # noqa: S101 (type narrowing: the session is open here)
        self.client.idle()
        self.idling = True

    def stop_idle(self) -> bool:
        """Leave IDLE (DONE); True when the server announced new mail meanwhile.

        This is a round trip, so it also proves the connection is still alive: a
        closed one raises here.
        """
        assert self.client is not None and self.idling  # noqa: S101 (type narrowing: the session is open here)
        self.idling = False
        _text, responses = self.client.idle_done()
        return _announces_mail(responses)

    def wait_for_mail(self, timeout: float, *, stop: threading.Event | None = None) -> bool:
        """Within IDLE, wait up to `timeout` s for new mail; True as soon as it is announced.

        Returns False on timeout, or early when `stop` is set; the session is still in
        IDLE either way. Raises IdleAborted (or imapclient's abort) when the server
        says BYE or the connection is gone.
        """
        assert self.client is not None and self.idling  # noqa: S101 (type narrowing: the session is open here)
        deadline = time.monotonic() + timeout
        while stop is None or not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            tick = min(left, IDLE_TICK_SECONDS)
            started = time.monotonic()
            responses = self.client.idle_check(timeout=tick)
            if any(_is_bye(r) for r in responses):
                raise IdleAborted(f"the server ended IDLE on {self.settings.folder}: {responses}")
            if _announces_mail(responses):
                return True
            if not responses and time.monotonic() - started < tick / 2:
                # imapclient's idle_check swallows EOF and returns nothing at once: a
                # closed connection would spin here. Check it with a DONE round trip
                # (which raises on a dead connection), then watch again.
                announced = self.stop_idle()
                self.start_idle()
                if announced:
                    return True
        return False


def _announces_mail(responses: list) -> bool:
    return any(len(r) >= 2 and r[1] == b"EXISTS" for r in responses)


def _is_bye(response: tuple) -> bool:
    return bool(response) and response[0] == b"BYE"
