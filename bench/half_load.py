"""Holds at a paced rate against one server of a chosen durability: p50/p99 and when the slow
requests came.

``bench/http_bench.py`` measures the hold p99 at half load against the ``full`` server only.
This runs the same paced client (``http_bench.paced_run``: holds sent on a schedule over
``PACED_CONNECTIONS`` connections, latency counted from each request's scheduled time) against
a server of ``--durability full|normal|off`` (and ``--group-commit-interval-s``, the server's
default unless given), ``--rounds`` times, and prints each round's p50/p99, the journal groups
the server committed, the CPU time the host stole from this VM meanwhile (``steal`` in
``/proc/stat``: the host's own work for the guest's fsyncs shows there) and the bursts of slow
requests (over ``--slow-ms``; slow requests less than 50 ms apart are one burst), to tell a
steady tail from periodic stalls:

    .venv/bin/python bench/half_load.py [--durability full] [--group-commit-interval-s S]
        [--rate 4000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sqlite3
import statistics
import tempfile
from pathlib import Path

import http_bench as hb

USERS = 800


def bursts(latencies_s: list[float], rate: float, slow_ms: float) -> list[tuple[float, int, float]]:
    """``(start s, slow requests, max ms)`` of each burst of requests slower than ``slow_ms``,
    by scheduled time."""
    out: list[list[float]] = []
    for k, latency in enumerate(latencies_s):
        ms = latency * 1000
        if ms <= slow_ms:
            continue
        at = k / rate
        if out and at - out[-1][1] < 0.05:
            out[-1][1], out[-1][2], out[-1][3] = at, out[-1][2] + 1, max(out[-1][3], ms)
        else:
            out.append([at, at, 1, ms])
    return [(b[0], int(b[2]), b[3]) for b in out]


def stolen_ms() -> float:
    """CPU time the host has taken from this machine's cores since boot (ms, all cores)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()  # cpu user nice system idle iowait irq softirq steal ...
    return int(fields[8]) * 1000 / os.sysconf("SC_CLK_TCK")


def groups(db: Path) -> int:
    """Journal groups in the store (the server's group commits; a snapshot compacts them)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM journal_groups").fetchone()[0])
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durability", choices=("full", "normal", "off"), default="full")
    parser.add_argument(
        "--group-commit-interval-s", type=float, help="the server's (default: its default)"
    )
    parser.add_argument("--rate", type=float, default=4000.0, help="holds per second (4000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per round (5)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slow-ms", type=float, default=5.0, help="a slow request (5 ms)")
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    with tempfile.TemporaryDirectory(prefix="boxoffice-half-load-") as tmp:
        server = hb.boxoffice_server(
            Path(tmp), args.durability, group_commit_interval_s=args.group_commit_interval_s
        )
        db = Path(tmp) / f"store-{args.durability}.db"
        with hb.running(server), concurrent.futures.ProcessPoolExecutor(1) as pool:
            drop = hb.setup(server.port, USERS)
            for round_ in range(args.rounds):
                requests = hb.hold_requests(drop, server.port, USERS + round_ * count, count)
                groups_before, stolen_before = groups(db), stolen_ms()
                latencies, statuses, _, _ = pool.submit(
                    hb.paced_run, server.port, requests, args.rate, hb.PACED_CONNECTIONS
                ).result()
                stolen, committed = stolen_ms() - stolen_before, groups(db) - groups_before
                ordered = sorted(latencies)
                p99 = ordered[int(0.99 * (len(ordered) - 1))] * 1000
                print(
                    f"{args.durability} round {round_ + 1}: {count} holds at {args.rate:.0f}/s, "
                    f"p50 {statistics.median(latencies) * 1000:.2f} ms, p99 {p99:.2f} ms, "
                    f"non-201 {sum(1 for s in statuses if s != 201)}, {committed} groups, "
                    f"{stolen:.0f} ms stolen"
                )
                for at, slow, worst in bursts(latencies, args.rate, args.slow_ms):
                    print(f"  at {at:6.3f} s: {slow} over {args.slow_ms} ms, max {worst:.1f} ms")


if __name__ == "__main__":
    main()
