"""The standard benchmark workload, "drop-1M", generated once from a seed and reused.

1,000,000 users arrive in a burst for one concert with 50,000 seats (three grades): 10 %
in the ten minutes before the sale opens (the pre-queue), the rest within about a minute
of the opening. 5,000 are ACTIVE at a time; WAITING users poll every 30 s and give up after
their patience. An admitted user holds 1-4 best-available seats (half of them
in one grade of their choice, half in any grade; a hold fails when the grade has no seats
left, and such users retry or switch grade), and 80 % pay; the other 20 % walk away and let the
hold expire after 5 minutes. It runs until the last seat is sold.

The drop is played once by the simulator (``boxoffice.sim``, whose users decide what to try
next from the engine's answers) with ``on_commands`` recording every batch command. The
result is a plain command list: applying it in order to a fresh engine with the same seed,
limits and concert replays the drop exactly, which every benchmark does (C++, Python, the
journal, recovery), and each checks it ends in the recorded ``state_hash``.

Files (``build/workload/<name>.*``, cached: generated only when missing):
    ``.npy``: the commands, ``boxoffice.batch.COMMAND_DTYPE`` (48-byte records, the C++
    ``BatchCommand`` layout), one array;
    ``.json``: the parameters, the engine seed and limits, the concert, and the expected
    ``state_hash`` and counts after the whole list;
    ``.concert``: the same concert as ``key value`` lines for ``bench/core_bench.cc``.

    .venv/bin/python bench/workload.py [--users N] [--seats N] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import boxoffice as bo
from boxoffice import sim
from boxoffice.batch import COMMAND_DTYPE

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD_DIR = ROOT / "build" / "workload"
CHUNK = 65_536  # commands per apply_batch call when replaying
FORMAT = 4  # bump when the generator changes what it records (4: ops numbered as command.h Op)


def config(users: int, seats: int, seed: int) -> sim.SimConfig:
    """The drop's simulator configuration (see the module docstring)."""
    return sim.SimConfig(
        users=users,
        seed=seed,
        venue=sim.Venue(seats=seats),
        sale=sim.Sale(queue_capacity=5_000, hold_ttl_s=300.0, poll_interval_s=30.0),
        behaviour=sim.Behaviour(pay_p=0.8, funded_p=1.0, tidy_p=0.0, best_available_p=0.5),
    )


@dataclass
class Workload:
    """A generated workload: the command array and its description.

    Attributes:
        name: e.g. ``"drop-1m"``.
        commands: ``COMMAND_DTYPE`` records (memory-mapped from the ``.npy`` file).
        spec: the ``.json`` description (seed, limits, concert, expected ``state_hash``).
        concert_path: the ``.concert`` file for ``bench/core_bench.cc``.
    """

    name: str
    commands: npt.NDArray[np.void]
    spec: dict[str, Any]
    concert_path: Path

    def limits(self) -> bo.Limits:
        """The engine limits the drop ran with."""
        return bo.Limits(event_retention_max=self.spec["limits"]["event_retention_max"])

    def new_engine(self, path: str | Path | None = None, **store: Any) -> tuple[bo.Engine, int]:
        """A fresh engine (in memory, or a new store at ``path``) with the drop's concert.

        Returns:
            ``(engine, concert_id)``; the commands then apply to it in order.
        """
        engine = bo.Engine(path, seed=self.spec["seed"], limits=self.limits(), **store)
        c = self.spec["concert"]
        sections = [bo.SectionSpec(*s) for s in c["sections"]]
        concert = engine.create_concert(
            title=c["title"],
            artist=c["artist"],
            venue=c["venue"],
            schedules=[bo.ScheduleSpec(c["starts_at_s"], sections)],
            sale=bo.SaleSettings(**c["sale"]),
            now=c["created_at_s"],
        )
        return engine, concert.id

    def replay(self, engine: bo.Engine, commands: npt.NDArray[np.void] | None = None) -> int:
        """Applies ``commands`` (default: all) through ``apply_batch``; returns how many."""
        cmds = self.commands if commands is None else commands
        for start in range(0, len(cmds), CHUNK):
            engine.apply_batch(cmds[start : start + CHUNK])
        return len(cmds)


def _paths(name: str) -> tuple[Path, Path, Path]:
    base = WORKLOAD_DIR / name
    return base.with_suffix(".npy"), base.with_suffix(".json"), base.with_suffix(".concert")


def generate(name: str, users: int, seats: int, seed: int) -> Workload:
    """Plays the drop in the simulator, records its commands and writes the three files."""
    cfg = config(users, seats, seed)
    parts: list[npt.NDArray[np.void]] = []
    started = time.perf_counter()
    result = sim.run(cfg, on_commands=lambda cmds: parts.append(cmds.copy()))
    commands = np.concatenate(parts) if parts else np.zeros(0, dtype=COMMAND_DTYPE)
    # The concert exactly as the simulator created it (the engine's own view of it).
    concert = result.engine.concert(1, now=result.engine.clock)
    sched = concert.schedules[0]
    sale = concert.sale
    sections = [[s.name, s.rows, s.seats_per_row, s.grade, s.price] for s in cfg.venue.sections()]
    spec: dict[str, Any] = {
        "format": FORMAT,
        "name": name,
        "users": users,
        "seats": seats,
        "seed": seed,
        "limits": {"event_retention_max": result.engine.limits.event_retention_max},
        "concert": {
            "title": concert.title,
            "artist": concert.artist,
            "venue": concert.venue,
            "created_at_s": concert.created_at,
            "starts_at_s": sched.starts_at,
            "sections": sections,
            "sale": {
                "opens_at": sale.opens_at,
                "queue_capacity": sale.queue_capacity,
                "admission_per_minute": sale.admission_per_minute,
                "session_ttl_s": sale.session_ttl_s,
                "hold_ttl_s": sale.hold_ttl_s,
                "max_seats_per_reservation": sale.max_seats_per_reservation,
                "max_seats_per_user": sale.max_seats_per_user,
                "release_on_payment_failure": sale.release_on_payment_failure,
                "abandon_timeout_s": sale.abandon_timeout_s,
                "poll_interval_s": sale.poll_interval_s,
            },
        },
        "commands": len(commands),
        "ops": {op.name: int((commands["op"] == op).sum()) for op in bo.batch.Op},
        "generate_s": round(time.perf_counter() - started, 1),
    }
    npy, js, conc = _paths(name)
    WORKLOAD_DIR.mkdir(parents=True, exist_ok=True)
    np.save(npy, commands)
    # The expected end state: a fresh engine fed exactly the recorded commands.
    workload = Workload(name, np.load(npy, mmap_mode="r"), spec, conc)
    engine, _ = workload.new_engine()
    workload.replay(engine)
    stats = engine.stats(1, now=engine.clock)
    spec["state_hash"] = engine.state_hash()
    spec["seats_sold"] = stats.seats_sold
    spec["payments"] = stats.payments
    spec["reservations_expired"] = stats.reservations_expired
    if stats.seats_sold != result.summary.sold:
        raise RuntimeError(
            f"the replay sold {stats.seats_sold} seats, the drop {result.summary.sold}"
        )
    js.write_text(json.dumps(spec, indent=2) + "\n")
    conc.write_text(_concert_lines(workload))
    return workload


def _us(seconds: float | None) -> int:
    return -1 if seconds is None else round(seconds * 1e6)


def _concert_lines(w: Workload) -> str:
    """The concert for core_bench.cc: ``key value`` lines, times in microseconds."""
    c = w.spec["concert"]
    sale = c["sale"]
    lines = [
        f"seed {w.spec['seed']}",
        f"title {c['title']}",
        f"artist {c['artist']}",
        f"venue {c['venue']}",
        f"event_retention_max {w.spec['limits']['event_retention_max']}",
        f"state_hash {w.spec['state_hash']}",
        f"created_at_us {_us(c['created_at_s'])}",
        f"starts_at_us {_us(c['starts_at_s'])}",
        f"opens_at_us {_us(sale['opens_at'])}",
        f"queue_capacity {sale['queue_capacity']}",
        f"admission_per_minute {sale['admission_per_minute'] or -1}",
        f"session_ttl_us {_us(sale['session_ttl_s'])}",
        f"hold_ttl_us {_us(sale['hold_ttl_s'])}",
        f"max_seats_per_reservation {sale['max_seats_per_reservation']}",
        f"max_seats_per_user {sale['max_seats_per_user'] or -1}",
        f"release_on_payment_failure {int(sale['release_on_payment_failure'])}",
        f"abandon_timeout_us {_us(sale['abandon_timeout_s'])}",
        f"poll_interval_us {_us(sale['poll_interval_s'])}",
    ]
    lines += [
        f"section {n} {rows} {per_row} {grade} {price}"
        for n, rows, per_row, grade, price in c["sections"]
    ]
    return "\n".join(lines) + "\n"


def load(users: int = 1_000_000, seats: int = 50_000, seed: int = 1) -> Workload:
    """The workload for these parameters, generated first if it is not cached (or stale)."""
    name = (
        "drop-1m"
        if (users, seats, seed) == (1_000_000, 50_000, 1)
        else f"drop-{users}-{seats}-{seed}"
    )
    npy, js, conc = _paths(name)
    if npy.exists() and js.exists() and conc.exists():
        spec = json.loads(js.read_text())
        if spec.get("format") == FORMAT:
            return Workload(name, np.load(npy, mmap_mode="r"), spec, conc)
    return generate(name, users, seats, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seats", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    w = load(args.users, args.seats, args.seed)
    print(json.dumps({k: v for k, v in w.spec.items() if k != "concert"}, indent=2))


if __name__ == "__main__":
    main()
