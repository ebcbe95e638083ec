"""The ``boxoffice`` command line finds the HTTP service's commands (``serve``, ``admin-key``,
``drop``) through the ``boxoffice.commands`` entry points, and a command whose package or
dependencies are missing says so in one line instead of a traceback."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from boxoffice import cli

ADMIN_KEY = secrets.token_urlsafe(32)  # the server refuses a guessable key


def subcommands(parser: object) -> set[str]:
    actions = getattr(parser, "_subparsers")._group_actions  # noqa: B009
    return set(actions[0].choices)


def test_the_service_contributes_its_commands_through_entry_points() -> None:
    contributed = {ep.name: ep.value for ep in cli.contributed_commands()}
    assert contributed == {
        "admin-key": "boxoffice_api.cli:add_admin_key",
        "cluster": "boxoffice_api.cluster.cli:add_cluster",
        "drop": "boxoffice_api.drop:add_parser",
        "replica": "boxoffice_api.cluster.cli:add_replica",
        "serve": "boxoffice_api.cli:add_serve",
    }
    assert subcommands(cli.build_parser()) == {
        "simulate",
        "serve",
        "admin-key",
        "drop",
        "replica",
        "cluster",
    }


def test_without_contributions_only_the_engine_command_is_there(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = cli.build_parser(contributed=[])
    assert subcommands(parser) == {"simulate"}
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    with pytest.raises(SystemExit) as exited:  # unknown options stay an error elsewhere
        cli.main(["simulate", "--no-such-option"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_a_command_whose_package_is_missing_explains_itself(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ghost = EntryPoint("ghost", "boxoffice_ghost_package.cli:add", cli.COMMANDS_GROUP)
    parser = cli.build_parser(contributed=[ghost])
    assert "ghost" in subcommands(parser)
    assert "ghost" in parser.format_help()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main(["ghost", "--port", "1"]) == cli.UNAVAILABLE_STATUS
    err = capsys.readouterr().err
    assert "boxoffice ghost is not available" in err
    assert "boxoffice_ghost_package is missing" in err
    assert "Traceback" not in err


def test_serve_without_the_server_extra_is_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "boxoffice_api.server", None)  # as if uvicorn were absent
    assert cli.main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "boxoffice serve needs the server extra" in err
    assert "pip install 'boxoffice[server]'" in err


def run_boxoffice(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed ``boxoffice`` command (its entry points read from the package metadata)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    return subprocess.run(
        [sys.executable, "-m", "boxoffice.cli", *argv],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_admin_key_runs_from_the_boxoffice_command(tmp_path: Path) -> None:
    done = run_boxoffice("admin-key", BOXOFFICE_ADMIN_KEY=ADMIN_KEY)
    assert (done.returncode, done.stdout.strip()) == (0, ADMIN_KEY), done.stderr
    missing = tmp_path / "nothing.db"
    done = run_boxoffice("admin-key", "--db", str(missing))
    assert done.returncode == 1
    assert f"no store at {missing}" in done.stderr
