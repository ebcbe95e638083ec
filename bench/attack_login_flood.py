"""A log-in flood against a real ``boxoffice serve``: what a legitimate user sees meanwhile.

The outside attack: 32 concurrent log-ins with made-up emails (each one costs the server a full
argon2id verification against its dummy hash, and no throttle sees a repeated email) took a
legitimate log-in from 87 ms to 2.6 s and ``GET /v1/me`` from 2 ms to 1.6 s. This program
starts its own server on 127.0.0.1 with a temporary store and the real hash profile
(``rfc9106_low_memory`` unless ``--profile``), signs one legitimate user up, then:

1. quiet: times ``--samples`` legitimate log-ins and ``GET /v1/me`` calls;
2. flood: a child process keeps ``--concurrency`` log-ins with random emails in flight for
   ``--duration-s`` seconds while this process times the same calls again;

and prints a table: latency percentiles of both calls, the statuses the flood and the
legitimate calls got, and the server's RSS (now and peak, from ``/proc``). Bounded in
connections and time; the server and the flood are stopped by their pids.

    .venv/bin/python bench/attack_login_flood.py [--concurrency 32] [--duration-s 20]
        [--set password_hash_threads=1 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from http_bench import START_TIMEOUT_S, Server, boxoffice_server

PASSWORD = "flood-bench-legit-passphrase-7"
# Two clients: the attacker and the legitimate user come from different loopback addresses.
FLOOD_ADDRESS = "127.0.0.3"
LEGIT_ADDRESS = "127.0.0.2"


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def start_server(workdir: Path, profile: str, settings: dict[str, str]) -> Server:
    """``boxoffice serve`` as the HTTP benchmark runs it, with the hash profile and the
    hashing pool's defaults (the benchmark's set-up lifts the pool's limits), plus
    ``settings``."""
    server = boxoffice_server(workdir, "full")
    for name in ("BOXOFFICE_PASSWORD_HASH_QUEUE_MAX", "BOXOFFICE_PASSWORD_HASH_PER_CLIENT_MAX"):
        server.env.pop(name, None)
    server.env |= {"BOXOFFICE_PASSWORD_HASH_PROFILE": profile} | settings
    return server.start(START_TIMEOUT_S)


async def flood(url: str, concurrency: int, duration_s: float) -> dict[str, int]:
    """``concurrency`` workers, each logging in with random emails until the time is up."""
    statuses: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + duration_s
    limits = httpx.Limits(max_connections=concurrency)
    transport = httpx.AsyncHTTPTransport(local_address=FLOOD_ADDRESS, limits=limits)
    async with httpx.AsyncClient(base_url=url, timeout=30, transport=transport) as http:

        async def worker() -> None:
            while time.monotonic() < deadline:
                email = f"{uuid.uuid4().hex}@example.com"
                try:
                    r = await http.post(
                        "/v1/auth/token", json={"email": email, "password": uuid.uuid4().hex}
                    )
                    statuses[str(r.status_code)] += 1
                    if r.status_code in (429, 503):  # what a polite attacker would not do
                        await asyncio.sleep(0)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return dict(statuses)


def timed(http: httpx.Client, method: str, path: str, **kw: Any) -> tuple[float, int]:
    start = time.perf_counter()
    r = http.request(method, path, **kw)
    return (time.perf_counter() - start) * 1000, r.status_code


def measure(url: str, email: str, samples: int, until: float | None) -> dict[str, Any]:
    """Alternates a legitimate log-in and 5 ``GET /v1/me``; ``samples`` rounds, or until
    ``until`` (monotonic) when given."""
    login_ms: list[float] = []
    me_ms: list[float] = []
    statuses: collections.Counter[str] = collections.Counter()
    creds = {"email": email, "password": PASSWORD}
    transport = httpx.HTTPTransport(local_address=LEGIT_ADDRESS)
    with httpx.Client(base_url=url, timeout=60, transport=transport) as http:
        token = http.post("/v1/auth/token", json=creds).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        rounds = 0
        while (until is None and rounds < samples) or (
            until is not None and time.monotonic() < until
        ):
            ms, status = timed(http, "POST", "/v1/auth/token", json=creds)
            statuses[f"login {status}"] += 1
            if status == 200:
                login_ms.append(ms)
            for _ in range(5):
                ms, status = timed(http, "GET", "/v1/me", headers=auth)
                statuses[f"me {status}"] += 1
                me_ms.append(ms)
                time.sleep(0.05)
            rounds += 1
    return {"login_ms": login_ms, "me_ms": me_ms, "statuses": dict(statuses)}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def row(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<34} (no successful samples)"
    return (
        f"{name:<34} n={len(values):<4} p50={pct(values, 50):8.1f} ms  "
        f"p90={pct(values, 90):8.1f} ms  max={max(values):8.1f} ms  "
        f"mean={statistics.fmean(values):8.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--samples", type=int, default=10, help="quiet rounds")
    parser.add_argument("--profile", default="rfc9106_low_memory")
    parser.add_argument(
        "--set", dest="env", action="append", default=[], help="a server setting NAME=VALUE"
    )
    parser.add_argument("--flood", metavar="URL", help=argparse.SUPPRESS)  # the child's role
    args = parser.parse_args()
    if not 1 <= args.concurrency <= 256 or not 0 < args.duration_s <= 300:
        parser.error("--concurrency 1..256 and --duration-s up to 300")
    if args.flood:
        print(json.dumps(asyncio.run(flood(args.flood, args.concurrency, args.duration_s))))
        return

    extra_env = {
        f"BOXOFFICE_{name.upper()}": value
        for name, value in (item.split("=", 1) for item in args.env)
    }
    with tempfile.TemporaryDirectory(prefix="login-flood-") as tmp:
        server = start_server(Path(tmp), args.profile, extra_env)
        assert server.proc is not None
        pid, url = server.proc.pid, server.url
        flooder = None
        try:
            email = f"legit-{uuid.uuid4().hex[:8]}@example.com"
            r = httpx.post(f"{url}/v1/users", json={"email": email, "password": PASSWORD})
            r.raise_for_status()
            rss_start = rss_kib(pid)
            quiet = measure(url, email, args.samples, None)
            flooder = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--flood",
                    url,
                    "--concurrency",
                    str(args.concurrency),
                    "--duration-s",
                    str(args.duration_s),
                ],
                stdout=subprocess.PIPE,
            )
            time.sleep(1.0)  # let the flood fill the server before measuring
            loaded = measure(url, email, 0, time.monotonic() + args.duration_s - 2.0)
            out, _ = flooder.communicate(timeout=args.duration_s + 90)
            flood_statuses = json.loads(out)
            rss_end = rss_kib(pid)
        finally:
            if flooder is not None and flooder.poll() is None:
                flooder.kill()
                flooder.wait(10)
            server.stop()
    print(
        f"profile {args.profile}, flood of {args.concurrency} concurrent random-email log-ins"
        f" for {args.duration_s:g} s, cpus {os.cpu_count()}, settings {extra_env or 'default'}"
    )
    print(row("legit log-in, quiet", quiet["login_ms"]))
    print(row("GET /v1/me, quiet", quiet["me_ms"]))
    print(row("legit log-in, during the flood", loaded["login_ms"]))
    print(row("GET /v1/me, during the flood", loaded["me_ms"]))
    print(f"legit statuses during the flood: {loaded['statuses']}")
    print(f"flood statuses: {flood_statuses}")
    print(
        f"server RSS: {rss_start['VmRSS'] / 1024:.1f} MiB before, "
        f"{rss_end['VmRSS'] / 1024:.1f} MiB after, peak {rss_end['VmHWM'] / 1024:.1f} MiB"
    )


if __name__ == "__main__":
    main()
