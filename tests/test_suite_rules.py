"""The rules the suite keeps for itself (tests/conftest.py's collection hook)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import check_slow_twins


def _item(name: str, *, slow: bool, module: str = "tests/security/test_x.py"):
    originalname = name.split("[")[0]
    return SimpleNamespace(
        path=Path(module),
        name=name,
        originalname=originalname,
        nodeid=f"{module}::{name}",
        get_closest_marker=lambda mark: object() if slow and mark == "slow" else None,
    )


def test_a_slow_test_with_its_quick_size_passes():
    check_slow_twins(
        [_item("test_rounds[quick]", slow=False), _item("test_rounds[full]", slow=True)]
    )


@pytest.mark.parametrize(
    "items",
    [
        # A slow test of its own, as the two-worker rounds were when they rotted.
        [_item("test_two_workers", slow=True), _item("test_other", slow=False)],
        # The quick size of a test of the same name in another module does not count.
        [
            _item("test_rounds[full]", slow=True),
            _item("test_rounds[quick]", slow=False, module="tests/ingest/test_y.py"),
        ],
    ],
)
def test_a_slow_test_without_a_quick_size_stops_the_run(items):
    with pytest.raises(pytest.UsageError, match="without a quick size"):
        check_slow_twins(items)
