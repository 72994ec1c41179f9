"""Static files: a content hash in every URL, so they are cached for a year and still fresh."""

from __future__ import annotations

import re

from flask import url_for


def test_pages_link_static_files_with_a_content_hash(client):
    html = client.get("/login").get_data(as_text=True)
    links = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    assert {link.split("?")[0] for link in links} == {
        "/static/css/app.css",
        *(f"/static/js/{name}.js" for name in ("app", "keyboard", "menu", "passkeys", "timezone")),
    }
    for link in links:
        assert re.search(r"\?v=[0-9a-f]{12}$", link), link


def test_static_files_are_cached_for_a_year(client):
    with client.application.test_request_context():
        url = url_for("static", filename="css/app.css")
    response = client.get(url)
    assert response.status_code == 200
    assert response.cache_control.public
    assert response.cache_control.max_age == 365 * 24 * 3600
    response.close()


def test_a_changed_file_gets_a_new_url(app, tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    (static / "a.css").write_text("body { color: red }")
    app.static_folder = str(static)
    with app.test_request_context():
        first = url_for("static", filename="a.css")
        assert url_for("static", filename="a.css") == first
        (static / "a.css").write_text("body { color: blue; }")
        second = url_for("static", filename="a.css")
        assert second != first
        # A file that is not there keeps a plain URL rather than failing the page.
        assert url_for("static", filename="missing.css") == "/static/missing.css"
