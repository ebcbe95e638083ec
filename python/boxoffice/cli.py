"""The ``boxoffice`` command line.

``boxoffice simulate [--users N] [--seats N] [--seed S] [--json]`` runs a ticket drop through
the engine in virtual time (:mod:`boxoffice.sim`); it is the engine package's own command.

Every other command comes from another installed package, found through the entry-point group
:data:`COMMANDS_GROUP` (``boxoffice.commands``): each entry point names a function
``register(subparsers) -> argparse.ArgumentParser`` that adds one subcommand whose defaults set
``run=f`` (``f(args)`` answers the exit status). The HTTP service package ``boxoffice_api``
contributes ``serve``, ``admin-key`` and ``drop`` this way (see its ``pyproject.toml`` entry
points), so the engine package never imports it: the layers point one way, from the HTTP
service to the engine.

A contributed command whose package cannot be imported still appears in ``--help``; running it
prints what is missing and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

COMMANDS_GROUP = "boxoffice.commands"
"""The entry-point group other packages declare their ``boxoffice`` subcommands in."""

UNAVAILABLE_STATUS = 2
"""Exit status of a contributed command whose package could not be loaded."""


class Subparsers(Protocol):
    """What ``argparse.ArgumentParser.add_subparsers()`` answers (the part a command uses)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


Register = Callable[[Subparsers], argparse.ArgumentParser]
"""An entry point's target: adds one subcommand (with ``set_defaults(run=...)``)."""


def contributed_commands() -> list[EntryPoint]:
    """The entry points of :data:`COMMANDS_GROUP`, in name order (the ``--help`` order)."""
    return sorted(entry_points(group=COMMANDS_GROUP), key=lambda ep: ep.name)


def _unavailable(commands: Subparsers, ep: EntryPoint, exc: Exception) -> None:
    """Adds ``ep.name`` as a command that explains why it cannot run."""
    package = ep.dist.name if ep.dist is not None else ep.module.split(".")[0]
    missing = getattr(exc, "name", None)
    reason = f"{missing} is missing" if missing else f"{type(exc).__name__}: {exc}"
    message = (
        f"boxoffice {ep.name} is not available: it comes from {ep.value} (package {package}), "
        f"which could not be loaded ({reason}); install {package} with the extra that "
        "provides this command"
    )

    def run(_: argparse.Namespace) -> int:
        print(message, file=sys.stderr)
        return UNAVAILABLE_STATUS

    p = commands.add_parser(ep.name, help=f"(unavailable: {reason})", add_help=False)
    # Whatever options follow, the answer is this message (see main: unknown options are
    # accepted for an unavailable command).
    p.set_defaults(run=run, unavailable=True)


def build_parser(contributed: Iterable[EntryPoint] | None = None) -> argparse.ArgumentParser:
    """The ``boxoffice`` parser: ``simulate`` and every contributed command.

    Args:
        contributed: the entry points to load; ``None`` reads :data:`COMMANDS_GROUP` from the
            installed packages' metadata.
    """
    from . import __version__, simulate_cli

    parser = argparse.ArgumentParser(prog="boxoffice", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    simulate_cli.add_parser(commands)
    for ep in contributed_commands() if contributed is None else contributed:
        try:
            register: Register = ep.load()
        except Exception as exc:  # an optional package or one of its dependencies is absent
            _unavailable(commands, ep, exc)
            continue
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``boxoffice`` script; returns the exit status."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "unavailable", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
