"""The questions an HTTP request asks, each answered by the engine in one call (from Python):
whether a join made the token, and the seats page behind the gate."""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import pytest

import boxoffice as bo
from boxoffice import errors
from boxoffice.commands import decode_result, encode_command

T0 = 1_000.0


def test_join_says_whether_it_made_the_token(make_drop):
    drop = make_drop(queue_capacity=1)
    a, b = drop.user(now=T0), drop.user(now=T0)
    first = drop.engine.join_queue(a, drop.concert_id, now=T0 + 1)
    assert first.created and first.status == "ACTIVE"
    again = drop.engine.join_queue(a, drop.concert_id, now=T0 + 2)
    assert (again.id, again.created) == (first.id, False)
    waiting = drop.engine.join_queue(b, drop.concert_id, now=T0 + 3)
    assert waiting.created and waiting.status == "WAITING"
    assert not drop.engine.queue_status(b, waiting.id, now=T0 + 4).created
    assert not drop.engine.check_gate(a, first.id, drop.concert_id, now=T0 + 4).created
    assert not drop.engine.leave_queue(a, first.id, now=T0 + 5).created
    assert drop.engine.join_queue(a, drop.concert_id, now=T0 + 6).created


def test_the_created_flag_travels_in_the_encoded_result(drop):
    user = drop.user(now=T0)
    join = encode_command("JOIN", now=T0 + 1, user=user, target=drop.concert_id)
    first = decode_result(drop.engine.apply_encoded(join)).unwrap()
    again = decode_result(drop.engine.apply_encoded(join)).unwrap()
    assert isinstance(first, bo.QueueToken) and isinstance(again, bo.QueueToken)
    assert (first.created, again.created) == (True, False)


def test_gated_seats_is_the_gate_and_the_page_in_one_call(make_drop):
    drop = make_drop(queue_capacity=1)
    other = make_drop()
    user, token = drop.admitted(now=T0)
    page = drop.engine.gated_seats(
        user, token, drop.concert_id, drop.schedule_id, limit=3, now=T0 + 1
    )
    assert [s.label for s in page] == ["A-1-1", "A-1-2", "A-1-3"]
    rest = drop.engine.gated_seats(
        user, token, drop.concert_id, drop.schedule_id, after=page[-1].id, now=T0 + 1
    )
    assert [s.id for s in page + rest] == drop.seat_ids(now=T0 + 1)
    drop.engine.hold(user, token, drop.schedule_id, [page[0].id], now=T0 + 2)
    held = drop.engine.gated_seats(
        user, token, drop.concert_id, drop.schedule_id, "HELD", now=T0 + 3
    )
    assert [s.id for s in held] == [page[0].id]

    with pytest.raises(errors.ScheduleNotFound):
        drop.engine.gated_seats(user, token, drop.concert_id, 999, now=T0 + 4)
    with pytest.raises(errors.QueueTokenInvalid):  # another concert's schedule
        drop.engine.gated_seats(user, token, drop.concert_id, other.schedule_id, now=T0 + 4)
    with pytest.raises(errors.InvalidArgument):
        drop.engine.gated_seats(user, token, drop.concert_id, drop.schedule_id, "LOST", now=T0 + 4)
    with pytest.raises(errors.InvalidArgument):
        drop.engine.gated_seats(
            user, token, drop.concert_id, drop.schedule_id, limit=-1, now=T0 + 4
        )

    waiting_user = drop.user(now=T0 + 5)
    waiting = drop.engine.join_queue(waiting_user, drop.concert_id, now=T0 + 5)
    with pytest.raises(errors.QueueNotActive) as info:  # the gate first, whatever the schedule
        drop.engine.gated_seats(waiting_user, waiting.id, drop.concert_id, 999, now=T0 + 6)
    assert info.value.position == 0
