"""Starting and stopping the cluster's own processes by pid (replicas, workers).

``boxoffice cluster up`` starts them in their own sessions and records their pids in
``cluster.json``; ``down`` (another process) stops them by pid: SIGTERM, then SIGKILL after a
grace period. Tests use the same functions.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie child of this process is reaped: gone)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, grace_s: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Sends ``sig`` to ``pid``, then SIGKILL after ``grace_s``; returns once it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.02)


def start_replica(
    directory: Path, urls: list[str], shard: str, name: str, *extra: str
) -> dict[str, Any]:
    """Starts ``boxoffice replica`` in its own session, its files and log in
    ``directory/name``; returns ``{"name", "pid", "dir", "command"}`` (``extra``: more flags)."""
    replica_dir = directory / name
    replica_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "boxoffice.cli", "replica",
        "--cluster", ",".join(urls), "--shard", shard, "--dir", str(replica_dir),
        "--name", name, *extra,
    ]  # fmt: skip
    with open(replica_dir / "replica.log", "ab") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    return {"name": name, "pid": process.pid, "dir": str(replica_dir), "command": command}


def run_workers(count: int, overrides: dict[str, Any]) -> int:
    """Runs ``count`` ``boxoffice serve`` worker processes sharing one port (SO_REUSEPORT)
    until SIGTERM or SIGINT, which is passed on to each; a worker that exits is not replaced
    (a supervisor such as systemd restarts the whole). Returns the first non-zero status.

    Args:
        overrides: the settings of every worker (``serve``'s command-line flags).
    """
    flags: list[str] = []
    for name, value in overrides.items():
        if value is True:
            flags.append(f"--{name.replace('_', '-')}")
        elif value is not None and value is not False:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    command = [sys.executable, "-m", "boxoffice.cli", "serve", *flags, "--reuse-port"]
    children = [subprocess.Popen(command) for _ in range(count)]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    statuses = [child.wait() for child in children]
    return next((s for s in statuses if s != 0), 0)


def listening_pids(port: int, pids: list[int]) -> list[int]:
    """Those of ``pids`` that hold a TCP socket listening on ``port`` (Linux: the LISTEN
    sockets of ``/proc/net/tcp{,6}``, matched by inode with each process's open files).
    Processes sharing a port with ``SO_REUSEPORT`` each hold their own."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    listening = []
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    listening.append(pid)
                    break
    return listening


def wait_listening(port: int, pids: list[int], timeout_s: float = 60.0) -> None:
    """Returns once every process of ``pids`` listens on ``port`` (a worker binds its port
    only once it has started up).

    Raises:
        RuntimeError: one of them exited (it could not start).
        TimeoutError: not all listen within ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while len(listening_pids(port, pids)) < len(pids):
        if dead := [pid for pid in pids if not pid_alive(pid)]:
            raise RuntimeError(f"processes {dead} exited before listening on port {port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all of {pids} listen on port {port} after {timeout_s} s")
        time.sleep(0.2)


def wait_healthy(url: str, timeout_s: float = 60.0) -> None:
    """Returns once ``url``/healthz answers 200 (polled every 0.2 s).

    Raises:
        TimeoutError: no 200 within ``timeout_s`` seconds.
    """
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url}/healthz did not answer 200 within {timeout_s} s")
        time.sleep(0.2)
