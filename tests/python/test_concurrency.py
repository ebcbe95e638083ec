"""Real threads racing on one engine: no seat twice, no money lost, no capacity overrun."""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boxoffice as bo
from boxoffice import errors

T0 = 1_000.0
VIP = 165_000


def race(n: int, action: Callable[[int], Any]) -> list[tuple[str, Any]]:
    """Runs ``action(i)`` on ``n`` threads released together by a barrier.

    Returns ``("ok", result)``, ``("err", BoxOfficeError)`` or ``("crash", exception)`` per i.
    """
    barrier = threading.Barrier(n)
    outcomes: list[tuple[str, Any]] = [("missing", None)] * n

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            outcomes[i] = ("ok", action(i))
        except errors.BoxOfficeError as e:
            outcomes[i] = ("err", e)
        except BaseException as e:
            outcomes[i] = ("crash", e)

    old = threading.stack_size(512 * 1024)
    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
    finally:
        threading.stack_size(old)
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a thread hung"
    crashes = [o for o in outcomes if o[0] in ("crash", "missing")]
    assert not crashes, crashes[:3]
    return outcomes


def oks(outcomes):
    return [value for kind, value in outcomes if kind == "ok"]


def errs(outcomes):
    return [value for kind, value in outcomes if kind == "err"]


def test_1000_threads_holding_the_same_seat_one_wins(make_drop):
    drop = make_drop(queue_capacity=1_000)
    eng = drop.engine
    players = [drop.admitted(now=T0) for _ in range(1_000)]
    outcomes = race(
        1_000, lambda i: eng.hold(players[i][0], players[i][1], drop.schedule_id, [1], now=T0 + 1)
    )
    winners = oks(outcomes)
    assert len(winners) == 1
    losers = errs(outcomes)
    assert len(losers) == 999
    assert {type(e) for e in losers} == {errors.SeatUnavailable}
    assert {e.seat_id for e in losers} == {1}
    winner = winners[0]
    assert winner.seat_ids == [1]
    assert [s.id for s in eng.seats(drop.schedule_id, "HELD", now=T0 + 2)] == [1]
    stats = eng.stats(drop.concert_id, now=T0 + 2)
    assert (stats.seats_held, stats.reservations_pending) == (1, 1)
    eng.check_invariants()


def test_threads_taking_best_available_pairs_never_share_a_seat(make_drop):
    drop = make_drop(queue_capacity=300, sections=(bo.SectionSpec("A", 10, 10, "R", 1_000),))
    eng = drop.engine
    players = [drop.admitted(now=T0) for _ in range(300)]
    outcomes = race(
        300,
        lambda i: eng.hold(players[i][0], players[i][1], drop.schedule_id, quantity=2, now=T0 + 1),
    )
    winners = oks(outcomes)
    # Rows of 10 taken two by two from the left: all 100 seats, 50 reservations.
    assert len(winners) == 50
    assert {type(e) for e in errs(outcomes)} == {errors.SeatUnavailable}
    seats = [s for r in winners for s in r.seat_ids]
    assert len(seats) == len(set(seats)) == 100
    for r in winners:
        assert r.seat_ids[1] == r.seat_ids[0] + 1
        assert (r.seat_ids[0] - 1) // 10 == (r.seat_ids[1] - 1) // 10  # the same row
    assert eng.seats(drop.schedule_id, "AVAILABLE", now=T0 + 2) == []
    eng.check_invariants()


def test_1000_concurrent_charges_sum_exactly(drop):
    eng = drop.engine
    user = drop.user(now=T0)
    outcomes = race(1_000, lambda i: eng.charge(user, i + 1, now=T0 + 1))
    charges = oks(outcomes)
    assert len(charges) == 1_000
    total = 1_000 * 1_001 // 2
    assert eng.balance(user, now=T0 + 2) == total
    assert sorted(c.balance for c in charges)[-1] == total
    assert len({c.balance for c in charges}) == 1_000
    assert len({c.entry_id for c in charges}) == 1_000
    history = eng.history(user, now=T0 + 2)
    assert len(history) == 1_000
    running = 0
    for entry in history:  # in entry order, each balance follows from the one before
        running += entry.amount
        assert entry.balance_after == running
    assert sorted(h.amount for h in history) == list(range(1, 1_001))
    eng.check_invariants()


def test_concurrent_charges_of_many_users(drop):
    eng = drop.engine
    users = [drop.user(now=T0) for _ in range(200)]
    outcomes = race(1_000, lambda i: eng.charge(users[i % 200], 1_000 + i, now=T0 + 1))
    assert len(oks(outcomes)) == 1_000
    for k, user in enumerate(users):
        expected = sum(1_000 + i for i in range(k, 1_000, 200))
        assert eng.balance(user, now=T0 + 2) == expected
    eng.check_invariants()


def test_the_same_reservation_paid_100_times_is_paid_once(drop):
    eng = drop.engine
    user, token = drop.funded(3 * VIP, now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    outcomes = race(100, lambda i: eng.pay(user, token, res.id, now=T0 + 2))
    payments = oks(outcomes)
    assert len(payments) == 1
    # After the payment the token is used up: the others are refused at the gate.
    assert {type(e) for e in errs(outcomes)} == {errors.QueueTokenExpired}
    assert eng.balance(user, now=T0 + 3) == 2 * VIP
    assert [h.kind for h in eng.history(user, now=T0 + 3)] == ["CHARGE", "PAYMENT"]
    stats = eng.stats(drop.concert_id, now=T0 + 3)
    assert (stats.payments, stats.revenue, stats.seats_sold) == (1, VIP, 1)
    assert eng.reservation(user, res.id, now=T0 + 3).payment_id == payments[0].id
    eng.check_invariants()


def test_the_same_payment_retried_100_times_with_a_key_returns_one_payment(drop):
    eng = drop.engine
    user, token = drop.funded(3 * VIP, now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    outcomes = race(
        100, lambda i: eng.pay(user, token, res.id, idempotency_key="pay-1", now=T0 + 2)
    )
    payments = oks(outcomes)
    assert len(payments) == 100
    assert len({p.id for p in payments}) == 1
    assert {p.balance_after for p in payments} == {2 * VIP}
    assert eng.balance(user, now=T0 + 3) == 2 * VIP
    assert eng.stats(drop.concert_id, now=T0 + 3).payments == 1
    eng.check_invariants()


def test_concurrent_charges_with_one_key_apply_once(drop):
    eng = drop.engine
    user = drop.user(now=T0)
    outcomes = race(200, lambda i: eng.charge(user, 7_000, idempotency_key="once", now=T0 + 1))
    charges = oks(outcomes)
    assert len(charges) == 200
    assert len({c.entry_id for c in charges}) == 1
    assert eng.balance(user, now=T0 + 2) == 7_000
    eng.check_invariants()


def test_concurrent_payments_never_overdraw(make_drop):
    # One wallet, eight reservations in eight concerts (one ACTIVE token each), money for three.
    drops = [
        make_drop(title=f"show {i}", sections=(bo.SectionSpec("A", 1, 1, "R", 10_000),))
        for i in range(8)
    ]
    eng = drops[0].engine
    user = drops[0].user(now=T0)
    eng.charge(user, 35_000, now=T0)
    pending = []
    for d in drops:
        token = eng.join_queue(user, d.concert_id, now=T0).id
        pending.append((token, eng.hold(user, token, d.schedule_id, quantity=1, now=T0).id))
    outcomes = race(8, lambda i: eng.pay(user, pending[i][0], pending[i][1], now=T0 + 1))
    assert len(oks(outcomes)) == 3
    assert {type(e) for e in errs(outcomes)} == {errors.InsufficientBalance}
    assert eng.balance(user, now=T0 + 2) == 5_000
    assert sum(eng.stats(d.concert_id, now=T0 + 2).revenue for d in drops) == 30_000
    assert [h.balance_after for h in eng.history(user, now=T0 + 2)] == [
        35_000,
        25_000,
        15_000,
        5_000,
    ]
    eng.check_invariants()


def test_concurrent_joins_never_exceed_capacity_and_get_distinct_positions(make_drop):
    drop = make_drop(queue_capacity=100, abandon_timeout_s=600.0)
    eng = drop.engine
    users = [drop.user(now=T0) for _ in range(1_000)]
    outcomes = race(1_000, lambda i: eng.join_queue(users[i], drop.concert_id, now=T0 + 1))
    tokens = oks(outcomes)
    assert len(tokens) == 1_000
    assert len({t.id for t in tokens}) == 1_000
    states = Counter(t.status for t in tokens)
    assert states == {"ACTIVE": 100, "WAITING": 900}
    assert sorted(t.position for t in tokens if t.status == "WAITING") == list(range(900))
    # Earlier tokens are ahead: the ACTIVE ones are the first 100 created.
    by_id = sorted(tokens, key=lambda t: t.id)
    assert {t.status for t in by_id[:100]} == {"ACTIVE"}
    stats = eng.stats(drop.concert_id, now=T0 + 2)
    assert (stats.queue_active, stats.queue_waiting) == (100, 900)
    # Positions read afterwards are exact and follow the join order.
    views = [eng.queue_status(t.user_id, t.id, now=T0 + 2) for t in by_id[100:]]
    assert [v.position for v in views] == list(range(900))
    eng.check_invariants()


def test_concurrent_joins_of_one_user_give_one_token(drop):
    eng = drop.engine
    user = drop.user(now=T0)
    outcomes = race(200, lambda i: eng.join_queue(user, drop.concert_id, now=T0 + 1))
    assert len({t.id for t in oks(outcomes)}) == 1
    assert eng.stats(drop.concert_id, now=T0 + 2).queue_joined_total == 1
    eng.check_invariants()


def test_concurrent_leaves_admit_in_order_within_capacity(make_drop):
    drop = make_drop(queue_capacity=50, abandon_timeout_s=600.0)
    eng = drop.engine
    users = [drop.user(now=T0) for _ in range(300)]
    tokens = [eng.join_queue(u, drop.concert_id, now=T0) for u in users]
    # The 50 ACTIVE users leave at once; the next 50 in line take their places.
    race(50, lambda i: eng.leave_queue(users[i], tokens[i].id, now=T0 + 1))
    stats = eng.stats(drop.concert_id, now=T0 + 2)
    assert (stats.queue_active, stats.queue_waiting) == (50, 200)
    active = [
        t.id
        for u, t in zip(users, tokens, strict=True)
        if eng.queue_status(u, t.id, now=T0 + 2).status == "ACTIVE"
    ]
    assert active == [t.id for t in tokens[50:100]]
    eng.check_invariants()


def test_a_mixed_drop_on_many_threads_keeps_every_invariant(make_drop):
    drop = make_drop(
        queue_capacity=20,
        hold_ttl_s=5.0,
        session_ttl_s=30.0,
        abandon_timeout_s=20.0,
        sections=(
            bo.SectionSpec("A", 5, 10, "VIP", 30_000),
            bo.SectionSpec("B", 5, 10, "R", 10_000),
        ),
    )
    eng = drop.engine
    users = [drop.user(now=T0) for _ in range(64)]

    def shopper(i: int) -> int:
        rng = random.Random(i)
        user = users[i]
        token = 0
        held: list[int] = []
        paid = 0
        for step in range(150):
            now = T0 + step * 0.5
            try:
                r = rng.random()
                if r < 0.15 or not token:
                    token = eng.join_queue(user, drop.concert_id, now=now).id
                elif r < 0.3:
                    eng.charge(user, rng.choice([10_000, 30_000, 50_000]), now=now)
                elif r < 0.55:
                    seats = rng.sample(range(1, 101), rng.randrange(1, 4))
                    held.append(eng.hold(user, token, drop.schedule_id, seats, now=now).id)
                elif r < 0.65:
                    q = rng.randrange(1, 4)
                    held.append(eng.hold(user, token, drop.schedule_id, quantity=q, now=now).id)
                elif r < 0.85 and held:
                    eng.pay(user, token, rng.choice(held), now=now)
                    paid += 1
                elif r < 0.92 and held:
                    eng.cancel(user, rng.choice(held), now=now)
                elif held:
                    eng.refund(user, rng.choice(held), now=now)
            except errors.BoxOfficeError:
                pass
        return paid

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        paid = sum(pool.map(shopper, range(len(users))))
    end = T0 + 100
    eng.check_invariants()
    assert paid > 0
    stats = eng.stats(drop.concert_id, now=end)
    assert stats.queue_active <= 20
    assert stats.seats_available + stats.seats_held + stats.seats_sold == stats.seats_total
    assert stats.seats_held == 0  # every hold has expired by now
    balances = [eng.balance(u, now=end) for u in users]
    assert min(balances) >= 0
    charges = sum(h.amount for u in users for h in eng.history(u, now=end) if h.kind == "CHARGE")
    assert sum(balances) + stats.revenue == charges
    sold = eng.seats(drop.schedule_id, "SOLD", now=end)
    owners = [
        s
        for u in users
        for r in eng.reservations(u, now=end)
        if r.status == "CONFIRMED"
        for s in r.seat_ids
    ]
    assert sorted(owners) == sorted(s.id for s in sold)
