"""A deterministic command stream for durability tests, and the child process that runs it.

``command(i)`` is the i-th command of the stream (it depends only on ``i`` and the seed,
never on earlier results, so a parent can rebuild the exact state after any prefix in
memory). Run as a script, it opens a durable store and applies commands ``start, start+1,
...`` forever, printing each index once ``wait_durable`` has returned: the parent kills it
with SIGKILL at a random moment and checks that the store holds exactly a prefix that
includes every acknowledged command.

    python durability_workload.py PATH SEED START [DURABILITY]
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Callable

import boxoffice as bo

USERS = 12
T0 = 1_000.0


def command(i: int, seed: int) -> Callable[[bo.Engine], object]:
    """The i-th command: a function applying it to an engine (errors are part of the stream)."""
    now = T0 + i * 0.25
    if i < USERS:
        return lambda e: e.create_user(now=now)
    if i == USERS:
        sections = [
            bo.SectionSpec("A", 3, 8, "VIP", 120_000),
            bo.SectionSpec("B", 4, 8, "R", 80_000),
        ]
        sale = bo.SaleSettings(
            queue_capacity=4,
            hold_ttl_s=20,
            session_ttl_s=60,
            abandon_timeout_s=30,
            admission_per_minute=120,
        )
        return lambda e: e.create_concert(
            title="crash", schedules=[bo.ScheduleSpec(2e9, sections)], sale=sale, now=now
        )
    rng = random.Random(seed * 1_000_003 + i)
    user = rng.randint(1, USERS)
    stray_token = rng.randint(1, 3 * USERS)
    op = rng.randrange(8)

    # Reads at the engine's own clock change nothing and are not journaled, so a step can
    # look up the user's token or reservation and still be exactly one command.
    def token(e: bo.Engine) -> int:
        live = e.live_token(user, 1, now=e.clock)
        return stray_token if live is None or rng.random() < 0.1 else live.id

    def pending(e: bo.Engine) -> tuple[int, int]:
        mine = [r for r in e.reservations(user, now=e.clock) if r.status == "PENDING"]
        return (mine[-1].token_id, mine[-1].id) if mine else (stray_token, rng.randint(1, 40))

    if op == 0:
        return lambda e: e.join_queue(user, 1, now=now)
    if op == 1:
        return lambda e: e.queue_status(user, token(e), now=now)
    if op == 2:
        seats = sorted(rng.sample(range(1, 57), rng.randint(1, 3)))
        return lambda e: e.hold(user, token(e), 1, seats, now=now)
    if op == 3:
        quantity = rng.randint(1, 4)
        return lambda e: e.hold(user, token(e), 1, quantity=quantity, now=now)
    if op == 4:
        amount = rng.choice([50_000, 120_000, 300_000])
        key = f"c{rng.randrange(3)}" if rng.random() < 0.3 else ""
        return lambda e: e.charge(user, amount, idempotency_key=key, now=now)
    if op == 5:
        return lambda e: e.pay(user, *pending(e), now=now)
    if op == 6:
        return lambda e: e.cancel(user, pending(e)[1], now=now)
    return lambda e: e.leave_queue(user, token(e), now=now)


def apply(engine: bo.Engine, i: int, seed: int) -> None:
    # A refused command is still part of the stream (and of the journal).
    with contextlib.suppress(bo.errors.BoxOfficeError):
        command(i, seed)(engine)


def main() -> None:
    path, seed, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    durability = sys.argv[4] if len(sys.argv) > 4 else "full"
    engine = bo.Engine(path, durability=durability, snapshot_every_records=500)
    print(f"open {engine.recovery['last_seq']}", flush=True)
    i = start
    while True:
        apply(engine, i, seed)
        engine.wait_durable()
        print(i, flush=True)
        i += 1


if __name__ == "__main__":
    main()
