"""The engine from Python on the standard workload: the batch interface and single calls.

- ``apply_batch``: every command of the workload (``bench/workload.py``) through
  ``Engine.apply_batch`` in arrays of 65,536, GIL released; commands/s and ns per command,
  and the engine must end in the workload's recorded ``state_hash``.
- one call per command: the first ``--calls`` commands (default 2,000,000) through the
  typed methods a Python user calls (``join_queue``, ``queue_status``, ``hold``, ``pay``,
  ...), a refused command raising its exception (caught); ns per call, including the
  Python loop that makes the call. The state must equal the batch replay of the same
  prefix (same ``state_hash``).
- single calls on the success path (``timeit``, 200,000 calls each): ``balance``,
  ``queue_status`` of a WAITING token, ``charge``; and a refused call that raises.

    .venv/bin/python bench/core_python.py [--quick] [--calls N] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import time
import timeit
from collections.abc import Callable
from typing import Any

from common import Row, print_rows, write_json
from workload import Workload, load

import boxoffice as bo
from boxoffice.batch import Op


def batch_rate(w: Workload) -> Row:
    engine, _ = w.new_engine()
    start = time.perf_counter()
    n = w.replay(engine)
    seconds = time.perf_counter() - start
    if engine.state_hash() != w.spec["state_hash"]:
        raise SystemExit("apply_batch: the replay did not end in the recorded state_hash")
    return Row(
        "core",
        "Python apply_batch, standard drop",
        "boxoffice",
        n / seconds,
        "commands/s",
        {"commands": n, "seconds": round(seconds, 3), "ns_per_command": 1e9 * seconds / n},
        target=1_000_000,
    )


def single_call_rate(w: Workload, calls: int) -> Row:
    cmds = w.commands[:calls]
    engine, concert_id = w.new_engine()
    grades = ["", *engine.concert(concert_id, now=engine.clock).grades]
    # Plain tuples first: reading NumPy records one by one would be measured instead.
    # Fields: op, grade, quantity, reserved, now_us, user, token, target, arg.
    rows: list[tuple[Any, ...]] = cmds.tolist()
    e = engine
    err = bo.errors.BoxOfficeError

    def hold_best(c: tuple[Any, ...]) -> object:
        return e.hold(c[5], c[6], c[7], quantity=c[2], grade=grades[c[1]], now=c[4] / 1e6)

    def hold_seats(c: tuple[Any, ...]) -> object:
        seats = list(range(c[8], c[8] + c[2]))
        return e.hold(c[5], c[6], c[7], seats, now=c[4] / 1e6)

    calls_by_op: dict[int, Callable[[tuple[Any, ...]], object]] = {
        Op.ADVANCE: lambda c: e.advance(now=c[4] / 1e6),
        Op.CREATE_USER: lambda c: e.create_user(now=c[4] / 1e6),
        Op.JOIN: lambda c: e.join_queue(c[5], c[7], now=c[4] / 1e6),
        Op.STATUS: lambda c: e.queue_status(c[5], c[6], now=c[4] / 1e6),
        Op.LEAVE: lambda c: e.leave_queue(c[5], c[6], now=c[4] / 1e6),
        Op.HOLD: lambda c: hold_seats(c) if c[8] != 0 else hold_best(c),
        Op.RELEASE_SEAT: lambda c: e.release_seat(c[5], c[7], c[8], now=c[4] / 1e6),
        Op.CANCEL: lambda c: e.cancel(c[5], c[7], now=c[4] / 1e6),
        Op.CHARGE: lambda c: e.charge(c[5], c[8], now=c[4] / 1e6),
        Op.PAY: lambda c: e.pay(c[5], c[6], c[7], now=c[4] / 1e6),
        Op.REFUND: lambda c: e.refund(c[5], c[7], now=c[4] / 1e6),
    }
    refused = 0
    start = time.perf_counter()
    for c in rows:
        try:
            calls_by_op[c[0]](c)
        except err:
            refused += 1
    seconds = time.perf_counter() - start
    reference, _ = w.new_engine()
    w.replay(reference, cmds)
    if engine.state_hash() != reference.state_hash():
        raise SystemExit("single calls: the state differs from apply_batch of the same commands")
    n = len(rows)
    return Row(
        "core",
        "Python one call per command, standard drop",
        "boxoffice",
        1e9 * seconds / n,
        "ns/call",
        {"commands": n, "seconds": round(seconds, 3), "refused": refused},
        target=1_000,
        higher_is_better=False,
    )


def micro(number: int) -> list[Row]:
    engine = bo.Engine()
    users = [engine.create_user(now=1.0) for _ in range(3)]
    for u in users:
        engine.charge(u, 1_000_000, now=1.0)
    sections = [bo.SectionSpec("A", 1, 10, "R", 100_000)]
    sale = bo.SaleSettings(queue_capacity=1, abandon_timeout_s=3600, session_ttl_s=3600)
    concert = engine.create_concert(
        title="micro", schedules=[bo.ScheduleSpec(2e9, sections)], sale=sale, now=1.0
    )
    engine.join_queue(users[0], concert.id, now=1.0)
    waiting = engine.join_queue(users[1], concert.id, now=1.0)
    u, t, c = users[1], waiting.id, concert.id

    def refused() -> None:
        with contextlib.suppress(bo.errors.QueueNotActive):
            engine.check_gate(u, t, c, now=2.0)

    cases: list[tuple[str, Callable[[], object]]] = [
        ("balance", lambda: engine.balance(u, now=2.0)),
        ("queue_status (WAITING)", lambda: engine.queue_status(u, t, now=2.0)),
        ("charge", lambda: engine.charge(users[2], 1, now=2.0)),
        ("check_gate refused (raises)", refused),
    ]
    rows = []
    for name, fn in cases:
        best = min(timeit.repeat(fn, number=number, repeat=3)) / number
        rows.append(Row("core", f"Python single call: {name}", "boxoffice", best * 1e9, "ns/call"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 20,000-user drop")
    parser.add_argument("--calls", type=int, default=2_000_000)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    w = load(20_000, 2_000) if args.quick else load()
    calls = min(args.calls, len(w.commands))
    print(f"workload {w.name}: {len(w.commands):,} commands; single calls: first {calls:,}")
    rows = [batch_rate(w), single_call_rate(w, calls)]
    rows += micro(20_000 if args.quick else 200_000)
    print_rows(rows)
    if args.json:
        write_json(rows, args.json)


if __name__ == "__main__":
    main()
