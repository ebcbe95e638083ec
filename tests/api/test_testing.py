"""``boxoffice_api.testing``: the server launcher the HTTP tests and benchmarks share, and the
concert body builder."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import httpx
import pytest

from boxoffice_api import testing
from boxoffice_api.testing import ServerError, ServerProcess

ADMIN_KEY = secrets.token_urlsafe(32)  # the server refuses a guessable key


def test_a_server_runs_inside_the_context_and_is_stopped_by_its_pid(tmp_path: Path) -> None:
    server = ServerProcess(
        log=tmp_path / "server.log",
        db=tmp_path / "store.db",
        env=testing.server_env(admin_key=ADMIN_KEY, log_level="warning"),
    )
    assert server.pid is None and not server.running()
    with server as running:
        assert running is server and server.pid is not None
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        created = httpx.post(
            f"{server.url}/v1/admin/concerts",
            json=testing.concert_body(queue_capacity=3),
            headers={"X-Admin-Key": ADMIN_KEY},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        assert created.json()["schedules"][0]["seats_total"] == 10  # section(): 2 x 5
        assert created.json()["sale"]["queue_capacity"] == 3
    assert not server.running()
    assert server.proc is not None and server.proc.returncode is not None
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/healthz", timeout=2)


def test_a_server_that_exits_at_once_is_an_error_with_its_output(tmp_path: Path) -> None:
    server = ServerProcess(
        log=tmp_path / "server.log",
        command=[sys.executable, "-c", "import sys; print('no luck'); sys.exit(3)"],
        name="a failing server",
    )
    with pytest.raises(ServerError, match=r"a failing server exited 3:\nno luck"):
        server.start()


def test_server_env_drops_inherited_settings_and_adds_the_given_ones() -> None:
    env = testing.server_env({"BOXOFFICE_DB": "/elsewhere", "HOME": "/root"}, log_level="debug")
    assert env == {
        "HOME": "/root",
        "BOXOFFICE_PASSWORD_HASH_PROFILE": "cheapest",
        "BOXOFFICE_LOG_LEVEL": "debug",
    }


def test_concert_body_has_one_schedule_per_start_and_the_sale_as_given() -> None:
    body = testing.concert_body(
        title="T",
        starts_at=["2030-01-01T19:00:00Z", "2030-01-02T19:00:00Z"],
        sections=[testing.section("B", 1, 3, "R", 1000)],
        hold_ttl_s=60,
    )
    assert body == {
        "title": "T",
        "artist": "Tester",
        "venue": "Hall",
        "schedules": [
            {
                "starts_at": at,
                "sections": [
                    {"name": "B", "rows": 1, "seats_per_row": 3, "grade": "R", "price": 1000}
                ],
            }
            for at in ("2030-01-01T19:00:00Z", "2030-01-02T19:00:00Z")
        ],
        "sale": {"hold_ttl_s": 60},
    }
