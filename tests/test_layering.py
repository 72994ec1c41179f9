"""Imports flow one way: the ingest pipeline never loads a web view."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ingest_pipeline_loads_no_views():
    code = (
        "import sys, ingest.pipeline, ingest.scheduler\n"
        "views = sorted(m for m in sys.modules if m.startswith('portal.') and m.endswith('.views'))\n"
        "print(','.join(views))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_models_load_without_app_or_views():
    code = "import sys, portal.models; print(any(m.endswith('.views') for m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_parse_workers_load_neither_flask_nor_the_database():
    # Each parse worker process imports this module only: it should stay small.
    code = (
        "import sys, ingest.parse_workers\n"
        "print(sorted(m for m in ('flask', 'sqlalchemy', 'portal') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
