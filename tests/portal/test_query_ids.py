"""Ids in query strings: junk or numbers too big for the database are ignored, never a 500."""

from __future__ import annotations

import pytest

from portal.models import Role
from portal.sqltypes import parse_id

HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12", 12),
        ("", None),
        (None, None),
        ("0", None),
        ("-1", None),
        ("²", None),
        ("١٢", None),  # Arabic-Indic digits: int() reads them as 12
        ("１２", None),  # full-width digits, likewise
        (HUGE, None),
        ("2147483648", None),
    ],
)
def test_parse_id(value, expected):
    assert parse_id(value) == expected


@pytest.mark.parametrize(
    "url",
    [
        f"/inbox?channel={HUGE}",
        f"/inbox?organisation={HUGE}",
        f"/admin/channels?organisation={HUGE}",
        f"/admin/users?organisation={HUGE}",
        f"/admin/audit?organisation={HUGE}&actor={HUGE}",
        "/inbox?channel=%C2%B2",
    ],
)
def test_huge_ids_in_filters_are_ignored(client, login_as, url):
    login_as(Role.ADMIN)
    assert client.get(url).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/threads/2147483648",
        f"/threads/{HUGE}",
        "/channels/2147483648",
        "/orgs/2147483648/audit",
        "/admin/channels/2147483648",
    ],
)
def test_huge_ids_in_paths_are_not_found(client, login_as, url):
    # An id beyond the database's integer would make PostgreSQL raise (a 500).
    login_as(Role.ADMIN)
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("query", ["canned=2147483648", f"canned={HUGE}", "canned=%C2%B2"])
def test_huge_canned_id_on_a_thread_is_ignored(client, login_as, make_thread, query):
    login_as(Role.ADMIN)
    thread = make_thread()
    assert client.get(f"/threads/{thread.id}?{query}").status_code == 200


def test_huge_ids_in_the_audit_cursor_and_canned_render_are_ignored(client, login_as, make_org):
    login_as(Role.ADMIN)
    org = make_org()
    assert client.get(f"/orgs/{org.id}/audit?after={HUGE}&before=2147483648").status_code == 200
    assert client.get(f"/canned-replies/1/render?thread_id={HUGE}").status_code in (400, 404)


@pytest.mark.parametrize("path", ["/threads/{}", "/channels/{}", "/admin/channels/{}"])
@pytest.mark.parametrize("zero", ["\u0660", "\uff10"], ids=["arabic-indic", "full-width"])
def test_non_ascii_digits_in_paths_name_no_row(client, login_as, make_thread, path, zero):
    # werkzeug's int converter matched `\d+` and int() reads ١٢ or １２ as 12: one row
    # answered under many URLs. Ids are ASCII digits only.
    thread = make_thread()
    login_as(Role.ADMIN)
    row_id = thread.id if path.startswith("/threads") else thread.channel_id
    assert client.get(path.format(row_id)).status_code == 200
    other_digits = str(row_id).translate({ord("0") + n: ord(zero) + n for n in range(10)})
    assert client.get(path.format(other_digits)).status_code == 404
