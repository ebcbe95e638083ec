"""The command log on NATS JetStream: append throughput by batch size, and failover time.

Real ``nats-server`` processes on loopback (``NatsCluster``: ``sync_interval: always``), the
client in this process (one connection, nats-py):

- Append commands/s: one stream at R1 (one server) and R3 (three servers), by batch size and
  by messages in flight: ``--in-flight`` tasks (8 and 64 by default) each append one log
  message after another (``CommandLog.append``, a new message id each) for ``--seconds``, so
  that many messages wait for their quorum at once; a message holds 1, 16, 256 or 1,024 copies
  of a typical encoded command (``STATUS``, 18 bytes). Reports commands/s, messages/s and the
  append latency p50/p99. One append waits milliseconds for its quorum's fsync, so the rate is
  messages in flight / latency until the servers' CPU (or the client's) is spent.
  More rows: the ``Batcher`` under ``--submitters`` concurrent submitters of one command
  each, each waiting for its acknowledgement before the next (the grouping a worker's
  concurrent requests get; its messages in flight are submitters / commands per message),
  first on a stand-in log that acknowledges after 2 ms (what this process can submit at all:
  one task per command), then on each stream.
  The client runs on uvloop, the event loop of ``boxoffice serve`` (``--loop asyncio``: the
  standard one).
- Failover: the R3 stream's leader is SIGKILLed while nothing else is in flight; the time from
  the kill to the first acknowledged append (a new message, retried through the election) is
  measured ``--kills`` times (in between, the killed server is restarted and the stream waited
  for until every copy is current); p50 and max.

- HTTP: one ``boxoffice drop`` (``--users`` virtual users) through the embedded server, then
  through a one-machine cluster (``boxoffice cluster up``: 3 servers, 2 replicas) with 1 and
  with 2 workers: the drop's requests/s, and p50/p99 of polls and holds.
- Polls: queue polls at full speed (wrk) of WAITING fans through the embedded server and a
  one-machine cluster with 1 and 2 workers, which answer them from the queue digest
  (``bench/cluster_polls.py``): polls/s, p50/p99, server CPU per poll, 2 workers / 1 worker.

    .venv/bin/python bench/cluster_bench.py [--quick] [--only log,failover,http,polls] [--users N]
        [--in-flight 8,64] [--submitters 2048,8192] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import cluster_polls
import nats.errors
import nats.js.errors
from common import Row, print_rows, write_json

from boxoffice.commands import encode_command
from boxoffice_api.cluster import frames
from boxoffice_api.cluster import log as command_log
from boxoffice_api.cluster.nats import NatsCluster, stream_leader, stream_replicas_current
from boxoffice_api.cluster.processes import stop_pid, wait_healthy

T = TypeVar("T")
BATCH_SIZES = (1, 16, 256, 1024)
LOG_TARGET_PER_S = 1_000_000.0
"""docs/benchmarks.md: log append >= 1 M commands/s batched at R3 (256 commands a message)."""
COMMAND = encode_command("STATUS", now=1_767_225_600.0, user=123_456, token=987_654)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def append_rate(
    log: command_log.CommandLog, batch: int, appenders: int, seconds: float, run: str
) -> tuple[float, float, list[float]]:
    """(commands/s, messages/s, append latencies in s) of ``appenders`` sequential appenders
    (as many messages in flight)."""
    payload = frames.encode_batch([COMMAND] * batch)
    latencies: list[float] = []
    ids = itertools.count()
    deadline = time.perf_counter() + seconds

    async def appender() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await log.append(payload, f"{run}-{next(ids)}", timeout_s=10.0)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(appender() for _ in range(appenders)))
    elapsed = time.perf_counter() - started
    return len(latencies) * batch / elapsed, len(latencies) / elapsed, latencies


class NoLog:
    """An appender that acknowledges every message 2 ms later without storing it: the
    ``Batcher`` row on it is what one Python process can submit at all."""

    def __init__(self) -> None:
        self.seq = 0

    async def append(self, payload: bytes, msg_id: str, timeout_s: float) -> int:
        await asyncio.sleep(0.002)
        self.seq += 1
        return self.seq


async def batcher_rate(
    log: command_log.Appender, submitters: int, seconds: float
) -> tuple[float, float]:
    """(commands/s, mean commands per message) of ``submitters`` one-command submitters
    (the ``Batcher``'s defaults: up to 1,024 commands a message, 1 ms linger, 8 in flight)."""
    batcher = command_log.Batcher(log)
    done = 0
    deadline = time.perf_counter() + seconds

    async def submitter() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await batcher.submit(COMMAND)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(submitters)))
    elapsed = time.perf_counter() - started
    return done / elapsed, done / max(1, batcher.messages)


async def log_rows(
    cluster: NatsCluster,
    replicas: int,
    in_flight: list[int],
    submitters: list[int],
    seconds: float,
) -> list[Row]:
    """The append rows of one stream at R``replicas``: every batch size at every number of
    messages in flight, then the ``Batcher`` at every number of submitters."""
    nc = await command_log.connect(cluster.urls)
    await command_log.ensure_shard(nc.jetstream(), "bench", replicas)
    await nc.close()
    log = await command_log.CommandLog.connect(cluster.urls, "bench")
    sync = "" if cluster.sync_interval == "always" else f", sync {cluster.sync_interval}"
    rows = []
    try:
        for batch, appenders in itertools.product(BATCH_SIZES, in_flight):
            per_s, messages_per_s, latencies = await append_rate(
                log, batch, appenders, seconds, f"r{replicas}-b{batch}-f{appenders}"
            )
            target = LOG_TARGET_PER_S if replicas == 3 and batch == 256 else None
            rows.append(
                Row(
                    "log",
                    f"append R{replicas}, {batch} cmd/msg, {appenders} in flight{sync}",
                    "nats jetstream",
                    per_s,
                    "commands/s",
                    {
                        "messages_per_s": round(messages_per_s),
                        "in_flight": appenders,
                        "message_bytes": len(frames.encode_batch([COMMAND] * batch)),
                        "p50_ms": round(percentile(latencies, 0.5) * 1e3, 2),
                        "p99_ms": round(percentile(latencies, 0.99) * 1e3, 2),
                        "seconds": seconds,
                    },
                    target=target if appenders == max(in_flight) else None,
                )
            )
        for count in submitters:
            per_s, per_message = await batcher_rate(log, count, seconds)
            rows.append(
                Row(
                    "log",
                    f"Batcher R{replicas}, {count} submitters{sync}",
                    "nats jetstream",
                    per_s,
                    "commands/s",
                    {"commands_per_message": round(per_message, 1), "seconds": seconds},
                )
            )
    finally:
        await log.close()
    return rows


async def no_log_rows(submitters: list[int], seconds: float) -> list[Row]:
    """The ``Batcher`` rows on :class:`NoLog`: the client process's own ceiling."""
    rows = []
    for count in submitters:
        per_s, per_message = await batcher_rate(NoLog(), count, seconds)
        rows.append(
            Row("log", f"Batcher, no log (2 ms acks), {count} submitters", "this process",
                per_s, "commands/s",
                {"commands_per_message": round(per_message, 1), "seconds": seconds})
        )  # fmt: skip
    return rows


def run_on(loop: str, coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs ``coroutine`` on a new ``uvloop`` or standard ``asyncio`` event loop."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


async def whole(log: command_log.CommandLog) -> bool:
    try:
        return await stream_replicas_current(log.js, log.route.stream)
    except (nats.errors.TimeoutError, nats.js.errors.APIError):
        return False


async def failover_times(cluster: NatsCluster, kills: int) -> list[float]:
    """Seconds from the stream leader's SIGKILL to the next acknowledged append, ``kills``
    times."""
    nc = await command_log.connect(cluster.urls)
    await command_log.ensure_shard(nc.jetstream(), "failover", 3)
    await nc.close()
    log = await command_log.CommandLog.connect(cluster.urls, "failover")
    payload = frames.encode_batch([COMMAND])
    times = []
    try:
        for kill in range(kills):
            await log.append(payload, f"warm-{kill}", timeout_s=30.0)
            leader = None
            while leader is None:
                leader = await stream_leader(log.js, log.route.stream)
            started = time.perf_counter()
            await asyncio.to_thread(cluster.kill, leader)
            await log.append(payload, f"after-kill-{kill}", timeout_s=30.0)
            times.append(time.perf_counter() - started)
            print(f"  kill {kill + 1}: {leader} -> first ack after {times[-1]:.2f} s", flush=True)
            await asyncio.to_thread(cluster.restart, leader)
            # The next kill starts from a whole stream: the restarted copy has caught up.
            caught_up_by = time.perf_counter() + 60.0
            while not await whole(log):
                if time.perf_counter() > caught_up_by:
                    raise SystemExit(f"{log.route.stream}: copies not current 60 s after restart")
                await asyncio.sleep(0.05)
    finally:
        await log.close()
    return times


POLL_ROUTE = "GET /v1/concerts/{concert_id}/queue"
HOLD_ROUTE = "POST /v1/reservations"


def drop_over_http(url: str, admin_key: str, users: int) -> dict[str, Any]:
    """``boxoffice drop --json`` against ``url`` (the same Python load generator for every
    deployment, so the rows compare the servers, not the clients)."""
    done = subprocess.run(
        [sys.executable, "-m", "boxoffice.cli", "drop", "--url", url, "--users", str(users),
         "--admin-key", admin_key, "--json", "--seed", "7", "--poll-scale", "0.1"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if done.returncode not in (0, 1):
        raise RuntimeError(f"boxoffice drop failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def embedded_drop(tmp: Path, env: dict[str, str], users: int) -> dict[str, Any]:
    """``boxoffice drop`` against ``boxoffice serve`` (one process, its store in ``tmp``)."""
    from boxoffice_api.testing import free_port

    port = free_port()
    admin_key = secrets.token_urlsafe(32)
    server = subprocess.Popen(
        [sys.executable, "-m", "boxoffice.cli", "serve", "--port", str(port),
         "--db", str(tmp / "embedded.db")],
        env=env | {"BOXOFFICE_ADMIN_KEY": admin_key, "BOXOFFICE_ACCESS_LOG": "false"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        return drop_over_http(url, admin_key, users)
    finally:
        stop_pid(server.pid)


def cluster_drop(tmp: Path, env: dict[str, str], users: int, workers: int) -> dict[str, Any]:
    """``boxoffice drop`` against ``boxoffice cluster up`` with ``workers`` workers."""
    from boxoffice_api.testing import free_port

    directory = tmp / f"cluster{workers}"
    up = subprocess.run(
        [sys.executable, "-m", "boxoffice.cli", "cluster", "up", "--dir", str(directory),
         "--workers", str(workers), "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    try:
        if up.returncode != 0:
            raise RuntimeError(f"cluster up failed: {up.stdout}{up.stderr}")
        record = json.loads((directory / "cluster.json").read_text())
        return drop_over_http(record["url"], record["admin_key"], users)
    finally:
        subprocess.run(
            [sys.executable, "-m", "boxoffice.cli", "cluster", "down", "--dir", str(directory)],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip


def http_rows(tmp: Path, users: int, quick: bool = False) -> list[Row]:
    """One ``boxoffice drop`` through the embedded server, then through a one-machine cluster
    with 1 and with 2 workers: requests/s of the whole drop, p50/p99 of polls and holds.
    ``quick`` (``make test``): the cluster with 2 workers only, to show the path works."""
    env = dict(os.environ, BOXOFFICE_HOLDS_PER_MINUTE="0", BOXOFFICE_LOG_LEVEL="warning")
    deployments: list[tuple[str, dict[str, Any]]] = []
    if not quick:
        deployments.append(("embedded", embedded_drop(tmp, env, users)))
    for workers in (2,) if quick else (1, 2):
        name = f"cluster, {workers} worker{'s' if workers > 1 else ''}"
        deployments.append((name, cluster_drop(tmp, env, users, workers)))
    rows: list[Row] = []
    for system, result in deployments:
        endpoints = {e["route"]: e for e in result["endpoints"]}
        extra: dict[str, Any] = {"users": users, "consistent": result["ok"]}
        for label, route in (("poll", POLL_ROUTE), ("hold", HOLD_ROUTE)):
            e = endpoints.get(route)
            if e is not None:
                extra[f"{label}_p50_ms"] = e["p50_ms"]
                extra[f"{label}_p99_ms"] = e["p99_ms"]
                extra[f"{label}_requests"] = e["requests"]
        rows.append(
            Row("http", f"drop over HTTP ({users} users)", system, result["requests_per_s"],
                "req/s", extra)
        )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, one kill")
    parser.add_argument("--seconds", type=float, help="per append measurement (default 3)")
    parser.add_argument(
        "--only", default="log,failover,http,polls", help="which parts (comma-separated): log "
        "rows, failover times, HTTP drops, poll throughput"
    )  # fmt: skip
    parser.add_argument(
        "--in-flight", default="8,64", help="messages in flight per append row (comma-separated)"
    )
    parser.add_argument(
        "--submitters", default="2048,8192", help="Batcher submitters per row (comma-separated)"
    )
    parser.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="the client's event loop"
    )
    parser.add_argument("--kills", type=int, help="leader kills (default 5; --quick: 1)")
    parser.add_argument(
        "--sync-interval",
        default="always",
        help="JetStream fsync policy of the servers (always; 2m is the server's default)",
    )
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument(
        "--users", type=int, help="virtual users of the HTTP drops (default 600; --quick 40)"
    )
    args = parser.parse_args()
    seconds = args.seconds or (0.3 if args.quick else 3.0)
    kills = args.kills or (1 if args.quick else 5)
    parts = set(args.only.split(","))
    in_flight = [int(n) for n in args.in_flight.split(",")]
    submitters = [int(n) for n in args.submitters.split(",")]
    rows: list[Row] = []
    if "log" in parts:
        rows += run_on(args.loop, no_log_rows(submitters, seconds))
    with tempfile.TemporaryDirectory(prefix="boxoffice-cluster-bench-") as tmp:
        sizes = (1, 3) if "log" in parts else (3,) if "failover" in parts else ()
        for size in sizes:
            with NatsCluster(
                Path(tmp) / f"nats{size}", size=size, sync_interval=args.sync_interval
            ) as cluster:
                if "log" in parts:
                    rows += run_on(
                        args.loop, log_rows(cluster, size, in_flight, submitters, seconds)
                    )
                if size == 3 and "failover" in parts:
                    times = asyncio.run(failover_times(cluster, kills))
                    rows.append(
                        Row(
                            "log",
                            f"failover R3 (leader SIGKILL -> ack), {kills} kills",
                            "nats jetstream",
                            statistics.median(times),
                            "s",
                            {
                                "p50_s": round(statistics.median(times), 2),
                                "max_s": round(max(times), 2),
                                "times_s": [round(t, 2) for t in times],
                            },
                            higher_is_better=False,
                        )
                    )
        if "http" in parts:
            rows += http_rows(Path(tmp), args.users or (40 if args.quick else 600), args.quick)
        if "polls" in parts:
            rows += cluster_polls.poll_rows(
                Path(tmp),
                users=60 if args.quick else 400,
                duration_s=1.0 if args.quick else 8.0,
                connections=32,
                quick=args.quick,
            )
    print_rows(rows)
    if args.json:
        write_json(rows, args.json)


if __name__ == "__main__":
    main()
