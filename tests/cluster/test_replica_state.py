"""The replica's state machine without I/O: strict order, results by sequence, snapshots."""

from __future__ import annotations

import random

import pytest

import boxoffice as bo
import boxoffice.errors as bo_errors
from boxoffice.commands import decode_result, encode_command
from boxoffice_api.cluster import frames
from boxoffice_api.cluster.replica import (
    OutOfOrder,
    ReplicaState,
    decode_snapshot,
    encode_snapshot,
)

T0 = 1_000.0


def concert_command(now: float) -> bytes:
    sections = [bo.SectionSpec("A", 4, 10, "VIP", 100_000)]
    sale = bo.SaleSettings(queue_capacity=3, hold_ttl_s=30, session_ttl_s=60)
    return encode_command(
        "CREATE_CONCERT", now=now, concert=("c", "a", "v", [bo.ScheduleSpec(2e9, sections)], sale)
    )


def drop_messages(count: int, seed: int) -> list[bytes]:
    """``count`` log messages of a small drop: users, a concert, then random batches."""
    rng = random.Random(seed)
    messages = [frames.encode_batch([encode_command("CREATE_USER", now=T0)] * 20)]
    messages.append(frames.encode_batch([concert_command(T0)]))
    for i in range(count - 2):
        now = T0 + 1 + i * 0.5
        batch = []
        for _ in range(rng.randint(1, 8)):
            user = rng.randint(1, 20)
            op = rng.randrange(5)
            if op == 0:
                batch.append(encode_command("JOIN", now=now, user=user, target=1))
            elif op == 1:
                batch.append(encode_command("STATUS", now=now, user=user, token=rng.randint(1, 30)))
            elif op == 2:
                seats = sorted(rng.sample(range(1, 41), rng.randint(1, 2)))
                batch.append(
                    encode_command(
                        "HOLD", now=now, user=user, token=rng.randint(1, 30), target=1, seats=seats
                    )
                )
            elif op == 3:
                batch.append(encode_command("CHARGE", now=now, user=user, arg=200_000))
            else:
                batch.append(encode_command("ADVANCE", now=now))
        messages.append(frames.encode_batch(batch))
    return messages


def test_messages_apply_in_sequence_and_their_results_are_kept() -> None:
    state = ReplicaState(bo.Engine(), results_window=5)
    messages = drop_messages(12, seed=1)
    for seq, data in enumerate(messages, start=1):
        assert state.apply(seq, data)
    assert state.applied_seq == 12
    with pytest.raises(KeyError):
        state.results(7)  # only the last 5 (8..12) are kept
    results = state.results(12)
    assert results is not None and len(results) == len(frames.decode_batch(messages[-1]))
    for encoded in results:
        decode_result(encoded)  # each is one whole result
    with pytest.raises(KeyError):
        state.results(13)


def test_a_redelivered_message_is_skipped_and_a_gap_is_refused() -> None:
    state = ReplicaState(bo.Engine())
    messages = drop_messages(5, seed=2)
    for seq, data in enumerate(messages[:3], start=1):
        state.apply(seq, data)
    before = state.engine.state_hash()
    assert not state.apply(2, messages[1])  # applied before: nothing happens
    assert state.engine.state_hash() == before
    with pytest.raises(OutOfOrder):
        state.apply(5, messages[4])
    assert (state.applied_seq, state.engine.state_hash()) == (3, before)


def test_undecodable_messages_are_skipped_the_same_way_everywhere() -> None:
    a, b = ReplicaState(bo.Engine()), ReplicaState(bo.Engine())
    messages = drop_messages(6, seed=3)
    messages.insert(3, b"\x07garbage")
    for seq, data in enumerate(messages, start=1):
        a.apply(seq, data)
        b.apply(seq, data)
    assert a.results(4) is None and a.undecodable == 1
    assert a.engine.state_hash() == b.engine.state_hash()


def test_a_replica_restarted_from_its_snapshot_ends_equal_to_one_that_never_stopped() -> None:
    messages = drop_messages(200, seed=4)
    steady = ReplicaState(bo.Engine(seed=9))
    restarted = ReplicaState(bo.Engine(seed=9))
    for seq, data in enumerate(messages, start=1):
        steady.apply(seq, data)
        restarted.apply(seq, data)
        if seq in (50, 120):
            restarted = ReplicaState.from_snapshot(restarted.snapshot())
            assert restarted.applied_seq == seq
    assert steady.engine.state_hash() == restarted.engine.state_hash()
    restarted.engine.check_invariants()


def test_replica_snapshot_bytes_are_checked() -> None:
    data = encode_snapshot(42, bo.Engine().snapshot_bytes())
    assert decode_snapshot(data)[0] == 42
    tagged = bytearray(data)
    tagged[8] ^= 1  # the sequence itself is covered by the checksum
    for bad in (b"", data[:10], b"X" + data[1:], bytes(tagged), data[:-1]):
        with pytest.raises(bo_errors.DataLoss):
            decode_snapshot(bad)
