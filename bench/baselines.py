"""boxoffice against what users would pick instead: a Redis waiting room and PostgreSQL holds.

The program starts its own servers from the Debian packages (``redis-server``,
``postgresql``) in a temporary directory, on free loopback ports, runs the same workload
through each baseline and through ``boxoffice.Engine`` with the same operation counts and
the same number of client threads, prints one table and stops the servers (also on
failure: ``finally``, SIGTERM handled, and the servers get SIGTERM if this process dies).

    .venv/bin/python bench/baselines.py [--quick] [--json PATH] [--threads N]

Full run: about 2 minutes on 2 cores; ``--quick`` (a smoke run) about 10 s.

Waiting room (suite ``queue``)
------------------------------
Redis 7 design of hosted waiting rooms: a sorted set ``wr:queue`` of waiting users scored by
arrival time and a sorted set ``wr:active`` of admitted users scored by session expiry.
Through redis-py (its pure-Python parser unless hiredis is installed: the rows say which),
one client and connection per thread, one round trip per user action, as a web server does
per request:

- join: ``ZADD wr:queue NX <arrival µs> <user>``;
- position: ``ZRANK wr:queue <user>`` (and ``ZSCORE wr:active <user>`` when not waiting);
- leave + admit: ``ZREM wr:active <user>`` per leaving user; after its share of a round each
  thread runs the admission script (``register_script``, EVALSHA) once, asking for as many
  users as it let go: ``ZREMRANGEBYSCORE wr:active -inf now``, ``free = capacity - ZCARD``,
  ``ZPOPMIN wr:queue min(k, free)``, ``ZADD wr:active now+ttl`` for each popped member. The
  join phase ends with one script call that fills the ``capacity`` first slots.

boxoffice: ``join_queue`` (returns the token with its exact position; the first
``capacity`` are ACTIVE at once), ``queue_status`` (state, position, ETA) and
``leave_queue`` of ACTIVE tokens (each leave admits the next WAITING token inside the
engine), in memory, one Python call per user action from the same threads.

Workload (full / quick): 100,000 / 5,000 users join (split among 8 threads); each polls its
position twice; then round by round the ``capacity`` (2,000 / 250) ACTIVE users leave, split
among the threads, and the next ones are admitted, until everyone has been admitted and has
left. Counted ops = joins + polls + leaves (the same on both sides; Redis's admission calls
are extra round trips, shown as ``round_trips``). Also run batched: Redis pipelines of 100
commands (``pipeline(transaction=False)``, admission script in the last one) against
``Engine.apply_batch`` of the same 100 commands. Checked: every user admitted exactly once,
both sorted sets empty at the end; for boxoffice ``check_invariants``, every leave was of an
ACTIVE token, admitted total = users.

Seat holds (suite ``seats``)
----------------------------
PostgreSQL 15 with its default settings (``fsync=on``, ``synchronous_commit=on``,
``shared_buffers=128MB``, READ COMMITTED), one table::

    CREATE TABLE seats (id integer PRIMARY KEY, schedule_id integer NOT NULL,
        status text NOT NULL DEFAULT 'AVAILABLE', reservation_id bigint, held_until timestamptz)

with 50,000 seats of one schedule (1,000 rows of 50), rebuilt, ``VACUUM ANALYZE``-d and
``CHECKPOINT``-ed before each run. Through psycopg 3 (binary libpq, server-side prepared
after 5 executions), one connection per thread, the two designs in use:

- ``FOR UPDATE``: ``SELECT id, status FROM seats WHERE id = ANY(%s) ORDER BY id FOR UPDATE``;
  if every seat is AVAILABLE, ``UPDATE seats SET status = 'HELD', reservation_id = %s,
  held_until = now() + interval '300 seconds' WHERE id = ANY(%s)`` and COMMIT; else ROLLBACK;
- conditional ``UPDATE``: ``UPDATE seats SET status = 'HELD', reservation_id = %s,
  held_until = ... WHERE id = ANY(%s) AND status = 'AVAILABLE' RETURNING id``; COMMIT when
  every seat came back, else ROLLBACK (all or nothing).

Both once with ``synchronous_commit=on`` (the default: each COMMIT waits for its WAL fsync,
shared by concurrent commits) and once with ``synchronous_commit=off`` (per session). The
reservation id is the request's number, made by the client: PostgreSQL writes no
reservation row, which favours it.

boxoffice: ``Engine.hold(user, token, schedule, seat_ids=[...])`` (gate check of the ACTIVE
token, a PENDING reservation with amount and expiry, seats HELD, a hold deadline, an event),
in memory and as the product runs it, a durable store (``Engine(path,
durability="full")``, SQLite WAL, fsync per group commit) with ``wait_durable()`` after
every attempt, success or refusal, as the HTTP layer does. Users and their ACTIVE tokens
are made before timing. The engine runs are repeated (``--reps``, fresh engine each) and
the median reported.

Workload (full / quick): 8,000 / 400 hold requests of 1-4 adjacent seats in one row, drawn
from ``random.Random(seed)`` over the front ``requests / 8`` rows (about 25 % conflict),
the same list for every system; request ``i`` goes to thread ``i % threads``, in order.
Winners may differ between systems (concurrency); ``held`` and ``refused`` are reported,
with the single-thread count as ``held_serial``, and each request's latency (``p50_ms``,
``p99_ms``, a durable hold including its wait). Checked: the winners' seats are disjoint,
PostgreSQL holds exactly the winners' seats under their reservation ids; boxoffice
``check_invariants`` and HELD seats = the winners' seats; the durable store, reopened, has
the same ``state_hash``.

Ratios
------
Ratios are ours / theirs of the same run (higher is better for us). Targets (docs/benchmarks.md):
queue ops >= 10x the Redis waiting room (boxoffice single calls / Redis one round trip per
action); seat holds >= 50x PostgreSQL row locking, compared as locking designs, where neither
side waits for the disk (boxoffice in memory / PostgreSQL ``FOR UPDATE`` with
``synchronous_commit=off``). Durable against durable (the store with ``wait_durable`` /
PostgreSQL's default) is shown too, without a target: with 8 requests in flight both sides
wait for an fsync per group (about 0.2 ms here), which bounds the ratio near 10x however fast
the engine is. The other ratios are shown without a target.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psycopg
import redis
from redis.utils import HIREDIS_AVAILABLE

import boxoffice as bo
from boxoffice.batch import Op
from boxoffice_api.testing import HOST, free_port

sys.path.insert(0, str(Path(__file__).parent))
from common import Row, print_rows, ratio, write_json

T = TypeVar("T")
SEATS_PER_ROW = 50
SEAT_ROWS = 1_000
SESSION_TTL_S = 3_600
HOLD_TTL_S = 300
QUEUE = "wr:queue"
ACTIVE = "wr:active"

ADMIT_LUA = """
-- KEYS[1] waiting (score: arrival), KEYS[2] active (score: session end, ms)
-- ARGV: now_ms, ttl_ms, capacity, k; returns the admitted members
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local free = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[2])
local k = math.min(free, tonumber(ARGV[4]))
if k <= 0 then return {} end
local popped = redis.call('ZPOPMIN', KEYS[1], k)
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
local admitted = {}
for i = 1, #popped, 2 do
  redis.call('ZADD', KEYS[2], until_ms, popped[i])
  admitted[#admitted + 1] = popped[i]
end
return admitted
"""

SQL_SCHEMA = """
DROP TABLE IF EXISTS seats;
CREATE TABLE seats (
    id integer PRIMARY KEY,
    schedule_id integer NOT NULL,
    status text NOT NULL DEFAULT 'AVAILABLE' CHECK (status IN ('AVAILABLE', 'HELD', 'SOLD')),
    reservation_id bigint,
    held_until timestamptz
)
"""
SQL_FILL = "INSERT INTO seats (id, schedule_id) SELECT g, 1 FROM generate_series(1, %s) AS g"
SQL_LOCK = "SELECT id, status FROM seats WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
SQL_HOLD = (
    "UPDATE seats SET status = 'HELD', reservation_id = %s,"
    f" held_until = now() + interval '{HOLD_TTL_S} seconds' WHERE id = ANY(%s)"
)
SQL_HOLD_IF_AVAILABLE = SQL_HOLD + " AND status = 'AVAILABLE' RETURNING id"


class InconsistentError(Exception):
    """A system's final state breaks a check (a seat held twice, a user admitted twice...)."""


def check(ok: bool, what: str) -> None:
    """Raises InconsistentError(what) unless ``ok`` (kept under ``python -O``)."""
    if not ok:
        raise InconsistentError(what)


@dataclass(frozen=True)
class Params:
    """The workload sizes (``--quick`` shrinks them)."""

    threads: int = 8
    users: int = 100_000
    polls: int = 2
    capacity: int = 2_000
    batch: int = 100
    holds: int = 8_000
    reps: int = 3
    seed: int = 7


QUICK = Params(users=5_000, capacity=250, holds=400, reps=1)


# ---------------------------------------------------------------------------- servers


def _die_with_parent() -> None:
    """In the server's child process: SIGTERM when this benchmark dies (even by SIGKILL)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Sends ``sig`` to a server we started and waits for it (SIGKILL after 30 s)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path
) -> None:
    """Polls ``ready`` for up to 30 s; fails early if the server process exited (the
    error quotes the end of its ``log``, which goes away with the temporary directory)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{what} did not start (exit code {proc.poll()}); its log ends:\n{tail}")


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[int]:
    """A ``redis-server`` on a free loopback port, no persistence; yields the port."""
    port = free_port()
    log = (workdir / "redis.log").open("wb")
    argv = ["redis-server", "--port", str(port), "--bind", HOST, "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(workdir)]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    try:
        probe = redis.Redis(host=HOST, port=port)
        wait_until(lambda: bool(probe.ping()), proc, "redis-server", workdir / "redis.log")
        probe.close()
        yield port
    finally:
        stop(proc, signal.SIGTERM)
        log.close()


def postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<v>/bin`` (or ``$BOXOFFICE_PG_BIN``)."""
    if "BOXOFFICE_PG_BIN" in os.environ:
        return Path(os.environ["BOXOFFICE_PG_BIN"])
    found = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return Path(max(found, key=lambda p: int(Path(p).parts[-3]))).parent


@contextlib.contextmanager
def postgres_server(workdir: Path) -> Iterator[str]:
    """A fresh cluster (initdb, default settings) on a free loopback port; yields its DSN.

    Root may not run PostgreSQL: as root the cluster belongs to the ``postgres`` user."""
    bindir = postgres_bin()
    user = "postgres" if os.geteuid() == 0 else None
    data = workdir / "pgdata"
    data.mkdir(mode=0o700)
    if user is not None:
        shutil.chown(data, user, user)
    log = (workdir / "postgres.log").open("wb")
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
    # --no-sync only skips initdb's own final fsync; the server runs with fsync=on.
    initdb += ["-E", "UTF8", "--no-sync"]
    subprocess.run(initdb, check=True, stdout=log, stderr=subprocess.STDOUT, user=user)
    port = free_port()
    argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(port)]
    argv += ["-c", f"listen_addresses={HOST}", "-c", "unix_socket_directories="]
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, user=user, preexec_fn=_die_with_parent
    )
    dsn = f"host={HOST} port={port} user=postgres dbname=postgres"
    try:

        def ready() -> bool:
            with psycopg.connect(dsn, connect_timeout=2) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)

        wait_until(ready, proc, "postgres", workdir / "postgres.log")
        yield dsn
    finally:
        stop(proc, signal.SIGINT)  # fast shutdown
        log.close()


# ---------------------------------------------------------------------------- threads


def run_parallel(threads: int, work: Callable[[int], None]) -> float:
    """Runs ``work(0) .. work(threads - 1)`` in threads released together; returns the
    seconds from the release to the last finish. Re-raises the first error."""
    errors: list[BaseException] = []
    gate = threading.Barrier(threads + 1)

    def body(i: int) -> None:
        try:
            gate.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    gate.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return seconds


def drain_rounds(
    threads: int,
    first: list[Any],
    step: Callable[[int, list[Any]], list[Any]],
    next_round: Callable[[list[list[Any]]], list[Any]],
) -> float:
    """Round by round, the members ACTIVE at the start of the round (``first``, then
    ``next_round(outputs)``) are split among the threads and ``step(thread, members)`` runs;
    threads meet at a barrier between rounds. Stops when a round has no members."""
    outputs: list[list[Any]] = [[] for _ in range(threads)]
    current = [first]

    def advance() -> None:
        current[0] = next_round(outputs)

    barrier = threading.Barrier(threads, action=advance)

    def work(t: int) -> None:
        try:
            while current[0]:
                outputs[t] = step(t, current[0][t::threads])
                barrier.wait()
        except BaseException:
            barrier.abort()
            raise

    return run_parallel(threads, work)


def median_run(runs: list[T], seconds: Callable[[T], float]) -> T:
    """The run with the median time (the lower middle one for an even count)."""
    return sorted(runs, key=seconds)[(len(runs) - 1) // 2]


# ---------------------------------------------------------------------------- queue


@dataclass
class Phase:
    """One phase of the waiting-room workload: user actions, seconds, server round trips."""

    ops: int
    seconds: float
    round_trips: int = 0


def now_us() -> int:
    return time.time_ns() // 1_000


def redis_queue(port: int, p: Params, pipelined: bool) -> dict[str, Phase]:
    """The waiting-room workload on Redis; returns the phases ``join``, ``position``, ``leave``."""
    n, users = p.threads, p.users
    admin = redis.Redis(host=HOST, port=port)
    admin.flushall()
    admin.script_load(ADMIT_LUA)
    clients = [redis.Redis(host=HOST, port=port) for _ in range(n)]
    scripts = [c.register_script(ADMIT_LUA) for c in clients]
    for c in clients:
        c.ping()  # connect before timing
    ttl_ms = SESSION_TTL_S * 1000
    trips = [0] * n
    added = [0] * n
    members = [str(u).encode() for u in range(users)]

    def admit(t: int, k: int, pipe: Any = None) -> Any:
        args = [now_us() // 1000, ttl_ms, p.capacity, k]
        return scripts[t](keys=[QUEUE, ACTIVE], args=args, client=pipe)

    def join(t: int) -> None:
        r = clients[t]
        mine = members[t::n]
        if not pipelined:
            for m in mine:
                added[t] += int(r.zadd(QUEUE, {m: now_us()}, nx=True) or 0)
            trips[t] += len(mine)
            return
        for i in range(0, len(mine), p.batch):
            pipe = r.pipeline(transaction=False)
            for m in mine[i : i + p.batch]:
                pipe.zadd(QUEUE, {m: now_us()}, nx=True)
            added[t] += sum(pipe.execute())
            trips[t] += 1

    seconds = run_parallel(n, join)
    start = time.perf_counter()
    first: list[bytes] = admit(0, p.capacity)
    seconds += time.perf_counter() - start
    phases = {"join": Phase(users, seconds, sum(trips) + 1)}
    check(sum(added) == users, f"redis: {sum(added)} of {users} ZADDs added a member")

    trips = [0] * n
    waiting_seen = [0] * n

    def poll(t: int) -> None:
        r = clients[t]
        mine = members[t::n] * p.polls
        if not pipelined:
            for m in mine:
                rank = r.zrank(QUEUE, m)
                trips[t] += 1
                if rank is None:
                    check(r.zscore(ACTIVE, m) is not None, "redis: a user neither waits nor is in")
                    trips[t] += 1
                else:
                    waiting_seen[t] += 1
            return
        for i in range(0, len(mine), p.batch):
            chunk = mine[i : i + p.batch]
            pipe = r.pipeline(transaction=False)
            for m in chunk:
                pipe.zrank(QUEUE, m)
            ranks = pipe.execute()
            trips[t] += 1
            absent = [m for m, rank in zip(chunk, ranks, strict=True) if rank is None]
            waiting_seen[t] += len(chunk) - len(absent)
            if absent:
                pipe = r.pipeline(transaction=False)
                for m in absent:
                    pipe.zscore(ACTIVE, m)
                check(None not in pipe.execute(), "redis: a user neither waits nor is in")
                trips[t] += 1

    seconds = run_parallel(n, poll)
    phases["position"] = Phase(users * p.polls, seconds, sum(trips))
    check(
        sum(waiting_seen) == (users - len(first)) * p.polls,
        "redis: positions seen do not match the waiting users",
    )

    trips = [0] * n
    admitted: list[bytes] = list(first)
    removed = [0] * n

    def leave(t: int, mine: list[bytes]) -> list[bytes]:
        r = clients[t]
        if not mine:
            return []
        if not pipelined:
            for m in mine:
                removed[t] += r.zrem(ACTIVE, m)
            trips[t] += len(mine) + 1
            return list(admit(t, len(mine)))
        out: list[bytes] = []
        for i in range(0, len(mine), p.batch):
            pipe = r.pipeline(transaction=False)
            chunk = mine[i : i + p.batch]
            for m in chunk:
                pipe.zrem(ACTIVE, m)
            last = i + p.batch >= len(mine)
            if last:
                admit(t, len(mine), pipe)
            res = pipe.execute()
            removed[t] += sum(res[: len(chunk)])
            if last:
                out = list(res[-1])
            trips[t] += 1
        return out

    def next_round(outputs: list[list[bytes]]) -> list[bytes]:
        nxt = [m for out in outputs for m in out]
        admitted.extend(nxt)
        return nxt

    seconds = drain_rounds(n, first, leave, next_round)
    phases["leave"] = Phase(users, seconds, sum(trips))
    check(sum(removed) == users, f"redis: {sum(removed)} of {users} ZREMs removed a member")
    check(len(admitted) == users == len(set(admitted)), "redis: users admitted twice or never")
    check(admin.zcard(QUEUE) == 0 and admin.zcard(ACTIVE) == 0, "redis: sets not empty at end")
    for c in [*clients, admin]:
        c.close()
    return phases


def engine_queue(p: Params, batched: bool) -> dict[str, Phase]:
    """The waiting-room workload on an in-memory engine (one concert, ``capacity``)."""
    n, users = p.threads, p.users
    engine = bo.Engine(seed=p.seed)
    sale = bo.SaleSettings(
        queue_capacity=p.capacity, session_ttl_s=SESSION_TTL_S, abandon_timeout_s=SESSION_TTL_S
    )
    hall = [bo.SectionSpec("A", 10, 10, "R", 100_000)]
    t0 = time.time()
    concert = engine.create_concert(
        title="queue", schedules=[bo.ScheduleSpec(t0 + 86_400, hall)], sale=sale, now=t0
    ).id
    for _ in range(users):
        engine.create_user(now=t0)
    user_ids = list(range(1, users + 1))
    tokens = [0] * (users + 1)

    def commands(op: Op, chunk: Sequence[int], target: int = 0) -> np.ndarray:
        cmds = bo.batch.commands(len(chunk))
        cmds["op"] = op
        cmds["now_us"] = now_us()
        cmds["user"] = chunk
        if op == Op.JOIN:
            cmds["target"] = target
        else:
            cmds["token"] = [tokens[u] for u in chunk]
        return cmds

    def join(t: int) -> None:
        mine = user_ids[t::n]
        if not batched:
            for u in mine:
                tokens[u] = engine.join_queue(u, concert, now=time.time()).id
            return
        for i in range(0, len(mine), p.batch):
            chunk = mine[i : i + p.batch]
            res = engine.apply_batch(commands(Op.JOIN, chunk, concert))
            check(bool((res["code"] == 0).all()), "boxoffice: a join failed")
            for u, token in zip(chunk, res["id"].tolist(), strict=True):
                tokens[u] = token

    phases = {"join": Phase(users, run_parallel(n, join))}

    waiting_seen = [0] * n

    def poll(t: int) -> None:
        mine = user_ids[t::n] * p.polls
        if not batched:
            for u in mine:
                if engine.queue_status(u, tokens[u], now=time.time()).status == "WAITING":
                    waiting_seen[t] += 1
            return
        for i in range(0, len(mine), p.batch):
            res = engine.apply_batch(commands(Op.STATUS, mine[i : i + p.batch]))
            check(bool((res["code"] == 0).all()), "boxoffice: a poll failed")
            waiting_seen[t] += int((res["status"] == 0).sum())

    phases["position"] = Phase(users * p.polls, run_parallel(n, poll))
    check(
        sum(waiting_seen) == (users - p.capacity) * p.polls,
        "boxoffice: positions seen do not match the waiting users",
    )

    # Tokens are admitted in join order, which is token-id order.
    order = sorted(user_ids, key=lambda u: tokens[u])
    rounds = [0]
    not_active = [0] * n

    def leave(t: int, mine: list[int]) -> list[int]:
        if not batched:
            for u in mine:
                if engine.leave_queue(u, tokens[u], now=time.time()).activated_at is None:
                    not_active[t] += 1
            return []
        for i in range(0, len(mine), p.batch):
            res = engine.apply_batch(commands(Op.LEAVE, mine[i : i + p.batch]))
            check(bool((res["code"] == 0).all()), "boxoffice: a leave failed")
        return []

    def next_round(_: list[list[int]]) -> list[int]:
        rounds[0] += 1
        return order[rounds[0] * p.capacity : (rounds[0] + 1) * p.capacity]

    phases["leave"] = Phase(users, drain_rounds(n, order[: p.capacity], leave, next_round))
    engine.check_invariants()
    stats = engine.stats(concert, now=time.time())
    check(sum(not_active) == 0, "boxoffice: a leaving user was not ACTIVE")
    check(
        stats.queue_admitted_total == users and stats.queue_waiting == stats.queue_active == 0,
        f"boxoffice: admitted {stats.queue_admitted_total} of {users}",
    )
    return phases


BATCHED = ("redis (pipelined)", "boxoffice (apply_batch)")


def queue_rows(p: Params, port: int) -> list[Row]:
    """Runs the waiting-room workload on every system; returns its rows."""
    runs: dict[str, dict[str, Phase]] = {}
    print("queue: redis ...", flush=True)
    runs["redis"] = redis_queue(port, p, pipelined=False)
    print("queue: redis pipelined ...", flush=True)
    runs["redis (pipelined)"] = redis_queue(port, p, pipelined=True)
    for system, batched in (("boxoffice", False), ("boxoffice (apply_batch)", True)):
        print(f"queue: {system} ...", flush=True)
        reps = [engine_queue(p, batched) for _ in range(p.reps)]
        runs[system] = median_run(reps, lambda r: sum(ph.seconds for ph in r.values()))

    common = {"users": p.users, "polls_per_user": p.polls, "capacity": p.capacity}
    common["threads"] = p.threads
    names = {
        "join": "join (ZADD NX | join_queue)",
        "position": "position (ZRANK | queue_status)",
        "leave": "leave + admit (ZREM+Lua | leave_queue)",
    }
    rows: list[Row] = []
    totals: dict[str, Row] = {}
    for system, phases in runs.items():
        for key, name in names.items():
            ph = phases[key]
            extra = {"ops": ph.ops, "seconds": round(ph.seconds, 4)}
            if ph.round_trips:
                extra["round_trips"] = ph.round_trips
            rows.append(Row("queue", name, system, ph.ops / ph.seconds, "ops/s", extra))
        ops = sum(ph.ops for ph in phases.values())
        seconds = sum(ph.seconds for ph in phases.values())
        extra = {"ops": ops, "seconds": round(seconds, 4), **common}
        extra["batch"] = p.batch if system in BATCHED else 1
        if system.startswith("redis"):
            extra["round_trips"] = sum(ph.round_trips for ph in phases.values())
            extra["hiredis"] = HIREDIS_AVAILABLE
        totals[system] = Row(
            "queue", "queue ops (join+position+leave)", system, ops / seconds, "ops/s", extra
        )
    rows.extend(totals.values())
    by = {(r.name, r.system): r for r in rows}
    for name in names.values():
        rows.append(ratio("queue", name, by[name, "boxoffice"], by[name, "redis"]))
    rows.append(
        ratio(
            "queue",
            "queue ops, one call per action",
            totals["boxoffice"],
            totals["redis"],
            target=10,
        )
    )
    rows.append(
        ratio(
            "queue",
            f"queue ops, batched {p.batch}",
            totals["boxoffice (apply_batch)"],
            totals["redis (pipelined)"],
        )
    )
    return rows


# ---------------------------------------------------------------------------- seats


@dataclass
class HoldRun:
    """One system's pass over the hold requests."""

    seconds: float
    attempts: int
    held: int
    aborted: int = 0  # PostgreSQL deadlocks or serialization failures (rolled back, refused)
    extra: dict[str, Any] = field(default_factory=dict)


def hold_requests(p: Params) -> list[list[int]]:
    """``p.holds`` requests of 1-4 adjacent seats (0-based seat-map indexes) in one row of
    the front ``p.holds / 8`` rows, from ``random.Random(p.seed)``: about 25 % conflict."""
    rng = random.Random(p.seed)
    rows = max(1, min(SEAT_ROWS, p.holds // 8))
    requests = []
    for _ in range(p.holds):
        quantity = rng.randint(1, 4)
        first = rng.randrange(rows) * SEATS_PER_ROW + rng.randrange(SEATS_PER_ROW - quantity + 1)
        requests.append(list(range(first, first + quantity)))
    return requests


def serial_winners(requests: list[list[int]]) -> int:
    """How many requests win when applied one after another in list order."""
    taken: set[int] = set()
    won = 0
    for seats in requests:
        if taken.isdisjoint(seats):
            taken.update(seats)
            won += 1
    return won


def winners_disjoint(system: str, requests: list[list[int]], winners: list[int]) -> int:
    """Checks that no seat went to two winning requests; returns the seats held."""
    seats = [s for i in winners for s in requests[i]]
    check(len(seats) == len(set(seats)), f"{system}: a seat was held by two requests")
    return len(seats)


def percentiles_ms(latencies: list[list[float]]) -> dict[str, float]:
    """p50 and p99 of per-request seconds (one list per thread), in milliseconds."""
    p50, p99 = np.percentile(np.concatenate([np.asarray(x) for x in latencies]), [50, 99])
    return {"p50_ms": round(float(p50) * 1e3, 3), "p99_ms": round(float(p99) * 1e3, 3)}


def pg_reset(dsn: str) -> None:
    """Rebuilds the seats table (every seat AVAILABLE), vacuumed, analyzed, checkpointed."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SQL_SCHEMA)
        conn.execute(SQL_FILL, (SEAT_ROWS * SEATS_PER_ROW,))
        conn.execute("VACUUM ANALYZE seats")
        conn.execute("CHECKPOINT")


def pg_holds(
    dsn: str, requests: list[list[int]], p: Params, design: str, synchronous: bool
) -> HoldRun:
    """The hold requests on PostgreSQL with ``design`` ``"for update"`` or ``"conditional"``."""
    n = p.threads
    pg_reset(dsn)
    setting = "on" if synchronous else "off"
    conns = [psycopg.connect(dsn, options=f"-c synchronous_commit={setting}") for _ in range(n)]
    shown = conns[0].execute("SHOW synchronous_commit").fetchone()
    check(shown == (setting,), f"postgresql: synchronous_commit is {shown}")
    conns[0].rollback()
    ids = [[s + 1 for s in seats] for seats in requests]
    winners: list[list[int]] = [[] for _ in range(n)]
    aborted = [0] * n
    latencies: list[list[float]] = [[] for _ in range(n)]

    def work(t: int) -> None:
        conn = conns[t]
        cur = conn.cursor()
        clock = time.perf_counter
        for i in range(t, len(ids), n):
            start = clock()
            try:
                if design == "for update":
                    rows = cur.execute(SQL_LOCK, (ids[i],)).fetchall()
                    ok = len(rows) == len(ids[i]) and all(s == "AVAILABLE" for _, s in rows)
                    if ok:
                        cur.execute(SQL_HOLD, (i + 1, ids[i]))
                else:
                    got = cur.execute(SQL_HOLD_IF_AVAILABLE, (i + 1, ids[i])).fetchall()
                    ok = len(got) == len(ids[i])
                if ok:
                    conn.commit()
                    winners[t].append(i)
                else:
                    conn.rollback()
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                conn.rollback()
                aborted[t] += 1
            latencies[t].append(clock() - start)

    seconds = run_parallel(n, work)
    for conn in conns:
        conn.close()
    won = sorted(i for w in winners for i in w)
    system = f"postgresql {design}"
    seats = winners_disjoint(system, requests, won)
    with psycopg.connect(dsn) as conn:
        held: dict[int, int] = dict(
            conn.execute(
                "SELECT reservation_id, count(*) FROM seats WHERE status = 'HELD'"
                " GROUP BY reservation_id"
            ).fetchall()
        )
    check(
        held == {i + 1: len(requests[i]) for i in won},
        f"{system}: the HELD rows are not exactly the winners' seats",
    )
    extra = {"seats_held": seats, **percentiles_ms(latencies)}
    return HoldRun(seconds, len(requests), len(won), sum(aborted), extra)


def engine_holds(p: Params, requests: list[list[int]], store: Path | None) -> HoldRun:
    """The hold requests on an engine in memory or, with ``store``, durable (full), waiting
    for durability after every attempt."""
    n = p.threads
    engine = bo.Engine(seed=p.seed) if store is None else bo.Engine(store, durability="full")
    sale = bo.SaleSettings(
        queue_capacity=max(p.holds, 1), session_ttl_s=SESSION_TTL_S, hold_ttl_s=HOLD_TTL_S
    )
    hall = [bo.SectionSpec("A", SEAT_ROWS, SEATS_PER_ROW, "R", 100_000)]
    t0 = time.time()
    concert = engine.create_concert(
        title="holds", schedules=[bo.ScheduleSpec(t0 + 86_400, hall)], sale=sale, now=t0
    )
    schedule = concert.schedules[0].id
    seat_ids = [s.id for s in engine.seats(schedule, now=t0)]
    users = [engine.create_user(now=t0) for _ in requests]
    tokens = [engine.join_queue(u, concert.id, now=t0) for u in users]
    check(all(t.status == "ACTIVE" for t in tokens), "boxoffice: a holder is not ACTIVE")
    token_ids = [t.id for t in tokens]
    ids = [[seat_ids[s] for s in seats] for seats in requests]
    engine.wait_durable()
    winners: list[list[int]] = [[] for _ in range(n)]
    latencies: list[list[float]] = [[] for _ in range(n)]
    durable = store is not None

    def work(t: int) -> None:
        clock = time.perf_counter
        for i in range(t, len(ids), n):
            start = clock()
            try:
                engine.hold(users[i], token_ids[i], schedule, ids[i], now=time.time())
                winners[t].append(i)
            except bo.errors.SeatUnavailable:
                pass
            if durable:
                engine.wait_durable()
            latencies[t].append(clock() - start)

    seconds = run_parallel(n, work)
    won = sorted(i for w in winners for i in w)
    system = "boxoffice" if store is None else "boxoffice store"
    seats = winners_disjoint(system, requests, won)
    engine.check_invariants()
    stats = engine.stats(concert.id, now=time.time())
    check(stats.seats_held == seats, f"{system}: {stats.seats_held} HELD, winners hold {seats}")
    check(stats.reservations_pending == len(won), f"{system}: pending != winners")
    if store is not None:
        digest = engine.state_hash()
        engine.close()
        reopened = bo.Engine(store)
        check(reopened.state_hash() == digest, f"{system}: the reopened store differs")
        reopened.close()
    return HoldRun(
        seconds, len(requests), len(won), 0, {"seats_held": seats, **percentiles_ms(latencies)}
    )


def seat_rows(p: Params, dsn: str, workdir: Path) -> list[Row]:
    """Runs the hold requests on every system; returns the seat-hold rows."""
    requests = hold_requests(p)
    runs: dict[tuple[str, str], HoldRun] = {}
    durable_name, fast_name = "seat hold, durable when answered", "seat hold, not waiting for disk"
    for design, system in (
        ("for update", "postgresql FOR UPDATE"),
        ("conditional", "postgresql UPDATE..WHERE"),
    ):
        for synchronous, name in ((True, durable_name), (False, fast_name)):
            print(
                f"seats: {system}, synchronous_commit={'on' if synchronous else 'off'} ...",
                flush=True,
            )
            runs[name, system] = pg_holds(dsn, requests, p, design, synchronous)
    for store, name, system in (
        (True, durable_name, "boxoffice store (full)"),
        (False, fast_name, "boxoffice (memory)"),
    ):
        print(f"seats: {system} ...", flush=True)
        reps = []
        for rep in range(p.reps):
            path = None
            if store:
                (workdir / f"store-{rep}").mkdir()
                path = workdir / f"store-{rep}" / "holds.db"
            reps.append(engine_holds(p, requests, path))
            if path is not None:
                shutil.rmtree(path.parent)
        runs[name, system] = median_run(reps, lambda r: r.seconds)

    common = {
        "threads": p.threads,
        "requests": p.holds,
        "seats": SEAT_ROWS * SEATS_PER_ROW,
        "held_serial": serial_winners(requests),
    }
    rows: dict[tuple[str, str], Row] = {}
    for (name, system), run in runs.items():
        extra = {
            "attempts": run.attempts,
            "held": run.held,
            "refused": run.attempts - run.held,
            "seconds": round(run.seconds, 4),
            **run.extra,
            **common,
        }
        if run.aborted:
            extra["aborted"] = run.aborted
        if system.startswith("postgresql"):
            extra["synchronous_commit"] = "on" if name == durable_name else "off"
        rows[name, system] = Row(
            "seats", name, system, run.attempts / run.seconds, "holds/s", extra
        )
    ours_durable = rows[durable_name, "boxoffice store (full)"]
    ours_memory = rows[fast_name, "boxoffice (memory)"]
    out = list(rows.values())
    out.append(
        ratio(
            "seats",
            "hold: store vs FOR UPDATE (both durable)",
            ours_durable,
            rows[durable_name, "postgresql FOR UPDATE"],
        )
    )
    out.append(
        ratio(
            "seats",
            "hold: store vs UPDATE..WHERE (both durable)",
            ours_durable,
            rows[durable_name, "postgresql UPDATE..WHERE"],
        )
    )
    out.append(
        ratio(
            "seats",
            "hold: memory vs FOR UPDATE, sync commit off",
            ours_memory,
            rows[fast_name, "postgresql FOR UPDATE"],
            # The 50x target compares the locking designs: neither side waits for the
            # disk here. Durable against durable, both are bound by fsync (rows above).
            target=50,
        )
    )
    out.append(
        ratio(
            "seats",
            "hold: memory vs UPDATE..WHERE, sync off",
            ours_memory,
            rows[fast_name, "postgresql UPDATE..WHERE"],
        )
    )
    return out


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (< 1 minute)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--threads", type=int, help="client threads for every system (8)")
    parser.add_argument("--reps", type=int, help="runs of each boxoffice measurement (median)")
    parser.add_argument("--seed", type=int, help="seed of the hold requests (7)")
    args = parser.parse_args()
    p = QUICK if args.quick else Params()
    overrides = {k: getattr(args, k) for k in ("threads", "reps", "seed")}
    p = replace(p, **{k: v for k, v in overrides.items() if v is not None})

    def on_sigterm(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks below

    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"baselines: {p}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="boxoffice-baselines-"))
    workdir.chmod(0o755)  # the postgres user must reach its data directory inside
    rows: list[Row] = []
    try:
        with redis_server(workdir) as port:
            rows += queue_rows(p, port)
        with postgres_server(workdir) as dsn:
            rows += seat_rows(p, dsn, workdir)
    except InconsistentError as exc:
        print(f"INCONSISTENT: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_rows(rows)
    if args.json:
        write_json(rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
