"""Imports flow one way: views -> services -> models; the mail package (`ingest.mail`)
imports nothing of the portal or the rest of ingest, so the services and the pipeline
both import it; the ingest pipeline never loads a web view. Checked both by importing
(what a process loads) and by reading the source (every import, function-local ones
included), and the arrows between packages make no cycle."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from itertools import pairwise
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


def test_the_app_leaves_heavy_libraries_until_used():
    # Every process creates the whole app (the ingest worker included); the password
    # estimator's dictionaries, the passkey library and the migrations' Alembic (30 MB
    # together) are imported when used, not with the app.
    imports = "import os\nos.environ['DATABASE_URL'] = 'sqlite://'\nimport wsgi"
    heavy = (
        "m for m in sys.modules"
        " if m.split('.')[0] in ('zxcvbn', 'webauthn', 'flask_migrate', 'alembic')"
    )
    assert _modules_loaded(imports, heavy) == []


def _modules_loaded(imports: str, candidates: str) -> list[str]:
    """Which modules `candidates` (a Python expression over `sys.modules`) names once a
    fresh interpreter has run `imports`."""
    code = f"import json, sys\n{imports}\nprint(json.dumps(sorted({candidates})))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def test_services_load_nothing_of_ingest_but_the_mail_package():
    # Ingest imports the services (the inbound service stores what it fetched), so the
    # services importing the pipeline would make a cycle; the mail package imports
    # neither.
    imports = (
        "import importlib, pkgutil, portal.services\n"
        "for m in pkgutil.iter_modules(portal.services.__path__):\n"
        "    importlib.import_module('portal.services.' + m.name)"
    )
    ingest = (
        "m for m in sys.modules if (m == 'ingest' or m.startswith('ingest.'))"
        " and m not in ('ingest', 'ingest.mail') and not m.startswith('ingest.mail.')"
    )
    assert _modules_loaded(imports, ingest) == []


def test_mail_package_loads_nothing_of_the_portal():
    imports = "import importlib\n" + "\n".join(
        f"importlib.import_module('ingest.mail.{path.stem}')"
        for path in sorted((ROOT / "ingest" / "mail").glob("*.py"))
        if path.stem != "__init__"
    )
    loaded = "m for m in sys.modules if m == 'portal' or m.startswith('portal.')"
    assert _modules_loaded(imports, loaded) == []


def test_thread_matcher_is_pure():
    # Candidates in, decision out: no database session, no models, nothing of ingest
    # (`portal` itself loads SQLAlchemy for its column types).
    loaded = "m for m in ('flask_sqlalchemy', 'portal.extensions', 'portal.models', 'ingest') if m in sys.modules"
    assert _modules_loaded("import portal.services.thread_matching", loaded) == []


# --- the arrows, read from the source: every import, function-local ones included ------

#: The web areas: portal packages with views, whose code only views and templates use.
WEB_AREAS = sorted(f"portal.{path.parent.name}" for path in ROOT.glob("portal/*/views.py"))
#: Web machinery beside the areas: the guards (login, roles, 404 for other tenants),
#: the template helpers and the error pages.
WEB_MODULES = ["portal.security", "portal.templating", "portal.errors"]
#: Names that only mean something during a request.
REQUEST_NAMES = {
    "flask": {
        "request",
        "session",
        "g",
        "abort",
        "flash",
        "redirect",
        "render_template",
        "url_for",
    },
    "flask_login": {"current_user", "login_required"},
}

#: The one part of ingest that the portal may import: pure mail, no portal inside.
MAIL_PACKAGE = "ingest.mail"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every import in the file, at any
    depth: inside functions and `if TYPE_CHECKING:` blocks too."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, "", node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield base, alias.name, node.lineno


def _within(name: str, prefixes: list[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _service_imports() -> Iterator[tuple[str, str, str, int]]:
    """(service module, imported module, imported name, line) for every import of a service."""
    for path in sorted((ROOT / "portal" / "services").rglob("*.py")):
        for imported, name, line in _imports(path):
            yield _module_name(path), imported, name, line


def test_services_import_no_views_web_guards_or_request_machinery():
    wrong = []
    for module, imported, name, line in _service_imports():
        target = f"{imported}.{name}" if name else imported
        if (
            _within(imported, WEB_AREAS + WEB_MODULES)
            or _within(target, WEB_AREAS + WEB_MODULES)
            or name in REQUEST_NAMES.get(imported, ())
        ):
            wrong.append(f"{module}:{line} imports {target}")
    assert wrong == [], "services take the actor as an argument and return data:\n" + "\n".join(
        wrong
    )


def test_services_import_only_the_mail_package_of_ingest():
    wrong = [
        f"{module}:{line} imports {imported}"
        for module, imported, _, line in _service_imports()
        if _within(imported, ["ingest"]) and not _within(imported, [MAIL_PACKAGE])
    ]
    assert wrong == [], "ingest imports the services: import ingest.mail, or move it there"


def test_mail_package_imports_nothing_of_the_portal_or_the_rest_of_ingest():
    wrong = [
        f"{_module_name(path)}:{line} imports {imported}"
        for path in sorted((ROOT / "ingest" / "mail").rglob("*.py"))
        for imported, _, line in _imports(path)
        if _within(imported, ["portal", "ingest"]) and not _within(imported, [MAIL_PACKAGE])
    ]
    assert wrong == [], "the mail package is pure: pass values in as arguments instead"


def _package(module: str) -> str:
    """The node of the package graph a module belongs to: the mail package, the rest of
    ingest, or one part of the portal (`portal.services`, `portal.cli`, `portal` itself…)."""
    parts = module.split(".")
    if parts[0] == "ingest":
        return MAIL_PACKAGE if parts[1:2] == ["mail"] else "ingest"
    return ".".join(parts[:2])


def _package_graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> where ("module:line"), read from every import of
    portal/ and ingest/, function-local ones included."""
    modules = {
        _module_name(path): path
        for top in ("portal", "ingest")
        for path in sorted((ROOT / top).rglob("*.py"))
    }
    graph: dict[str, dict[str, list[str]]] = {}
    for module, path in modules.items():
        for imported, name, line in _imports(path):
            # `from portal import cli` imports the module portal.cli, not a name of portal.
            target = f"{imported}.{name}" if f"{imported}.{name}" in modules else imported
            if not _within(target, ["portal", "ingest"]):
                continue
            source, dest = _package(module), _package(target)
            if source != dest:
                graph.setdefault(source, {}).setdefault(dest, []).append(f"{module}:{line}")
    return graph


def _find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str]:
    """One cycle of `graph` as [a, b, …, a], or [] when it has none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return []
        for dest in sorted(graph.get(node, {})):
            cycle = visit(dest, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return []

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return []


def test_the_packages_import_each_other_without_a_cycle():
    graph = _package_graph()
    cycle = _find_cycle(graph)
    where = [f"{a} -> {b}: {', '.join(graph[a][b])}" for a, b in pairwise(cycle)]
    assert cycle == [], "a cycle between packages:\n" + "\n".join(where)


def test_the_arrows_between_portal_ingest_and_the_mail_package():
    wrong = []
    for source, targets in _package_graph().items():
        for dest, where in targets.items():
            if source == MAIL_PACKAGE:
                allowed = False  # pure: checked in detail above
            elif dest == "ingest":
                # The pipeline runs in its own process; only the CLI starts it.
                allowed = source == "portal.cli"
            elif source == "ingest":
                # Ingest stores through the services, and uses their models and types.
                allowed = dest == MAIL_PACKAGE or not _within(dest, [*WEB_AREAS, *WEB_MODULES])
            else:
                allowed = True
            if not allowed:
                wrong.append(f"{source} -> {dest}: {', '.join(where)}")
    assert wrong == []


def test_the_cycle_finder_finds_one():
    graph = {"a": {"b": []}, "b": {"c": []}, "c": {"b": []}, "d": {"a": []}}
    assert _find_cycle(graph) == ["b", "c", "b"]
    assert _find_cycle({"a": {"b": []}, "b": {}}) == []


def test_models_import_neither_services_nor_the_web():
    wrong = [
        f"{_module_name(path)}:{line} imports {imported}"
        for path in sorted((ROOT / "portal" / "models").rglob("*.py"))
        for imported, _, line in _imports(path)
        if _within(imported, ["portal.services", "ingest", *WEB_AREAS, *WEB_MODULES])
    ]
    assert wrong == []


def test_the_import_reader_sees_function_local_and_relative_imports(tmp_path, monkeypatch):
    package = tmp_path / "portal" / "services"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sample.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ingest.mail.parse import ParsedMessage\n"
        "def later():\n    from ..security import get_visible_or_404\n"
        "    import portal.inbox.rows\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert sorted(_imports(package / "sample.py")) == [
        ("ingest.mail.parse", "ParsedMessage", 3),
        ("portal.inbox.rows", "", 6),
        ("portal.security", "get_visible_or_404", 5),
        ("typing", "TYPE_CHECKING", 1),
    ]
