"""The domain event journal, numbered by sequence and read after a sequence."""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import itertools
from typing import Any

import pytest

from boxoffice import errors

T0 = 1_000.0
VIP = 165_000


def test_sequence_numbers_are_dense_from_one(engine, make_drop):
    assert engine.last_event_seq == 0
    assert engine.events() == []
    user = engine.create_user(now=T0)
    first = engine.events()
    assert [(e.seq, e.type, e.user_id, e.at) for e in first] == [(1, "UserCreated", user, T0)]
    drop = make_drop(now=T0 + 1)
    created = engine.events(1)
    assert [(e.seq, e.type, e.concert_id, e.at) for e in created] == [
        (2, "ConcertCreated", drop.concert_id, T0 + 1)
    ]
    assert engine.last_event_seq == 2


def test_events_after_a_sequence_number_with_a_limit(drop):
    eng = drop.engine
    for i in range(5):
        drop.user(now=T0 + i)
    last = eng.last_event_seq
    every = eng.events(0)
    assert [e.seq for e in every] == list(range(1, last + 1))
    assert [e.seq for e in eng.events(3)] == list(range(4, last + 1))
    assert [e.seq for e in eng.events(2, 2)] == [3, 4]
    assert eng.events(last) == []
    assert eng.events(last + 100) == []
    assert [e.seq for e in eng.events(0, 1)] == [1]


def test_failures_and_queries_emit_nothing(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    before = eng.last_event_seq
    with pytest.raises(errors.SeatNotFound):
        eng.hold(user, token, drop.schedule_id, [999], now=T0 + 1)
    with pytest.raises(errors.InvalidAmount):
        eng.charge(user, 0, now=T0 + 1)
    with pytest.raises(errors.ReservationNotFound):
        eng.cancel(user, 1, now=T0 + 1)
    eng.seats(drop.schedule_id, now=T0 + 2)
    eng.stats(drop.concert_id, now=T0 + 2)
    eng.balance(user, now=T0 + 2)
    eng.check_gate(user, token, drop.concert_id, now=T0 + 2)
    assert eng.last_event_seq == before


def test_a_drop_emits_every_event_type_with_its_fields(make_drop):
    drop = make_drop(
        queue_capacity=1,
        hold_ttl_s=100.0,
        session_ttl_s=1_000.0,
        abandon_timeout_s=60.0,
        release_on_payment_failure=False,
    )
    eng = drop.engine
    a = drop.user(now=T0)
    ta = eng.join_queue(a, drop.concert_id, now=T0).id
    b = drop.user(now=T0)
    tb = eng.join_queue(b, drop.concert_id, now=T0).id  # WAITING, will be abandoned at T0 + 60
    eng.charge(a, 200_000, now=T0 + 1)
    r1 = eng.hold(a, ta, drop.schedule_id, [1, 2], now=T0 + 2)
    eng.release_seat(a, r1.id, 2, now=T0 + 3)
    eng.cancel(a, r1.id, now=T0 + 4)
    r2 = eng.hold(a, ta, drop.schedule_id, [3], now=T0 + 5)  # expires at T0 + 105
    eng.advance(now=T0 + 200)
    r3 = eng.hold(a, ta, drop.schedule_id, [1, 2], now=T0 + 201)
    with pytest.raises(errors.InsufficientBalance):
        eng.pay(a, ta, r3.id, now=T0 + 202)
    eng.release_seat(a, r3.id, 2, now=T0 + 203)
    payment = eng.pay(a, ta, r3.id, now=T0 + 204)
    eng.refund(a, r3.id, now=T0 + 205)
    c = drop.user(now=T0 + 206)
    tc = eng.join_queue(c, drop.concert_id, now=T0 + 206).id  # ACTIVE: a's slot is free
    eng.leave_queue(c, tc, now=T0 + 207)
    d = drop.user(now=T0 + 208)
    td = eng.join_queue(d, drop.concert_id, now=T0 + 208).id
    eng.advance(now=T0 + 208 + 1_000)  # d's session expires

    events = eng.events(0)
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(events) + 1))
    assert all(x.at <= y.at for x, y in itertools.pairwise(events))
    by_type: dict[str, list[Any]] = {}
    for e in events:
        by_type.setdefault(e.type, []).append(e)
    assert set(by_type) == {
        "UserCreated",
        "ConcertCreated",
        "QueueJoined",
        "QueueAdmitted",
        "QueueAbandoned",
        "QueueLeft",
        "QueueCompleted",
        "QueueSessionExpired",
        "BalanceCharged",
        "ReservationHeld",
        "SeatReleased",
        "ReservationCanceled",
        "ReservationExpired",
        "PaymentFailed",
        "PaymentSucceeded",
        "ReservationRefunded",
    }
    assert [e.user_id for e in by_type["UserCreated"]] == [a, b, c, d]
    assert [e.token_id for e in by_type["QueueJoined"]] == [ta, tb, tc, td]
    assert [e.value for e in by_type["QueueJoined"]] == [0, 0, 0, 0]
    assert [e.token_id for e in by_type["QueueAdmitted"]] == [ta, tc, td]
    assert [(e.token_id, e.at) for e in by_type["QueueAbandoned"]] == [(tb, T0 + 60)]
    assert [(e.token_id, e.at) for e in by_type["QueueLeft"]] == [(tc, T0 + 207)]
    assert [(e.token_id, e.at) for e in by_type["QueueCompleted"]] == [(ta, T0 + 204)]
    assert [(e.token_id, e.at) for e in by_type["QueueSessionExpired"]] == [(td, T0 + 1_208)]
    assert [(e.user_id, e.amount, e.value) for e in by_type["BalanceCharged"]] == [
        (a, 200_000, 200_000)
    ]
    assert [(e.reservation_id, e.amount, e.value) for e in by_type["ReservationHeld"]] == [
        (r1.id, 2 * VIP, 2),
        (r2.id, VIP, 1),
        (r3.id, 2 * VIP, 2),
    ]
    assert [(e.reservation_id, e.value) for e in by_type["SeatReleased"]] == [
        (r1.id, 2),
        (r3.id, 2),
    ]
    assert [e.reservation_id for e in by_type["ReservationCanceled"]] == [r1.id]
    assert [(e.reservation_id, e.at) for e in by_type["ReservationExpired"]] == [(r2.id, T0 + 105)]
    assert [(e.reservation_id, e.amount, e.value) for e in by_type["PaymentFailed"]] == [
        (r3.id, 2 * VIP, 200_000)
    ]
    assert [(e.reservation_id, e.amount, e.value) for e in by_type["PaymentSucceeded"]] == [
        (r3.id, VIP, payment.id)
    ]
    assert [(e.reservation_id, e.amount) for e in by_type["ReservationRefunded"]] == [(r3.id, VIP)]
    for e in by_type["ReservationHeld"] + by_type["PaymentSucceeded"]:
        assert e.user_id == a
        assert e.concert_id == drop.concert_id


def test_deadlines_at_the_same_instant_fire_in_kind_order(make_drop):
    # Hold expiry (kind 1) fires before session expiry (kind 2) at the same instant.
    drop = make_drop(hold_ttl_s=300.0, session_ttl_s=300.0)
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0)
    eng.advance(now=T0 + 300)
    tail = eng.events(0)[-2:]
    assert [(e.type, e.at) for e in tail] == [
        ("ReservationExpired", T0 + 300),
        ("QueueSessionExpired", T0 + 300),
    ]
    assert tail[0].reservation_id == res.id
    assert tail[1].token_id == token


def test_prequeue_events(make_drop):
    drop = make_drop(opens_at=T0 + 10, queue_capacity=5, abandon_timeout_s=600.0)
    eng = drop.engine
    users = [drop.user(now=T0) for _ in range(3)]
    for u in users:
        eng.join_queue(u, drop.concert_id, now=T0 + 1)
    assert [e.value for e in eng.events(0) if e.type == "QueueJoined"] == [1, 1, 1]
    assert not [e for e in eng.events(0) if e.type == "QueueAdmitted"]
    eng.advance(now=T0 + 10)
    opened = [e for e in eng.events(0) if e.type == "QueueOpened"]
    assert [(e.concert_id, e.value, e.at) for e in opened] == [(drop.concert_id, 3, T0 + 10)]
    admitted = [e for e in eng.events(0) if e.type == "QueueAdmitted"]
    assert len(admitted) == 3
    assert {e.at for e in admitted} == {T0 + 10}
    assert admitted[0].seq > opened[0].seq


def test_event_retention_keeps_the_latest(make_engine):
    eng = make_engine(event_retention_max=5)
    for i in range(12):
        eng.create_user(now=T0 + i)
    assert eng.last_event_seq == 12
    assert [e.seq for e in eng.events(0)] == [8, 9, 10, 11, 12]
    assert [e.seq for e in eng.events(9)] == [10, 11, 12]
    assert [e.user_id for e in eng.events(0)] == [8, 9, 10, 11, 12]
