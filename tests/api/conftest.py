"""Fixtures of the HTTP tests: a real ``boxoffice serve`` process on a free loopback port with a
temporary SQLite store, and a small client that walks the flows.

``server`` is shared by a module's tests (each test makes its own concert and users, so they
do not interfere); ``start_server`` starts one with its own settings, for tests that kill it,
restart it, or need short TTLs.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

# Random-looking: the server refuses guessable secrets (api/boxoffice_api/secret_strength.py).
ADMIN_KEY = "test-admin-key-05762577a27df40e0193916cd42f9b025d634cb2"
PASSWORD = "lantern-velvet-4817"  # passes the sign-up strength rule (zxcvbn score 4)
_emails = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A ``boxoffice serve`` child process; ``kill()`` is a real SIGKILL."""

    db: Path
    log: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    preexec: Callable[[], None] | None = None  # run in the child before exec (e.g. rlimits)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> Server:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "boxoffice.cli",
                "serve",
                "--port",
                str(self.port),
                "--db",
                str(self.db),
            ],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=self.preexec,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last snapshot."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM: uvicorn shuts down and the store takes its last snapshot."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def server_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    env |= {
        "BOXOFFICE_ADMIN_KEY": ADMIN_KEY,
        "BOXOFFICE_PASSWORD_HASH_PROFILE": "cheapest",  # argon2id with test parameters
        # Bursts of sign-ups from one address are the tests' set-up, not a flood (the
        # hashing pool's own limits are tested with their defaults in test_accounts_hardening).
        "BOXOFFICE_PASSWORD_HASH_QUEUE_MAX": "100000",
        "BOXOFFICE_PASSWORD_HASH_PER_CLIENT_MAX": "100000",
        "BOXOFFICE_LOG_LEVEL": "warning",
    }
    env |= {f"BOXOFFICE_{k.upper()}": v for k, v in settings.items()}
    return env


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    """``start_server(**settings)`` → a started Server with its own store (stopped after)."""
    started: list[Server] = []

    def start(db: Path | None = None, **settings: str) -> Server:
        n = len(started)
        server = Server(
            db=db or tmp_path / f"store{n}.db",
            log=tmp_path / f"server{n}.log",
            env=server_env(**settings),
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("server")
    srv = Server(db=path / "store.db", log=path / "server.log", env=server_env()).start()
    yield srv
    srv.stop()


class Api:
    """An httpx client for one server with helpers for the common steps of a flow."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.admin = {"X-Admin-Key": ADMIN_KEY}

    def close(self) -> None:
        self.http.close()

    def user(self, password: str = PASSWORD) -> dict[str, str]:
        """Signs up and logs in a new user; returns the Authorization header."""
        email = f"fan{next(_emails)}-{os.getpid()}@example.com"
        r = self.http.post("/v1/users", json={"email": email, "password": password})
        assert r.status_code == 201, r.text
        r = self.http.post("/v1/auth/token", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def concert(self, **sale: Any) -> dict[str, Any]:
        """Creates a concert (one schedule: section A, 2 rows x 5 seats, VIP 100,000 won)."""
        body = {
            "title": "Test Concert",
            "artist": "Tester",
            "venue": "Hall",
            "schedules": [
                {
                    "starts_at": "2030-01-01T19:00:00Z",
                    "sections": [
                        {
                            "name": "A",
                            "rows": 2,
                            "seats_per_row": 5,
                            "grade": "VIP",
                            "price": 100_000,
                        }
                    ],
                }
            ],
            "sale": sale,
        }
        r = self.http.post("/v1/admin/concerts", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def join(self, auth: dict[str, str], concert_id: int) -> dict[str, Any]:
        r = self.http.post(f"/v1/concerts/{concert_id}/queue", headers=auth)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    def active(self, auth: dict[str, str], concert_id: int) -> dict[str, str]:
        """Joins (the queue must have room) and returns auth + X-Queue-Token headers."""
        joined = self.join(auth, concert_id)
        assert joined["status"] == "ACTIVE", joined
        return auth | {"X-Queue-Token": joined["queue_token"]}

    def charge(self, auth: dict[str, str], amount: int) -> httpx.Response:
        return self.http.post("/v1/me/balance/charges", json={"amount": amount}, headers=auth)


@pytest.fixture
def api(server: Server) -> Iterator[Api]:
    client = Api(server.base_url)
    yield client
    client.close()


@pytest.fixture
def api_for() -> Iterator[Any]:
    """``api_for(base_url)`` → an :class:`Api` for another server (closed after the test)."""
    clients: list[Api] = []

    def make(base_url: str) -> Api:
        clients.append(Api(base_url))
        return clients[-1]

    yield make
    for client in clients:
        client.close()
