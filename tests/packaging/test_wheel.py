"""The wheel of ``make wheel`` as a user without a compiler, Abseil or SQLite headers installs it:
``pip install <wheel>[server]`` into a fresh virtual environment, run with ``LD_LIBRARY_PATH``
empty, never from this source tree.

- the README's engine tour (a concert, join, hold, pay), then the durable store reopened;
- ``_core`` resolves Abseil to the copies grafted into the wheel (``boxoffice.libs``), and SQLite
  to the very library Python's own ``sqlite3`` module uses: two SQLite copies in one process
  break each other's file locks, and a ``sqlite3`` connection closed on the store deletes the
  engine's write-ahead log under it (acknowledged writes lost on reopen);
- ``boxoffice serve --demo`` from the wheel's ``server`` extra answers ``/healthz`` and shuts
  down cleanly.

The wheel is ``$BOXOFFICE_WHEEL``, or the one ``make wheel`` left in ``dist/``
(``make wheel-test`` builds it, then runs this module).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from boxoffice_api.testing import ServerProcess, server_env

ROOT = Path(__file__).resolve().parents[2]

# The README's tour, run by the fresh environment's interpreter (never imported here).
TOUR = Path(__file__).with_name("readme_tour.py")


def _wheel() -> Path:
    given = os.environ.get("BOXOFFICE_WHEEL")
    if given:
        return Path(given)
    found = sorted(ROOT.glob("dist/boxoffice-*-manylinux_*.whl"))
    if len(found) != 1:
        pytest.fail(f"expected one manylinux wheel in dist/, found {found}: run `make wheel`")
    return found[0]


def _env() -> dict[str, str]:
    """This process's environment, without anything that would point the child at this source
    tree or its virtual environment, and with no extra library directories."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["LD_LIBRARY_PATH"] = ""
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel and its ``server`` extra installed."""
    wheel = _wheel()
    assert re.search(r"-manylinux_\d+_\d+_\w+\.whl$", wheel.name), wheel.name
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, env=_env())
    subprocess.run(
        [str(root / "bin" / "pip"), "install", "-q", f"{wheel}[server]"],
        check=True,
        env=_env(),
    )
    return root


def _core_path(venv: Path) -> Path:
    (core,) = venv.glob("lib/python*/site-packages/boxoffice/_core*.so")
    return core


def test_readme_tour_and_reopened_store(venv: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [str(venv / "bin" / "python"), str(TOUR)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    tour = json.loads(out.stdout.splitlines()[-1])
    assert Path(tour["module"]).is_relative_to(venv), tour["module"]
    assert tour["status"].endswith("PENDING")
    assert (tour["seats"], tour["amount"]) == (2, 330_000)
    assert tour["refused"] == ["INSUFFICIENT_BALANCE", 409]
    assert tour["paid"] == 330_000
    assert tour["balance"] == tour["reopened"] == 500_000 - 330_000 + 1_000
    # One SQLite in the process: the engine's is the standard library's.
    assert len(tour["sqlite_files"]) == 1, tour["sqlite_files"]


def _ldd(library: Path) -> dict[str, str]:
    """``ldd`` of ``library`` with no extra library directories: needed name → resolved path."""
    out = subprocess.run(
        ["ldd", str(library)], env=_env(), capture_output=True, text=True, check=True
    ).stdout
    resolved = {}
    for line in out.splitlines():
        name, arrow, rest = line.strip().partition(" => ")
        if arrow:
            resolved[name] = rest.rsplit(" (", 1)[0]
    return resolved


def test_core_needs_no_system_abseil(venv: Path) -> None:
    needed = _ldd(_core_path(venv))
    assert "not found" not in needed.values(), needed
    grafted = [p for n, p in needed.items() if n.startswith("libabsl_")]
    assert grafted, needed  # the core links Abseil's status, strings, containers, ...
    libs = next(venv.glob("lib/python*/site-packages/boxoffice.libs"))
    for path in grafted:
        assert Path(path).resolve().parent == libs.resolve(), path
    # SQLite is the system's shared one, the library Python's sqlite3 module loads.
    spec = importlib.util.find_spec("_sqlite3")  # the extension module behind sqlite3
    assert spec is not None and spec.origin is not None
    python_sqlite = {n: p for n, p in _ldd(Path(spec.origin)).items() if "sqlite" in n}
    core_sqlite = {n: p for n, p in needed.items() if "sqlite" in n}
    assert core_sqlite == python_sqlite, (core_sqlite, python_sqlite)


@pytest.fixture
def served(venv: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    """``boxoffice serve --demo`` of the fresh environment (stopped by its pid after)."""
    env = server_env(_env(), admin_key=secrets.token_hex(24), log_level="warning")
    server = ServerProcess(
        log=tmp_path / "server.log",
        command=[str(venv / "bin" / "boxoffice"), "serve", "--demo", "--db", "store.db"],
        env=env,
        cwd=tmp_path,
    )
    with server:
        yield server


def test_serve_demo_from_the_server_extra(served: ServerProcess) -> None:
    health = httpx.get(served.url + "/healthz", timeout=5).json()
    assert health["status"] == "ok" and health["concerts"] == 1, health
    served.stop()
    assert served.proc is not None
    # uvicorn exits by the signal it shut down for, once the shutdown is complete.
    assert served.proc.returncode in (0, -signal.SIGTERM), served.tail()
    log = served.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, served.tail()
