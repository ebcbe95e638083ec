"""What an operator sees: one log format, a one-line reason when the store cannot be opened, the
version everywhere the same, the documentation pages under their own metrics label, and the
journal's group commit interval taken from the settings."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

import httpx
import pytest

import boxoffice
import boxoffice_api
from boxoffice_api import testing
from boxoffice_api.openapi import document
from boxoffice_api.testing import ServerError, ServerProcess


def test_the_version_is_the_package_metadatas_everywhere(server):
    package = version("boxoffice")
    assert boxoffice.__version__ == boxoffice_api.__version__ == package
    out = subprocess.run(
        [sys.executable, "-m", "boxoffice.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == f"boxoffice {package}"
    assert document()["info"]["version"] == package
    assert httpx.get(f"{server.base_url}/openapi.json").json()["info"]["version"] == package


def test_every_log_line_of_the_server_is_json_uvicorns_too(start_server):
    srv = start_server(log_level="info")
    assert httpx.get(f"{srv.base_url}/healthz").status_code == 200
    srv.stop()
    lines = srv.log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # fails on any plain-text line
    uvicorn = [r for r in records if r.get("logger", "").startswith("uvicorn")]
    events = {r["event"] for r in uvicorn}
    assert any(e.startswith("Uvicorn running on http://127.0.0.1:") for e in events), events
    assert "Application shutdown complete." in events
    assert all({"level", "timestamp"} <= set(r) for r in records)


def test_a_second_server_on_the_same_store_says_store_locked_in_one_line(start_server, tmp_path):
    first = start_server()
    second = ServerProcess(log=tmp_path / "second.log", db=first.db, env=testing.server_env())
    with pytest.raises(ServerError, match="exited 3"):
        second.start()
    log = second.log.read_text()
    assert "Traceback" not in log, log
    [line] = [line for line in log.splitlines() if "STORE_LOCKED" in line]
    record = json.loads(line)
    assert record["level"] == "error"
    assert f"held by process {first.pid}" in record["event"], record
    assert httpx.get(f"{first.base_url}/healthz").status_code == 200  # the first one serves on


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_the_documentation_pages_have_their_own_metrics_label(server, path):
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert http.get(path).status_code == 200
        admin = {"X-Admin-Key": server.env["BOXOFFICE_ADMIN_KEY"]}
        metrics = http.get("/metrics", headers=admin).text
    assert f'boxoffice_http_requests_total{{method="GET",route="{path}",status="200"}}' in metrics


def test_the_group_commit_interval_setting_spaces_the_servers_commits(start_server, api_for):
    # 0.05 s between commit starts: 40 charges from 8 clients share few groups, at least one
    # interval apart (with the interval off they would take about one group each).
    interval_s = 0.05
    srv = start_server(group_commit_interval_s=str(interval_s))
    api = api_for(srv.base_url)
    users = [api.user() for _ in range(8)]
    with sqlite3.connect(srv.db) as con:
        before = con.execute("SELECT count(*) FROM journal_groups").fetchone()[0]
    charged = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda k: api.charge(users[k % 8], 100), range(40)))
    elapsed_s = time.monotonic() - charged
    with sqlite3.connect(srv.db) as con:
        groups = con.execute("SELECT count(*) FROM journal_groups").fetchone()[0] - before
    assert [r.status_code for r in answers] == [201] * 40
    assert 1 <= groups <= elapsed_s / interval_s + 1


def test_a_group_commit_interval_out_of_range_is_one_line_and_creates_no_store(tmp_path):
    db = tmp_path / "never.db"
    command = [sys.executable, "-m", "boxoffice.cli", "serve", "--db", str(db)]
    done = subprocess.run(
        [*command, "--group-commit-interval-s", "2"],
        env=testing.server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "BOXOFFICE_GROUP_COMMIT_INTERVAL_S" in line and "less than or equal to 1" in line
    assert not db.exists()
