"""Fixtures of the HTTP tests: a real ``boxoffice serve`` process on a free loopback port with a
temporary SQLite store, and a small client that walks the flows.

``server`` is shared by a module's tests (each test makes its own concert and users, so they
do not interfere); ``start_server`` starts one with its own settings, for tests that kill it,
restart it, or need short TTLs.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boxoffice_api import testing
from boxoffice_api.testing import ServerProcess

# Random-looking: the server refuses guessable secrets (api/boxoffice_api/secret_strength.py).
ADMIN_KEY = "test-admin-key-05762577a27df40e0193916cd42f9b025d634cb2"
PASSWORD = "lantern-velvet-4817"  # passes the sign-up strength rule (zxcvbn score 4)
_emails = itertools.count(1)


Server = ServerProcess
"""A ``boxoffice serve`` child process (:class:`boxoffice_api.testing.ServerProcess`): ``kill()``
is a real SIGKILL, ``stop()`` a SIGTERM."""


def server_env(**settings: str) -> dict[str, str]:
    """The tests' server environment: their admin key, cheap hashing, few log lines, and
    ``BOXOFFICE_<NAME>`` for each of ``settings``."""
    defaults = {
        "admin_key": ADMIN_KEY,
        # Bursts of sign-ups from one address are the tests' set-up, not a flood (the
        # hashing pool's own limits are tested with their defaults in test_accounts_hardening).
        "password_hash_queue_max": "100000",
        "password_hash_per_client_max": "100000",
        "log_level": "warning",
    }
    return testing.server_env(**(defaults | settings))


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
        body = testing.concert_body(**sale)
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
