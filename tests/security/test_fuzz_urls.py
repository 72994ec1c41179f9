"""Every GET route's path ids and query parameters, with the values that broke them.

The routes come from the route matrix (which reads `app.url_map`); the parameters of
each route from three places: the matrix entry's query, the GET forms its pages offer
(the filters), and the `request.args` its view reads. Each parameter, and each id in
the path, gets digits that str.isdigit() takes but int() refuses or misreads (², ١٢,
１２), the first and last days a date can name, times that have no UTC equivalent, ids
beyond PostgreSQL's INTEGER and BIGINT, and cursors made of those. Each answer must be
a page, a redirect or a refusal, never a 500.

The default run tries each route as one role that may open it; `-m slow` as every one.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import re
from urllib.parse import quote

import pytest
from flask import url_for

from tests.security.conftest import record
from tests.security.forms import discover_forms
from tests.security.routes import ALLOWED, CASES, ROUTES, Case, Entry, expected
from tests.security.world import ROLES, Matrix


def _cursor(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


VALUES = [
    # Digits: superscript (isdigit, not int), Arabic-Indic and full-width (int reads 12).
    "\u00b2", "1\u00b2", "\u0661\u0662", "\uff11\uff12", "\uff10",
    # Dates: the first and last days, one that does not exist, times with no UTC time.
    "0001-01-01", "9999-12-31", "0000-00-00", "2026-02-30",
    "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
    # Ids: beyond INTEGER, beyond BIGINT, far beyond; zero and negative.
    str(2**31), str(2**63), str(10**30), "0", "-1",
    # Cursors (base64 JSON) carrying the same.
    _cursor([0, "0001-01-01T00:00:00+05:00", 2**63]),
    _cursor([1, "9999-12-31T23:59:59-05:00", 5]),
]  # fmt: skip

#: Where a view reads a query parameter itself.
_HELPER_RE = re.compile(r"\b(_\w+)\(")
_ARGS_RE = re.compile(r"""request\.args(?:\.get\(|\[)\s*["'](\w+)["']""")
SENTINEL = 987_654_321


def _query_parameters(matrix: Matrix, case: Case, entry: Entry, forms) -> set[str]:
    names = set(entry.query)
    names |= {f for form in forms if form.endpoint == case.endpoint for f in form.fields}
    view = inspect.unwrap(matrix.app.view_functions[case.endpoint])
    with contextlib.suppress(OSError, TypeError):  # a view without Python source
        source = inspect.getsource(view)
        # A view that hands the request to a helper of its module (the inbox's
        # _render_inbox) reads its parameters there.
        # And the helpers those call (the inbox's _inbox_query reads 'after').
        module = inspect.getmodule(view)
        seen: set[str] = set()
        pending = set(_HELPER_RE.findall(source))
        while pending:
            helper = pending.pop()
            seen.add(helper)
            function = getattr(module, helper, None)
            if inspect.isfunction(function):
                helper_source = inspect.getsource(function)
                source += helper_source
                pending |= set(_HELPER_RE.findall(helper_source)) - seen
        names |= set(_ARGS_RE.findall(source))
    return names - {"csrf_token"}


def _roles(entry: Entry, owners: str, every: bool) -> list[str]:
    order = ("admin", "owner_a", "agent_a", "anonymous")
    allowed = [r for r in (ROLES if every else order) if expected(entry, r, owners) <= ALLOWED]
    return allowed if every else allowed[:1]


def _urls(matrix: Matrix, case: Case, entry: Entry, owners: str, query: set[str]):
    """(what is tried, URL) for each value in each path id and query parameter."""
    params = list(entry.args.items()) + list(entry.query.items())
    letters = owners if len(owners) == len(params) else owners * len(params)
    real: dict[str, object] = {**entry.values, **dict(case.words)}
    for (param, name), owner in zip(params, letters, strict=True):
        real[param] = entry.formats.get(param, "{}").format(matrix.ids[owner][name])
    with matrix.app.test_request_context():
        for arg in entry.args:
            base = url_for(case.endpoint, **{**real, arg: SENTINEL})
            for value in VALUES:
                yield f"path {arg}", base.replace(str(SENTINEL), quote(value, safe=""), 1)
        for name in sorted(query):
            for value in VALUES:
                yield f"query {name}", url_for(case.endpoint, **{**real, name: value})
        for value in VALUES:  # every parameter at once
            yield (
                "every query parameter",
                url_for(case.endpoint, **{**real, **dict.fromkeys(query, value)}),
            )


def _fuzz_urls(matrix: Matrix, *, every_role: bool) -> None:
    forms = [f for f in discover_forms(matrix) if f.method == "GET"]
    problems: list[str] = []
    tried: set[str] = set()
    for case in CASES:
        if case.method != "GET" or case.endpoint not in ROUTES:
            continue
        entry = ROUTES[case.endpoint]
        owners = entry.owners[0] if entry.owners else ""
        query = _query_parameters(matrix, case, entry, forms)
        for role in _roles(entry, owners, every_role):
            client = matrix.clients[role]
            for what, url in _urls(matrix, case, entry, owners, query):
                response = client.get(url)
                body = response.get_data(as_text=True)
                response.close()
                record("url fuzz: requests")
                tried.add(f"{case.endpoint} {what}")
                if response.status_code >= 500 or "Traceback" in body:
                    problems.append(f"{role} GET {url} ({what}): {response.status_code}")
            matrix.reset()
    record("url fuzz: parameters", len(tried))
    assert not problems, "\n".join(problems[:60])
    # The parameters that broke before are among those tried.
    assert {
        "channels.spapi_callback query state",
        "admin.audit query until",
        "admin.audit query since",
        "inbox.index query after",
        "inbox.thread_detail path thread_id",
        "canned.render query thread_id",
    } <= tried


@pytest.mark.parametrize(
    "every_role",
    [
        pytest.param(False, id="quick"),
        pytest.param(True, id="full", marks=pytest.mark.slow),
    ],
)
def test_every_get_parameter_survives_odd_digits_far_dates_and_huge_ids(
    matrix: Matrix, every_role: bool
):
    _fuzz_urls(matrix, every_role=every_role)
