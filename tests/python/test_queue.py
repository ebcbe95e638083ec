"""The admission queue (join, waiting, admission, abandon, session, pre-queue, gate)."""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import random

import pytest

import boxoffice as bo
from boxoffice import errors

T0 = 1_000.0
US = 1e-6


def admitted_order(engine: bo.Engine, concert_id: int) -> list[int]:
    """Token ids in the order the concert's queue admitted them (QueueAdmitted events)."""
    return [
        e.token_id
        for e in engine.events(0, 100_000)
        if e.type == "QueueAdmitted" and e.concert_id == concert_id
    ]


# --- join ----------------------------------------------------------------------------------


def test_join_with_room_is_active_at_once(make_drop):
    drop = make_drop(queue_capacity=2, session_ttl_s=600.0)
    user = drop.user(now=T0)
    token = drop.engine.join_queue(user, drop.concert_id, now=T0 + 1)
    assert token.status == "ACTIVE"
    assert token.user_id == user
    assert token.concert_id == drop.concert_id
    assert token.position is None
    assert token.eta_s is None
    assert token.ended_reason is None
    assert token.joined_at == T0 + 1
    assert token.activated_at == T0 + 1
    assert token.expires_at == T0 + 601
    assert token.ended_at is None
    assert token.poll_after_s == 5.0


def test_join_again_returns_the_same_token_not_a_second_place(make_drop):
    drop = make_drop(queue_capacity=1, abandon_timeout_s=600.0)
    eng = drop.engine
    first, _ = drop.admitted(now=T0)
    waiting = drop.user(now=T0)
    w1 = eng.join_queue(waiting, drop.concert_id, now=T0 + 1)
    late = drop.user(now=T0)
    eng.join_queue(late, drop.concert_id, now=T0 + 2)

    w2 = eng.join_queue(waiting, drop.concert_id, now=T0 + 3)
    assert w2.id == w1.id
    assert w2.status == "WAITING"
    assert w2.position == 0
    assert w2.joined_at == T0 + 1
    a2 = eng.join_queue(first, drop.concert_id, now=T0 + 4)
    assert a2.status == "ACTIVE"
    assert eng.stats(drop.concert_id, now=T0 + 5).queue_joined_total == 3
    assert len([e for e in eng.events(0) if e.type == "QueueJoined"]) == 3


def test_join_again_counts_as_a_poll(make_drop):
    drop = make_drop(queue_capacity=1, abandon_timeout_s=60.0)
    eng = drop.engine
    drop.admitted(now=T0)
    user = drop.user(now=T0)
    token = eng.join_queue(user, drop.concert_id, now=T0)
    eng.join_queue(user, drop.concert_id, now=T0 + 50)  # abandon deadline -> T0 + 110
    assert eng.queue_status(user, token.id, now=T0 + 100).status == "WAITING"


def test_waiting_token_reports_exact_position_eta_and_poll_interval(make_drop):
    drop = make_drop(queue_capacity=2, session_ttl_s=600.0, abandon_timeout_s=3600.0)
    eng = drop.engine
    drop.admitted(now=T0)
    drop.admitted(now=T0)
    waiting = []
    for _ in range(3):
        user = drop.user(now=T0)
        waiting.append((user, eng.join_queue(user, drop.concert_id, now=T0)))
    # Two admissions in the last minute: ETA = (position + 1) * 60 s / 2.
    for i, (_, token) in enumerate(waiting):
        assert token.status == "WAITING"
        assert token.position == i
        assert token.eta_s == pytest.approx(30.0 * (i + 1), abs=1e-6)
        assert token.poll_after_s == 5.0
        assert token.activated_at is None
        assert token.expires_at is None
    # No admission in the last minute, no rate: ETA = (position + 1) * session_ttl / capacity.
    user, token = waiting[2]
    later = eng.queue_status(user, token.id, now=T0 + 61)
    assert later.position == 2
    assert later.eta_s == pytest.approx(3 * 600.0 / 2, abs=1e-6)


def test_unknown_user_or_concert_cannot_join(drop):
    user = drop.user(now=T0)
    with pytest.raises(errors.UserNotFound):
        drop.engine.join_queue(user + 100, drop.concert_id, now=T0)
    with pytest.raises(errors.ConcertNotFound):
        drop.engine.join_queue(user, drop.concert_id + 100, now=T0)
    assert drop.engine.stats(drop.concert_id, now=T0).queue_joined_total == 0


def test_queue_full_at_queue_length_max_live_tokens(make_engine, make_drop):
    eng = make_engine(queue_length_max=3)
    drop = make_drop(on=eng, queue_capacity=1, abandon_timeout_s=3600.0)
    users = [drop.user(now=T0) for _ in range(5)]
    tokens = [eng.join_queue(u, drop.concert_id, now=T0) for u in users[:3]]
    with pytest.raises(errors.QueueFull) as info:
        eng.join_queue(users[3], drop.concert_id, now=T0 + 1)
    assert info.value.code == "QUEUE_FULL"
    assert info.value.http_status == 429
    # A user already in line still gets their token back.
    assert eng.join_queue(users[1], drop.concert_id, now=T0 + 2).id == tokens[1].id
    # One leaves: there is room for exactly one more.
    eng.leave_queue(users[2], tokens[2].id, now=T0 + 3)
    fourth = eng.join_queue(users[3], drop.concert_id, now=T0 + 4)
    assert fourth.status == "WAITING"
    assert fourth.position == 1
    with pytest.raises(errors.QueueFull):
        eng.join_queue(users[4], drop.concert_id, now=T0 + 5)
    assert eng.stats(drop.concert_id, now=T0 + 6).queue_joined_total == 4


# --- admission ------------------------------------------------------------------------------


def test_admission_is_fifo_and_never_exceeds_capacity(make_drop):
    capacity = 3
    drop = make_drop(queue_capacity=capacity, abandon_timeout_s=10_000.0)
    eng = drop.engine
    users = [drop.user(now=T0) for _ in range(12)]
    tokens = {u: eng.join_queue(u, drop.concert_id, now=T0 + i * 0.5) for i, u in enumerate(users)}
    assert [tokens[u].status for u in users] == ["ACTIVE"] * 3 + ["WAITING"] * 9
    rng = random.Random(7)
    now = T0 + 10
    live = dict(tokens)
    while live:
        now += 1
        # Anyone may leave: mostly ACTIVE users, sometimes someone still waiting.
        user = rng.choice(sorted(live))
        eng.leave_queue(user, live.pop(user).id, now=now)
        stats = eng.stats(drop.concert_id, now=now)
        assert stats.queue_active == min(capacity, len(live))
        assert stats.queue_active + stats.queue_waiting == len(live)
        states = {u: eng.queue_status(u, t.id, now=now) for u, t in live.items()}
        active = sorted(u for u, t in states.items() if t.status == "ACTIVE")
        waiting = sorted(u for u, t in states.items() if t.status == "WAITING")
        # The ACTIVE ones are always earlier in line than every WAITING one.
        assert not active or not waiting or max(active) < min(waiting)
        assert [states[u].position for u in waiting] == list(range(len(waiting)))
    order = admitted_order(eng, drop.concert_id)
    assert order == sorted(order)
    assert len(order) == len(set(order))


def test_position_is_exact_when_users_ahead_leave_or_are_abandoned(make_drop):
    drop = make_drop(queue_capacity=1, abandon_timeout_s=60.0)
    eng = drop.engine
    a, b, c, d, e = (drop.user(now=T0) for _ in range(5))
    ta = eng.join_queue(a, drop.concert_id, now=T0)
    tb, tc, td, te = (eng.join_queue(u, drop.concert_id, now=T0) for u in (b, c, d, e))
    assert [t.position for t in (tb, tc, td, te)] == [0, 1, 2, 3]

    left = eng.leave_queue(c, tc.id, now=T0 + 10)
    assert left.status == "EXPIRED"
    assert left.ended_reason == "LEFT"
    assert left.ended_at == T0 + 10
    assert eng.queue_status(d, td.id, now=T0 + 30).position == 1
    assert eng.queue_status(e, te.id, now=T0 + 30).position == 2

    # b never polled: abandoned at exactly T0 + 60; d and e polled at T0 + 30.
    assert eng.queue_status(d, td.id, now=T0 + 60).position == 0
    assert eng.queue_status(e, te.id, now=T0 + 60).position == 1
    gone = eng.queue_status(b, tb.id, now=T0 + 60)
    assert gone.status == "EXPIRED"
    assert gone.ended_reason == "ABANDONED"
    assert gone.ended_at == T0 + 60
    assert gone.position is None

    eng.leave_queue(a, ta.id, now=T0 + 61)
    now_active = eng.queue_status(d, td.id, now=T0 + 61)
    assert now_active.status == "ACTIVE"
    assert now_active.activated_at == T0 + 61
    assert eng.queue_status(e, te.id, now=T0 + 61).position == 0


def test_abandon_timeout_is_exact_and_counts_from_the_last_poll(make_drop):
    drop = make_drop(queue_capacity=1, abandon_timeout_s=60.0, poll_interval_s=5.0)
    eng = drop.engine
    drop.admitted(now=T0)
    user = drop.user(now=T0)
    token = eng.join_queue(user, drop.concert_id, now=T0)
    eng.queue_status(user, token.id, now=T0 + 50)  # abandon deadline -> T0 + 110
    # Non-polling reads: still waiting one microsecond before, gone at the deadline.
    assert eng.stats(drop.concert_id, now=T0 + 110 - US).queue_waiting == 1
    stats = eng.stats(drop.concert_id, now=T0 + 110)
    assert stats.queue_waiting == 0
    assert stats.queue_abandoned_total == 1
    gone = eng.queue_status(user, token.id, now=T0 + 111)
    assert gone.status == "EXPIRED"
    assert gone.ended_reason == "ABANDONED"
    assert gone.ended_at == T0 + 110
    with pytest.raises(errors.QueueTokenExpired):
        eng.check_gate(user, token.id, drop.concert_id, now=T0 + 112)
    # Joining again gives a new place at the back of the line.
    again = eng.join_queue(user, drop.concert_id, now=T0 + 113)
    assert again.id != token.id
    assert again.status == "WAITING"
    assert again.position == 0


def test_active_session_expires_after_ttl_and_admits_the_next(make_drop):
    drop = make_drop(queue_capacity=1, session_ttl_s=600.0, abandon_timeout_s=10_000.0)
    eng = drop.engine
    a, ta = drop.admitted(now=T0)
    b = drop.user(now=T0)
    tb = eng.join_queue(b, drop.concert_id, now=T0 + 1)
    assert tb.status == "WAITING"
    assert eng.check_gate(a, ta, drop.concert_id, now=T0 + 600 - US).status == "ACTIVE"
    # Nothing happens at T0 + 600 itself; a later read sees exactly what happened then.
    with pytest.raises(errors.QueueTokenExpired):
        eng.check_gate(a, ta, drop.concert_id, now=T0 + 700)
    ended = eng.queue_status(a, ta, now=T0 + 700)
    assert ended.status == "EXPIRED"
    assert ended.ended_reason == "SESSION_EXPIRED"
    assert ended.ended_at == T0 + 600
    nxt = eng.queue_status(b, tb.id, now=T0 + 700)
    assert nxt.status == "ACTIVE"
    assert nxt.activated_at == T0 + 600
    assert nxt.expires_at == T0 + 1200


def test_leave_an_expired_token_returns_it_unchanged(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    first = eng.leave_queue(user, token, now=T0 + 1)
    again = eng.leave_queue(user, token, now=T0 + 2)
    assert again.status == "EXPIRED"
    assert again.ended_reason == "LEFT"
    assert again.ended_at == first.ended_at == T0 + 1
    assert len([e for e in eng.events(0) if e.type == "QueueLeft"]) == 1


def test_queue_status_and_leave_refuse_other_users_and_unknown_tokens(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    other = drop.user(now=T0)
    with pytest.raises(errors.QueueTokenInvalid):
        eng.queue_status(other, token, now=T0 + 1)
    with pytest.raises(errors.QueueTokenInvalid):
        eng.leave_queue(other, token, now=T0 + 1)
    with pytest.raises(errors.QueueTokenInvalid):
        eng.queue_status(user, token + 100, now=T0 + 1)
    with pytest.raises(errors.UserNotFound):
        eng.queue_status(other + 100, token, now=T0 + 1)
    assert eng.queue_status(user, token, now=T0 + 2).status == "ACTIVE"


def test_admission_rate_spaces_admissions_exactly(make_drop):
    # 2 per minute: one admission every 30 s, even with free capacity.
    drop = make_drop(queue_capacity=10, admission_per_minute=2, abandon_timeout_s=10_000.0)
    eng = drop.engine
    users = [drop.user(now=T0) for _ in range(5)]
    tokens = [eng.join_queue(u, drop.concert_id, now=T0) for u in users]
    assert [t.status for t in tokens] == ["ACTIVE"] + ["WAITING"] * 4
    assert [t.position for t in tokens[1:]] == [0, 1, 2, 3]
    # One admission in the last minute: ETA = p * 60 s / 1 (at least p * 30 s).
    assert tokens[1].eta_s == pytest.approx(60.0, abs=1e-6)
    assert tokens[2].eta_s == pytest.approx(120.0, abs=1e-6)

    assert eng.stats(drop.concert_id, now=T0 + 30 - US).queue_active == 1
    assert eng.stats(drop.concert_id, now=T0 + 30).queue_active == 2
    # Two admissions in (T0 - 30, T0 + 30]: ETA = 1 * 60 / 2 = 30 s.
    third = eng.queue_status(users[2], tokens[2].id, now=T0 + 30)
    assert third.position == 0
    assert third.eta_s == pytest.approx(30.0, abs=1e-6)

    views = [eng.queue_status(u, t.id, now=T0 + 500) for u, t in zip(users, tokens, strict=True)]
    assert [v.status for v in views] == ["ACTIVE"] * 5
    assert [v.activated_at for v in views] == [T0, T0 + 30, T0 + 60, T0 + 90, T0 + 120]
    assert eng.stats(drop.concert_id, now=T0 + 500).queue_admitted_total == 5


def test_admission_rate_eta_without_recent_admissions_uses_the_interval(make_drop):
    drop = make_drop(queue_capacity=1, admission_per_minute=6, abandon_timeout_s=10_000.0)
    eng = drop.engine
    drop.admitted(now=T0)
    user = drop.user(now=T0)
    token = eng.join_queue(user, drop.concert_id, now=T0)
    # The only admission is more than a minute old: ETA = (0 + 1) * 10 s.
    view = eng.queue_status(user, token.id, now=T0 + 100)
    assert view.position == 0
    assert view.eta_s == pytest.approx(10.0, abs=1e-6)


# --- pre-queue ------------------------------------------------------------------------------


def prequeue_drop(make_engine, make_drop, *, seed: int, users: int = 20):
    """A concert opening at T0 + 100 with ``users`` joins in its pre-queue, then opened."""
    eng = make_engine(seed=seed)
    drop = make_drop(on=eng, opens_at=T0 + 100, queue_capacity=3, abandon_timeout_s=10_000.0)
    joined = []
    for i in range(users):
        user = drop.user(now=T0)
        joined.append((user, eng.join_queue(user, drop.concert_id, now=T0 + 1 + i)))
    eng.advance(now=T0 + 100)
    return drop, joined


def line_order(drop, joined, *, now: float) -> list[int]:
    """Token ids in admission order: admitted first (by event), then WAITING by position."""
    eng = drop.engine
    admitted = admitted_order(eng, drop.concert_id)
    views = [eng.queue_status(u, t.id, now=now) for u, t in joined]
    waiting = sorted((v for v in views if v.status == "WAITING"), key=lambda v: v.position)
    return admitted + [v.id for v in waiting]


def test_prequeue_waits_without_position_until_opening(make_drop):
    drop = make_drop(opens_at=T0 + 100, queue_capacity=3, abandon_timeout_s=10_000.0)
    eng = drop.engine
    user = drop.user(now=T0)
    token = eng.join_queue(user, drop.concert_id, now=T0 + 1)
    assert token.status == "WAITING"
    assert token.position is None
    assert token.eta_s == pytest.approx(99.0, abs=1e-6)
    assert eng.queue_status(user, token.id, now=T0 + 60).eta_s == pytest.approx(40.0, abs=1e-6)
    assert eng.join_queue(user, drop.concert_id, now=T0 + 61).id == token.id
    joined = [e for e in eng.events(0) if e.type == "QueueJoined"]
    assert [e.value for e in joined] == [1]
    with pytest.raises(errors.QueueNotActive) as info:
        eng.check_gate(user, token.id, drop.concert_id, now=T0 + 62)
    assert info.value.position is None
    assert info.value.eta_s == pytest.approx(38.0, abs=1e-6)
    opened = eng.queue_status(user, token.id, now=T0 + 100)
    assert opened.status == "ACTIVE"
    assert opened.activated_at == T0 + 100


def test_prequeue_is_shuffled_at_opening_reproducibly(make_engine, make_drop):
    drop, joined = prequeue_drop(make_engine, make_drop, seed=42)
    eng = drop.engine
    opened = [e for e in eng.events(0) if e.type == "QueueOpened"]
    assert len(opened) == 1
    assert opened[0].value == 20
    assert opened[0].at == T0 + 100
    assert opened[0].concert_id == drop.concert_id
    stats = eng.stats(drop.concert_id, now=T0 + 100)
    assert stats.queue_active == 3
    assert stats.queue_waiting == 17
    order = line_order(drop, joined, now=T0 + 100)
    assert sorted(order) == sorted(t.id for _, t in joined)
    assert order != [t.id for _, t in joined], "the pre-queue must be shuffled, not kept in order"
    for user, token in joined:
        view = eng.queue_status(user, token.id, now=T0 + 100)
        if view.status == "ACTIVE":
            assert view.activated_at == T0 + 100

    # Same seed, same commands: the same draw and the same state.
    twin, twin_joined = prequeue_drop(make_engine, make_drop, seed=42)
    assert line_order(twin, twin_joined, now=T0 + 100) == order
    assert twin.engine.state_hash() == eng.state_hash()
    # Another seed draws another order.
    other, other_joined = prequeue_drop(make_engine, make_drop, seed=43)
    assert line_order(other, other_joined, now=T0 + 100) != order


def test_joins_after_opening_queue_behind_the_prequeue(make_engine, make_drop):
    drop, _joined = prequeue_drop(make_engine, make_drop, seed=1, users=6)
    eng = drop.engine
    late = drop.user(now=T0 + 101)
    token = eng.join_queue(late, drop.concert_id, now=T0 + 101)
    assert token.status == "WAITING"
    assert token.position == 3
    assert [e.value for e in eng.events(0) if e.type == "QueueJoined"] == [1] * 6 + [0]


# --- gate -------------------------------------------------------------------------------------


def test_gate_passes_the_users_active_token(drop):
    user, token = drop.admitted(now=T0)
    view = drop.engine.check_gate(user, token, drop.concert_id, now=T0 + 1)
    assert view.id == token
    assert view.status == "ACTIVE"


def test_gate_refuses_a_waiting_token_with_its_position(make_drop):
    drop = make_drop(queue_capacity=1, abandon_timeout_s=600.0, poll_interval_s=5.0)
    eng = drop.engine
    drop.admitted(now=T0)
    users = [drop.user(now=T0) for _ in range(2)]
    tokens = [eng.join_queue(u, drop.concert_id, now=T0) for u in users]
    with pytest.raises(errors.QueueNotActive) as info:
        eng.check_gate(users[1], tokens[1].id, drop.concert_id, now=T0 + 1)
    err = info.value
    assert err.code == "QUEUE_NOT_ACTIVE"
    assert err.http_status == 403
    assert err.position == 1
    assert err.eta_s == pytest.approx(2 * 60.0, abs=1e-6)  # one admission in the last minute
    assert err.retry_after_s == 5.0
    # A WAITING token cannot hold seats either.
    seat = drop.seat_ids(now=T0 + 2)[0]
    with pytest.raises(errors.QueueNotActive) as info:
        eng.hold(users[0], tokens[0].id, drop.schedule_id, [seat], now=T0 + 2)
    assert info.value.position == 0
    assert drop.seat_status(now=T0 + 3)[seat] == "AVAILABLE"


def test_gate_check_counts_as_a_poll(make_drop):
    drop = make_drop(queue_capacity=1, abandon_timeout_s=60.0)
    eng = drop.engine
    drop.admitted(now=T0)
    user = drop.user(now=T0)
    token = eng.join_queue(user, drop.concert_id, now=T0)
    with pytest.raises(errors.QueueNotActive):
        eng.check_gate(user, token.id, drop.concert_id, now=T0 + 50)
    assert eng.stats(drop.concert_id, now=T0 + 100).queue_waiting == 1


def test_gate_refuses_an_expired_token(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    eng.leave_queue(user, token, now=T0 + 1)
    with pytest.raises(errors.QueueTokenExpired) as info:
        eng.check_gate(user, token, drop.concert_id, now=T0 + 2)
    assert info.value.http_status == 403
    seat = drop.seat_ids(now=T0 + 3)[0]
    with pytest.raises(errors.QueueTokenExpired):
        eng.hold(user, token, drop.schedule_id, [seat], now=T0 + 3)


def test_gate_refuses_another_users_token(drop):
    eng = drop.engine
    _, token = drop.admitted(now=T0)
    thief = drop.user(now=T0)
    with pytest.raises(errors.QueueTokenInvalid) as info:
        eng.check_gate(thief, token, drop.concert_id, now=T0 + 1)
    assert info.value.http_status == 403
    seat = drop.seat_ids(now=T0 + 2)[0]
    with pytest.raises(errors.QueueTokenInvalid):
        eng.hold(thief, token, drop.schedule_id, [seat], now=T0 + 2)
    assert drop.seat_status(now=T0 + 3)[seat] == "AVAILABLE"


def test_gate_refuses_a_token_of_another_concert(make_drop):
    first = make_drop(title="first")
    second = make_drop(title="second")
    eng = first.engine
    user = first.user(now=T0)
    token = eng.join_queue(user, second.concert_id, now=T0).id
    assert eng.check_gate(user, token, second.concert_id, now=T0 + 1).status == "ACTIVE"
    with pytest.raises(errors.QueueTokenInvalid):
        eng.check_gate(user, token, first.concert_id, now=T0 + 1)
    seat = first.seat_ids(now=T0 + 2)[0]
    with pytest.raises(errors.QueueTokenInvalid):
        eng.hold(user, token, first.schedule_id, [seat], now=T0 + 2)


def test_gate_refuses_unknown_tokens_and_users(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    for bad in (0, token + 1, 10**12):
        with pytest.raises(errors.QueueTokenInvalid):
            eng.check_gate(user, bad, drop.concert_id, now=T0 + 1)
    with pytest.raises(errors.UserNotFound):
        eng.check_gate(user + 1, token, drop.concert_id, now=T0 + 1)


def test_session_expiry_fires_before_abandon_at_the_same_instant(make_drop):
    # Both deadlines fall at T0 + 60; session expiry (kind 2) fires before abandon (kind 3),
    # so the waiting user is admitted instead of abandoned.
    drop = make_drop(queue_capacity=1, session_ttl_s=60.0, abandon_timeout_s=60.0)
    eng = drop.engine
    drop.admitted(now=T0)
    user = drop.user(now=T0)
    token = eng.join_queue(user, drop.concert_id, now=T0)
    view = eng.queue_status(user, token.id, now=T0 + 60)
    assert view.status == "ACTIVE"
    assert view.activated_at == T0 + 60
    assert eng.stats(drop.concert_id, now=T0 + 60).queue_abandoned_total == 0


def test_session_expiry_is_inclusive(make_drop):
    drop = make_drop(session_ttl_s=600.0)
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    assert eng.check_gate(user, token, drop.concert_id, now=T0 + 600 - US).status == "ACTIVE"
    with pytest.raises(errors.QueueTokenExpired):
        eng.check_gate(user, token, drop.concert_id, now=T0 + 600)


def test_rate_eta_is_never_below_the_admission_interval(make_drop):
    # 7 per minute: one admission every 60,000,000 // 7 = 8,571,428 µs. Eight admissions fit in
    # (now - 60 s, now], so the measured rate (60 s / 8 = 7.5 s) is faster than the cap allows.
    drop = make_drop(queue_capacity=100, admission_per_minute=7, abandon_timeout_s=600.0)
    eng = drop.engine
    users = [drop.user(now=T0) for _ in range(9)]
    tokens = [eng.join_queue(u, drop.concert_id, now=T0) for u in users]
    last_admission = T0 + 7 * 8.571428
    assert eng.stats(drop.concert_id, now=last_admission - US).queue_active == 7
    view = eng.queue_status(users[8], tokens[8].id, now=last_admission)
    assert eng.stats(drop.concert_id, now=last_admission).queue_active == 8
    assert view.position == 0
    assert view.eta_s == pytest.approx(8.571428, abs=1e-6)


def test_prequeue_tokens_that_stop_polling_are_abandoned_before_opening(make_drop):
    drop = make_drop(opens_at=T0 + 100, abandon_timeout_s=60.0)
    eng = drop.engine
    idle = drop.user(now=T0)
    idle_token = eng.join_queue(idle, drop.concert_id, now=T0)
    keen = drop.user(now=T0)
    keen_token = eng.join_queue(keen, drop.concert_id, now=T0)
    eng.queue_status(keen, keen_token.id, now=T0 + 50)
    assert eng.queue_status(keen, keen_token.id, now=T0 + 100).status == "ACTIVE"
    gone = eng.queue_status(idle, idle_token.id, now=T0 + 100)
    assert (gone.status, gone.ended_reason, gone.ended_at) == ("EXPIRED", "ABANDONED", T0 + 60)
    assert [e.value for e in eng.events(0) if e.type == "QueueOpened"] == [1]
