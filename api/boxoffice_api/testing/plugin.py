"""The boxoffice pytest plugin: fixtures for projects that test against boxoffice.

pytest loads it through the ``pytest11`` entry point of the boxoffice distribution, so a test
file of any project that installs ``boxoffice[server]`` can use these fixtures without a
conftest (docs/testing.md):

- ``boxoffice_engine``: a ``boxoffice.Engine`` on a store in the test's temporary directory,
  closed after the test.
- ``boxoffice_app``: the HTTP app in this process (no port, no child process), on a temporary
  store, in test mode: an :class:`AppHarness` whose ``http`` calls the app through
  ``httpx.ASGITransport``.
- ``boxoffice_server``: a real ``boxoffice serve`` process on a free loopback port, with a
  temporary store and in test mode: a :class:`ServerHarness` with ``url``, ``admin_key``,
  ``advance(seconds)`` and the seeding helpers of :class:`~.harness.Harness`. It is stopped by
  its process id after the test; when the test fails, the report shows the end of its log.
- ``boxoffice_cluster``: a one-machine cluster (``boxoffice cluster up``: nats-servers,
  replicas, workers) shared by the session's tests, a :class:`ClusterHarness` with the same
  helpers (no test clock); every process stopped by its pid at the end.

Both servers run in test mode (``BOXOFFICE_TEST_CLOCK``): their clock is the wall clock plus
what the test advanced, so ``advance(301)`` passes a 300 s hold's expiry at once. Each fixture
is per test: a test's clock moves never touch another test's server. Passwords are hashed with
the ``cheapest`` profile (sign-ups take milliseconds, not a second).

This module imports only pytest and the standard library when pytest loads it: the server's
dependencies (the ``server`` extra) are imported by the fixtures, so installing boxoffice
without them leaves other projects' test runs alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import ServerProcess, server_env
from .harness import AppHarness, ClusterHarness, ServerHarness

if TYPE_CHECKING:
    import boxoffice

LOG_TAIL_LINES = 60
"""How many of the server's last log lines a failed test's report shows."""

# Sign-up bursts from one address are a test's set-up, not a flood: no hashing back-pressure.
_HASHING_UNBOUNDED = {"password_hash_queue_max": "100000", "password_hash_per_client_max": "100000"}


def new_admin_key() -> str:
    """A random admin key (256 bits): the server refuses guessable ones."""
    return secrets.token_urlsafe(32)


@pytest.fixture
def boxoffice_engine(tmp_path: Path) -> Iterator[boxoffice.Engine]:
    """A ``boxoffice.Engine`` on a new store in the test's temporary directory (closed after).
    Every command takes ``now``: the test is its clock."""
    import boxoffice as bo

    engine = bo.Engine(tmp_path / "boxoffice-engine.db")
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture
def boxoffice_app(tmp_path: Path) -> Iterator[AppHarness]:
    """The HTTP app in this process, on a new store in test mode (:class:`AppHarness`)."""
    from .. import Settings, create_app
    from .harness import asgi_client

    admin_key = new_admin_key()
    settings = Settings(
        db=tmp_path / "boxoffice-app.db",
        admin_key=admin_key,
        test_clock=True,
        password_hash_profile="cheapest",
        log_level="warning",
        password_hash_queue_max=100_000,
        password_hash_per_client_max=100_000,
    )
    app = create_app(settings)
    with asgi_client(app) as client:
        yield AppHarness(client, admin_key, app)


@pytest.fixture
def boxoffice_server(tmp_path: Path) -> Iterator[ServerHarness]:
    """A ``boxoffice serve`` process on a free loopback port, on a new store in test mode
    (:class:`ServerHarness`); stopped by its pid after the test."""
    admin_key = new_admin_key()
    process = ServerProcess(
        log=tmp_path / "boxoffice-server.log",
        db=tmp_path / "boxoffice-server.db",
        env=server_env(admin_key=admin_key, test_clock="1", **_HASHING_UNBOUNDED),
    )
    process.start()
    try:
        harness = ServerHarness(process, admin_key)
        try:
            yield harness
        finally:
            harness.close()
    finally:
        process.stop()


CLUSTER_START_TIMEOUT_S = 180.0


@pytest.fixture(scope="session")
def boxoffice_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHarness]:
    """A one-machine cluster for the whole session (:class:`ClusterHarness`): ``boxoffice
    cluster up`` on a free loopback port (3 nats-servers, 2 replicas, 2 workers sharing the
    port), then ``cluster down`` and every process stopped by its pid. Its tests share it: make
    your own concerts and users (the helpers do). No test clock. Needs the ``server`` extra
    (it brings ``nats-server``).

    Raises:
        RuntimeError: ``cluster up`` failed (its output is the message).
    """
    import json
    import os
    import subprocess
    import sys

    from ..cluster.processes import pid_alive, stop_pid
    from . import free_port

    directory = tmp_path_factory.mktemp("boxoffice-cluster")
    env = dict(os.environ, BOXOFFICE_PASSWORD_HASH_PROFILE="cheapest")
    env.update({f"BOXOFFICE_{k.upper()}": v for k, v in _HASHING_UNBOUNDED.items()})
    command = [sys.executable, "-m", "boxoffice.cli", "cluster"]
    where = ["--dir", str(directory)]
    harness: ClusterHarness | None = None
    try:
        try:
            up = subprocess.run(
                [*command, "up", *where, "--port", str(free_port())],
                capture_output=True,
                text=True,
                timeout=CLUSTER_START_TIMEOUT_S,
                env=env,
                check=False,
            )
            output = up.stdout + up.stderr
            record_path = directory / "cluster.json"
            if record_path.exists():  # what started, to be stopped even when up failed
                harness = ClusterHarness(directory, json.loads(record_path.read_text()))
        except (subprocess.TimeoutExpired, ValueError) as exc:
            raise RuntimeError(f"boxoffice cluster up failed: {exc}") from exc
        if up.returncode != 0 or harness is None:
            raise RuntimeError(f"boxoffice cluster up failed:\n{output}")
        yield harness
    finally:
        subprocess.run([*command, "down", *where], capture_output=True, timeout=120, check=False)
        if harness is not None:
            harness.close()
            for pid in harness.pids():
                if pid_alive(pid):
                    stop_pid(pid, grace_s=1.0)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test that used ``boxoffice_server`` gets the end of the server's log as a
    section of its report."""
    report = yield
    if report.failed:
        server = getattr(item, "funcargs", {}).get("boxoffice_server")
        if isinstance(server, ServerHarness):
            report.sections.append(("boxoffice server log", server.log_tail(LOG_TAIL_LINES)))
    return report
