"""The queue digest through the Python binding: what a cluster's workers answer polls from.

The C++ tests (tests/cpp/test_admission_queue.cc, ``[queue_digest]``) check every token of
random workloads against the queue itself; these check the binding: the bytes round-trip, a
WAITING token's answer equals the engine's own at the digest's moment, and bad bytes are a
typed error.
"""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import pytest

import boxoffice as bo
from boxoffice import errors

T0 = 1_000.0


def test_a_waiting_tokens_answer_from_the_digest_equals_the_engines(make_drop):
    drop = make_drop(queue_capacity=2, admission_per_minute=30, abandon_timeout_s=3_600.0)
    eng = drop.engine
    tokens = []
    for i in range(40):
        user = drop.user(now=T0)
        tokens.append(eng.join_queue(user, drop.concert_id, now=T0 + i))
    eng.leave_queue(tokens[10].user_id, tokens[10].id, now=T0 + 50)
    now = T0 + 95  # admissions happened (one per 2 s): a measured rate drives the ETA
    digest = bo.QueueDigest(eng.queue_digest(drop.concert_id, now=now))
    assert digest.concert_id == drop.concert_id
    assert digest.as_of == now
    assert digest.open
    assert digest.joined == 40
    assert digest.abandon_timeout_s == 3_600.0

    answered = 0
    for t in tokens:
        seen = eng.live_token(t.user_id, drop.concert_id, now=now)
        if seen is None or seen.status != "WAITING":
            assert t.join_seq is not None
            assert digest.position(t.join_seq) is None
            assert (
                digest.waiting_token(
                    t.id, user_id=t.user_id, join_seq=t.join_seq, joined_at=t.joined_at
                )
                is None
            )
            continue
        assert seen.join_seq == t.join_seq
        answer = digest.waiting_token(
            t.id, user_id=t.user_id, join_seq=t.join_seq, joined_at=t.joined_at
        )
        assert answer is not None
        for field in (
            "id",
            "user_id",
            "concert_id",
            "status",
            "position",
            "join_seq",
            "eta_s",
            "poll_after_s",
            "joined_at",
            "expires_at",
            "ended_reason",
        ):
            assert getattr(answer, field) == getattr(seen, field), field
        answered += 1
    assert answered == digest.waiting > 0
    assert digest.active == 2


def test_a_pre_queue_token_has_no_join_sequence_until_the_queue_opens(make_drop):
    drop = make_drop(queue_capacity=1, opens_at=T0 + 60)
    user = drop.user(now=T0)
    token = drop.engine.join_queue(user, drop.concert_id, now=T0 + 1)
    assert token.join_seq is None
    digest = bo.QueueDigest(drop.engine.queue_digest(drop.concert_id, now=T0 + 2))
    assert not digest.open
    assert digest.waiting == 1
    opened = drop.engine.queue_status(user, token.id, now=T0 + 61)
    assert opened.join_seq == 0


def test_damaged_digest_bytes_raise_data_loss(make_drop):
    drop = make_drop(queue_capacity=1)
    for _ in range(3):
        drop.engine.join_queue(drop.user(now=T0), drop.concert_id, now=T0 + 1)
    data = drop.engine.queue_digest(drop.concert_id, now=T0 + 2)
    for bad in (b"", data[:-1], data + b"\0", b"\x02" + data[1:]):
        with pytest.raises(errors.DataLoss, match="damaged queue digest"):
            bo.QueueDigest(bad)


def test_a_digest_of_no_concert_is_concert_not_found(engine):
    with pytest.raises(errors.ConcertNotFound):
        engine.queue_digest(99, now=T0)
