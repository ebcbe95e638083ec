"""The ``boxoffice`` subcommands of the HTTP service, registered through the entry-point group
``boxoffice.commands`` (``pyproject.toml``), so the engine package's command line finds them
without importing this package.

``boxoffice serve [--host] [--port] [--db PATH] [--demo] [--test-clock] [--durability MODE]
[--group-commit-interval-s S] [--queue-length-max N] [--max-concurrent-requests N]`` runs the
HTTP service (uvicorn, one process: the engine lives in it and the store admits one writer).
``boxoffice serve --cluster URLS [--workers N]`` runs N stateless workers sharing the port,
serving through the cluster (docs/scale-out.md).
Flags override the ``BOXOFFICE_*`` environment variables.
``boxoffice admin-key [--db PATH] [--cluster-dir D]`` prints the store's admin key (generated on
first start when ``BOXOFFICE_ADMIN_KEY`` is unset), or a one-machine cluster's.
``boxoffice drop`` is registered by :mod:`.drop`.

This module imports only the standard library when it is loaded: the server's dependencies (an
optional extra) are imported when a command runs, and their absence is a one-line message.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

SERVER_EXTRA_HINT = "pip install 'boxoffice[server]'"


def _missing_extra(command: str, exc: ImportError) -> int:
    print(
        f"boxoffice {command} needs the server extra ({exc.name} is missing): {SERVER_EXTRA_HINT}",
        file=sys.stderr,
    )
    return 2


def _serve(args: argparse.Namespace) -> int:
    try:
        from .server import serve
    except ImportError as exc:  # the server's dependencies are an extra
        return _missing_extra("serve", exc)
    overrides = {
        name: value
        for name, value in {
            "host": args.host,
            "port": args.port,
            "db": args.db,
            "demo": True if args.demo else None,
            "test_clock": True if args.test_clock else None,
            "durability": args.durability,
            "group_commit_interval_s": args.group_commit_interval_s,
            "log_level": args.log_level,
            "queue_length_max": args.queue_length_max,
            "max_concurrent_requests": args.max_concurrent_requests,
            "cluster": args.cluster,
            "shard": args.shard,
            "reuse_port": True if args.reuse_port or args.workers > 1 else None,
        }.items()
        if value is not None
    }
    if args.workers > 1:
        from .cluster.processes import run_workers

        return run_workers(args.workers, overrides)
    return serve(overrides)


def _admin_key(args: argparse.Namespace) -> int:
    try:
        from .accounts import AccountStore
        from .settings import Settings
    except ImportError as exc:
        return _missing_extra("admin-key", exc)

    settings = Settings(**({"db": args.db} if args.db else {}))
    if settings.admin_key is not None:
        print(settings.admin_key.get_secret_value())
        return 0
    cluster_record = Path(args.cluster_dir or CLUSTER_DIR_DEFAULT) / "cluster.json"
    # A running one-machine cluster (its record is removed by `cluster down`) is what
    # `make cluster` serves on the default port: its key, unless a store is named.
    if args.cluster_dir or (args.db is None and cluster_record.exists()):
        return _cluster_admin_key(cluster_record)
    if not settings.db.exists():
        print(f"no store at {settings.db}", file=sys.stderr)
        return 1
    accounts = AccountStore(settings.db)
    try:
        print(accounts.secret("admin_key"))
    finally:
        accounts.close()
    return 0


CLUSTER_DIR_DEFAULT = "var/cluster"  # where `make cluster` keeps a one-machine cluster


def _cluster_admin_key(record_path: Path) -> int:
    import json

    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as exc:
        print(f"no cluster record at {record_path}: {exc}", file=sys.stderr)
        return 1
    if "admin_key" not in record:
        print(f"the cluster in {record_path.parent} runs no workers", file=sys.stderr)
        return 1
    print(record["admin_key"])
    return 0


def add_serve(subparsers: Any) -> argparse.ArgumentParser:
    """Registers ``serve`` on an ``argparse`` subparsers object (entry point
    ``boxoffice.commands:serve``); ``run(args)`` answers the exit status (2: bad settings or the
    server extra is missing)."""
    serve: argparse.ArgumentParser = subparsers.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8000)")
    serve.add_argument("--db", help="the SQLite store (default var/boxoffice.db)")
    serve.add_argument("--demo", action="store_true", help="load a demo concert if empty")
    serve.add_argument(
        "--test-clock",
        action="store_true",
        help="test mode: a clock tests move forward (POST /v1/admin/test-clock); only on a "
        "store never served without it (docs/testing.md)",
    )
    serve.add_argument("--durability", choices=["full", "normal", "off"])
    serve.add_argument(
        "--group-commit-interval-s",
        type=float,
        metavar="S",
        help="the shortest time between two journal group commits; writes arriving sooner "
        "share the next fsync (default 0.001; 0: none)",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--queue-length-max",
        type=int,
        metavar="N",
        help="live queue tokens per concert for a new store; beyond, 429 QUEUE_FULL",
    )
    serve.add_argument(
        "--max-concurrent-requests",
        type=int,
        metavar="N",
        help="requests processed at once; beyond, 503 OVERLOADED (default 1024)",
    )
    serve.add_argument(
        "--cluster",
        metavar="URLS",
        help="NATS URLs, comma-separated: serve through the cluster (docs/scale-out.md)",
    )
    serve.add_argument("--shard", help="the cluster shard (default main)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the port (cluster mode; the embedded store has one)",
    )
    serve.add_argument("--reuse-port", action="store_true", help="bind with SO_REUSEPORT")
    serve.set_defaults(run=_serve)
    return serve


def add_admin_key(subparsers: Any) -> argparse.ArgumentParser:
    """Registers ``admin-key`` on an ``argparse`` subparsers object (entry point
    ``boxoffice.commands:admin-key``); ``run(args)`` answers 0, or 1 when there is no store."""
    key: argparse.ArgumentParser = subparsers.add_parser(
        "admin-key", help="print the X-Admin-Key of a store"
    )
    key.add_argument("--db", help="the SQLite store (default var/boxoffice.db)")
    key.add_argument(
        "--cluster-dir",
        help="a cluster's directory (boxoffice cluster up --dir); without --db, a running "
        f"cluster in {CLUSTER_DIR_DEFAULT} comes first",
    )
    key.set_defaults(run=_admin_key)
    return key
