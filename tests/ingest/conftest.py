from __future__ import annotations

import shutil
from pathlib import Path

import pytest

MAIL = Path(__file__).resolve().parent.parent / "data" / "mail"


@pytest.fixture
def maildir(app, app_config) -> Path:
    """The Maildir the app's MAIL_SOURCE points at, created empty."""
    root = Path(app_config["MAIL_SOURCE"].removeprefix("maildir:"))
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def drop_mail(maildir: Path):
    """Deliver a fixture .eml (or raw bytes) into new/, as an MDA would."""
    counter = iter(range(1, 100_000))

    def drop(name_or_bytes: str | bytes, *, replace: dict[str, str] | None = None) -> Path:
        if isinstance(name_or_bytes, bytes):
            raw = name_or_bytes
        else:
            raw = (MAIL / name_or_bytes).read_bytes()
        for old, new in (replace or {}).items():
            raw = raw.replace(old.encode(), new.encode())
        n = next(counter)
        tmp = maildir / "tmp" / f"{n}.sellerdesk-test"
        tmp.write_bytes(raw)
        target = maildir / "new" / tmp.name
        shutil.move(tmp, target)
        # Distinct mtimes keep the delivery order deterministic.
        import os

        os.utime(target, (1_700_000_000 + n, 1_700_000_000 + n))
        return target

    return drop
