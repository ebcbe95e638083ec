"""``boxoffice cluster up|status|down``: a whole cluster on this machine, stopped by pid."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from boxoffice_api.cluster.processes import listening_pids, pid_alive, stop_pid, wait_listening


def boxoffice(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "boxoffice.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def all_pids(record: dict[str, Any]) -> list[int]:
    pids = [int(s["pid"]) for s in record["nats"]["servers"]]
    return pids + [int(r["pid"]) for r in record["replicas"] + record["workers"]]


def test_up_status_down(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    up = boxoffice("cluster", "up", "--dir", str(directory), "--nats", "3", "--replicas", "2")
    record_path = directory / "cluster.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else None
    try:
        assert up.returncode == 0, up.stderr
        assert record is not None
        assert len(record["nats"]["servers"]) == 3 and len(record["replicas"]) == 2
        for pid in all_pids(record):
            assert pid_alive(pid) and str(pid) in up.stdout
        again = boxoffice("cluster", "up", "--dir", str(directory))
        assert again.returncode == 1 and "cluster down" in again.stderr
        deadline = time.monotonic() + 30
        while True:  # replicas report once a second
            status = boxoffice("cluster", "status", "--dir", str(directory), "--json")
            report = json.loads(status.stdout)
            if status.returncode == 0 and all(
                r["applied_seq"] is not None for r in report["replicas"]
            ):
                break
            assert time.monotonic() < deadline, status.stdout + status.stderr
            time.sleep(0.5)
        assert report["healthy"] and report["leader"] in {"n1", "n2", "n3"}
        assert report["stream"] == "BOXOFFICE_MAIN"
        assert all(r["lag"] is not None and r["lag"] >= 0 for r in report["replicas"])
        stop_pid(int(record["replicas"][0]["pid"]), grace_s=0.0, sig=signal.SIGKILL)
        hurt = boxoffice("cluster", "status", "--dir", str(directory))
        assert hurt.returncode == 1 and "DOWN" in hurt.stdout
        down = boxoffice("cluster", "down", "--dir", str(directory))
        assert down.returncode == 0, down.stderr
        assert not record_path.exists()
        assert not any(pid_alive(pid) for pid in all_pids(record))
        gone = boxoffice("cluster", "status", "--dir", str(directory))
        assert gone.returncode == 1 and "no cluster" in gone.stderr
    finally:
        if record is not None:
            for pid in all_pids(record):
                stop_pid(pid, grace_s=1.0)


def test_listening_pids_finds_the_processes_that_listen_on_a_port() -> None:
    import os
    import socket

    from boxoffice_api.testing import free_port

    port = free_port()
    me, other = os.getpid(), os.getppid()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", port))
        assert listening_pids(port, [me, other]) == []  # bound, not listening yet
        s.listen()
        assert listening_pids(port, [me, other]) == [me]
    assert listening_pids(port, [me]) == []


def test_waiting_for_workers_to_listen_fails_fast_when_one_exits() -> None:
    from boxoffice_api.testing import free_port

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:  # RuntimeError (it exited), not TimeoutError (waited it out)
        wait_listening(free_port(), [gone.pid], timeout_s=30)
    except RuntimeError as exc:
        assert str(gone.pid) in str(exc)
    else:
        raise AssertionError("a process that exited was waited for")
