"""The web pages' routes, without a browser: each page and asset answers with its type and
headers, nothing else is served from the assets' folder, the pages stay out of the OpenAPI
document, and the waiting page (what every fan of a drop loads) stays small."""

from __future__ import annotations

import re

import pytest

from boxoffice_api.testing.harness import AppHarness
from boxoffice_api.web import STATIC_DIR, STATIC_FILES, STATIC_PATH

PAGES = ("/", "/concerts/1/wait", "/concerts/1/seats", "/reservations/1/receipt", "/admin")
# The waiting page with its style sheet and scripts, bytes (measured 13,000 or so).
WAITING_PAGE_BYTES_MAX = 16_384


@pytest.mark.parametrize("path", PAGES)
def test_a_page_is_html_that_runs_only_this_servers_scripts(
    boxoffice_app: AppHarness, path: str
) -> None:
    r = boxoffice_app.http.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    # Every asset it loads is one the server serves; none comes from elsewhere.
    for url in re.findall(r'(?:src|href)="([^"]+)"', r.text):
        assert url.startswith(("/", "data:")), url
        if url.startswith(STATIC_PATH):
            assert boxoffice_app.http.get(url).status_code == 200, url
    assert "<script>" not in r.text  # no inline script (the policy would block it)


def test_assets_have_their_types_and_nothing_else_is_served(boxoffice_app: AppHarness) -> None:
    assert {p.name for p in STATIC_DIR.iterdir()} == set(STATIC_FILES)
    for name, media_type in STATIC_FILES.items():
        r = boxoffice_app.http.get(f"{STATIC_PATH}/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"] == media_type
        assert r.headers["cache-control"].startswith("public, max-age=")
        assert r.content == (STATIC_DIR / name).read_bytes()
    for name in ("nope.js", "..%2F__init__.py", "%2E%2E%2Ftemplates%2Fbase.html"):
        r = boxoffice_app.http.get(f"{STATIC_PATH}/{name}")
        assert r.status_code == 404, name
        assert r.headers["content-type"] == "application/problem+json"


def test_a_page_of_a_malformed_id_is_a_problem_not_a_trace(boxoffice_app: AppHarness) -> None:
    r = boxoffice_app.http.get("/concerts/0/wait")
    assert r.status_code == 422
    assert r.json()["code"] == "INVALID_ARGUMENT"


def test_the_pages_are_not_in_the_openapi_document(boxoffice_app: AppHarness) -> None:
    paths = boxoffice_app.http.get("/openapi.json").json()["paths"]
    assert all(p.startswith("/v1/") or p in ("/healthz", "/metrics") for p in paths), paths


def test_the_waiting_page_is_small(boxoffice_app: AppHarness) -> None:
    page = boxoffice_app.http.get("/concerts/1/wait")
    loaded = re.findall(r'(?:src|href)="(/web/static/[^"]+)"', page.text)
    assert sorted(loaded) == sorted(
        f"{STATIC_PATH}/{n}" for n in ("web.css", "common.js", "wait.js")
    )
    total = len(page.content) + sum(len(boxoffice_app.http.get(u).content) for u in loaded)
    assert total <= WAITING_PAGE_BYTES_MAX, total
