"""Testing support: a real boxoffice server as a child process, request bodies, and (in
submodules) seeding helpers and the pytest plugin.

- :mod:`boxoffice_api.testing.plugin`: the pytest plugin, registered by the ``pytest11`` entry
  point, so any project that installs boxoffice gets the fixtures ``boxoffice_engine``,
  ``boxoffice_app`` and ``boxoffice_server`` without a conftest (docs/testing.md). It lives in
  the HTTP service's package because the engine package (``boxoffice``) never imports it.
- :mod:`boxoffice_api.testing.harness`: what those fixtures return, httpx-based helpers that
  seed a server (a concert in one call, a funded user, an ACTIVE queue token) and move its test
  clock.

A real boxoffice server for tests and benchmarks: a child process on a free loopback port.

:class:`ServerProcess` starts ``boxoffice serve`` (or any command that takes ``--port N`` and
answers HTTP on 127.0.0.1), waits until its readiness path answers 200, and stops it by its own
process id: SIGTERM (a clean shutdown, the store's last snapshot) or SIGKILL (a crash). It is
also a context manager::

    from boxoffice_api.testing import ServerProcess, server_env

    with ServerProcess(log=tmp / "server.log", db=tmp / "store.db",
                       env=server_env(admin_key=KEY)) as server:
        httpx.get(server.url + "/healthz")

:func:`running` starts several at once. Nothing here imports the server itself (only the
standard library, and httpx to wait for the server), so a test process stays light and the
server runs exactly as deployed. Every address is on the loopback interface.

:func:`concert_body` builds the body of ``POST /v1/admin/concerts`` (one schedule of one
section by default), for tests, benchmarks and ``boxoffice drop``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "HOST",
    "ServerError",
    "ServerProcess",
    "concert_body",
    "free_port",
    "running",
    "section",
    "serve_command",
    "server_env",
]

HOST = "127.0.0.1"
"""Every server here listens on the loopback interface only."""

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.05


class ServerError(RuntimeError):
    """The server exited or did not answer in time; the message ends with its output's tail."""


def free_port(host: str = HOST) -> int:
    """A TCP port free on ``host`` right now (the kernel picks it; another process may take it
    before the server binds it, which is rare enough for tests)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def server_env(
    base: Mapping[str, str] | None = None,
    /,
    *,
    password_hash_profile: str = "cheapest",
    **settings: str,
) -> dict[str, str]:
    """The environment of a server child: ``base`` (default ``os.environ``) without any
    ``BOXOFFICE_*`` variable, then ``BOXOFFICE_<NAME>=value`` for every setting given, e.g.
    ``server_env(admin_key="...", log_level="warning")``.

    ``password_hash_profile`` defaults to ``cheapest`` (argon2id with test parameters), so a
    test or benchmark that signs many users up does not spend its time hashing.
    """
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith("BOXOFFICE_")}
    env["BOXOFFICE_PASSWORD_HASH_PROFILE"] = password_hash_profile
    env |= {f"BOXOFFICE_{name.upper()}": value for name, value in settings.items()}
    return env


def serve_command(db: Path | str, *args: str) -> list[str]:
    """``boxoffice serve --db DB ARGS...`` run by this Python interpreter (the launcher adds
    ``--port``)."""
    return [sys.executable, "-m", "boxoffice.cli", "serve", "--db", str(db), *args]


@dataclass
class ServerProcess:
    """One server child process on ``HOST:port``; its output (stdout and stderr) goes to ``log``.

    Attributes:
        log: the file the server's output is appended to.
        db: the SQLite store of ``boxoffice serve`` (used when ``command`` is None).
        env: the child's environment (see :func:`server_env`).
        command: the program and its arguments before ``--port N``; None runs
            :func:`serve_command` on ``db``.
        name: what errors call the server.
        ready_path: the path that answers 200 once the server is ready.
        port: the TCP port (default: a free one).
        preexec: called in the child before the program starts (e.g. to set rlimits).
        cwd: the child's working directory (default: this process's).
        proc: the running child, once started.
    """

    log: Path
    db: Path | None = None
    env: dict[str, str] = field(default_factory=server_env)
    command: list[str] | None = None
    name: str = "boxoffice serve"
    ready_path: str = "/healthz"
    port: int = field(default_factory=free_port)
    preexec: Callable[[], None] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's base URL, ``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """The same as :attr:`url` (httpx's name for it)."""
        return self.url

    @property
    def pid(self) -> int | None:
        """The child's process id, None before it started."""
        return None if self.proc is None else self.proc.pid

    def argv(self) -> list[str]:
        """The full command line of the child."""
        if self.command is not None:
            program = list(self.command)
        elif self.db is not None:
            program = serve_command(self.db)
        else:
            raise ValueError("ServerProcess needs a command or a db")
        return [*program, "--port", str(self.port)]

    def launch(self) -> ServerProcess:
        """Starts the child without waiting for it (see :meth:`wait_ready`); returns self."""
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.argv(),
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=self.preexec,
                cwd=self.cwd,
            )
        return self

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> ServerProcess:
        """Waits until ``ready_path`` answers 200; returns self.

        Raises:
            ServerError: the child exited, or did not answer within ``timeout_s`` seconds (it
                is then killed).
        """
        import httpx  # here, not above: the drop command imports this module on every start

        if self.proc is None:
            raise ServerError(f"{self.name} was not launched")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return self
            time.sleep(_POLL_S)
        self.kill()
        raise ServerError(f"{self.name} did not start in {timeout_s:g} s:\n{self.tail()}")

    def start(self, timeout_s: float = START_TIMEOUT_S) -> ServerProcess:
        """:meth:`launch`, then :meth:`wait_ready`; returns self."""
        return self.launch().wait_ready(timeout_s)

    def running(self) -> bool:
        """Whether the child was started and has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        """Sends ``signum`` to the child, if it is running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (uvicorn shuts down, the store takes its last snapshot); SIGKILL if the child
        is still there after ``timeout_s`` seconds. Does nothing if it is not running."""
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last snapshot (a crash). Waits for the child to go."""
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def cpu_s(self) -> float:
        """The child's user + system CPU seconds so far, all threads (Linux ``/proc``; 0 when
        unknown)."""
        if self.proc is None:
            return 0.0
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's output."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> ServerProcess:
        return self if self.running() else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def running(
    *servers: ServerProcess, timeout_s: float = START_TIMEOUT_S
) -> Iterator[Sequence[ServerProcess]]:
    """Launches the servers together, waits until each is ready, and stops them all on leaving,
    on success or failure; yields them."""
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready(timeout_s)
        yield servers
    finally:
        for server in servers:
            server.stop()


# --- request bodies ------------------------------------------------------------------------

DEFAULT_STARTS_AT = "2030-01-01T19:00:00Z"


def section(
    name: str = "A",
    rows: int = 2,
    seats_per_row: int = 5,
    grade: str = "VIP",
    price: int = 100_000,
) -> dict[str, Any]:
    """One section of a seat map as the admin API takes it: ``rows`` x ``seats_per_row`` seats
    of ``grade`` at ``price`` won each (default 2 x 5 VIP at 100,000 won)."""
    return {
        "name": name,
        "rows": rows,
        "seats_per_row": seats_per_row,
        "grade": grade,
        "price": price,
    }


def concert_body(
    *,
    title: str = "Test Concert",
    artist: str = "Tester",
    venue: str = "Hall",
    starts_at: Sequence[object] = (DEFAULT_STARTS_AT,),
    sections: Sequence[Mapping[str, Any]] | None = None,
    **sale: Any,
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/admin/concerts``: one schedule per ``starts_at`` (RFC 3339
    strings; anything else is sent as given, to test refusals), each with ``sections``
    (default one :func:`section`), and the keywords left as the sale settings (e.g.
    ``queue_capacity=10, hold_ttl_s=300``; none given: the server's defaults)."""
    seat_map = [dict(s) for s in sections] if sections is not None else [section()]
    return {
        "title": title,
        "artist": artist,
        "venue": venue,
        "schedules": [{"starts_at": at, "sections": seat_map} for at in starts_at],
        "sale": sale,
    }
