"""The forms of every page, found rather than listed, for the fuzzing suites.

Every page of the route table (tests/security/routes.py) is opened as each role that
may see it, with A's objects, and every <form> on it (POST and GET filters alike) is
read with its fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

from flask import url_for
from werkzeug.exceptions import HTTPException

from tests.security.routes import ALLOWED, CASES, ROUTES, build_url, expected
from tests.security.world import ROLES, Matrix


@dataclass
class Field:
    name: str
    kind: str  # text, hidden, checkbox, radio, select, textarea, file, number, date, …
    value: str = ""
    options: list[str] = field(default_factory=list)


@dataclass
class Form:
    role: str
    page: str
    action: str
    method: str
    endpoint: str
    fields: dict[str, Field]

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        # One role per form: the same form for another role runs the same code.
        return (self.endpoint, self.method, tuple(sorted(self.fields)))


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, str, dict[str, Field]]] = []
        self._form: dict[str, Field] | None = None
        self._select: Field | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = {}
            self.forms.append((a.get("action", ""), a.get("method", "get").upper(), self._form))
        elif a.get("formaction") and self._form is not None:
            # A button that posts its form elsewhere (the composer's "Save draft"): that
            # route takes the same fields, all of them read into the same dict.
            self.forms.append((a["formaction"], self.forms[-1][1], self._form))
        elif self._form is None or not a.get("name"):
            return
        elif tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("submit", "button", "reset", "image"):
                return
            current = self._form.get(a["name"])
            if current is not None and kind in ("radio", "checkbox"):
                current.options.append(a.get("value", "on"))
                return
            self._form[a["name"]] = Field(
                a["name"], kind, a.get("value", ""), [a.get("value", "on")]
            )
        elif tag == "textarea":
            self._form[a["name"]] = Field(a["name"], "textarea")
        elif tag == "select":
            self._select = self._form[a["name"]] = Field(a["name"], "select")
        if tag == "option" and self._select is not None:
            self._select.options.append(a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def _endpoint(matrix: Matrix, action: str, method: str) -> str | None:
    adapter = matrix.app.url_map.bind("localhost")
    try:
        endpoint, _ = adapter.match(urlsplit(action).path, method=method)
    except HTTPException:
        return None
    return endpoint


def _pages(matrix: Matrix) -> list[tuple[str, str]]:
    """(role, URL) of every page a role may open, with A's objects (or shared ones)."""
    pages = []
    for case in CASES:
        if case.method != "GET" or case.endpoint not in ROUTES:
            continue
        entry = ROUTES[case.endpoint]
        owners = next((o for o in entry.owners if "B" not in o), "") if entry.owners else ""
        if entry.owners and not owners:
            continue
        for role in ROLES:
            if expected(entry, role, owners) <= ALLOWED:
                pages.append((role, build_url(matrix, case, entry, owners)))
    # The admin's page about an agent has the "unassign" forms.
    with matrix.app.test_request_context():
        pages.append(("admin", url_for("admin.user_detail", user_id=matrix.ids["A"]["agent"])))
    return pages


def discover_forms(matrix: Matrix) -> list[Form]:
    """Every form the pages offer, once per (endpoint, method, fields); the world reset."""
    forms: dict[tuple, Form] = {}
    for role, url in _pages(matrix):
        response = matrix.clients[role].get(url)
        html = response.get_data(as_text=True)
        response.close()
        if response.status_code != 200 or "text/html" not in response.content_type:
            continue
        reader = _FormReader()
        reader.feed(html)
        for action, method, fields in reader.forms:
            action = action or url
            endpoint = _endpoint(matrix, action, method)
            if endpoint is None:
                continue
            form = Form(role, url, action, method, endpoint, fields)
            forms.setdefault(form.key, form)
        matrix.reset()
    return list(forms.values())
