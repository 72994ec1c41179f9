"""A time bound on parsing one mail, so that no single message holds up a mailbox.

The parser checks its Deadline between the steps of its work (every chunk the email
package reads, every part, every stage); a mail that takes longer is given up with
TooSlowToParse and kept raw, quarantined, like mail the parser rejects. The check is
cooperative: a single step that runs away inside C code is only stopped from outside,
by the ingest process killing the parse worker (ingest/parse_workers.py). Pure: no
database, no Flask, no network.
"""

from __future__ import annotations

import time


class TooSlowToParse(ValueError):
    """Parsing the mail took longer than its time bound."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"too slow to parse: gave up after {seconds:g} s")


class Deadline:
    """`seconds` from now; None: no bound."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._at = None if seconds is None else time.monotonic() + seconds

    def check(self) -> None:
        """Raise TooSlowToParse once the time is up."""
        if self._at is not None and time.monotonic() > self._at:
            raise TooSlowToParse(self.seconds or 0)
