"""Fixtures of the security suites, and the figures they report at the end of a run.

Each suite adds what it did to `FIGURES` (cells checked, vectors rendered, rounds
killed, examples generated …); the terminal summary prints them, and writes them to
the file named by SECURITY_FIGURES (`make verify` uses it for docs/testing.md's figures).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.security.world import Matrix, open_matrix

FIGURES: Counter[str] = Counter()


def record(name: str, amount: int = 1) -> None:
    """Add `amount` to the figure `name` (shown after the run)."""
    FIGURES[name] += amount


@pytest.fixture(scope="module")
def matrix(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    """One world and one logged-in client per role, shared by a module's tests."""
    with open_matrix(database_url, tmp_path_factory.mktemp("matrix")) as opened:
        yield opened


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not FIGURES:
        return
    terminalreporter.section("security suites: figures")
    for name in sorted(FIGURES):
        terminalreporter.write_line(f"{name}: {FIGURES[name]}")
    target = os.environ.get("SECURITY_FIGURES")
    if target:
        database = "postgresql" if config.getoption("--postgres") else "sqlite"
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps({"database": database, **FIGURES}, sort_keys=True) + "\n")
