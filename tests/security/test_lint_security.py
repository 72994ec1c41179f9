"""ruff's flake8-bandit rules (S) hold for the product code, with no blanket exceptions.

`make lint` runs them in CI; this keeps the configuration from quietly losing them:
no S rule may be ignored for the whole codebase, and per-file exceptions are for the
tests and benchmarks only. The product code's exceptions are `# noqa: S…` lines, each
with its reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"


def _lint_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]


def test_security_rules_are_selected_and_never_ignored_wholesale():
    lint = _lint_config()
    assert "S" in lint["select"]
    assert not [code for code in lint.get("ignore", []) if code.startswith("S")]
    for pattern, codes in lint.get("per-file-ignores", {}).items():
        if any(code.startswith("S") for code in codes):
            assert pattern in ("tests/**", "bench/**"), pattern


def test_every_security_noqa_in_the_product_code_gives_its_reason():
    bare = []
    for path in [*ROOT.glob("portal/**/*.py"), *ROOT.glob("ingest/**/*.py"), ROOT / "wsgi.py"]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            match = re.search(r"# noqa: (S\d+)(.*)", line)
            if match and not match.group(2).strip(" -():"):
                bare.append(f"{path.relative_to(ROOT)}:{n}")
    assert not bare, f"# noqa: S… without a reason: {bare}"


def test_product_code_is_clean_under_the_security_rules():
    result = subprocess.run(
        [str(RUFF), "check", "--select", "S", "--output-format", "concise", "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
