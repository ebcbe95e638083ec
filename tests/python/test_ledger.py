"""The wallet: balance charges and history, payments, payment failure, refunds, money."""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import pytest

from boxoffice import errors

T0 = 1_000.0
US = 1e-6
VIP = 165_000
R = 99_000


# --- charge, balance, history ---------------------------------------------------------------


def test_charge_raises_the_balance_and_records_history(drop):
    eng = drop.engine
    user = drop.user(now=T0)
    assert eng.balance(user, now=T0) == 0
    assert eng.history(user, now=T0) == []
    first = eng.charge(user, 50_000, now=T0 + 1)
    assert (first.entry_id, first.user_id, first.amount, first.balance, first.at) == (
        1,
        user,
        50_000,
        50_000,
        T0 + 1,
    )
    second = eng.charge(user, 20_000, now=T0 + 2)
    assert (second.entry_id, second.balance) == (2, 70_000)
    assert eng.balance(user, now=T0 + 3) == 70_000
    history = eng.history(user, now=T0 + 3)
    assert [(h.id, h.kind, h.amount, h.balance_after, h.at) for h in history] == [
        (1, "CHARGE", 50_000, 50_000, T0 + 1),
        (2, "CHARGE", 20_000, 70_000, T0 + 2),
    ]
    assert {h.user_id for h in history} == {user}
    assert {h.reservation_id for h in history} == {None}
    charged = [e for e in eng.events(0) if e.type == "BalanceCharged"]
    assert [(e.user_id, e.amount, e.value) for e in charged] == [
        (user, 50_000, 50_000),
        (user, 20_000, 70_000),
    ]


def test_balances_and_histories_are_per_user(drop):
    eng = drop.engine
    a = drop.user(now=T0)
    b = drop.user(now=T0)
    eng.charge(a, 1_000, now=T0 + 1)
    eng.charge(b, 2_000, now=T0 + 2)
    eng.charge(a, 3_000, now=T0 + 3)
    assert (eng.balance(a, now=T0 + 4), eng.balance(b, now=T0 + 4)) == (4_000, 2_000)
    assert [h.id for h in eng.history(a, now=T0 + 4)] == [1, 3]
    assert [h.id for h in eng.history(b, now=T0 + 4)] == [2]


@pytest.mark.parametrize("amount", [0, -1, -(10**9), 10_000_001])
def test_charge_rejects_invalid_amounts(drop, amount):
    eng = drop.engine
    user = drop.user(now=T0)
    with pytest.raises(errors.InvalidAmount) as info:
        eng.charge(user, amount, now=T0 + 1)
    assert info.value.code == "INVALID_AMOUNT"
    assert info.value.http_status == 422
    assert isinstance(info.value, ValueError)
    assert eng.balance(user, now=T0 + 2) == 0
    assert eng.history(user, now=T0 + 2) == []


def test_charge_up_to_charge_amount_max_is_accepted(make_engine, make_drop):
    eng = make_engine(charge_amount_max=5_000)
    drop = make_drop(on=eng)
    user = drop.user(now=T0)
    assert eng.charge(user, 5_000, now=T0 + 1).balance == 5_000
    with pytest.raises(errors.InvalidAmount):
        eng.charge(user, 5_001, now=T0 + 2)
    assert eng.balance(user, now=T0 + 3) == 5_000


def test_balance_may_not_exceed_balance_max(make_engine, make_drop):
    eng = make_engine(balance_max=1_000, charge_amount_max=600)
    drop = make_drop(on=eng)
    user = drop.user(now=T0)
    eng.charge(user, 600, now=T0 + 1)
    with pytest.raises(errors.BalanceLimitExceeded) as info:
        eng.charge(user, 600, now=T0 + 2)
    assert info.value.code == "BALANCE_LIMIT_EXCEEDED"
    assert info.value.http_status == 409
    assert eng.charge(user, 400, now=T0 + 3).balance == 1_000  # exactly the maximum
    with pytest.raises(errors.BalanceLimitExceeded):
        eng.charge(user, 1, now=T0 + 4)
    # The amount rule is checked first.
    with pytest.raises(errors.InvalidAmount):
        eng.charge(user, 601, now=T0 + 5)
    assert eng.balance(user, now=T0 + 6) == 1_000
    assert len(eng.history(user, now=T0 + 6)) == 2


def test_unknown_user_has_no_wallet(drop):
    eng = drop.engine
    with pytest.raises(errors.UserNotFound):
        eng.charge(1, 1_000, now=T0)
    with pytest.raises(errors.UserNotFound):
        eng.balance(1, now=T0)
    with pytest.raises(errors.UserNotFound):
        eng.history(1, now=T0)
    with pytest.raises(errors.UserNotFound):
        eng.reservations(1, now=T0)
    with pytest.raises(errors.UserNotFound):
        eng.pay(1, 1, 1, now=T0)
    with pytest.raises(errors.UserNotFound):
        eng.refund(1, 1, now=T0)


# --- pay -------------------------------------------------------------------------------------


def test_pay_confirms_sells_seats_and_completes_the_token(make_drop):
    drop = make_drop(queue_capacity=1, abandon_timeout_s=600.0)
    eng = drop.engine
    payer, token = drop.funded(400_000, now=T0)
    waiting = drop.user(now=T0)
    next_token = eng.join_queue(waiting, drop.concert_id, now=T0)
    assert next_token.status == "WAITING"
    res = eng.hold(payer, token, drop.schedule_id, [1, 11], now=T0 + 1)
    assert res.amount == VIP + R

    payment = eng.pay(payer, token, res.id, now=T0 + 2)
    assert payment.id == 1
    assert payment.reservation_id == res.id
    assert payment.user_id == payer
    assert payment.amount == VIP + R
    assert payment.status == "SUCCEEDED"
    assert payment.paid_at == T0 + 2
    assert payment.balance_after == 400_000 - VIP - R

    confirmed = eng.reservation(payer, res.id, now=T0 + 3)
    assert confirmed.status == "CONFIRMED"
    assert confirmed.payment_id == payment.id
    assert confirmed.ended_at == T0 + 2
    status = drop.seat_status(now=T0 + 3)
    assert (status[1], status[11]) == ("SOLD", "SOLD")
    assert eng.balance(payer, now=T0 + 3) == 400_000 - VIP - R
    history = eng.history(payer, now=T0 + 3)
    assert [(h.kind, h.amount, h.balance_after, h.reservation_id) for h in history] == [
        ("CHARGE", 400_000, 400_000, None),
        ("PAYMENT", VIP + R, 400_000 - VIP - R, res.id),
    ]

    done = eng.queue_status(payer, token, now=T0 + 3)
    assert done.status == "EXPIRED"
    assert done.ended_reason == "COMPLETED"
    assert done.ended_at == T0 + 2
    admitted = eng.queue_status(waiting, next_token.id, now=T0 + 3)
    assert admitted.status == "ACTIVE"
    assert admitted.activated_at == T0 + 2

    stats = eng.stats(drop.concert_id, now=T0 + 3)
    assert (stats.payments, stats.revenue, stats.reservations_confirmed) == (1, VIP + R, 1)
    assert (stats.reservations_pending, stats.seats_sold, stats.queue_active) == (0, 2, 1)
    tail = eng.events(0)[-3:]
    assert [e.type for e in tail] == ["PaymentSucceeded", "QueueCompleted", "QueueAdmitted"]
    assert (tail[1].token_id, tail[2].token_id) == (token, next_token.id)
    succeeded = next(e for e in eng.events(0) if e.type == "PaymentSucceeded")
    assert (succeeded.reservation_id, succeeded.amount, succeeded.value) == (
        res.id,
        VIP + R,
        payment.id,
    )


def test_a_confirmed_reservation_is_not_paid_twice(drop):
    eng = drop.engine
    user, token = drop.funded(2 * VIP, now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    eng.pay(user, token, res.id, now=T0 + 2)
    # The paying token is used up ...
    with pytest.raises(errors.QueueTokenExpired):
        eng.pay(user, token, res.id, now=T0 + 3)
    # ... and with a fresh one the reservation is no longer pending.
    fresh = eng.join_queue(user, drop.concert_id, now=T0 + 4).id
    with pytest.raises(errors.ReservationNotPending):
        eng.pay(user, fresh, res.id, now=T0 + 5)
    assert eng.balance(user, now=T0 + 6) == VIP
    assert eng.stats(drop.concert_id, now=T0 + 6).payments == 1


def test_paying_someone_elses_reservation_is_not_found(drop):
    eng = drop.engine
    owner, owner_token = drop.funded(VIP, now=T0)
    thief, thief_token = drop.funded(VIP, now=T0)
    res = eng.hold(owner, owner_token, drop.schedule_id, [1], now=T0 + 1)
    with pytest.raises(errors.ReservationNotFound) as info:
        eng.pay(thief, thief_token, res.id, now=T0 + 2)
    assert info.value.http_status == 404
    # Ownership is checked before the gate.
    with pytest.raises(errors.ReservationNotFound):
        eng.pay(thief, owner_token, res.id, now=T0 + 2)
    with pytest.raises(errors.ReservationNotFound):
        eng.pay(owner, owner_token, res.id + 100, now=T0 + 2)
    assert eng.balance(thief, now=T0 + 3) == VIP
    assert eng.balance(owner, now=T0 + 3) == VIP
    assert eng.reservation(owner, res.id, now=T0 + 3).status == "PENDING"


def test_pay_needs_an_active_token_for_the_concert(make_drop):
    drop = make_drop(queue_capacity=1, abandon_timeout_s=600.0)
    other = make_drop(title="other")
    eng = drop.engine
    user, token = drop.funded(VIP, now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    # A token for another concert is refused.
    other_token = eng.join_queue(user, other.concert_id, now=T0 + 2).id
    with pytest.raises(errors.QueueTokenInvalid):
        eng.pay(user, other_token, res.id, now=T0 + 3)
    # So is someone else's token for this concert.
    stranger = drop.user(now=T0 + 3)
    stranger_token = eng.join_queue(stranger, drop.concert_id, now=T0 + 3).id
    with pytest.raises(errors.QueueTokenInvalid):
        eng.pay(user, stranger_token, res.id, now=T0 + 3)
    eng.leave_queue(stranger, stranger_token, now=T0 + 3)
    # The user leaves; someone else takes the slot; the user is back in line.
    eng.leave_queue(user, token, now=T0 + 4)
    drop.admitted(now=T0 + 5)
    rejoined = eng.join_queue(user, drop.concert_id, now=T0 + 6)
    assert rejoined.status == "WAITING"
    with pytest.raises(errors.QueueTokenExpired):
        eng.pay(user, token, res.id, now=T0 + 7)
    with pytest.raises(errors.QueueNotActive) as info:
        eng.pay(user, rejoined.id, res.id, now=T0 + 7)
    assert info.value.position == 0
    assert eng.balance(user, now=T0 + 8) == VIP
    assert eng.reservation(user, res.id, now=T0 + 8).status == "PENDING"


def test_pay_after_the_session_expired_is_refused(make_drop):
    drop = make_drop(session_ttl_s=100.0, hold_ttl_s=300.0)
    eng = drop.engine
    user, token = drop.funded(VIP, now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    with pytest.raises(errors.QueueTokenExpired):
        eng.pay(user, token, res.id, now=T0 + 100)
    # With a new session the still-pending hold can be paid.
    fresh = eng.join_queue(user, drop.concert_id, now=T0 + 101).id
    assert eng.pay(user, fresh, res.id, now=T0 + 102).amount == VIP


def test_insufficient_balance_keeps_the_hold_for_a_retry(drop):
    eng = drop.engine
    user, token = drop.funded(100_000, now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    with pytest.raises(errors.InsufficientBalance) as info:
        eng.pay(user, token, res.id, now=T0 + 2)
    assert info.value.code == "INSUFFICIENT_BALANCE"
    assert info.value.http_status == 409
    assert eng.reservation(user, res.id, now=T0 + 3).status == "PENDING"
    assert drop.seat_status(now=T0 + 3)[1] == "HELD"
    assert eng.balance(user, now=T0 + 3) == 100_000
    assert eng.check_gate(user, token, drop.concert_id, now=T0 + 3).status == "ACTIVE"
    failed = [e for e in eng.events(0) if e.type == "PaymentFailed"]
    assert [(e.reservation_id, e.amount, e.value) for e in failed] == [(res.id, VIP, 100_000)]
    assert eng.stats(drop.concert_id, now=T0 + 3).payments == 0

    eng.charge(user, VIP - 100_000, now=T0 + 4)
    payment = eng.pay(user, token, res.id, now=T0 + 5)
    assert payment.balance_after == 0
    assert eng.reservation(user, res.id, now=T0 + 6).status == "CONFIRMED"


def test_release_on_payment_failure_cancels_at_once(make_drop):
    drop = make_drop(release_on_payment_failure=True)
    eng = drop.engine
    user, token = drop.funded(100_000, now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1, 2], now=T0 + 1)
    with pytest.raises(errors.InsufficientBalance):
        eng.pay(user, token, res.id, now=T0 + 2)
    canceled = eng.reservation(user, res.id, now=T0 + 2)
    assert canceled.status == "CANCELED"
    assert canceled.ended_at == T0 + 2
    status = drop.seat_status(now=T0 + 2)
    assert (status[1], status[2]) == ("AVAILABLE", "AVAILABLE")
    assert eng.balance(user, now=T0 + 2) == 100_000
    types = [e.type for e in eng.events(0)]
    assert types[-2:] == ["PaymentFailed", "ReservationCanceled"]
    # The token is still usable; the reservation is not.
    eng.charge(user, 2 * VIP, now=T0 + 3)
    with pytest.raises(errors.ReservationNotPending):
        eng.pay(user, token, res.id, now=T0 + 4)
    assert eng.check_gate(user, token, drop.concert_id, now=T0 + 5).status == "ACTIVE"


# --- refund ----------------------------------------------------------------------------------


def test_refund_returns_the_money_and_the_seats(drop):
    eng = drop.engine
    user, token = drop.funded(VIP + R, now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1, 11], now=T0 + 1)
    eng.pay(user, token, res.id, now=T0 + 2)
    refunded = eng.refund(user, res.id, now=T0 + 3)
    assert refunded.status == "REFUNDED"
    assert eng.balance(user, now=T0 + 4) == VIP + R
    status = drop.seat_status(now=T0 + 4)
    assert (status[1], status[11]) == ("AVAILABLE", "AVAILABLE")
    last = eng.history(user, now=T0 + 4)[-1]
    assert (last.kind, last.amount, last.balance_after, last.reservation_id, last.at) == (
        "REFUND",
        VIP + R,
        VIP + R,
        res.id,
        T0 + 3,
    )
    stats = eng.stats(drop.concert_id, now=T0 + 4)
    assert (stats.revenue, stats.reservations_refunded, stats.reservations_confirmed) == (0, 1, 0)
    events = [e for e in eng.events(0) if e.type == "ReservationRefunded"]
    assert [(e.reservation_id, e.amount) for e in events] == [(res.id, VIP + R)]
    with pytest.raises(errors.ReservationNotConfirmed) as info:
        eng.refund(user, res.id, now=T0 + 5)
    assert info.value.http_status == 409
    assert eng.balance(user, now=T0 + 6) == VIP + R


def test_refund_needs_a_confirmed_reservation_of_ones_own(drop):
    eng = drop.engine
    user, token = drop.funded(VIP, now=T0)
    other = drop.user(now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    with pytest.raises(errors.ReservationNotConfirmed):
        eng.refund(user, res.id, now=T0 + 2)
    eng.pay(user, token, res.id, now=T0 + 3)
    with pytest.raises(errors.ReservationNotFound):
        eng.refund(other, res.id, now=T0 + 4)
    with pytest.raises(errors.ReservationNotFound):
        eng.refund(user, res.id + 100, now=T0 + 4)
    assert eng.balance(user, now=T0 + 5) == 0
    assert eng.reservation(user, res.id, now=T0 + 5).status == "CONFIRMED"


def test_refund_may_exceed_balance_max(make_engine, make_drop):
    eng = make_engine(balance_max=200_000)
    drop = make_drop(on=eng)
    user, token = drop.funded(VIP, now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    eng.pay(user, token, res.id, now=T0 + 2)
    eng.charge(user, 200_000, now=T0 + 3)
    eng.refund(user, res.id, now=T0 + 4)
    assert eng.balance(user, now=T0 + 5) == 200_000 + VIP


# --- money conservation ----------------------------------------------------------------------


def test_money_is_conserved_across_charges_payments_failures_and_refunds(make_drop):
    first = make_drop(title="first", release_on_payment_failure=True)
    second = make_drop(title="second")
    eng = first.engine
    charged = 0
    users = []
    for i in range(6):
        user, _ = first.admitted(now=T0)
        amount = 50_000 * (i + 1)
        eng.charge(user, amount, now=T0 + 1)
        charged += amount
        users.append(user)
    now = T0 + 2
    paid = []
    for i, user in enumerate(users):
        drop = first if i % 2 == 0 else second
        token = eng.join_queue(user, drop.concert_id, now=now).id
        seat = drop.seat_ids(now=now)[i]
        res = eng.hold(user, token, drop.schedule_id, [seat], now=now)
        try:
            eng.pay(user, token, res.id, now=now + 1)
            paid.append((user, res.id))
        except errors.InsufficientBalance:
            pass
        now += 2
    assert paid, "some users can afford a seat"
    assert len(paid) < len(users), "some users cannot"
    refunded_user, refunded_res = paid[0]
    eng.refund(refunded_user, refunded_res, now=now)
    balances = [eng.balance(u, now=now) for u in users]
    revenue = [eng.stats(d.concert_id, now=now).revenue for d in (first, second)]
    assert min(balances) >= 0
    assert min(revenue) >= 0
    assert sum(balances) + sum(revenue) == charged
    for user, balance in zip(users, balances, strict=True):
        history = eng.history(user, now=now)
        assert history[-1].balance_after == balance
        signed = sum(h.amount if h.kind != "PAYMENT" else -h.amount for h in history)
        assert signed == balance
    eng.check_invariants()
