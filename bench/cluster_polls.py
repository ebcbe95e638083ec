"""Queue polls at full speed: the embedded server, and a one-machine cluster with 1 and 2 workers.

Part of ``bench/cluster_bench.py`` (its ``poll`` rows), or alone:

    .venv/bin/python bench/cluster_polls.py [--users N] [--duration S] [--connections C]

For each deployment: a concert with one ACTIVE place and ``--users`` fans in its line (all
WAITING but the first, as in a drop's peak), then ``wrk`` (``bench/wrk/status.lua``, one
thread) polls their tokens in turn for ``--duration`` seconds after a warm-up run of the same
length (a cluster's workers answer a WAITING token's poll from its concert's queue digest, by
the join sequence in the token's claims, from its first poll on; each sends the token's touch
at most once per half abandon timeout). Reported:
polls/s, p50/p99 and the server CPU per poll (the embedded process, or the sum over the
workers), and the ratio 2 workers / 1 worker.

Everything shares this machine: wrk, the workers, and in a cluster 3 nats-servers and
2 replicas. With 2 cores, 2 workers can at best get the cores wrk leaves them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import http_bench as hb
from common import Row, print_rows, ratio, write_json

from boxoffice_api import testing

SETUP_ENV = testing.server_env(
    password_hash_queue_max="100000",
    password_hash_per_client_max="100000",
    access_log="false",
    log_level="warning",
)


@dataclass
class Deployment:
    """A running server or cluster: its URL, admin key and the pids whose CPU is counted."""

    name: str
    url: str
    admin_key: str
    pids: list[int]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def cpu_s(self) -> float:
        """User + system CPU seconds so far of every counted process (Linux ``/proc``)."""
        total = 0.0
        for pid in self.pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


async def _line(port: int, admin_key: str, users: int) -> tuple[int, list[hb.User]]:
    api = hb.Client(port, hb.SETUP_CONNECTIONS)
    try:
        body = testing.concert_body(
            title="poll bench", queue_capacity=1, abandon_timeout_s=3600, session_ttl_s=3 * 3600
        )
        concert = await api.call(
            "POST", "/v1/admin/concerts", (201,), {"X-Admin-Key": admin_key}, body
        )
        cid = int(concert["id"])

        async def fan(i: int) -> hb.User:
            cred = {"email": f"poller{i}@example.com", "password": hb.PASSWORD}
            user = await api.call("POST", "/v1/users", (201,), None, cred)
            token = (await api.call("POST", "/v1/auth/token", (200,), None, cred))["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            joined = await api.call("POST", f"/v1/concerts/{cid}/queue", (201,), auth)
            return hb.User(int(user["id"]), token, joined["queue_token"])

        first = await fan(0)  # the one ACTIVE place; everyone after waits
        line = list(await asyncio.gather(*(fan(i) for i in range(1, users + 1))))
        del first
        return cid, line
    finally:
        api.close()


def measure(
    deployment: Deployment, tmp: Path, users: int, duration_s: float, connections: int
) -> Row:
    cid, line = asyncio.run(_line(deployment.port, deployment.admin_key, users))
    path = tmp / f"users-{deployment.name.replace(' ', '-').replace(',', '')}.txt"
    path.write_text("".join(f"{u.id} {u.access} {u.queue} 0\n" for u in line))
    env = {"BENCH_USERS": str(path), "BENCH_CONCERT": str(cid)}
    hb.wrk(deployment, "status", duration_s, connections, env)  # type: ignore[arg-type]  # warm-up
    load = hb.wrk(deployment, "status", duration_s, connections, env)  # type: ignore[arg-type]
    if load.non_2xx:
        raise hb.BenchError(f"{deployment.name}: {load.non_2xx} polls failed: {load.statuses}")
    return Row(
        "cluster",
        f"queue polls, {users} WAITING fans (wrk, {connections} connections)",
        deployment.name,
        round(load.rate, 1),
        "req/s",
        {
            "p50_ms": round(load.p50_ms, 3),
            "p99_ms": round(load.p99_ms, 3),
            "server_cpu_us_per_poll": round(1000 * load.cpu_ms_per_req, 1),
            "requests": load.requests,
        },
    )


def embedded(tmp: Path) -> tuple[Deployment, subprocess.Popen[bytes]]:
    port = testing.free_port()
    admin_key = hb.ADMIN_KEY
    env = SETUP_ENV | {"BOXOFFICE_ADMIN_KEY": admin_key, "BOXOFFICE_JWT_SECRET": hb.JWT_SECRET}
    with (tmp / "embedded.log").open("wb") as server_log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "boxoffice.cli", "serve", "--port", str(port),
             "--db", str(tmp / "polls.db")],
            env=env, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    from boxoffice_api.cluster.processes import stop_pid, wait_healthy

    try:
        wait_healthy(url)
    except TimeoutError:
        stop_pid(proc.pid)
        raise hb.BenchError((tmp / "embedded.log").read_text()[-2000:]) from None
    return Deployment("embedded", url, admin_key, [proc.pid]), proc


def cluster_up(tmp: Path, workers: int) -> Deployment:
    directory = tmp / f"polls-cluster{workers}"
    up = subprocess.run(
        [sys.executable, "-m", "boxoffice.cli", "cluster", "up", "--dir", str(directory),
         "--workers", str(workers), "--port", str(testing.free_port())],
        env=SETUP_ENV, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if not (directory / "cluster.json").exists():
        raise hb.BenchError(f"cluster up failed: {up.stdout}{up.stderr}")
    record = json.loads((directory / "cluster.json").read_text())
    name = f"cluster, {workers} worker{'s' if workers > 1 else ''}"
    deployment = Deployment(
        name, record["url"], record["admin_key"], [int(w["pid"]) for w in record["workers"]]
    )
    if up.returncode != 0:
        cluster_down(directory)
        raise hb.BenchError(f"cluster up failed: {up.stdout}{up.stderr}")
    return deployment


def cluster_down(directory: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "boxoffice.cli", "cluster", "down", "--dir", str(directory)],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip


def poll_rows(
    tmp: Path, users: int, duration_s: float, connections: int, quick: bool = False
) -> list[Row]:
    """The rows described in the module docstring (``quick``: the cluster with 2 workers only,
    to show the path works)."""
    rows: list[Row] = []
    if not quick:
        deployment, proc = embedded(tmp)
        try:
            rows.append(measure(deployment, tmp, users, duration_s, connections))
        finally:
            from boxoffice_api.cluster.processes import stop_pid

            stop_pid(proc.pid)
    by_workers: dict[int, Row] = {}
    for workers in (2,) if quick else (1, 2):
        deployment = cluster_up(tmp, workers)
        try:
            by_workers[workers] = measure(deployment, tmp, users, duration_s, connections)
        finally:
            cluster_down(tmp / f"polls-cluster{workers}")
        rows.append(by_workers[workers])
    if 1 in by_workers and 2 in by_workers:
        rows.append(
            ratio(
                "cluster",
                "queue polls: 2 workers / 1 worker",
                by_workers[2],
                by_workers[1],
                target=1.6,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=400, help="WAITING fans polled in turn (400)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run (8)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--quick", action="store_true", help="2 s, the 2-worker cluster only")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="boxoffice-poll-bench-") as tmp:
        rows = poll_rows(
            Path(tmp),
            args.users,
            2.0 if args.quick else args.duration,
            args.connections,
            args.quick,
        )
    print_rows(rows)
    if args.json:
        write_json(rows, args.json)


if __name__ == "__main__":
    main()
