"""``boxoffice replica`` and ``boxoffice cluster up|status|down`` (entry-point group
``boxoffice.commands``, like ``serve``).

``boxoffice replica --cluster URLS --shard NAME --dir PATH [--name N]`` runs one engine replica
(:mod:`.replica`) until SIGTERM or SIGINT, then takes a last local snapshot.

``boxoffice cluster up --dir D [--nats 3] [--replicas 2] [--workers 2] [--host H] [--port P]
[--demo]`` runs a whole cluster on this machine for development and tests: the nats-servers on
loopback, the shard's stream (R3 with three servers or more, else R1), the buckets, the
replicas, the HTTP workers (sharing the port, with secrets generated for the cluster); it waits
until every replica reports and ``/healthz`` answers, prints every component's pid and ports,
and writes them (and the secrets, mode 0600) to ``D/cluster.json``.
``boxoffice cluster status --dir D`` shows each component, the stream leader and each replica's
applied sequence and lag; ``boxoffice cluster down --dir D`` stops them all by pid.

This module imports only the standard library when it is loaded; NATS and the engine are
imported when a command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from ..cli import SERVER_EXTRA_HINT

SHARD_DEFAULT = "main"


def _urls(text: str) -> list[str]:
    urls = [u.strip() for u in text.split(",") if u.strip()]
    if not urls:
        raise argparse.ArgumentTypeError("give at least one NATS URL (nats://host:port,...)")
    return urls


def _replica(args: argparse.Namespace) -> int:
    try:
        from .replica import Replica, ReplicaOptions
    except ImportError as exc:
        print(
            f"boxoffice replica needs the server extra ({exc.name}): {SERVER_EXTRA_HINT}",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    options = ReplicaOptions(
        urls=args.cluster,
        shard=args.shard,
        directory=Path(args.dir),
        name=args.name or f"{socket.gethostname()}-{Path(args.dir).resolve().name}",
        tick_s=args.tick_s,
        snapshot_every_s=args.snapshot_every_s,
        trim_margin=args.trim_margin,
        digest_every_s=args.digest_every_s,
    )
    replica = Replica(options)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, replica.stop)
        await replica.run()

    asyncio.run(main())
    return 0


def add_replica(subparsers: Any) -> argparse.ArgumentParser:
    """Registers ``replica`` on an ``argparse`` subparsers object (entry point
    ``boxoffice.commands:replica``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replica", help="run an engine replica of a shard's command log"
    )
    parser.add_argument(
        "--cluster",
        type=_urls,
        required=True,
        metavar="URLS",
        help="NATS server URLs, comma-separated",
    )
    parser.add_argument("--shard", default=SHARD_DEFAULT, help="the shard (default main)")
    parser.add_argument("--dir", required=True, help="the replica's directory (snapshots)")
    parser.add_argument("--name", help="unique per shard (default host-dirname)")
    parser.add_argument(
        "--tick-s", type=float, default=0.1, help="period of the offered ADVANCE commands (s)"
    )
    parser.add_argument(
        "--snapshot-every-s", type=float, default=30.0, help="period of snapshots (s)"
    )
    parser.add_argument(
        "--digest-every-s",
        type=float,
        default=1.0,
        help="period of the queue digests workers answer polls from (s; 0 = none)",
    )
    parser.add_argument(
        "--trim-margin",
        type=int,
        default=10_000,
        help="messages kept in the stream behind a published snapshot",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.set_defaults(run=_replica)
    return parser


# --- boxoffice cluster up | status | down ----------------------------------------------------

CLUSTER_FILE = "cluster.json"


async def _wait_replicas(urls: list[str], shard: str, names: list[str], timeout_s: float) -> None:
    from .status import replica_statuses

    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        statuses = await replica_statuses(urls, shard)
        if all(name in statuses for name in names):
            return
        if asyncio.get_running_loop().time() > deadline:
            missing = [n for n in names if n not in statuses]
            raise TimeoutError(f"replicas did not report within {timeout_s} s: {missing}")
        await asyncio.sleep(0.2)


def _cluster_up(args: argparse.Namespace) -> int:
    import secrets

    from .log import ensure_meta, ensure_shard
    from .nats import NatsCluster
    from .processes import start_replica, wait_healthy, wait_listening

    directory = Path(args.dir).resolve()
    record_path = directory / CLUSTER_FILE
    if record_path.exists():
        print(
            f"a cluster is recorded in {record_path}; `boxoffice cluster down --dir "
            f"{args.dir}` first",
            file=sys.stderr,
        )
        return 1
    directory.mkdir(parents=True, exist_ok=True)
    nats_cluster = NatsCluster(directory / "nats", size=args.nats, host=args.host)
    nats_cluster.start()
    record: dict[str, Any] = {
        "shard": args.shard,
        "nats": nats_cluster.to_json(),
        "urls": nats_cluster.urls,
        "replicas": [],
        "workers": [],
    }
    try:

        async def set_up() -> None:
            import nats
            import nats.errors

            nc = await nats.connect(servers=nats_cluster.urls)
            deadline = asyncio.get_running_loop().time() + args.timeout_s
            try:
                js = nc.jetstream()
                while True:  # a cluster just started may still elect its meta leader
                    try:
                        await ensure_shard(js, args.shard, replicas=min(3, args.nats))
                        await ensure_meta(js, secrets.randbits(63))
                        return
                    except nats.errors.Error:
                        if asyncio.get_running_loop().time() > deadline:
                            raise
                        await asyncio.sleep(0.25)
            finally:
                await nc.close()

        asyncio.run(set_up())
        for i in range(1, args.replicas + 1):
            record["replicas"].append(
                start_replica(directory, nats_cluster.urls, args.shard, f"replica-{i}")
            )
        _write_record(record_path, record)
        asyncio.run(
            _wait_replicas(
                nats_cluster.urls,
                args.shard,
                [r["name"] for r in record["replicas"]],
                args.timeout_s,
            )
        )
        if args.workers > 0:
            _start_workers(args, directory, record)
            _write_record(record_path, record)
            wait_healthy(record["url"], args.timeout_s)
            # One worker answering is not all of them: each must have started and listen.
            workers = [int(w["pid"]) for w in record["workers"]]
            wait_listening(int(record["url"].rsplit(":", 1)[1]), workers, args.timeout_s)
        if args.demo:
            asyncio.run(_load_demo(nats_cluster.urls, args.shard))
    except BaseException:
        _stop_recorded(record)
        record_path.unlink(missing_ok=True)
        raise
    print(f"cluster up in {directory} (shard {args.shard})")
    for server in record["nats"]["servers"]:
        print(f"  nats {server['name']:<10} pid {server['pid']:<8} {server['url']}")
    for replica in record["replicas"]:
        print(f"  replica {replica['name']:<7} pid {replica['pid']:<8} {replica['dir']}")
    for worker in record["workers"]:
        print(f"  worker {worker['name']:<8} pid {worker['pid']:<8} {record['url']}")
    print(f"  written to {record_path}")
    if record["workers"]:
        print(f"  admin key: boxoffice admin-key --cluster-dir {args.dir}")
    if record["workers"]:
        print(f"HTTP API at {record['url']} (docs at {record['url']}/docs)")
    return 0


def _write_record(path: Path, record: dict[str, Any]) -> None:
    """Writes ``cluster.json`` readable by its owner only (it holds the secrets)."""
    import json
    import os

    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(record, indent=2))
    os.replace(tmp, path)


def _start_workers(args: argparse.Namespace, directory: Path, record: dict[str, Any]) -> None:
    """Starts ``args.workers`` ``boxoffice serve --cluster`` processes sharing one port, with
    secrets generated for this cluster (kept in the record)."""
    import os
    import secrets
    import subprocess

    record["jwt_secret"] = secrets.token_urlsafe(48)
    record["admin_key"] = secrets.token_urlsafe(32)
    port = args.port
    record["url"] = f"http://{args.host}:{port}"
    env = dict(os.environ)
    env.update(
        BOXOFFICE_JWT_SECRET=record["jwt_secret"],
        BOXOFFICE_ADMIN_KEY=record["admin_key"],
        BOXOFFICE_LOG_LEVEL="warning",
    )
    for i in range(1, args.workers + 1):
        name = f"worker-{i}"
        command = [
            sys.executable, "-m", "boxoffice.cli", "serve",
            "--cluster", ",".join(record["urls"]), "--shard", args.shard,
            "--host", args.host, "--port", str(port), "--reuse-port",
        ]  # fmt: skip
        with open(directory / f"{name}.log", "ab") as log_file:
            process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
        record["workers"].append({"name": name, "pid": process.pid, "command": command})


async def _load_demo(urls: list[str], shard: str) -> None:
    from ..demo import load_into
    from .worker import ClusterBackend

    backend = await ClusterBackend.connect(urls, shard)
    try:
        await load_into(backend.engine_api)
    finally:
        await backend.close()


def _stop_recorded(record: dict[str, Any]) -> None:
    from .nats import NatsCluster
    from .processes import stop_pid

    for component in record.get("workers", []) + record.get("replicas", []):
        stop_pid(int(component["pid"]))
    if "nats" in record:
        NatsCluster.from_json(record["nats"]).stop()


def _load_record(directory: str) -> dict[str, Any] | None:
    import json

    path = Path(directory) / CLUSTER_FILE
    if not path.exists():
        print(f"no cluster recorded in {path}", file=sys.stderr)
        return None
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def _cluster_down(args: argparse.Namespace) -> int:
    record = _load_record(args.dir)
    if record is None:
        return 1
    _stop_recorded(record)
    (Path(args.dir) / CLUSTER_FILE).unlink()
    print(f"cluster in {args.dir} stopped")
    return 0


def _cluster_status(args: argparse.Namespace) -> int:
    import json

    from .status import cluster_status

    record = _load_record(args.dir)
    if record is None:
        return 1
    status = asyncio.run(cluster_status(record))
    if args.json:
        print(json.dumps(status, indent=2))
        return 0 if status["healthy"] else 1
    print(
        f"shard {status['shard']}: stream {status['stream']} last sequence "
        f"{status['last_seq']}, leader {status['leader']}"
    )
    for server in status["nats"]:
        print(
            f"  nats {server['name']:<10} pid {server['pid']:<8} "
            f"{'up' if server['alive'] else 'DOWN'}"
        )
    for replica in status["replicas"]:
        print(
            f"  replica {replica['name']:<7} pid {replica['pid']:<8} "
            f"{'up' if replica['alive'] else 'DOWN':<5} applied {replica['applied_seq']} "
            f"lag {replica['lag']}"
        )
    return 0 if status["healthy"] else 1


def add_cluster(subparsers: Any) -> argparse.ArgumentParser:
    """Registers ``cluster up|status|down`` (entry point ``boxoffice.commands:cluster``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "cluster", help="a whole cluster on this machine (development, tests)"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start nats-servers and replicas; write DIR/cluster.json")
    up.add_argument("--dir", required=True, help="where every component keeps its files")
    up.add_argument("--nats", type=int, default=3, help="nats-servers (3: an R3 stream)")
    up.add_argument("--replicas", type=int, default=2, help="engine replicas")
    up.add_argument("--shard", default=SHARD_DEFAULT)
    up.add_argument("--host", default="127.0.0.1", help="interface of every component")
    up.add_argument("--workers", type=int, default=2, help="HTTP workers sharing --port")
    up.add_argument("--port", type=int, default=8000, help="the workers' port")
    up.add_argument("--demo", action="store_true", help="load the demo concert")
    up.add_argument("--timeout-s", type=float, default=60.0, help="wait for each step (s)")
    up.set_defaults(run=_cluster_up)
    status = actions.add_parser("status", help="components, stream leader, replica lag")
    status.add_argument("--dir", required=True)
    status.add_argument("--json", action="store_true", help="print it as JSON")
    status.set_defaults(run=_cluster_status)
    down = actions.add_parser("down", help="stop every component recorded in DIR/cluster.json")
    down.add_argument("--dir", required=True)
    down.set_defaults(run=_cluster_down)
    return parser
