"""Accessibility: axe-core in Chromium over every page of every role, no serious or
critical violation.

The pages are the route table's (tests/security/routes.py): every GET endpoint a role
may open, once, filled with the security world's objects, so a new page is checked the
day it gets its entry. Chromium asks a host of its own and each request is answered by
that role's logged-in test client (page, stylesheet and scripts alike), so the page is
rendered and styled as served, with no server and no network: anything asked of another
host is refused and reported.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Route, expect

from tests.security.conftest import record
from tests.security.routes import CASES, OK, ROUTES, build_url, expected
from tests.security.world import Matrix

pytestmark = pytest.mark.browser

HOST = "http://sellerdesk.test"
#: The roles whose pages differ (a second seller or an unassigned agent sees the same
#: pages with other data).
ROLES = ("anonymous", "owner_a", "member_a", "agent_a", "admin")
#: What axe calls serious or critical: the issue's bar.
BLOCKING = {"serious", "critical"}
#: The buyer's own HTML, shown sanitised in a sandboxed frame: its markup is the
#: sender's, not ours; the thread page around it is checked.
NOT_OURS = {"inbox.message_html", "admin.unrouted_html"}
AXE = Axe()


def pages_of(matrix: Matrix, role: str) -> list[str]:
    """One URL per GET endpoint `role` may open (its own objects where it has any)."""
    urls = []
    for case in CASES:
        entry = ROUTES.get(case.endpoint)
        if case.method != "GET" or entry is None or case.endpoint in NOT_OURS:
            continue
        owner_sets = list(entry.owners) if (entry.args or entry.query) else [""]
        for owners in owner_sets:
            if OK in expected(entry, role, owners):
                urls.append(build_url(matrix, case, entry, owners))
                break
    return urls


def served_by(browser: Browser, client, elsewhere: list[str]) -> BrowserContext:
    """A context whose every request to HOST is answered by `client` (page, stylesheet
    and scripts alike), and any other is refused and noted in `elsewhere`."""

    def answer(route: Route) -> None:
        parts = urlsplit(route.request.url)
        if f"{parts.scheme}://{parts.netloc}" != HOST:
            elsewhere.append(route.request.url)
            route.abort()
            return
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            response = client.get(path)
        except Exception as exc:  # an unanswered request would hang the page's load
            route.fulfill(status=599, body=f"{type(exc).__name__}: {exc}")
            raise
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        route.fulfill(status=response.status_code, headers=headers, body=response.get_data())
        response.close()

    context = browser.new_context(base_url=HOST)
    context.route("**/*", answer)
    return context


@pytest.mark.parametrize("role", ROLES)
def test_every_page_has_no_serious_accessibility_violation(
    matrix: Matrix, browser: Browser, role: str
) -> None:
    client = matrix.clients[role]
    elsewhere: list[str] = []
    context = served_by(browser, client, elsewhere)
    page = context.new_page()
    problems = []
    checked = 0
    try:
        for url in pages_of(matrix, role):
            served = client.get(url)
            served.close()
            matrix.reset()
            if served.status_code != 200 or served.mimetype != "text/html":
                continue  # a download (export, raw mail, attachment)
            page.goto(url)
            matrix.reset()
            checked += 1
            for violation in AXE.run(page).response["violations"]:
                if violation["impact"] in BLOCKING:
                    targets = [" ".join(node["target"]) for node in violation["nodes"][:3]]
                    problems.append(
                        f"{role} {url}: {violation['id']} ({violation['impact']}): "
                        f"{violation['help']} at {targets}"
                    )
    finally:
        context.close()
    record("accessibility: pages checked", checked)
    assert checked, f"no page of {role} was checked"
    assert not elsewhere, f"requests outside the app: {elsewhere}"
    assert not problems, "\n".join(problems)


def test_the_check_finds_what_it_is_there_to_find(browser: Browser) -> None:
    # A page of ours with a nameless button and unlabelled field must fail the suite's
    # bar, or a clean run above would prove nothing.
    page = browser.new_page()
    page.set_content(
        "<!doctype html><html lang='en'><title>t</title><main>"
        "<form><input type='text'><button></button></form></main></html>"
    )
    found = {v["id"]: v["impact"] for v in AXE.run(page).response["violations"]}
    page.close()
    assert found.get("button-name") in BLOCKING
    assert found.get("label") in BLOCKING


def test_keyboard_users_skip_to_the_content_and_see_where_they_are(
    matrix: Matrix, browser: Browser
) -> None:
    elsewhere: list[str] = []
    context = served_by(browser, matrix.clients["agent_a"], elsewhere)
    page = context.new_page()
    try:
        for path, current in (("/inbox", "Inbox"), ("/dashboard", "Dashboard")):
            page.goto(path)
            nav = page.get_by_role("navigation", name="Main")
            expect(nav.locator('[aria-current="page"]')).to_have_count(1)
            expect(nav.locator('[aria-current="page"]')).to_have_text(current)
        # The first Tab lands on the skip link, shown while focused; Enter moves the
        # focus past the navigation to the page's content.
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to content")
        expect(skip).to_be_focused()
        expect(skip).to_be_in_viewport()
        outline = skip.evaluate("e => getComputedStyle(e).outlineStyle")
        assert outline != "none"
        page.keyboard.press("Enter")
        expect(page.locator("main#content")).to_be_focused()
    finally:
        context.close()
    assert not elsewhere
