"""The durable journal on the standard workload: durable commands/s per mode, and recovery.

- Durable commands/s: the first ``--durable-commands`` commands of the workload
  (``bench/workload.py``; default 5,000,000) go through ``Engine.apply_batch`` on a new
  store (one SQLite file in a temporary directory, no automatic snapshot), 8,192 commands
  per call, each call followed by ``wait_durable`` (its journal group committed with the
  mode's fsync policy: one group commit per call). For ``full``, ``normal`` and ``off``.
- Recovery: a child process journals the first N commands (1 M and 10 M) with no
  snapshot, waits until they are durable and exits without closing (as a crash would);
  the parent times ``Engine(path)``: opening the file and replaying every record through
  ``Engine::Replay``. The recovered ``state_hash`` must equal an in-memory replay of the
  same commands. Also reports the store's bytes per record.

    .venv/bin/python bench/journal_bench.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Row, print_rows, write_json
from workload import Workload, load

BATCH = 8_192

CHILD = """
import os, sys
sys.path.insert(0, {bench!r})
from workload import load
w = load({users}, {seats})
engine, _ = w.new_engine({path!r}, durability="off", snapshot_every_records=0)
w.replay(engine, w.commands[:{n}])
engine.wait_durable()
print(engine.last_seq, flush=True)
os._exit(0)  # no close, no snapshot: the next open replays the whole journal
"""


def store_bytes(path: Path) -> int:
    """The SQLite file plus its WAL."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def durable_rate(w: Workload, mode: str, n: int, workdir: Path) -> Row:
    path = workdir / f"durable-{mode}.db"
    engine, _ = w.new_engine(path, durability=mode, snapshot_every_records=0)
    cmds = w.commands[:n]
    start = time.perf_counter()
    for i in range(0, n, BATCH):
        engine.apply_batch(cmds[i : i + BATCH])
        engine.wait_durable()
    seconds = time.perf_counter() - start
    engine.close()
    return Row(
        "journal",
        f"durable commands/s, durability={mode}",
        "boxoffice",
        n / seconds,
        "commands/s",
        {"commands": n, "seconds": round(seconds, 3), "commands_per_group": BATCH},
        target=500_000 if mode == "full" else None,
    )


def recovery(w: Workload, n: int, workdir: Path, *, target: float | None) -> list[Row]:
    import boxoffice as bo

    path = workdir / f"recovery-{n}.db"
    code = CHILD.format(
        bench=str(Path(__file__).parent),
        users=w.spec["users"],
        seats=w.spec["seats"],
        path=str(path),
        n=n,
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    records = int(out.stdout.split()[-1])
    size = store_bytes(path)
    start = time.perf_counter()
    engine = bo.Engine(path, snapshot_every_records=0)
    seconds = time.perf_counter() - start
    replayed = engine.recovery["replayed"]
    if replayed != records:
        raise SystemExit(f"recovery replayed {replayed} records, the journal has {records}")
    expected, _ = w.new_engine()
    w.replay(expected, w.commands[:n])
    if engine.state_hash() != expected.state_hash():
        raise SystemExit(f"recovery of {n:,} commands: state_hash differs from the replay")
    engine.close()
    label = f"{n / 1e6:g} M"
    return [
        Row(
            "journal",
            f"recovery of {label} journaled commands",
            "boxoffice",
            seconds,
            "s",
            {"records": replayed, "records_per_s": replayed / seconds},
            target=target,
            higher_is_better=False,
        ),
        Row("journal", f"store size, {label} commands", "boxoffice", size / records, "B/record"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 20,000-user drop")
    parser.add_argument("--durable-commands", type=int, default=5_000_000)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    w = load(20_000, 2_000) if args.quick else load()
    total = len(w.commands)
    n = min(args.durable_commands, total)
    print(f"workload {w.name}: {total:,} commands; durable runs: first {n:,}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="boxoffice-journal-") as tmp:
        workdir = Path(tmp)
        for mode in ("full", "normal", "off"):
            rows.append(durable_rate(w, mode, n, workdir))
        sizes = [min(total, 100_000)] if args.quick else [1_000_000, min(total, 10_000_000)]
        for size in sizes:
            target = 3.0 * size / 10_000_000 if size == 10_000_000 else None
            rows += recovery(w, size, workdir, target=target)
    print_rows(rows)
    if args.json:
        write_json(rows, args.json)


if __name__ == "__main__":
    main()
