"""Idempotency keys on hold, charge and pay: a retry returns the first result, once."""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import pytest

from boxoffice import errors

T0 = 1_000.0
US = 1e-6
VIP = 165_000


def count(engine, event_type: str) -> int:
    return sum(1 for e in engine.events(0, 100_000) if e.type == event_type)


# --- hold ------------------------------------------------------------------------------------


def test_hold_retry_returns_the_first_reservation_once(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    first = eng.hold(user, token, drop.schedule_id, [1, 2], idempotency_key="h-1", now=T0 + 1)
    again = eng.hold(user, token, drop.schedule_id, [1, 2], idempotency_key="h-1", now=T0 + 2)
    assert again.id == first.id
    assert again.seat_ids == [1, 2]
    assert (again.amount, again.created_at, again.expires_at) == (
        first.amount,
        T0 + 1,
        first.expires_at,
    )
    assert len(eng.reservations(user, now=T0 + 3)) == 1
    assert count(eng, "ReservationHeld") == 1
    assert eng.stats(drop.concert_id, now=T0 + 3).seats_held == 2


def test_hold_retry_returns_the_reservation_as_it_was_and_changes_nothing(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    first = eng.hold(user, token, drop.schedule_id, [1, 2], idempotency_key="h", now=T0 + 1)
    eng.release_seat(user, first.id, 2, now=T0 + 2)
    again = eng.hold(user, token, drop.schedule_id, [1, 2], idempotency_key="h", now=T0 + 3)
    assert again.id == first.id
    assert again.seat_ids == [1, 2]
    assert again.status == "PENDING"
    status = drop.seat_status(now=T0 + 4)
    assert (status[1], status[2]) == ("HELD", "AVAILABLE")
    assert eng.reservation(user, first.id, now=T0 + 4).seat_ids == [1]


def test_hold_retry_ignores_the_token_and_precedes_the_gate(drop):
    eng = drop.engine
    user, token = drop.funded(VIP, now=T0)
    first = eng.hold(user, token, drop.schedule_id, [1], idempotency_key="h", now=T0 + 1)
    eng.pay(user, token, first.id, now=T0 + 2)  # the token is EXPIRED now
    again = eng.hold(user, token, drop.schedule_id, [1], idempotency_key="h", now=T0 + 3)
    assert again.id == first.id
    assert again.status == "PENDING"  # the stored result, as it was then
    fresh = eng.join_queue(user, drop.concert_id, now=T0 + 4).id
    assert eng.hold(user, fresh, drop.schedule_id, [1], idempotency_key="h", now=T0 + 5).id == (
        first.id
    )
    assert count(eng, "ReservationHeld") == 1


@pytest.mark.parametrize(
    ("seat_ids", "quantity", "grade"),
    [([1, 3], 0, ""), ([1], 0, ""), (None, 2, ""), (None, 2, "VIP")],
)
def test_hold_key_reused_with_another_request(drop, seat_ids, quantity, grade):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    eng.hold(user, token, drop.schedule_id, [1, 2], idempotency_key="h", now=T0 + 1)
    with pytest.raises(errors.IdempotencyKeyReused) as info:
        eng.hold(
            user,
            token,
            drop.schedule_id,
            seat_ids,
            quantity=quantity,
            grade=grade,
            idempotency_key="h",
            now=T0 + 2,
        )
    assert info.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert info.value.http_status == 422
    assert len(eng.reservations(user, now=T0 + 3)) == 1
    assert eng.stats(drop.concert_id, now=T0 + 3).seats_held == 2


def test_hold_key_reused_on_another_schedule(make_drop):
    drop = make_drop(schedules=2)
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    eng.hold(user, token, drop.schedule_id, quantity=1, idempotency_key="h", now=T0 + 1)
    other = drop.concert.schedules[1].id
    with pytest.raises(errors.IdempotencyKeyReused):
        eng.hold(user, token, other, quantity=1, idempotency_key="h", now=T0 + 2)


def test_failed_hold_does_not_consume_the_key(drop):
    eng = drop.engine
    rival, rival_token = drop.admitted(now=T0)
    user, token = drop.admitted(now=T0)
    taken = eng.hold(rival, rival_token, drop.schedule_id, [1], now=T0 + 1)
    with pytest.raises(errors.SeatUnavailable):
        eng.hold(user, token, drop.schedule_id, [1], idempotency_key="h", now=T0 + 2)
    # The same key, the same request, once the seat is free: it runs for real.
    eng.cancel(rival, taken.id, now=T0 + 3)
    res = eng.hold(user, token, drop.schedule_id, [1], idempotency_key="h", now=T0 + 4)
    assert res.status == "PENDING"
    assert res.seat_ids == [1]
    # A key that only ever failed may also be used for another request.
    with pytest.raises(errors.SeatUnavailable):
        eng.hold(user, token, drop.schedule_id, [1], idempotency_key="k", now=T0 + 5)
    assert eng.hold(
        user, token, drop.schedule_id, [2], idempotency_key="k", now=T0 + 6
    ).seat_ids == [2]


def test_keys_are_scoped_by_user_and_operation(drop):
    eng = drop.engine
    a, ta = drop.funded(VIP, now=T0)
    b, tb = drop.admitted(now=T0)
    ra = eng.hold(a, ta, drop.schedule_id, [1], idempotency_key="same", now=T0 + 1)
    rb = eng.hold(b, tb, drop.schedule_id, [2], idempotency_key="same", now=T0 + 2)
    assert ra.id != rb.id
    assert rb.user_id == b
    charge = eng.charge(a, 1_000, idempotency_key="same", now=T0 + 3)
    assert charge.balance == VIP + 1_000
    payment = eng.pay(a, ta, ra.id, idempotency_key="same", now=T0 + 4)
    assert payment.amount == VIP
    assert eng.balance(a, now=T0 + 5) == 1_000


def test_hold_key_length_limit(make_engine, make_drop):
    eng = make_engine(idempotency_key_length_max=8)
    drop = make_drop(on=eng)
    user, token = drop.admitted(now=T0)
    with pytest.raises(errors.InvalidArgument) as info:
        eng.hold(user, token, drop.schedule_id, [1], idempotency_key="x" * 9, now=T0 + 1)
    assert info.value.code == "INVALID_ARGUMENT"
    assert eng.reservations(user, now=T0 + 1) == []
    res = eng.hold(user, token, drop.schedule_id, [1], idempotency_key="x" * 8, now=T0 + 2)
    assert res.status == "PENDING"
    with pytest.raises(errors.InvalidArgument):
        eng.charge(user, 100, idempotency_key="y" * 9, now=T0 + 3)
    with pytest.raises(errors.InvalidArgument):
        eng.pay(user, token, 1, idempotency_key="z" * 9, now=T0 + 3)
    assert eng.balance(user, now=T0 + 4) == 0


def test_hold_key_expires_after_idempotency_ttl(make_engine, make_drop):
    eng = make_engine(idempotency_ttl_s=10.0)
    drop = make_drop(on=eng, hold_ttl_s=300.0)
    user, token = drop.admitted(now=T0)
    first = eng.hold(user, token, drop.schedule_id, [1], idempotency_key="h", now=T0)
    assert eng.hold(
        user, token, drop.schedule_id, [1], idempotency_key="h", now=T0 + 10 - US
    ).id == (first.id)
    # The record is gone at T0 + 10: the retry is a new hold, and seat 1 is held (by itself).
    with pytest.raises(errors.SeatUnavailable):
        eng.hold(user, token, drop.schedule_id, [1], idempotency_key="h", now=T0 + 10)
    # ... and the key is free for another request.
    assert eng.hold(user, token, drop.schedule_id, [2], idempotency_key="h", now=T0 + 11).id != (
        first.id
    )


# --- charge ----------------------------------------------------------------------------------


def test_charge_retry_returns_the_first_charge_once(drop):
    eng = drop.engine
    user = drop.user(now=T0)
    first = eng.charge(user, 5_000, idempotency_key="c", now=T0 + 1)
    eng.charge(user, 1_000, now=T0 + 2)
    again = eng.charge(user, 5_000, idempotency_key="c", now=T0 + 3)
    assert (again.entry_id, again.amount, again.balance, again.at) == (
        first.entry_id,
        5_000,
        5_000,
        T0 + 1,
    )
    assert eng.balance(user, now=T0 + 4) == 6_000
    assert len(eng.history(user, now=T0 + 4)) == 2
    assert count(eng, "BalanceCharged") == 2


def test_charge_key_reused_with_another_amount(drop):
    eng = drop.engine
    user = drop.user(now=T0)
    eng.charge(user, 5_000, idempotency_key="c", now=T0 + 1)
    with pytest.raises(errors.IdempotencyKeyReused):
        eng.charge(user, 5_001, idempotency_key="c", now=T0 + 2)
    assert eng.balance(user, now=T0 + 3) == 5_000


def test_failed_charge_does_not_consume_the_key(make_engine, make_drop):
    eng = make_engine(balance_max=1_000)
    drop = make_drop(on=eng)
    user = drop.user(now=T0)
    with pytest.raises(errors.InvalidAmount):
        eng.charge(user, 0, idempotency_key="c", now=T0 + 1)
    with pytest.raises(errors.BalanceLimitExceeded):
        eng.charge(user, 1_001, idempotency_key="c", now=T0 + 2)
    assert eng.charge(user, 700, idempotency_key="c", now=T0 + 3).balance == 700
    assert eng.charge(user, 700, idempotency_key="c", now=T0 + 4).balance == 700
    assert eng.balance(user, now=T0 + 5) == 700


def test_charge_key_expires_after_idempotency_ttl(make_engine, make_drop):
    eng = make_engine(idempotency_ttl_s=10.0)
    drop = make_drop(on=eng)
    user = drop.user(now=T0)
    first = eng.charge(user, 100, idempotency_key="c", now=T0)
    assert eng.charge(user, 100, idempotency_key="c", now=T0 + 10 - US).entry_id == first.entry_id
    assert eng.balance(user, now=T0 + 10 - US) == 100
    second = eng.charge(user, 100, idempotency_key="c", now=T0 + 10)
    assert second.entry_id != first.entry_id
    assert second.balance == 200
    # The new record lives from T0 + 10: another amount is now a reuse.
    with pytest.raises(errors.IdempotencyKeyReused):
        eng.charge(user, 300, idempotency_key="c", now=T0 + 19)
    assert eng.charge(user, 300, idempotency_key="c", now=T0 + 20).balance == 500


def test_empty_key_means_no_idempotency(drop):
    eng = drop.engine
    user = drop.user(now=T0)
    eng.charge(user, 100, idempotency_key="", now=T0 + 1)
    eng.charge(user, 100, idempotency_key="", now=T0 + 2)
    assert eng.balance(user, now=T0 + 3) == 200


# --- pay -------------------------------------------------------------------------------------


def test_pay_retry_returns_the_first_payment_and_debits_once(drop):
    eng = drop.engine
    user, token = drop.funded(2 * VIP, now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    first = eng.pay(user, token, res.id, idempotency_key="p", now=T0 + 2)
    # The token completed with the payment; the retry still gets its answer.
    again = eng.pay(user, token, res.id, idempotency_key="p", now=T0 + 3)
    assert (again.id, again.amount, again.paid_at, again.balance_after, again.status) == (
        first.id,
        VIP,
        T0 + 2,
        VIP,
        "SUCCEEDED",
    )
    assert eng.balance(user, now=T0 + 4) == VIP
    assert eng.stats(drop.concert_id, now=T0 + 4).payments == 1
    assert count(eng, "PaymentSucceeded") == 1
    assert [h.kind for h in eng.history(user, now=T0 + 4)] == ["CHARGE", "PAYMENT"]


def test_pay_retry_after_a_refund_changes_nothing(drop):
    eng = drop.engine
    user, token = drop.funded(VIP, now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    first = eng.pay(user, token, res.id, idempotency_key="p", now=T0 + 2)
    eng.refund(user, res.id, now=T0 + 3)
    again = eng.pay(user, token, res.id, idempotency_key="p", now=T0 + 4)
    assert again.id == first.id
    assert again.status == "SUCCEEDED"
    assert eng.balance(user, now=T0 + 5) == VIP
    assert eng.reservation(user, res.id, now=T0 + 5).status == "REFUNDED"
    assert drop.seat_status(now=T0 + 5)[1] == "AVAILABLE"


def test_pay_key_reused_for_another_reservation(drop):
    eng = drop.engine
    user, token = drop.funded(2 * VIP, now=T0)
    r1 = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    eng.pay(user, token, r1.id, idempotency_key="p", now=T0 + 2)
    fresh = eng.join_queue(user, drop.concert_id, now=T0 + 3).id
    r2 = eng.hold(user, fresh, drop.schedule_id, [2], now=T0 + 4)
    with pytest.raises(errors.IdempotencyKeyReused):
        eng.pay(user, fresh, r2.id, idempotency_key="p", now=T0 + 5)
    assert eng.reservation(user, r2.id, now=T0 + 6).status == "PENDING"
    assert eng.balance(user, now=T0 + 6) == VIP


def test_failed_pay_does_not_consume_the_key(drop):
    eng = drop.engine
    user, token = drop.funded(VIP - 1, now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    with pytest.raises(errors.InsufficientBalance):
        eng.pay(user, token, res.id, idempotency_key="p", now=T0 + 2)
    eng.charge(user, 1, now=T0 + 3)
    payment = eng.pay(user, token, res.id, idempotency_key="p", now=T0 + 4)
    assert payment.balance_after == 0
    assert eng.pay(user, token, res.id, idempotency_key="p", now=T0 + 5).id == payment.id
    assert eng.balance(user, now=T0 + 6) == 0
