"""Durable commands per second, recovery time and journal size per command.

For each durability mode (full, normal, off) the drop of ``bench/drop_python.py`` runs
through ``Engine.apply_batch`` on a store in a temporary directory, waiting for each batch's
journal group to be committed (group commit) before building the next. Then a child process
journals a drop of about 1 M (and, with ``--big``, 10 M) commands with no snapshot and exits
without closing, and the parent times reopening the store (snapshot + replay of the whole
journal) and reports the file size per command.

    .venv/bin/python bench/durability_bench.py [--users N] [--big]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boxoffice as bo

sys.path.insert(0, str(Path(__file__).parent))
from drop_python import run_batches

CHILD = """
import os, sys
sys.path.insert(0, {bench!r})
import boxoffice as bo
from drop_python import run_batches
engine = bo.Engine({path!r}, durability="normal", snapshot_every_records=0)
commands, _, _ = run_batches({users}, 50_000, engine, durable=True)
print(commands, engine.last_seq, flush=True)
os._exit(0)  # no close: the next open replays the whole journal
"""


def store_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def durable_rate(users: int, mode: str, workdir: Path) -> tuple[int, float]:
    path = workdir / f"rate-{mode}.db"
    engine = bo.Engine(path, durability=mode, snapshot_every_records=0)
    commands, seconds, _ = run_batches(users, 50_000, engine, durable=True)
    engine.close()
    return commands, seconds


def recovery(users: int, workdir: Path) -> tuple[int, float, int]:
    path = workdir / f"recovery-{users}.db"
    code = CHILD.format(bench=str(Path(__file__).parent), path=str(path), users=users)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    records = int(out.stdout.split()[1])
    size = store_size(path)
    start = time.perf_counter()
    engine = bo.Engine(path)
    seconds = time.perf_counter() - start
    assert engine.recovery["replayed"] == records, engine.recovery
    engine.check_invariants()
    return records, seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--big", action="store_true", help="also recover ~10 M commands")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print(f"durable drop: {args.users} users, 50000 seats, apply_batch + wait_durable")
        print(f"{'mode':<8} {'commands':>10} {'seconds':>9} {'durable commands/s':>19}")
        for mode in ("full", "normal", "off"):
            commands, seconds = durable_rate(args.users, mode, workdir)
            print(f"{mode:<8} {commands:>10} {seconds:>9.3f} {commands / seconds:>19.0f}")
        print()
        header = ("recovery", "records", "seconds", "records/s", "bytes/record")
        print(f"{header[0]:<10} {header[1]:>10} {header[2]:>9} {header[3]:>11} {header[4]:>13}")
        for users in [args.users] + ([2_000_000] if args.big else []):
            records, seconds, size = recovery(users, workdir)
            print(
                f"{'replay':<10} {records:>10} {seconds:>9.3f} {records / seconds:>11.0f} "
                f"{size / records:>13.1f}"
            )


if __name__ == "__main__":
    main()
