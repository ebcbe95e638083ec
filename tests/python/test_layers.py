"""The layers point one way, read from the source (every import statement, including those inside
functions and ``if TYPE_CHECKING:`` blocks, and ``importlib.import_module("...")`` calls):

- the engine package ``python/boxoffice`` never imports the HTTP service ``boxoffice_api``
  (the service contributes its commands through the ``boxoffice.commands`` entry points);
- the modules of ``boxoffice.sim`` import each other without a cycle (the runner imports the
  summary, never the other way round);
- no test or benchmark module imports a test module (``test_*``): shared helpers live in helper
  modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "python" / "boxoffice"


def module_name(path: Path, root: Path) -> str:
    """``boxoffice.sim.runner`` for ``<root>/boxoffice/sim/runner.py``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, name: str) -> set[str]:
    """Absolute names of every module ``path`` (the module ``name``) imports, anywhere in it.
    ``from x import y`` counts as importing both ``x`` and ``x.y`` (``y`` may be a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module name -> the modules it imports, for every module below ``package_dir``."""
    root = package_dir.parent
    return {
        module_name(path, root): imported_modules(path, module_name(path, root))
        for path in sorted(package_dir.rglob("*.py"))
    }


def find_cycle(graph: dict[str, set[str]], within: str) -> list[str] | None:
    """A cycle of imports among the modules named ``within`` or below it, or None."""
    nodes = {m for m in graph if m == within or m.startswith(within + ".")}
    edges = {m: {t for t in graph[m] if t in nodes and t != m} for m in nodes}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                return [*path[path.index(t) :], t]
            if t not in state and (cycle := visit(t)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(nodes):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_engine_package_never_imports_the_http_service() -> None:
    graph = import_graph(ENGINE)
    assert "boxoffice.cli" in graph and "boxoffice.sim.runner" in graph  # the walk found them
    offenders = {
        module: sorted(t for t in targets if t.split(".")[0] == "boxoffice_api")
        for module, targets in graph.items()
    }
    assert not {m: t for m, t in offenders.items() if t}


def test_the_simulator_modules_import_each_other_one_way() -> None:
    graph = import_graph(ENGINE)
    assert "boxoffice.sim.summary" not in graph["boxoffice.sim.outcomes"]
    assert "boxoffice.sim.runner" not in graph["boxoffice.sim.summary"]
    assert find_cycle(graph, "boxoffice.sim") is None


def test_no_test_or_benchmark_imports_a_test_module() -> None:
    offenders = []
    for folder in (ROOT / "tests", ROOT / "bench"):
        for path in sorted(folder.rglob("*.py")):
            for target in imported_modules(path, path.stem):
                if target.split(".")[-1].startswith("test_"):
                    offenders.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not offenders


@pytest.mark.parametrize(
    ("source", "name", "imports", "cycle"),
    [
        ("from boxoffice_api.server import serve\n", "boxoffice.cli", "boxoffice_api.server", None),
        ("def f():\n    import boxoffice_api\n", "boxoffice.cli", "boxoffice_api", None),
        (
            "import importlib\nimportlib.import_module('boxoffice_api.cli')\n",
            "boxoffice.cli",
            "boxoffice_api.cli",
            None,
        ),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .runner import _Drop\n",
            "boxoffice.sim.summary",
            "boxoffice.sim.runner",
            ["boxoffice.sim.runner", "boxoffice.sim.summary", "boxoffice.sim.runner"],
        ),
        ("from .. import Engine\n", "boxoffice.sim.summary", "boxoffice", None),
    ],
)
def test_the_checks_see_every_kind_of_import(
    tmp_path: Path, source: str, name: str, imports: str, cycle: list[str] | None
) -> None:
    """The checker itself, on planted modules: each way of importing is found (and a summary
    that imports the runner back makes a cycle)."""
    path = tmp_path / "module.py"
    path.write_text(source)
    found = imported_modules(path, name)
    assert imports in found
    graph = {
        "boxoffice.sim.runner": {"boxoffice.sim.summary"},
        "boxoffice.sim.summary": found if name == "boxoffice.sim.summary" else set(),
    }
    assert find_cycle(graph, "boxoffice.sim") == cycle
