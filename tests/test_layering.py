"""Imports flow one way: the ingest pipeline never loads a web view."""

from __future__ import annotations

import json
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


def _modules_loaded(imports: str, candidates: str) -> list[str]:
    """Which modules `candidates` (a Python expression over `sys.modules`) names once a
    fresh interpreter has run `imports`."""
    code = f"import json, sys\n{imports}\nprint(json.dumps(sorted({candidates})))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def test_services_load_nothing_of_ingest():
    # Ingest imports the services (the inbound service stores what it fetched), so the
    # services importing ingest would make a cycle.
    imports = (
        "import importlib, pkgutil, portal.services\n"
        "for m in pkgutil.iter_modules(portal.services.__path__):\n"
        "    importlib.import_module('portal.services.' + m.name)"
    )
    ingest = "m for m in sys.modules if m == 'ingest' or m.startswith('ingest.')"
    assert _modules_loaded(imports, ingest) == []


def test_thread_matcher_is_pure():
    # Candidates in, decision out: no database session, no models, nothing of ingest
    # (`portal` itself loads SQLAlchemy for its column types).
    loaded = "m for m in ('flask_sqlalchemy', 'portal.extensions', 'portal.models', 'ingest') if m in sys.modules"
    assert _modules_loaded("import portal.services.thread_matching", loaded) == []
