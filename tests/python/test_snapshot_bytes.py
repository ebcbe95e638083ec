"""``Engine.snapshot_bytes`` and ``Engine(snapshot=...)``: a replica's starting point.

A replica of the scale-out deployment starts from snapshot bytes and applies the rest of the
command log; it must then be the same state machine as one that applied everything.
"""

from __future__ import annotations

import pytest
from durability_workload import apply

import boxoffice as bo

SEED = 11


def test_a_restored_engine_continues_exactly_like_the_original() -> None:
    original = bo.Engine(seed=5)
    for i in range(300):
        apply(original, i, SEED)
    data = original.snapshot_bytes()
    assert original.snapshot_bytes() == data  # deterministic, and changes nothing
    restored = bo.Engine(snapshot=data)
    assert (restored.state_hash(), restored.seed, restored.clock) == (
        original.state_hash(),
        5,
        original.clock,
    )
    for i in range(300, 700):
        apply(original, i, SEED)
        apply(restored, i, SEED)
    assert restored.state_hash() == original.state_hash()
    restored.check_invariants()


def test_bytes_that_are_not_a_snapshot_are_refused_as_data_loss() -> None:
    engine = bo.Engine()
    for i in range(40):
        apply(engine, i, SEED)
    data = engine.snapshot_bytes()
    damaged = data[:60] + bytes([data[60] ^ 1]) + data[61:]
    for bad in (b"", b"not a snapshot", data[:-1], damaged):
        with pytest.raises(bo.errors.DataLoss):
            bo.Engine(snapshot=bad)


def test_a_snapshot_and_a_store_path_together_are_refused(tmp_path) -> None:
    with pytest.raises(bo.errors.InvalidArgument):
        bo.Engine(tmp_path / "s.db", snapshot=bo.Engine().snapshot_bytes())
    assert not (tmp_path / "s.db").exists()
