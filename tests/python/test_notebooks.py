"""The analysts' notebooks (notebooks/*.ipynb) run headless, small, and draw their figures.

Every notebook is executed with nbclient on the ``python3`` kernel that ipykernel's pip
install puts in the environment (``<prefix>/share/jupyter/kernels``), at a small scale set by
the ``BOXOFFICE_NB_*`` variables its ``parameters`` cell reads. The committed files must carry
no outputs.
"""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import boxoffice

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
KERNEL = "python3"
CELL_TIMEOUT_S = 120

SMALL_SCALE = {
    "MPLBACKEND": "Agg",
    "BOXOFFICE_NB_USERS": "5000",
    "BOXOFFICE_NB_SEATS": "500",
    "BOXOFFICE_NB_SWEEP_USERS": "2000",
    "BOXOFFICE_NB_SWEEP_SEATS": "200",
    "BOXOFFICE_NB_REPLAY_USERS": "60",  # replay.ipynb records a drop of a real server
    "BOXOFFICE_NB_REPLAY_SEATS": "30",
    "BOXOFFICE_NB_REPLAY_CAPACITY": "8",
}

FIGURE_CELLS = {
    "ticket_drop.ipynb": ("queue", "active", "fill", "wait", "expiry", "revenue"),
    "policy_sweep.ipynb": ("sellout", "gaveup", "fairness", "expired"),
    "replay.ipynb": ("drop", "rerun"),
}
"""Cells (by id) that must each draw a figure; other notebooks must draw at least one."""


def run(nb: nbformat.NotebookNode, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Executes ``nb`` in place at the small scale; a failing cell raises CellExecutionError."""
    for name, value in SMALL_SCALE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BOXOFFICE_NB_STORE", raising=False)  # replay.ipynb records its own
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=60,
        resources={"metadata": {"path": str(REPO / "notebooks")}},
    )
    return client.execute()


def outputs(cell: Any, mime: str) -> list[Any]:
    """The ``mime`` data of a cell's outputs (``text/plain`` includes printed text)."""
    found = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream" and mime == "text/plain":
            found.append(out.text)
        elif mime in out.get("data", {}):
            found.append(out.data[mime])
    return found


def cell(nb: nbformat.NotebookNode, cell_id: str) -> Any:
    return next(c for c in nb.cells if c.get("id") == cell_id)


def test_there_are_notebooks():
    names = {path.name for path in NOTEBOOKS}
    assert set(FIGURE_CELLS) <= names


def test_the_kernel_is_this_environments_python(monkeypatch):
    """nbclient starts the environment's own python3 kernelspec (installed by ipykernel's
    wheel under sys.prefix), and the kernel runs this very interpreter, so it imports the
    boxoffice under test."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = Path(KernelSpecManager().find_kernel_specs()[KERNEL]).resolve()
    assert spec_dir.is_relative_to(Path(sys.prefix).resolve()), spec_dir
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": KERNEL, "display_name": "Python 3"}}
    )
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import sys, boxoffice\nprint(sys.executable)\nprint(sys.prefix)\n"
            "print(boxoffice.__file__)"
        )
    )
    printed = "".join(outputs(run(nb, monkeypatch).cells[0], "text/plain")).splitlines()
    executable, prefix, package = printed
    assert executable == sys.executable
    assert Path(prefix).resolve() == Path(sys.prefix).resolve()
    assert Path(package).resolve() == Path(boxoffice.__file__).resolve()
    venv = REPO / ".venv"
    if venv.is_dir() and Path(sys.prefix).resolve() == venv.resolve():  # as `make test` runs
        assert Path(executable).parent.resolve() == (venv / "bin").resolve()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == KERNEL
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell: parameters"
    assert "os.environ" in code[0].source
    for c in code:
        assert c.outputs == [], f"cell {c.get('id')} has outputs"
        assert c.execution_count is None, f"cell {c.get('id')} has an execution count"
        # The public API only: `import boxoffice`, `boxoffice.sim`.
        assert not re.search(r"boxoffice\.(_|sim\.(runner|models|summary)\b)", c.source)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_small_and_draws_its_figures(path, monkeypatch):
    nb = run(nbformat.read(path, as_version=4), monkeypatch)
    for c in nb.cells:
        if c.cell_type == "code":
            errors = [o for o in c.outputs if o.output_type == "error"]
            assert not errors, f"cell {c.get('id')}: {errors}"
            assert c.execution_count is not None
    figures = FIGURE_CELLS.get(path.name)
    if figures is None:
        assert any(outputs(c, "image/png") for c in nb.cells if c.cell_type == "code")
    for cell_id in figures or ():
        assert outputs(cell(nb, cell_id), "image/png"), f"cell {cell_id} drew no figure"

    if path.name == "ticket_drop.ipynb":
        table = "".join(outputs(cell(nb, "summary"), "text/plain"))
        assert re.search(r"^oversold\s+0$", table, re.M), table
        assert re.search(r"^consistent\s+True$", table, re.M), table
        assert re.search(r"^users\s+5000$", table, re.M), table
        assert re.search(r"^seats\s+500$", table, re.M), table
        assert re.search(r"consistency\s+ok", table), table
    elif path.name == "policy_sweep.ipynb":
        (html,) = outputs(cell(nb, "table"), "text/html")
        for column in ("capacity", "hold_ttl_s", "admission", "sell_out_s", "gave_up"):
            assert f"<th>{column}</th>" in html
        for column in ("fairness", "expired_holds", "oversold", "consistent"):
            assert f"<th>{column}</th>" in html
        rows = html.split("<tbody>")[1].count("<tr>")
        assert rows == 3 * 3 * 2, html  # the default grid
    elif path.name == "replay.ipynb":
        printed = "".join(outputs(cell(nb, "replay"), "text/plain"))
        assert "hash check: match" in printed, printed
        (html,) = outputs(cell(nb, "rerun"), "text/html")
        for column in ("capacity", "sold", "sell_out_s", "oversold", "consistent"):
            assert f"<th>{column}</th>" in html
        rows = html.split("<tbody>")[1].count("<tr>")
        assert rows == 3, html  # the recorded capacity and two others
        assert "<td>True</td>" in html and "<td>False</td>" not in html  # all consistent
