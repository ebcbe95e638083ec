"""``boxoffice replica`` and ``boxoffice cluster up|status|down`` (entry-point group
``boxoffice.commands``, like ``serve``).

``boxoffice replica --cluster URLS --shard NAME --dir PATH [--name N]`` runs one engine replica
(:mod:`.replica`) until SIGTERM or SIGINT, then takes a last local snapshot.

``boxoffice cluster up --dir D [--nats 3] [--replicas 2]`` runs a whole cluster on this machine
for development and tests: the nats-servers on loopback, the shard's stream (R3 with three
servers or more, else R1), the buckets, the replicas; it waits until every replica reports,
prints every component's pid and ports, and writes them to ``D/cluster.json``.
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
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.set_defaults(run=_replica)
    return parser
