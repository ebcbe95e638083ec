"""Shared by the benchmark programs in ``bench/``: one result row format, one JSON output.

Every benchmark program prints its own table and, given ``--json PATH``, writes its rows
there; ``bench/run.py`` runs them all (``make bench``), prints one table and writes
``bench/results/<date>.json``. A row is one measurement of one system on one workload:

- ``suite``: the group (``core``, ``journal``, ``http``, ``queue``, ``seats``, ``memory``);
- ``name``: what was measured, e.g. ``"hold (POST /v1/reservations)"``;
- ``system``: ``"boxoffice"`` or the baseline's name (``"redis"``, ``"postgresql"``,
  ``"bare fastapi"``);
- ``value`` and ``unit``: the headline number (``"ops/s"``, ``"commands/s"``, ``"s"``,
  ``"B/seat"``, ...);
- ``extra``: further numbers (``p50_ms``, ``p99_ms``, ``ops``, ``seconds``, ...).

Comparisons are rows too (``unit="x"``), computed from two rows of the same run, with the
target of docs/benchmarks.md (``target``, and ``higher_is_better``) when it sets one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One measurement (see the module docstring for the fields)."""

    suite: str
    name: str
    system: str
    value: float
    unit: str
    extra: dict[str, Any] = field(default_factory=dict)
    target: float | None = None
    higher_is_better: bool = True

    @property
    def met(self) -> bool | None:
        """Whether the target is met (None when the row has no target)."""
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


def ratio(suite: str, name: str, ours: Row, theirs: Row, *, target: float | None = None) -> Row:
    """``ours.value / theirs.value`` as a comparison row (both rows higher-is-better)."""
    value = ours.value / theirs.value if theirs.value else float("inf")
    return Row(
        suite,
        name,
        f"{ours.system} / {theirs.system}",
        value,
        "x",
        {"ours": ours.value, "theirs": theirs.value, "unit": ours.unit},
        target,
    )


def write_json(rows: list[Row], path: str | Path) -> None:
    """Writes ``rows`` as a JSON list (each row with its ``met`` flag)."""
    out = [asdict(r) | {"met": r.met} for r in rows]
    Path(path).write_text(json.dumps(out, indent=2) + "\n")


def read_json(path: str | Path) -> list[Row]:
    """Reads rows written by :func:`write_json`."""
    rows = []
    for item in json.loads(Path(path).read_text()):
        item.pop("met", None)
        rows.append(Row(**item))
    return rows


def print_rows(rows: list[Row]) -> None:
    """Prints ``rows`` as an aligned table (targets shown as met / MISSED)."""
    header = f"{'suite':<8} {'measurement':<44} {'system':<36} {'value':>14} {'unit':<12} target"
    print(header)
    print("-" * len(header))
    for r in rows:
        if r.target is None:
            target = ""
        else:
            op = ">=" if r.higher_is_better else "<="
            target = f"{op} {r.target:g}  {'met' if r.met else 'MISSED'}"
        value = f"{r.value:,.2f}" if abs(r.value) < 100 else f"{r.value:,.0f}"
        name, system = r.name[:44], r.system[:36]
        print(f"{r.suite:<8} {name:<44} {system:<36} {value:>14} {r.unit:<12} {target}")
