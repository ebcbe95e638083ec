"""Replay of a real server's journal (``boxoffice.sim.replay``) and re-runs of its arrivals.

A small live drop runs against a ``boxoffice serve`` process; with the server still running,
its store is copied and its journal fed through a fresh engine, which must end in the state
the store recovers (equal hashes) and agree with the server's own stats. A store closed with
SIGTERM has a compacted journal, which is refused with a clear error.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from boxoffice import _core, sim
from boxoffice_api.drop import DropConfig, run_drop

USERS = 100
SEATS = 50


def _stats(server: Any, concert_id: int) -> dict[str, Any]:
    r = httpx.get(
        f"{server.base_url}/v1/admin/concerts/{concert_id}/stats",
        headers={"X-Admin-Key": server.env["BOXOFFICE_ADMIN_KEY"]},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    stats: dict[str, Any] = r.json()
    return stats


def test_a_running_servers_journal_replays_and_reruns(start_server: Any, tmp_path: Any) -> None:
    server = start_server()
    drop = asyncio.run(
        run_drop(
            DropConfig(
                url=server.base_url,
                users=USERS,
                seats=SEATS,
                queue_capacity=20,
                concurrency=32,
                admin_key=server.env["BOXOFFICE_ADMIN_KEY"],
                poll_scale=0.05,
                seed=3,
            )
        )
    )
    assert drop.ok, drop.format()
    stats = _stats(server, drop.concert_id)

    # Replay, with the server still running: the fresh engine ends in the recovered state.
    result = sim.replay(server.db)
    assert result.matches, (result.replayed_hash, result.recovered_hash)
    assert result.records > USERS * 4  # sign-ups, charges, joins, polls, holds, payments
    assert result.seconds >= 0
    mine = result.engine.stats(drop.concert_id, now=result.engine.clock)
    assert mine.seats_sold == stats["seats_sold"] == drop.seats_bought == SEATS
    assert mine.revenue == stats["revenue"] == drop.revenue
    assert mine.reservations_confirmed == stats["reservations_confirmed"]
    result.engine.check_invariants()
    events = result.events()
    paid = events[events["type"] == "PaymentSucceeded"]
    assert len(paid) == drop.purchases
    assert paid["amount"].sum() == drop.revenue

    # The raw records decode to the commands the server applied.
    copy = tmp_path / "copy.db"
    sim.copy_store(server.db, copy)
    first_seq, records = _core.journal_records(str(copy))
    assert first_seq == 1
    commands = [_core.decode_record(r) for r in records]
    assert {"CREATE_USER", "CREATE_CONCERT", "JOIN", "CHARGE", "PAY"} <= {
        c["type"] for c in commands
    }
    pays = [c for c in commands if c["type"] == "PAY"]
    assert pays and all(c["key"] and c["now"] > 1e9 for c in pays)  # keyed, real time

    # One arrival per joining user (the drop's users and its auditor).
    arrivals = sim.recorded_arrivals(server.db)
    assert list(arrivals.columns) == ["user", "concert", "joined_at"]
    joined = arrivals[arrivals["concert"] == drop.concert_id]
    assert len(joined) == joined["user"].nunique() == stats["queue_joined_total"] == USERS + 1
    assert joined["joined_at"].is_monotonic_increasing

    # The recorded arrivals re-run in the simulator under other capacities.
    for capacity in (5, 200):
        rerun = sim.rerun(server.db, sale=sim.Sale(queue_capacity=capacity), seed=2)
        summary = rerun.summary
        assert rerun.config.sale.queue_capacity == capacity
        assert summary.users == USERS + 1
        assert summary.seats == SEATS
        assert summary.oversold == 0
        assert summary.consistent, summary.problems
        assert 0 < summary.sold <= SEATS
    recorded = sim.rerun(server.db, seed=2)  # the recorded concert's own settings
    assert recorded.config.sale.queue_capacity == 20


def test_a_compacted_journal_is_refused_clearly(start_server: Any) -> None:
    server = start_server()
    key = server.env["BOXOFFICE_ADMIN_KEY"]
    drop = asyncio.run(
        run_drop(DropConfig(url=server.base_url, admin_key=key, users=5, seats=10, poll_scale=0.05))
    )
    assert drop.ok, drop.format()
    server.stop()  # SIGTERM: the last snapshot compacts the journal
    with pytest.raises(sim.JournalCompacted, match=r"compacted at seq \d+") as info:
        sim.replay(server.db)
    assert isinstance(info.value, ValueError)
    assert info.value.compacted_seq > 0
    assert "snapshot_every_records" in str(info.value)
    with pytest.raises(sim.JournalCompacted):
        sim.recorded_arrivals(server.db)


def test_a_missing_store_is_refused(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError):
        sim.replay(tmp_path / "nope.db")
