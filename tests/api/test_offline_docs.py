"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) render with no network: the server serves
their scripts itself (api/boxoffice_api/routes/docs.py).

Each page is loaded in headless Chromium (Debian's ``chromium``) that can reach nothing but
127.0.0.1: every other host name resolves to nothing and every other address goes to a dead
proxy. The DOM it dumps once the scripts ran must show the API's operations. Without Chromium
the browser tests are skipped, unless ``BOXOFFICE_REQUIRE_BROWSER`` is set (CI sets it): then
they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from boxoffice_api.routes.docs import ASSETS

REQUIRE_BROWSER_ENV = "BOXOFFICE_REQUIRE_BROWSER"
BROWSER_TIMEOUT_S = 120
# Virtual time lets the page's scripts and its fetch of /openapi.json finish before the dump
# (Chromium skips idle time, so this is an upper bound, not a wait).
VIRTUAL_TIME_BUDGET_MS = 20_000
OFFLINE_FLAGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",  # the discard port: nothing listens (loopback bypasses)
)


def chromium() -> str:
    """The Chromium program; skips the test when there is none, fails it when
    ``BOXOFFICE_REQUIRE_BROWSER`` is set."""
    program = shutil.which("chromium") or shutil.which("chromium-browser")
    if program is not None:
        return program
    if os.environ.get(REQUIRE_BROWSER_ENV):
        pytest.fail(f"{REQUIRE_BROWSER_ENV} is set but chromium is not installed")
    pytest.skip("chromium is not installed (Debian: apt-get install chromium)")


def dump_dom(url: str, profile: Path) -> str:
    """The DOM of ``url`` after its scripts ran, in headless Chromium with no network."""
    argv = [
        chromium(),
        "--headless",
        "--no-sandbox",  # tests may run as root, where Chromium's sandbox cannot start
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",  # its own profile: no hand-over to another Chromium
        *OFFLINE_FLAGS,
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
        "--dump-dom",
        url,
    ]
    # Its own session, so the browser and its helper processes are stopped together by pid.
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=BROWSER_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return out.decode(errors="replace")


def test_swagger_ui_renders_the_operations_offline(server, tmp_path):
    dom = dump_dom(f"{server.base_url}/docs", tmp_path / "profile")
    # Swagger UI writes one block per operation, with its path and summary.
    assert 'data-path="/v1/reservations"' in dom, dom[-2000:]
    assert 'data-path="/v1/payments"' in dom
    assert "Hold seats" in dom and "Log in" in dom


def test_redoc_renders_the_operations_offline(server, tmp_path):
    dom = dump_dom(f"{server.base_url}/redoc", tmp_path / "profile")
    # ReDoc's menu lists each operation by its summary, its panel by method and path.
    assert 'aria-label="Hold seats' in dom, dom[-2000:]
    assert "Log in" in dom and "/v1/reservations" in dom


def test_the_pages_load_their_assets_from_the_server_only(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for page in ("/docs", "/redoc"):
            html = http.get(page).text
            assert "http://" not in html and "https://" not in html, (page, html)
        for name in sorted(ASSETS):
            r = http.get(f"/docs/assets/{name}")
            assert r.status_code == 200 and len(r.content) > 1000, name
            assert "max-age" in r.headers["cache-control"]
        missing = http.get("/docs/assets/../openapi.json")
        assert missing.status_code == 404
        r = http.get("/docs/assets/swagger-ui-standalone-preset.js")
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
