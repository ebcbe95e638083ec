"""Every benchmark in one run (``make bench``): one table, and ``bench/results/<date>.json``.

Runs, in this order, each in its own process so one's memory and threads never weigh on the
next:

1. ``bench/workload.py``: the standard drop-1M workload (generated once from its seed and
   cached in ``build/workload/``);
2. ``build/bench/core_bench`` (C++, Release): commands/s single-threaded, bytes per seat and
   per WAITING user;
3. ``bench/core_python.py``: ``apply_batch`` and one Python call per command;
4. ``bench/journal_bench.py``: durable commands/s per durability mode, recovery of 1 M and
   10 M commands;
5. ``bench/baselines.py``: our admission queue against a Redis sorted-set waiting room, and
   our seat holds against PostgreSQL row locking (real servers started on loopback);
6. ``bench/http_bench.py``: the HTTP endpoints on one worker under ``wrk``, against a bare
   FastAPI endpoint.
7. ``bench/cluster_bench.py``: the scale-out command log on real nats-servers: append
   commands/s at R1 and R3 by batch size, and the failover time after a leader SIGKILL.

Every comparison is a ratio of two rows of this same run. ``--smoke`` runs every part at a
tiny size (``make test`` does, to keep them working) and writes ``build/bench-smoke.json``
instead of a dated result.

    .venv/bin/python bench/run.py [--smoke] [--only core,python,journal,baselines,http,cluster]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Row, print_rows, read_json

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PARTS = ("core", "python", "journal", "baselines", "http", "cluster")


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Runs ``cmd`` in ``bench/``, streaming its output; fails the whole run if it fails."""
    print(f"\n$ {' '.join(cmd)}", flush=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=BENCH, text=True, stdout=subprocess.PIPE, **kwargs)
    print(proc.stdout, end="", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed with exit status {proc.returncode}")
    print(f"({time.perf_counter() - started:.1f} s)", flush=True)
    return proc


def core_rows(smoke: bool) -> list[Row]:
    """Builds and runs the C++ benchmark; its last line is ``RESULT {json}``."""
    build = ROOT / "build" / "bench"
    run(["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         "-DBOXOFFICE_BUILD_BENCH=ON"], stderr=subprocess.STDOUT)  # fmt: skip
    run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2), "--target",
         "core_bench"], stderr=subprocess.STDOUT)  # fmt: skip
    name = "drop-20000-2000-1" if smoke else "drop-1m"
    # Twice each, the best kept: the first engine also pays for the OS handing the process
    # fresh pages, which the second reuses.
    proc = run(
        [str(build / "core_bench"), str(ROOT / "build" / "workload" / name), "--repeat", "2"]
    )
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    r = json.loads(line.removeprefix("RESULT "))
    n = int(r["commands"])
    return [
        Row("core", "C++ ApplyBatch, standard drop", "boxoffice", r["batch_per_s"],
            "commands/s", {"commands": n}, target=5_000_000),
        Row("core", "C++ one call per command, standard drop", "boxoffice",
            r["single_per_s"], "commands/s", {"commands": n}),
        Row("memory", "per seat (200,000-seat schedule)", "boxoffice", r["bytes_per_seat"],
            "B/seat", target=32, higher_is_better=False),
        Row("memory", "per WAITING user (1 M in one queue)", "boxoffice",
            r["bytes_per_queued_user"], "B/user", target=48, higher_is_better=False),
    ]  # fmt: skip


def script_rows(script: str, smoke: bool, tmp: Path) -> list[Row]:
    out = tmp / f"{script}.json"
    cmd = [sys.executable, script, "--json", str(out)] + (["--quick"] if smoke else [])
    run(cmd)
    return read_json(out)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "commit": commit,
        "load_average_at_start": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (make test)")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    args = parser.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    started = time.perf_counter()
    info = machine()
    if args.smoke:
        run([sys.executable, "workload.py", "--users", "20000", "--seats", "2000"])
    else:
        run([sys.executable, "workload.py"])
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="boxoffice-bench-") as tmp:
        for part in parts:
            if part == "core":
                rows += core_rows(args.smoke)
            else:
                script = {
                    "python": "core_python.py",
                    "journal": "journal_bench.py",
                    "baselines": "baselines.py",
                    "http": "http_bench.py",
                    "cluster": "cluster_bench.py",
                }[part]
                rows += script_rows(script, args.smoke, Path(tmp))
    seconds = time.perf_counter() - started
    print(f"\nboxoffice benchmarks ({'smoke' if args.smoke else 'full'}), {seconds:.0f} s")
    print(f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB", end="")
    print(f"; commit {info['commit']}")
    print()
    print_rows(rows)
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "seconds": round(seconds, 1),
        "machine": info,
        "rows": [json.loads(json.dumps(r.__dict__)) | {"met": r.met} for r in rows],
    }
    if args.smoke:
        path = ROOT / "build" / "bench-smoke.json"
    else:
        path = BENCH / "results" / f"{dt.date.today().isoformat()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
