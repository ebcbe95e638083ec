"""HTTP benchmark: one boxoffice worker against a bare FastAPI app (same machine, same run).

Method
------
1. Two servers are started as child processes on free loopback ports and stopped at the end,
   also on failure: ``boxoffice serve`` (one uvicorn process, as deployed: durability ``full``,
   access log off, a fresh store in a temporary directory) and ``bench/bare_fastapi_app.py``
   (one uvicorn process on the same stack: uvloop and httptools).
2. Setup through the API: the admin creates one concert of 4 schedules x 50,000 seats (queue
   capacity above the user count, so every user is ACTIVE at once; hold and session TTLs of
   three hours). N users sign up (``cheapest`` argon2 profile), log in, charge their wallets,
   join the queue and hold one seat each (the reservations the pay run pays). The requests go
   through a small keep-alive HTTP/1.1 client on asyncio streams (httpx costs more CPU than
   the server it feeds on a small machine). The users' tokens go to a file that the wrk Lua
   scripts (``bench/wrk/*.lua``) read; request k goes to user k mod N, so consecutive
   requests, and so the connections, use different users.
3. Load at full speed: ``wrk`` (a C load generator in its own process; 1 thread, C
   connections, a fixed duration) drives each endpoint: queue status (a poll), one page of a
   50,000-seat schedule's seat list, hold (each request one seat nobody asked for yet; the seat
   of every 201 answer is collected), pay (each request another user's reservation; the run
   stops after N answers), charge (1 won to each user's wallet in turn) and the bare app's
   ``GET /bare`` and ``POST /bare`` (a hold-shaped pydantic body). The Lua ``done()`` prints
   requests, duration, p50/p99 and the status counts as JSON. The bare endpoints, queue
   status and hold run in interleaved rounds (``--rounds``, 5 of 2 s by default), and each
   reports the median of its rounds, so a burst of other work on the machine hits the engine
   and the baseline alike.
4. Half load: wrk cannot pace, so a paced client in another process sends holds at 50 % of the
   measured maximum, at fixed arrival times (an open loop over 64 keep-alive connections).
   Latency runs from each request's *scheduled* send time, so queueing behind a stalled
   server is counted (no coordinated omission).
5. Correctness: after the hold runs, the seats the server holds (read back through the seat
   list, ``status=HELD``) must include every seat answered 201, and besides those only seats
   of requests wrk abandoned in flight when its time ran out; the admin stats must agree with
   the list. After the pay run, every 201 payment must have sold its seat and held + sold must
   not change. A failed check or any 5xx answer exits non-zero.
6. Then (``--off``, the default without ``--quick``) a second server with durability ``off``
   runs queue status and hold again: the difference is what waiting for each journal group's
   fsync costs.

Besides requests/s, every row has the server's CPU time per request (``cpu_ms_per_req``: the
process's user + system time over the run, from ``/proc``, divided by the requests sent). A
single worker that is CPU-bound serves ``1 / cpu_ms_per_req`` requests per second whatever the
other programs on the machine do, so the CPU ratio is the steadier estimate of the req/s ratio.

The fair baseline for the hold endpoint is ``POST /bare``: like the hold it reads a JSON body
into a strict pydantic model and answers a pydantic model, so the ratio isolates what
authentication (two HS256 JWTs), the queue gate, the engine call, the journal wait and the
API's middleware cost on top of FastAPI's own request handling. ``GET /bare`` is shown too.

``--profile PATH`` runs the ``full`` server under cProfile, timed by the event-loop thread's CPU
clock (so time lost to other programs or to waiting is not counted), records the hold runs
alone (``--profile-run status``: the queue status runs), writes the pstats file and prints the
share of each stage of a request (uvicorn, the middlewares, the fast path, the engine call,
...) and the functions with the most own and cumulative time; a profiled run is several times
slower and its rows are marked ``profiled``. Work done in other threads (sync dependencies run
by FastAPI in its thread pool) is not in the profile.

Every process shares the machine (wrk, the paced client and both servers compete for the same
cores, as do any other programs), so absolute numbers move from run to run: the ratios, from
one run, are what count.

    .venv/bin/python bench/http_bench.py [--quick] [--json PATH] [--duration S] [--connections C]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import gc
import io
import json
import multiprocessing
import os
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from boxoffice_api import testing
from boxoffice_api.testing import ServerProcess as Server
from boxoffice_api.testing import server_env

sys.path.insert(0, str(Path(__file__).parent))
from common import Row, print_rows, ratio, write_json

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WRK_DIR = BENCH / "wrk"
# Random-looking: the server refuses guessable secrets (api/boxoffice_api/secret_strength.py).
ADMIN_KEY = "bench-admin-key-d8b5e739c10caf57281a22bc4990206c7ad267b7"
JWT_SECRET = "bench-jwt-secret-3f9c1a7e52b84d06e1c7a93b5d28f4e60b17c3a9"
PASSWORD = "bench-password-1"
SCHEDULES = 4
SECTIONS = 5  # per schedule, each ROWS x SEATS_PER_ROW seats: 50,000 seats per schedule
ROWS = 100
SEATS_PER_ROW = 100
PRICE = 100_000
SEAT_PAGE = 100  # the seat list run asks for one page of this many seats
SETUP_CONNECTIONS = 32
PACED_CONNECTIONS = 64
SUITE = "http"

# Runs `boxoffice serve` with cProfile (the thread's CPU clock) switched on by SIGUSR1 and
# dumped by SIGUSR2.
PROFILED_SERVER = """
import cProfile, signal, sys, time
from boxoffice.cli import main
profile = cProfile.Profile(time.thread_time)
def start(*_):
    profile.enable()
def stop(*_):
    profile.disable()
    profile.dump_stats(sys.argv[1])
signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
sys.exit(main(sys.argv[2:]))
"""


class BenchError(Exception):
    """The benchmark could not run, or a server answered wrongly."""


def log(message: str) -> None:
    """A progress line on stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the servers ----------------------------------------------------------------------------

START_TIMEOUT_S = 90.0  # a loaded machine: the server's start-up competes with other programs


def boxoffice_server(
    workdir: Path,
    durability: str,
    profile: Path | None = None,
    group_commit_interval_s: float | None = None,
) -> Server:
    """``boxoffice serve`` on a fresh store in ``workdir`` (not started yet), with the
    server's default group commit interval unless one is given."""
    if profile is not None:
        program = [sys.executable, "-c", PROFILED_SERVER, str(profile)]
    elif (exe := Path(sys.executable).parent / "boxoffice").exists():
        program = [str(exe)]
    else:
        program = [sys.executable, "-m", "boxoffice.cli"]
    env = server_env(
        admin_key=ADMIN_KEY,
        jwt_secret=JWT_SECRET,
        # The set-up signs users up SETUP_CONNECTIONS at a time from one address.
        password_hash_queue_max="100000",
        password_hash_per_client_max="100000",
        access_log="false",
        log_level="warning",
        # Each user holds many times a minute here (the hold runs rotate a few thousand users
        # over thousands of holds a second): the hold rate limit stays on, so its cost is in
        # the numbers, but out of reach, so they measure holds and not 429s.
        holds_per_minute="1000000000",
    )
    if group_commit_interval_s is not None:
        env["BOXOFFICE_GROUP_COMMIT_INTERVAL_S"] = str(group_commit_interval_s)
    db = workdir / f"store-{durability}.db"
    program += ["serve", "--host", "127.0.0.1", "--db", str(db), "--durability", durability]
    return Server(
        log=workdir / f"server-{durability}.log",
        env=env,
        command=program,
        name=f"boxoffice ({durability})",
        cwd=ROOT,
    )


def bare_server(workdir: Path) -> Server:
    """``bench/bare_fastapi_app.py`` (not started yet)."""
    return Server(
        log=workdir / "bare.log",
        env=dict(os.environ),
        command=[sys.executable, str(BENCH / "bare_fastapi_app.py"), "--host", "127.0.0.1"],
        name="bare fastapi",
        ready_path="/bare",
        cwd=ROOT,
    )


def running(*servers: Server) -> contextlib.AbstractContextManager[Sequence[Server]]:
    """Starts the servers (at once) and waits until they answer; stops them on leaving,
    success or failure."""
    return testing.running(*servers, timeout_s=START_TIMEOUT_S)


# --- a small HTTP/1.1 client on asyncio streams ---------------------------------------------


class Conn:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:``port``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Sends one prepared request; returns the status and the body (Content-Length
        framing, which uvicorn uses for these answers). Reconnects once if the server
        closed an idle connection."""
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.reader is not None
            try:
                self.writer.write(request)
                head = await self.reader.readuntil(b"\r\n\r\n")
                match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                body = await self.reader.readexactly(int(match.group(1))) if match else b""
                return int(head[9:12]), body
            except (OSError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def http_request(
    method: str, path: str, port: int, headers: dict[str, str], body: Any = None
) -> bytes:
    """An HTTP/1.1 request as bytes (``body`` is sent as JSON)."""
    data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


class Client:
    """Concurrent JSON requests over a pool of keep-alive connections."""

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self.pool: asyncio.Queue[Conn] = asyncio.Queue()
        for _ in range(connections):
            self.pool.put_nowait(Conn(port))

    async def call(
        self,
        method: str,
        path: str,
        expect: tuple[int, ...],
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> dict[str, Any]:
        """Sends the request; raises BenchError unless the status is in ``expect``."""
        conn = await self.pool.get()
        try:
            status, data = await conn.send(
                http_request(method, path, self.port, headers or {}, body)
            )
        finally:
            self.pool.put_nowait(conn)
        if status not in expect:
            raise BenchError(f"{method} {path}: {status} {data[:300]!r}")
        answer: dict[str, Any] = json.loads(data)
        return answer

    def close(self) -> None:
        while not self.pool.empty():
            self.pool.get_nowait().close()


# --- setup through the API ------------------------------------------------------------------


@dataclass
class User:
    """A user with an ACTIVE queue token and (after setup) one held seat."""

    id: int
    access: str
    queue: str
    reservation: int = 0
    seat: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}", "X-Queue-Token": self.queue}


@dataclass
class Drop:
    """What the setup made: the concert, its seat ranges and the users."""

    concert_id: int
    ranges: list[tuple[int, int, int]]  # (schedule id, first seat id, seat count)
    users: list[User]

    @property
    def ranges_spec(self) -> str:
        """The ranges as the Lua scripts read them: ``schedule:first:count,...``."""
        return ",".join(f"{s}:{f}:{n}" for s, f, n in self.ranges)

    @property
    def seats_total(self) -> int:
        return sum(n for _, _, n in self.ranges)

    def seat(self, k: int) -> tuple[int, int]:
        """The k-th seat (0-based) across the ranges: (schedule id, seat id)."""
        for schedule, first, count in self.ranges:
            if k < count:
                return schedule, first + k
            k -= count
        raise BenchError("out of seats: make the concert bigger or the runs shorter")

    def write_users(self, path: Path) -> Path:
        """One line per user: ``user_id access_jwt queue_jwt reservation_id``."""
        lines = [f"{u.id} {u.access} {u.queue} {u.reservation}" for u in self.users]
        path.write_text("\n".join(lines) + "\n")
        return path


def concert_body(users: int) -> dict[str, Any]:
    """The bench concert: SCHEDULES x SECTIONS x ROWS x SEATS_PER_ROW seats, room for all."""
    return testing.concert_body(
        title="HTTP bench",
        artist="wrk",
        venue="loopback",
        starts_at=[f"2030-01-{day:02d}T19:00:00Z" for day in range(1, SCHEDULES + 1)],
        sections=[
            testing.section(chr(ord("A") + i), ROWS, SEATS_PER_ROW, "R", PRICE)
            for i in range(SECTIONS)
        ],
        queue_capacity=max(1000, 2 * users),
        session_ttl_s=3 * 3600,
        hold_ttl_s=3 * 3600,
        max_seats_per_reservation=4,
        max_seats_per_user=None,  # each user holds a seat per request, many in all
    )


async def _seat_ranges(
    api: Client, concert: dict[str, Any], user: User
) -> list[tuple[int, int, int]]:
    """Each schedule's first seat id and count, checking that its ids are dense."""
    ranges = []
    for schedule in concert["schedules"]:
        sid, total = int(schedule["id"]), int(schedule["seats_total"])
        path = f"/v1/schedules/{sid}/seats?limit=1"
        first = int((await api.call("GET", path, (200,), user.headers))["items"][0]["id"])
        path = f"/v1/schedules/{sid}/seats?limit=2&cursor={first + total - 2}"
        last = await api.call("GET", path, (200,), user.headers)
        if [int(s["id"]) for s in last["items"]] != [first + total - 1] or last["next_cursor"]:
            raise BenchError(f"schedule {sid}: the seat ids are not dense from {first}")
        ranges.append((sid, first, total))
    return ranges


async def _setup(port: int, users: int, hold: bool) -> Drop:
    api = Client(port, SETUP_CONNECTIONS)
    try:
        admin = {"X-Admin-Key": ADMIN_KEY}
        concert = await api.call("POST", "/v1/admin/concerts", (201,), admin, concert_body(users))
        cid = int(concert["id"])

        async def make_user(i: int) -> User:
            cred = {"email": f"bench{i}@example.com", "password": PASSWORD}
            user = await api.call("POST", "/v1/users", (201,), None, cred)
            token = (await api.call("POST", "/v1/auth/token", (200,), None, cred))["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            if hold:
                await api.call(
                    "POST", "/v1/me/balance/charges", (201,), auth, {"amount": 10 * PRICE}
                )
            joined = await api.call("POST", f"/v1/concerts/{cid}/queue", (201,), auth)
            if joined["status"] != "ACTIVE":
                raise BenchError(f"user {i} is {joined['status']} after joining, not ACTIVE")
            return User(int(user["id"]), token, joined["queue_token"])

        made = list(await asyncio.gather(*(make_user(i) for i in range(users))))
        drop = Drop(cid, await _seat_ranges(api, concert, made[0]), made)

        async def hold_one(k: int, user: User) -> None:
            schedule, seat = drop.seat(k)
            body = {"schedule_id": schedule, "seat_ids": [seat]}
            r = await api.call("POST", "/v1/reservations", (201,), user.headers, body)
            user.reservation, user.seat = int(r["id"]), seat

        if hold:
            await asyncio.gather(*(hold_one(k, u) for k, u in enumerate(drop.users)))
        return drop
    finally:
        api.close()


def setup(port: int, users: int, hold: bool = True) -> Drop:
    """Creates the concert and the users (see the module docstring); ``hold=False`` skips
    the charges and the one held seat per user."""
    return asyncio.run(_setup(port, users, hold))


def stats(base_url: str, concert_id: int) -> dict[str, Any]:
    """The concert's admin stats."""
    r = httpx.get(
        f"{base_url}/v1/admin/concerts/{concert_id}/stats",
        headers={"X-Admin-Key": ADMIN_KEY},
        timeout=120,
    )
    if r.status_code != 200:
        raise BenchError(f"stats: {r.status_code} {r.text}")
    answer: dict[str, Any] = r.json()
    return answer


def held_seats(base_url: str, drop: Drop, user: User) -> set[int]:
    """Every HELD seat of the concert, read through the seat list (paged)."""
    held: set[int] = set()
    with httpx.Client(base_url=base_url, timeout=300, headers=user.headers) as http:
        for schedule, _, _ in drop.ranges:
            cursor = 0
            while True:
                r = http.get(
                    f"/v1/schedules/{schedule}/seats?status=HELD&limit=10000&cursor={cursor}"
                )
                if r.status_code != 200:
                    raise BenchError(f"seat list: {r.status_code} {r.text}")
                page = r.json()
                held.update(int(s["id"]) for s in page["items"])
                if page["next_cursor"] is None:
                    break
                cursor = int(page["next_cursor"])
    return held


# --- load -----------------------------------------------------------------------------------


@dataclass
class Load:
    """One load run's result."""

    requests: int  # answered within the run
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    socket_errors: int
    sent: int  # requests sent (sent - requests were in flight when the run ended)
    seats: list[int] = field(default_factory=list)  # hold runs: the seat of each 201 answer
    server_cpu_s: float = 0.0  # the server's CPU time over the run (and its drain)
    round_rates: list[float] = field(default_factory=list)  # combined runs: each one's req/s

    @property
    def cpu_ms_per_req(self) -> float:
        return 1000 * self.server_cpu_s / self.sent if self.sent else 0.0

    @property
    def rate(self) -> float:
        """Requests/s; for combined runs, the median of the runs' rates."""
        if self.round_rates:
            return statistics.median(self.round_rates)
        return self.requests / self.seconds if self.seconds else 0.0

    @staticmethod
    def combine(loads: list[Load]) -> Load:
        """Runs of one endpoint as one: counts added, req/s and percentiles the median of
        the runs' (robust to a run slowed by another program)."""
        statuses: dict[int, int] = {}
        for load in loads:
            for status, n in load.statuses.items():
                statuses[status] = statuses.get(status, 0) + n
        return Load(
            requests=sum(x.requests for x in loads),
            seconds=sum(x.seconds for x in loads),
            p50_ms=statistics.median(x.p50_ms for x in loads),
            p99_ms=statistics.median(x.p99_ms for x in loads),
            statuses=statuses,
            socket_errors=sum(x.socket_errors for x in loads),
            sent=sum(x.sent for x in loads),
            seats=[seat for x in loads for seat in x.seats],
            server_cpu_s=sum(x.server_cpu_s for x in loads),
            round_rates=[x.rate for x in loads] if len(loads) > 1 else [],
        )

    @property
    def in_flight(self) -> int:
        return self.sent - self.requests

    @property
    def non_2xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if not 200 <= s < 300) + self.socket_errors

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def extra(self, connections: int) -> dict[str, Any]:
        return {
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "non_2xx": self.non_2xx,
            "cpu_ms_per_req": round(self.cpu_ms_per_req, 3),
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "connections": connections,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        } | ({"round_rates": [round(r, 1) for r in self.round_rates]} if self.round_rates else {})


def wrk(
    server: Server, script: str, duration_s: float, connections: int, env: dict[str, str]
) -> Load:
    """Runs ``wrk`` (1 thread) with ``bench/wrk/<script>.lua`` against ``server`` and parses
    its ``done()``; also measures the server's CPU time.

    With ``BENCH_DONE`` in ``env`` the script creates that file when it has what it wants,
    and wrk is then stopped with SIGINT (it prints its results as on a normal end). The rate
    is measured from the first request sent to the last answer received.
    """
    exe = shutil.which("wrk")
    if exe is None:
        raise BenchError("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    argv = [exe, "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s"]
    argv += ["--timeout", "60s", "-s", str(WRK_DIR / f"{script}.lua"), server.url]
    done = Path(env["BENCH_DONE"]) if "BENCH_DONE" in env else None
    cpu_start = server.cpu_s()
    proc = subprocess.Popen(
        argv, env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + duration_s + 300
        while done is not None and proc.poll() is None and time.monotonic() < deadline:
            if done.exists():
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.02)
        stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    line = next((x for x in stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk {script} failed ({proc.returncode}):\n{stdout}\n{stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    errors = data["errors"]
    out_file = env.get("BENCH_OUT")
    seats = [int(x) for x in Path(out_file).read_text().split()] if out_file else []
    load = Load(
        requests=int(data["requests"]),
        seconds=(data["elapsed_us"] or data["duration_us"]) / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        statuses={int(k): int(v) for k, v in data["statuses"].items()},
        socket_errors=sum(int(errors[k]) for k in ("connect", "read", "write", "timeout")),
        sent=int(data["sent"]),
        seats=seats,
    )
    # The server still works on the requests wrk left in flight: let it finish them, so the
    # next run does not pay for them.
    time.sleep(load.in_flight / max(load.rate, 1.0) + 0.2)
    load.server_cpu_s = server.cpu_s() - cpu_start
    return load


async def _paced(
    port: int, requests: list[bytes], rate: float, connections: int
) -> tuple[list[float], list[int], list[int], float]:
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(connections):
        conn = Conn(port)
        conn.reader, conn.writer = await asyncio.open_connection("127.0.0.1", port)
        pool.put_nowait(conn)
    loop = asyncio.get_running_loop()
    latency = [0.0] * len(requests)
    status = [0] * len(requests)
    seats: list[int] = []

    async def one(k: int, scheduled: float) -> None:
        conn = await pool.get()  # waiting for a free connection counts as latency
        try:
            status[k], body = await conn.send(requests[k])
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status[k] = 0
            conn.close()
        else:
            if status[k] == 201 and (match := re.search(rb'"seats":\[(\d+)\]', body)):
                seats.append(int(match.group(1)))
        finally:
            pool.put_nowait(conn)
        latency[k] = loop.time() - scheduled

    # The client must not stall the requests it times: only the tasks in flight are kept (a
    # gather over all of them at the end walked 20,000 finished tasks while the last answers
    # waited, ~80 ms), and the collector is off for the run (its full collections over the
    # requests and tasks paused this process for 30-45 ms, which counted as server latency).
    in_flight: set[asyncio.Task[None]] = set()
    gc.collect()
    gc.disable()
    try:
        start = loop.time() + 0.05
        for k in range(len(requests)):
            scheduled = start + k / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(k, scheduled))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        while in_flight:
            await asyncio.wait(set(in_flight))
        seconds = loop.time() - start
    finally:
        gc.enable()
    while not pool.empty():
        pool.get_nowait().close()
    return latency, status, seats, seconds


def paced_run(
    port: int, requests: list[bytes], rate: float, connections: int
) -> tuple[list[float], list[int], list[int], float]:
    """Sends ``requests`` at ``rate`` per second over ``connections`` connections; returns
    each latency from its scheduled send time (s), each status (0: socket error), the seats
    answered 201 and the run's seconds. Runs in a child process (see :func:`paced`)."""
    return asyncio.run(_paced(port, requests, rate, connections))


def percentile(ordered: list[float], p: float) -> float:
    """The p-th percentile of sorted values (nearest rank)."""
    if not ordered:
        return 0.0
    rank = -(-len(ordered) * p // 100)
    return ordered[min(len(ordered), max(1, int(rank))) - 1]


def paced(port: int, requests: list[bytes], rate: float) -> Load:
    """:func:`paced_run` (PACED_CONNECTIONS connections) in a separate process."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        future = pool.submit(paced_run, port, requests, rate, PACED_CONNECTIONS)
        latency, status, seats, seconds = future.result()
    ordered = sorted(latency)
    counts: dict[int, int] = {}
    for s in status:
        counts[s] = counts.get(s, 0) + 1
    return Load(
        requests=len(requests),
        seconds=seconds,
        p50_ms=percentile(ordered, 50) * 1000,
        p99_ms=percentile(ordered, 99) * 1000,
        statuses={s: n for s, n in counts.items() if s},
        socket_errors=counts.get(0, 0),
        sent=len(requests),
        seats=seats,
    )


def hold_requests(drop: Drop, port: int, offset: int, count: int) -> list[bytes]:
    """``count`` holds of seats ``offset``, ``offset + 1``, ... with rotating users."""
    out = []
    for k in range(count):
        schedule, seat = drop.seat(offset + k)
        body = {"schedule_id": schedule, "seat_ids": [seat]}
        user = drop.users[k % len(drop.users)]
        out.append(http_request("POST", "/v1/reservations", port, user.headers, body))
    return out


# --- the benchmark --------------------------------------------------------------------------


@dataclass
class Options:
    """The command line."""

    duration_s: float
    connections: int
    users: int
    rounds: int
    off_users: int
    off: bool
    quick: bool
    json: str | None
    profile: Path | None
    profile_run: str


def parse_args() -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 s runs, 300 users, no off server (<= 40 s)"
    )
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--duration", type=float, help="seconds per load run (10; quick 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per run (5; quick 1)")
    parser.add_argument("--users", type=int, help="users, and payments (2000; quick 300)")
    parser.add_argument(
        "--off",
        action=argparse.BooleanOptionalAction,
        help="also run a durability=off server (default: on, off with --quick)",
    )
    parser.add_argument("--profile", type=Path, help="cProfile the hold run; write pstats here")
    parser.add_argument(
        "--profile-run",
        choices=sorted(PROFILED_RUNS),
        default="hold",
        help="the run --profile records (hold)",
    )
    args = parser.parse_args()
    users = args.users or (300 if args.quick else 2000)
    return Options(
        duration_s=args.duration or (2.0 if args.quick else 10.0),
        connections=args.connections,
        users=users,
        rounds=args.rounds or (1 if args.quick else 5),
        off_users=min(users, 100 if args.quick else 300),
        off=not args.quick if args.off is None else args.off,
        quick=args.quick,
        json=args.json,
        profile=args.profile,
        profile_run=args.profile_run,
    )


# Per profiled run: the route function (file name part, name) and the engine call, as cProfile
# names it (a method descriptor: the single calls skip pybind11's Python side); the engine call
# is made once per request, so it counts the requests (cProfile counts a coroutine once per
# resume, so the Python handlers count more than once).
PROFILED_RUNS: dict[str, tuple[str, str, str]] = {
    "hold": (
        "boxoffice_api/routes/reservations.py",
        "hold",
        "<method 'hold' of 'boxoffice._core.Engine' objects>",
    ),
    "status": (
        "boxoffice_api/routes/queue.py",
        "poll",
        "<method 'queue_status' of 'boxoffice._core.Engine' objects>",
    ),
}
PROFILE_STAGES: list[tuple[str, str, str]] = [
    # (label, file name part, function name); a stage's time is its cumulative time
    ("uvicorn: parse the request (httptools)", "uvicorn/protocols/http/", "data_received"),
    ("uvicorn: write the response", "uvicorn/protocols/http/", "send"),
    ("metrics middleware, and all inside it", "boxoffice_api/metrics.py", "__call__"),
    ("FastAPI routing (route matching)", "fastapi/routing.py", "_match"),
    (
        "FastAPI dependencies (solve_dependencies)",
        "fastapi/dependencies/utils.py",
        "solve_dependencies",
    ),
    ("fast path: parameters", "boxoffice_api/fast_path.py", "parameters"),
    ("fast path: body (read, parsed, validated)", "boxoffice_api/fast_path.py", "body"),
    ("access JWT (Tokens.user_of)", "boxoffice_api/security.py", "user_of"),
    ("queue token (Tokens.queue_claims)", "boxoffice_api/security.py", "queue_claims"),
    ("response serialization (fast path)", "boxoffice_api/fast_path.py", "serialize"),
    ("FastAPI serialize_response", "fastapi/routing.py", "serialize_response"),
]


def print_profile(path: Path, run: str, top: int = 15) -> None:
    """Each stage's share of the event-loop thread's CPU time per request of ``run``, then the
    functions with the most own and cumulative time."""
    stats_ = pstats.Stats(str(path), stream=io.StringIO())
    entries: dict[tuple[str, int, str], Any] = stats_.stats  # type: ignore[attr-defined]
    total: float = stats_.total_tt  # type: ignore[attr-defined]
    route_file, route_name, engine_call = PROFILED_RUNS[run]
    requests = sum(v[1] for (f, _, n), v in entries.items() if n == engine_call)
    if not total or not requests:
        print(f"profile: no {run} requests recorded")
        return
    stages: dict[str, float] = {}
    for label, where, name in [
        *PROFILE_STAGES,
        (f"route function ({route_name})", route_file, route_name),
        ("  engine call", "~", engine_call),
        ("  journal wait (wait_durable_async)", "boxoffice/__init__.py", "wait_durable_async"),
        ("  response model (X.of)", "boxoffice_api/schemas.py", "of"),
    ]:
        cum = sum(v[3] for (f, _, n), v in entries.items() if n == name and where in f)
        stages[label] = stages.get(label, 0.0) + cum
    print(
        f"\nprofile of the {run} run ({requests} requests; CPU time of the event-loop thread, "
        f"{1e6 * total / requests:,.0f} us per request under the profiler):"
    )
    for label, cum in stages.items():
        print(f"  {label:<46} {100 * cum / total:5.1f} %  {1e6 * cum / requests:7.1f} us")
    for order in ("tottime", "cumtime"):
        out = io.StringIO()
        stats_.stream = out  # type: ignore[attr-defined]
        stats_.sort_stats(order).print_stats(top)
        print(out.getvalue())


class Report:
    """The rows of one benchmark run and the checks that failed (a 5xx answer is one)."""

    def __init__(self, connections: int, profiled: bool) -> None:
        self.connections = connections  # wrk's connections, shown with every wrk row
        self.profiled = profiled  # rows of a profiled server are marked so
        self.rows: list[Row] = []
        self.failures: list[str] = []

    def fail(self, message: str) -> None:
        """Records a failed check (the run exits non-zero)."""
        self.failures.append(message)

    def add(self, name: str, system: str, load: Load, **extra: Any) -> Row:
        """A req/s row for a wrk run (5xx answers are failures)."""
        info = load.extra(self.connections) | extra
        if self.profiled:
            info["profiled"] = True
        row = Row(SUITE, name, system, load.rate, "req/s", info)
        return self._keep(row, load, f"{name} ({system}): {load.rate:,.0f} req/s, ")

    def add_paced(self, name: str, system: str, load: Load, rate: float) -> Row:
        """A p99 row for a paced run (5xx answers are failures)."""
        info = load.extra(PACED_CONNECTIONS) | {
            "rate": round(rate, 1),
            "achieved_rate": round(load.rate, 1),
        }
        row = Row(SUITE, name, system, load.p99_ms, "ms", info)
        return self._keep(row, load, f"{name} ({system}) at {rate:,.0f} req/s: ")

    def _keep(self, row: Row, load: Load, what: str) -> Row:
        """Adds ``row``, logs ``what`` and its load's latencies, and fails on 5xx answers."""
        self.rows.append(row)
        log(f"{what}p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms, non-2xx {load.non_2xx}")
        if load.server_errors:
            self.fail(f"{row.name} ({row.system}): {load.server_errors} answers were 5xx")
        return row

    def ratios(self, rows: dict[str, Row]) -> None:
        """The comparison rows: by req/s, and the hold's also by server CPU per request."""
        get, post = rows["bare_get"], rows["bare_post"]
        hold = rows["hold"]
        self.rows.append(ratio(SUITE, "hold / bare POST (fair baseline)", hold, post, target=0.8))
        self.rows.append(ratio(SUITE, "hold / bare GET", hold, get))
        self.cpu_ratio("hold / bare POST, by server CPU per request", hold, post)
        status = rows["status"]
        self.rows.append(ratio(SUITE, "queue status / bare GET", status, get, target=1.0))
        self.cpu_ratio("queue status / bare GET, by server CPU per request", status, get)
        self.rows.append(ratio(SUITE, "seat list / bare GET", rows["seats"], get))
        self.rows.append(ratio(SUITE, "pay / bare POST", rows["pay"], post, target=0.8))
        self.rows.append(ratio(SUITE, "charge / bare POST", rows["charge"], post, target=0.8))
        self.cpu_ratio("charge / bare POST, by server CPU per request", rows["charge"], post)

    def cpu_ratio(self, name: str, ours: Row, theirs: Row) -> None:
        """A comparison row by server CPU per request (theirs / ours: higher is better)."""
        ours_ms, theirs_ms = ours.extra["cpu_ms_per_req"], theirs.extra["cpu_ms_per_req"]
        if ours_ms and theirs_ms:
            extra = {"ours_cpu_ms_per_req": ours_ms, "theirs_cpu_ms_per_req": theirs_ms}
            self.rows.append(
                Row(SUITE, name, "boxoffice / bare fastapi", theirs_ms / ours_ms, "x", extra)
            )


class Bench:
    """One benchmark run: its servers and loads; what they measured goes to ``report``."""

    def __init__(self, opts: Options, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.report = Report(opts.connections, opts.profile is not None)

    def env(self, drop: Drop, users_file: Path, **more: str) -> dict[str, str]:
        """The wrk scripts' parameters."""
        return {
            "BENCH_USERS": str(users_file),
            "BENCH_CONCERT": str(drop.concert_id),
            "BENCH_SEATS": drop.ranges_spec,
        } | more

    def check_holds(self, url: str, drop: Drop, ok: set[int], in_flight: int, label: str) -> None:
        """The server holds every seat answered 201 and, besides those, at most ``in_flight``
        seats (holds whose answers wrk did not wait for when its time ran out)."""
        s = stats(url, drop.concert_id)
        held = held_seats(url, drop, drop.users[0])
        unanswered = len(held - ok)
        log(
            f"check ({label}): {len(ok)} holds answered 201; the server holds {len(held)} seats "
            f"(stats: {s['seats_held']} held + {s['seats_sold']} sold), {unanswered} of them "
            f"from the {in_flight} requests in flight when wrk stopped"
        )
        if ok - held:
            self.report.fail(f"{label}: {len(ok - held)} seats answered 201 are not held")
        if unanswered > in_flight:
            self.report.fail(f"{label}: {unanswered} held seats were never answered 201")
        if s["seats_held"] + s["seats_sold"] != len(held):
            self.report.fail(f"{label}: stats count {s['seats_held']} held, the list {len(held)}")

    def run_full(self, bare: Server, server: Server) -> dict[str, Row]:
        """The ``full`` server (every endpoint, half load, the checks) and the bare app.

        Queue status, hold and the two bare endpoints run in interleaved rounds (``rounds``
        runs of ``duration / rounds`` seconds each), so a burst of other work on the machine
        hits them alike; the seat list and pay run once.
        """
        o = self.opts
        c, d, rounds = o.connections, o.duration_s, o.rounds
        rows: dict[str, Row] = {}
        t = time.monotonic()
        drop = setup(server.port, o.users)
        log(
            f"setup: {len(drop.users)} users, {drop.seats_total:,} seats in "
            f"{len(drop.ranges)} schedules ({time.monotonic() - t:.1f} s)"
        )
        env = self.env(drop, drop.write_users(self.workdir / "users.txt"))
        if not o.quick:
            wrk(bare, "bare_get", 1, c, {})  # warm-ups
            wrk(bare, "bare_post", 1, c, {})
        offset = len(drop.users)  # the setup held seats 0 .. users-1
        ok = {u.seat for u in drop.users}
        loads, offset = self.interleaved_rounds(bare, server, env, offset, ok)
        for key, name, system in [
            ("bare_get", "bare GET /bare", "bare fastapi"),
            ("bare_post", "bare POST /bare (pydantic body)", "bare fastapi"),
            ("status", "queue status GET /v1/concerts/{id}/queue", "boxoffice"),
            ("hold", "hold POST /v1/reservations", "boxoffice"),
        ]:
            rows[key] = self.report.add(name, system, Load.combine(loads[key]), rounds=rounds)
        load = wrk(server, "seats", d, c, env | {"BENCH_LIMIT": str(SEAT_PAGE)})
        rows["seats"] = self.report.add(
            f"seat list GET .../seats?limit={SEAT_PAGE}",
            "boxoffice",
            load,
            seats_in_schedule=drop.ranges[0][2],
        )
        load = wrk(server, "charge", d, c, env)
        rows["charge"] = self.report.add("charge POST /v1/me/balance/charges", "boxoffice", load)
        in_flight = sum(x.in_flight for x in loads["hold"])
        rows |= self.run_half_load(bare, server, drop, rows["hold"].value, offset, ok, in_flight)
        rows["pay"] = self.run_pay(server, drop, env)
        if o.profile is not None:
            print_profile(o.profile, o.profile_run)
        return rows

    def interleaved_rounds(
        self, bare: Server, server: Server, env: dict[str, str], offset: int, ok: set[int]
    ) -> tuple[dict[str, list[Load]], int]:
        """``rounds`` runs each of the bare GET and POST, queue status and hold, in turn; the
        holds start at seat ``offset`` and add the seats answered 201 to ``ok``. Returns the
        loads by run and the next free seat offset."""
        o = self.opts
        c, d, rounds = o.connections, o.duration_s, o.rounds
        loads: dict[str, list[Load]] = {k: [] for k in ("bare_get", "bare_post", "status", "hold")}
        for r in range(rounds):
            loads["bare_get"].append(wrk(bare, "bare_get", d / rounds, c, {}))
            loads["bare_post"].append(wrk(bare, "bare_post", d / rounds, c, {}))
            with self.profiled(server, "status"):
                loads["status"].append(wrk(server, "status", d / rounds, c, env))
            held = self.workdir / f"held-{r}.txt"
            hold_env = env | {"BENCH_OFFSET": str(offset), "BENCH_OUT": str(held)}
            with self.profiled(server, "hold"):
                load = wrk(server, "hold", d / rounds, c, hold_env)
            if len(set(load.seats)) != load.statuses.get(201, 0):
                self.report.fail("hold: the 201 answers do not name one new seat each")
            ok |= set(load.seats)
            offset += load.sent
            loads["hold"].append(load)
            if rounds > 1:
                rates = ", ".join(f"{k} {v[-1].rate:,.0f}" for k, v in loads.items())
                log(f"round {r + 1}/{rounds} (req/s): {rates}")
        return loads, offset

    @contextlib.contextmanager
    def profiled(self, server: Server, run: str) -> Iterator[None]:
        """Records the profile during ``run`` when it is the run to profile."""
        on = self.opts.profile is not None and self.opts.profile_run == run
        if on:
            server.signal(signal.SIGUSR1)
        try:
            yield
        finally:
            if on:
                server.signal(signal.SIGUSR2)

    def run_half_load(
        self,
        bare: Server,
        server: Server,
        drop: Drop,
        max_rate: float,
        offset: int,
        ok: set[int],
        in_flight: int,
    ) -> dict[str, Row]:
        """Holds at half of ``max_rate`` (paced), and the bare POST at the same rate as a
        control for what the machine does to p99; then the check of every hold so far
        (``ok``: the seats answered 201; ``in_flight``: holds wrk abandoned)."""
        rows: dict[str, Row] = {}
        rate = max(1.0, max_rate / 2)
        count = max(1, round(rate * self.opts.duration_s))
        half = paced(server.port, hold_requests(drop, server.port, offset, count), rate)
        ok |= set(half.seats)
        rows["half"] = self.report.add_paced(
            "hold p99 at half load (paced)", "boxoffice", half, rate
        )
        rows["half"].target, rows["half"].higher_is_better = 5.0, False
        body = {"schedule_id": 1, "seat_ids": [1]}
        bare_requests = [http_request("POST", "/bare", bare.port, {}, body)] * count
        control = paced(bare.port, bare_requests, rate)
        self.report.add_paced(
            "bare POST p99 at the same rate (paced)", "bare fastapi", control, rate
        )
        self.check_holds(server.url, drop, ok, in_flight, "after the hold runs")
        return rows

    def run_pay(self, server: Server, drop: Drop, env: dict[str, str]) -> Row:
        """Pays every user's reservation (wrk, full load), then checks the sales."""
        before = stats(server.url, drop.concert_id)
        pay_env = {"BENCH_LIMIT": str(len(drop.users)), "BENCH_DONE": str(self.workdir / "paid")}
        load = wrk(
            server, "pay", 3 * self.opts.duration_s + 60, self.opts.connections, env | pay_env
        )
        row = self.report.add("pay POST /v1/payments", "boxoffice", load)
        after = stats(server.url, drop.concert_id)
        paid = load.statuses.get(201, 0)
        sold = after["seats_sold"] - before["seats_sold"]
        log(f"check (after the pay run): {paid} payments answered 201, {sold} seats sold")
        if not paid <= sold <= paid + load.in_flight:
            self.report.fail(f"pay: {paid} payments answered 201 but {sold} seats sold")
        if after["seats_held"] + after["seats_sold"] != before["seats_held"] + before["seats_sold"]:
            self.report.fail("pay: held + sold seats changed")
        if after["reservations_confirmed"] != after["seats_sold"]:
            self.report.fail("pay: confirmed reservations differ from sold seats")
        return row

    def run_off(self) -> None:
        """The ``off`` server: queue status and hold at full load."""
        o = self.opts
        server = boxoffice_server(self.workdir, "off")
        with running(server):
            drop = setup(server.port, o.off_users, hold=False)
            env = self.env(drop, drop.write_users(self.workdir / "users-off.txt"))
            system = "boxoffice (durability off)"
            load = wrk(server, "status", o.duration_s, o.connections, env)
            self.report.add(
                "queue status GET /v1/concerts/{id}/queue", system, load, durability="off"
            )
            env |= {"BENCH_OFFSET": "0", "BENCH_OUT": str(self.workdir / "held-off.txt")}
            load = wrk(server, "hold", o.duration_s, o.connections, env)
            self.report.add("hold POST /v1/reservations", system, load, durability="off")
            self.check_holds(server.url, drop, set(load.seats), load.in_flight, "durability off")


def main() -> int:
    opts = parse_args()
    start = time.monotonic()
    print(
        f"HTTP benchmark: one uvicorn worker per server, wrk -t1 -c{opts.connections}, "
        f"{opts.duration_s:g} s per run, {opts.users} users. {os.cpu_count()} CPUs shared by "
        "wrk, the paced client, both servers and any other programs (load average "
        f"{os.getloadavg()[0]:.2f}): compare the ratios, not the absolute numbers.",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="http-bench-") as tmp:
        bench = Bench(opts, Path(tmp))
        try:
            bare = bare_server(bench.workdir)
            server = boxoffice_server(bench.workdir, "full", opts.profile)
            with running(bare, server):
                rows = bench.run_full(bare, server)
            if opts.off:
                bench.run_off()
        except (BenchError, testing.ServerError) as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    bench.report.ratios(rows)
    print()
    print_rows(bench.report.rows)
    print(f"\n{time.monotonic() - start:.0f} s in all")
    if opts.json:
        write_json(bench.report.rows, opts.json)
    for failure in bench.report.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if bench.report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
