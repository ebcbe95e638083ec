"""The ``boxoffice`` command line.

``boxoffice serve [--host] [--port] [--db PATH] [--demo] [--queue-length-max N]
[--max-concurrent-requests N]`` runs the HTTP service (uvicorn, one process: the engine lives in
it and the store admits one writer). Flags override the ``BOXOFFICE_*`` environment variables.
``boxoffice simulate [--users N] [--seats N] [--seed S] [--json]`` runs a ticket drop through
the engine in virtual time (:mod:`boxoffice.sim`). ``boxoffice drop --url URL [--users N]
[--json]`` runs a live drop of N virtual users against a server and checks its consistency
(:mod:`boxoffice.drop`). ``boxoffice admin-key [--db PATH]`` prints the store's admin key
(generated on first start when ``BOXOFFICE_ADMIN_KEY`` is unset).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _serve(args: argparse.Namespace) -> int:
    try:
        from boxoffice_api.server import serve
    except ImportError as exc:  # the server's dependencies are an extra
        print(
            f"boxoffice serve needs the server extra ({exc.name} is missing): "
            "pip install 'boxoffice[server]'",
            file=sys.stderr,
        )
        return 2
    overrides = {
        name: value
        for name, value in {
            "host": args.host,
            "port": args.port,
            "db": args.db,
            "demo": True if args.demo else None,
            "durability": args.durability,
            "log_level": args.log_level,
            "queue_length_max": args.queue_length_max,
            "max_concurrent_requests": args.max_concurrent_requests,
        }.items()
        if value is not None
    }
    return serve(overrides)


def _admin_key(args: argparse.Namespace) -> int:
    from boxoffice_api import Settings
    from boxoffice_api.accounts import AccountStore

    settings = Settings(**({"db": args.db} if args.db else {}))
    if settings.admin_key is not None:
        print(settings.admin_key.get_secret_value())
        return 0
    if not settings.db.exists():
        print(f"no store at {settings.db}", file=sys.stderr)
        return 1
    accounts = AccountStore(settings.db)
    try:
        print(accounts.secret("admin_key"))
    finally:
        accounts.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``boxoffice`` script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="boxoffice", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8000)")
    serve.add_argument("--db", help="the SQLite store (default var/boxoffice.db)")
    serve.add_argument("--demo", action="store_true", help="load a demo concert if empty")
    serve.add_argument("--durability", choices=["full", "normal", "off"])
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
    serve.set_defaults(run=_serve)
    from . import drop, simulate_cli

    simulate_cli.add_parser(commands)
    drop.add_parser(commands)
    key = commands.add_parser("admin-key", help="print the X-Admin-Key of a store")
    key.add_argument("--db", help="the SQLite store (default var/boxoffice.db)")
    key.set_defaults(run=_admin_key)
    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
