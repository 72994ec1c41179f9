"""scripts/verify_report.py: the figures table docs/testing.md takes from `make verify`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("verify_report", ROOT / "scripts/verify_report.py")
verify_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(verify_report)


def _figures(tmp_path: Path) -> Path:
    lines = [
        {"database": "sqlite", "faults: SIGKILL rounds": 50, "hostile mail: pages opened": 357},
        {"database": "sqlite", "pathological mail: big: KiB": 25935},
        {"database": "postgresql", "faults: SIGKILL rounds": 50},
        {"verify_seconds": 1930, "commit": "abc1234", "date": "2026-12-04"},
    ]
    path = tmp_path / "figures.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_the_table_names_both_databases_the_commit_and_the_time(tmp_path, capsys):
    assert verify_report.main([str(_figures(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "| SIGKILL rounds | 50 | 50 |" in out
    # Browser suites run in the SQLite pass only: PostgreSQL's cell says so.
    assert "| pages opened in Chromium | 357 | – |" in out
    assert "at commit abc1234 on 2026-12-04" in out
    assert "32 min 10 s" in out


def test_write_replaces_only_what_lies_between_the_markers(tmp_path):
    doc = tmp_path / "testing.md"
    doc.write_text(
        "# Testing\nbefore\n<!-- verify-figures: begin -->\nold table\n"
        "<!-- verify-figures: end -->\nafter\n"
    )
    assert verify_report.main([str(_figures(tmp_path)), "--write", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Testing\nbefore\n<!-- verify-figures: begin -->\n| |")
    assert "old table" not in text and text.endswith("<!-- verify-figures: end -->\nafter\n")
    assert "| SIGKILL rounds | 50 | 50 |" in text


def test_missing_figures_or_markers_fail(tmp_path):
    assert verify_report.main([str(tmp_path / "none.jsonl")]) == 1
    doc = tmp_path / "plain.md"
    doc.write_text("no markers\n")
    assert verify_report.main([str(_figures(tmp_path)), "--write", str(doc)]) == 1
    assert doc.read_text() == "no markers\n"
