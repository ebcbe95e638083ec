"""Commands per second of a simple in-process ticket drop, from Python.

The same drop as ``bench/drop_bench.cc``: N users are created and funded and all join one
concert at once; round by round every ACTIVE user holds 1-4 best-available seats of a grade,
pays (4 in 5) or cancels, and leaves, admitting the next users; 100 WAITING users poll each
round. Virtual time advances one second per round. Run twice: one Python call per command
(``Engine.hold``, ``Engine.pay``, ...) and one ``Engine.apply_batch`` call per round.

    .venv/bin/python bench/drop_python.py [--users N] [--seats N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import boxoffice as bo
from boxoffice.batch import Op

CAPACITY = 2_000
SEATS_PER_ROW = 50
GRADES = ("VIP", "R", "S")


def make_engine(seats: int, engine: bo.Engine | None = None) -> tuple[bo.Engine, int, int]:
    """Creates the drop's concert (in ``engine``, or a new in-memory engine)."""
    engine = bo.Engine(seed=7) if engine is None else engine
    rows = seats // SEATS_PER_ROW
    sections = [
        bo.SectionSpec("VIP", rows // 5, SEATS_PER_ROW, "VIP", 165_000),
        bo.SectionSpec("R", rows * 2 // 5, SEATS_PER_ROW, "R", 132_000),
        bo.SectionSpec("S", rows - rows // 5 - rows * 2 // 5, SEATS_PER_ROW, "S", 99_000),
    ]
    sale = bo.SaleSettings(queue_capacity=CAPACITY, abandon_timeout_s=3600)
    concert = engine.create_concert(
        title="drop", schedules=[bo.ScheduleSpec(1.9e9, sections)], sale=sale, now=0
    )
    return engine, concert.id, concert.schedules[0].id


def run_single_calls(users: int, seats: int) -> tuple[int, float, int]:
    engine, concert, schedule = make_engine(seats)
    commands = 0
    start = time.perf_counter()
    now = 1.0
    for _ in range(users):
        engine.create_user(now=now)
    for u in range(1, users + 1):
        engine.charge(u, 1_000_000, now=now)
    for u in range(1, users + 1):
        engine.join_queue(u, concert, now=now)
    commands += 3 * users
    nxt = 1
    while nxt <= users:
        now += 1.0
        last = min(users, nxt + CAPACITY - 1)
        for u in range(nxt, last + 1):
            commands += 1
            try:
                res = engine.hold(u, u, schedule, quantity=1 + u % 4, grade=GRADES[u % 3], now=now)
            except bo.errors.SeatUnavailable:
                engine.leave_queue(u, u, now=now)
                commands += 1
                continue
            commands += 1
            if u % 5 != 0:
                engine.pay(u, u, res.id, now=now)
            else:
                engine.cancel(u, res.id, now=now)
                engine.leave_queue(u, u, now=now)
                commands += 1
        for k in range(100):
            u = last + 1 + k * 97
            if u > users:
                break
            engine.queue_status(u, u, now=now)
            commands += 1
        nxt = last + 1
    seconds = time.perf_counter() - start
    engine.check_invariants()
    return commands, seconds, engine.stats(concert, now=now).seats_sold


def run_batches(
    users: int, seats: int, engine: bo.Engine | None = None, durable: bool = False
) -> tuple[int, float, int]:
    """The drop through ``apply_batch``; with ``durable``, each batch is waited for until
    its journal group is committed before the next one is built (group commit)."""
    engine, concert, schedule = make_engine(seats, engine)
    commands = 0
    start = time.perf_counter()
    now_us = 1_000_000
    ids = np.arange(1, users + 1, dtype=np.int64)
    setup = bo.batch.commands(3 * users)
    setup["now_us"] = now_us
    setup["op"][:users] = Op.CREATE_USER
    setup["op"][users : 2 * users] = Op.CHARGE
    setup["user"][users : 2 * users] = ids
    setup["arg"][users : 2 * users] = 1_000_000
    setup["op"][2 * users :] = Op.JOIN
    setup["user"][2 * users :] = ids
    setup["target"][2 * users :] = concert
    engine.apply_batch(setup)
    if durable:
        engine.wait_durable()
    commands += len(setup)
    nxt = 1
    while nxt <= users:
        now_us += 1_000_000
        last = min(users, nxt + CAPACITY - 1)
        active = np.arange(nxt, last + 1, dtype=np.int64)
        holds = bo.batch.commands(len(active))
        holds["op"] = Op.HOLD_BEST
        holds["now_us"] = now_us
        holds["user"] = active
        holds["token"] = active
        holds["target"] = schedule
        holds["quantity"] = 1 + active % 4
        holds["grade"] = 1 + active % 3
        held = engine.apply_batch(holds)
        if durable:
            engine.wait_durable()
        ok = held["code"] == 0
        pay = ok & (active % 5 != 0)
        cancel = ok & ~pay
        leave = ~pay
        polls = np.arange(last + 1, min(users, last + 1 + 99 * 97) + 1, 97, dtype=np.int64)
        n = int(pay.sum() + cancel.sum() + leave.sum()) + len(polls)
        follow = bo.batch.commands(n)
        follow["now_us"] = now_us
        parts = [
            (Op.PAY, active[pay], active[pay], held["id"][pay]),
            (Op.CANCEL, active[cancel], 0, held["id"][cancel]),
            (Op.LEAVE, active[leave], active[leave], 0),
            (Op.STATUS, polls, polls, 0),
        ]
        i = 0
        for op, user, token, target in parts:
            k = len(user)
            follow["op"][i : i + k] = op
            follow["user"][i : i + k] = user
            follow["token"][i : i + k] = token
            follow["target"][i : i + k] = target
            i += k
        engine.apply_batch(follow)
        if durable:
            engine.wait_durable()
        commands += len(holds) + len(follow)
        nxt = last + 1
    seconds = time.perf_counter() - start
    engine.check_invariants()
    return commands, seconds, engine.stats(concert, now=now_us / 1e6).seats_sold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seats", type=int, default=50_000)
    args = parser.parse_args()
    print(f"drop: {args.users} users, {args.seats} seats, capacity {CAPACITY}")
    print(f"{'mode':<26} {'commands':>10} {'seconds':>9} {'commands/s':>12} {'ns/command':>11}")
    for name, run in (
        ("Python apply_batch", run_batches),
        ("Python one call/command", run_single_calls),
    ):
        commands, seconds, sold = run(args.users, args.seats)
        assert sold == args.seats or args.users * 2 < args.seats, sold
        print(
            f"{name:<26} {commands:>10} {seconds:>9.3f} {commands / seconds:>12.0f} "
            f"{seconds / commands * 1e9:>11.0f}"
        )


if __name__ == "__main__":
    main()
