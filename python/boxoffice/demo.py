"""A small ticket drop through the engine, in virtual time: ``python -m boxoffice.demo``.

3,000 fans arrive from 30 s before to 10 s after the sale opens, for a 900-seat hall with room
for 200 shoppers at once. Each admitted fan holds 1-4 best-available seats, pays with
probability 0.8, and otherwise leaves the queue and lets the hold expire (fans who find
nothing free look again at their next poll, until their session ends); waiting fans poll
every 5 s and one in ten may give up. Every step goes through the same engine a server would
use; the clock is virtual, so the demo takes seconds, not an hour. Prints what happened and
checks the engine's invariants (no seat sold twice, money conserved).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

from . import Engine, SaleSettings, ScheduleSpec, SectionSpec, errors


@dataclass
class Fan:
    user_id: int
    token_id: int
    arrives_at: float
    gives_up: bool
    done: bool = False
    paid: bool = False


def run(fans: int = 3_000, seed: int = 1) -> dict[str, float]:
    """Runs the demo drop and returns its summary (counts, won, seconds of virtual time).

    Raises:
        boxoffice.errors.InternalError: an invariant of the engine is broken (a bug).
    """
    rng = random.Random(seed)
    engine = Engine(seed=seed)
    opens_at = 1_000.0
    concert = engine.create_concert(
        title="IU 2027 World Tour",
        artist="IU",
        venue="KSPO Dome",
        schedules=[
            ScheduleSpec(
                1.8e9,
                [
                    SectionSpec("A", 5, 20, "VIP", 165_000),
                    SectionSpec("B", 20, 20, "R", 132_000),
                    SectionSpec("C", 20, 20, "S", 99_000),
                ],
            )
        ],
        sale=SaleSettings(
            opens_at=opens_at,
            queue_capacity=200,
            hold_ttl_s=300,
            session_ttl_s=600,
            max_seats_per_reservation=4,
        ),
        now=0,
    )
    schedule_id = concert.schedules[0].id
    crowd: list[Fan] = []
    for _ in range(fans):
        user = engine.create_user(now=0)
        engine.charge(user, 700_000, now=0)
        arrives_at = opens_at - 30 + rng.random() * 40
        crowd.append(Fan(user, 0, round(arrives_at), rng.random() < 0.1))
    crowd.sort(key=lambda f: f.arrives_at)

    sold_out_at: float | None = None
    now = opens_at - 30
    while any(not f.done for f in crowd) and now < opens_at + 3_600:
        now += 1.0
        for fan in crowd:
            if fan.done or fan.arrives_at > now:
                continue
            if fan.token_id == 0:
                fan.token_id = engine.join_queue(fan.user_id, concert.id, now=now).id
            elif (now - fan.arrives_at) % 5 != 0:
                continue  # polls every 5 s, the engine's default poll_after_s
            token = engine.queue_status(fan.user_id, fan.token_id, now=now)
            if token.status == "EXPIRED":
                fan.done = True
            elif token.status == "WAITING" and fan.gives_up and rng.random() < 0.05:
                engine.leave_queue(fan.user_id, fan.token_id, now=now)
                fan.done = True
            elif token.status == "ACTIVE":
                try:
                    res = engine.hold(
                        fan.user_id, fan.token_id, schedule_id, quantity=rng.randint(1, 4), now=now
                    )
                except errors.SeatUnavailable:
                    continue  # nothing free right now: look again at the next poll
                fan.done = True
                if rng.random() < 0.8:
                    engine.pay(fan.user_id, fan.token_id, res.id, now=now)
                    fan.paid = True
                else:
                    engine.leave_queue(fan.user_id, fan.token_id, now=now)
        stats = engine.stats(concert.id, now=now)
        if stats.seats_sold == stats.seats_total:
            sold_out_at = now - opens_at
            break
    stats = engine.stats(concert.id, now=now)
    engine.check_invariants()
    return {
        "fans": fans,
        "seats": stats.seats_total,
        "sold": stats.seats_sold,
        "reservations_confirmed": stats.reservations_confirmed,
        "reservations_expired": stats.reservations_expired,
        "abandoned": stats.queue_abandoned_total,
        "still_waiting": stats.queue_waiting,
        "revenue_won": stats.revenue,
        "sold_out_after_s": -1.0 if sold_out_at is None else sold_out_at,
        "events": engine.last_event_seq,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="A small ticket drop through boxoffice.")
    parser.add_argument("--fans", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    summary = run(args.fans, args.seed)
    print("boxoffice demo drop (virtual time)")
    for key, value in summary.items():
        print(f"  {key:<24} {value:>14,.0f}")
    print("  invariants               ok (no seat sold twice, money sums to zero)")


if __name__ == "__main__":
    main()
