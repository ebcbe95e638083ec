"""Engine replicas on a real 3-server NATS cluster: real ``boxoffice replica`` processes, SIGKILL.

After each scenario every replica and a fresh replay of the whole stream end in the same
``state_hash``; every write that was answered is in the state.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from nats_helpers import create_shard, stream_messages
from replica_helpers import Replicas, cluster_seed, wait_applied

import boxoffice as bo
import boxoffice.errors as bo_errors
from boxoffice.commands import decode_command, decode_result, encode_command
from boxoffice_api.cluster import frames
from boxoffice_api.cluster import log as command_log
from boxoffice_api.cluster.client import ClusterClient
from boxoffice_api.cluster.nats import NatsCluster, stream_leader
from boxoffice_api.cluster.processes import pid_alive
from boxoffice_api.cluster.replica import ReplicaState

USERS = 24
SEATS_PER_ROW = 10


@pytest.fixture
def replicas(nats_cluster: NatsCluster, shard: str, tmp_path: Path) -> Any:
    create_shard(nats_cluster.urls, shard, 3)
    group = Replicas(tmp_path, nats_cluster.urls, shard)
    try:
        yield group
    finally:
        group.stop_all()
    for replica in group.started.values():
        assert not pid_alive(replica["pid"])


async def client_for(urls: list[str], shard: str) -> tuple[ClusterClient, command_log.CommandLog]:
    log = await command_log.CommandLog.connect(urls, shard)
    batcher = command_log.Batcher(log, max_commands=64, linger_s=0.002, timeout_s=30.0)
    return ClusterClient(log.nc, batcher, shard, result_deadline_s=20.0), log


async def apply(client: ClusterClient, op: str, **fields: Any) -> bo.commands.Result:
    data = await client.apply(encode_command(op, now=time.time(), **fields))
    return decode_result(data)


async def last_seq(urls: list[str], shard: str) -> int:
    """The stream's last sequence (asked again through an election: up to 30 s)."""
    nc = await command_log.connect(urls)
    deadline = time.monotonic() + 30
    try:
        js = nc.jetstream()
        while True:
            try:
                info = await js.stream_info(command_log.shard_route(shard).stream)
                return int(info.state.last_seq)
            except nats.errors.TimeoutError:
                assert time.monotonic() < deadline, "no stream info within 30 s"
    finally:
        await nc.close()


async def replay_hash(urls: list[str], shard: str, seed: int) -> tuple[int, int]:
    """(last sequence, state hash) of a fresh engine fed the whole stream."""
    route = command_log.shard_route(shard)
    state = ReplicaState(bo.Engine(seed=seed))
    for message in await stream_messages(urls, route.stream):
        state.apply(message.seq, message.data)
    state.engine.check_invariants()  # no seat sold twice, money conserved, ...
    return state.applied_seq, state.engine.state_hash()


async def a_drop(client: ClusterClient, concert_sale: bo.SaleSettings) -> dict[str, Any]:
    """Users, a concert, joins, charges, holds and payments, many in flight at once; returns
    what was answered."""
    users = await asyncio.gather(*(apply(client, "CREATE_USER") for _ in range(USERS)))
    user_ids = sorted(int(r.unwrap()) for r in users)  # type: ignore[call-overload]
    assert user_ids == list(range(1, USERS + 1))
    sections = [bo.SectionSpec("A", 3, SEATS_PER_ROW, "VIP", 100_000)]
    spec = ("drop", "artist", "venue", [bo.ScheduleSpec(2e9, sections)], concert_sale)
    concert = (await apply(client, "CREATE_CONCERT", concert=spec)).unwrap()
    assert isinstance(concert, bo.Concert)
    schedule = concert.schedules[0].id
    joins = await asyncio.gather(
        *(apply(client, "JOIN", user=u, target=concert.id) for u in user_ids)
    )
    tokens = {u: r.unwrap() for u, r in zip(user_ids, joins, strict=True)}
    active = [u for u, t in tokens.items() if t.status == "ACTIVE"]  # type: ignore[attr-defined]
    assert len(active) == concert_sale.queue_capacity
    await asyncio.gather(*(apply(client, "CHARGE", user=u, arg=300_000) for u in active))
    holds = await asyncio.gather(
        *(
            apply(client, "HOLD", user=u, token=tokens[u].id, target=schedule, quantity=2)  # type: ignore[attr-defined]
            for u in active
        )
    )
    reservations = {u: r.unwrap() for u, r in zip(active, holds, strict=True)}
    payments = await asyncio.gather(
        *(
            apply(client, "PAY", user=u, token=tokens[u].id, target=reservations[u].id)  # type: ignore[attr-defined]
            for u in active
        )
    )
    sold = [seat for r in reservations.values() for seat in r.seat_ids]  # type: ignore[attr-defined]
    assert len(sold) == len(set(sold)) == 2 * len(active)  # no seat held twice
    return {
        "concert": concert,
        "active": active,
        "reservations": reservations,
        "payments": [p.unwrap() for p in payments],
    }


def test_replicas_answer_results_and_reads_and_agree_with_a_replay(
    replicas: Replicas, nats_cluster: NatsCluster, shard: str
) -> None:
    urls = nats_cluster.urls
    for name in ("r1", "r2"):
        replicas.start(name, "--tick-s", "0", "--snapshot-every-s", "0.5")

    async def run() -> None:
        client, log = await client_for(urls, shard)
        try:
            drop = await a_drop(client, bo.SaleSettings(queue_capacity=6, hold_ttl_s=300))
            seq = await last_seq(urls, shard)
            for user, reservation in drop["reservations"].items():
                read = await client.read("reservation", user, reservation.id, min_seq=seq)
                assert (read.status, read.seat_ids) == ("CONFIRMED", reservation.seat_ids)
                assert await client.read("balance", user, min_seq=seq) == 300_000 - 200_000
            with pytest.raises(bo_errors.ReservationNotFound):
                await client.read("reservation", 1, 10_000, min_seq=seq)
            stats = await client.read("stats", drop["concert"].id, min_seq=seq)
            assert (stats.seats_sold, stats.revenue) == (12, 6 * 200_000)
            statuses = await wait_applied(urls, shard, ["r1", "r2"], seq)
            applied, expected = await replay_hash(urls, shard, await cluster_seed(urls))
            assert applied == seq
            assert {s["state_hash"] for s in statuses.values()} == {expected}
        finally:
            await log.close()

    asyncio.run(run())


def test_a_replica_killed_mid_drop_comes_back_from_its_snapshot_and_the_tail(
    replicas: Replicas, nats_cluster: NatsCluster, shard: str
) -> None:
    urls = nats_cluster.urls
    for name in ("r1", "r2"):
        replicas.start(name, "--tick-s", "0", "--snapshot-every-s", "0.3")

    async def run() -> None:
        client, log = await client_for(urls, shard)
        try:
            sale = bo.SaleSettings(queue_capacity=4, hold_ttl_s=300)
            drop = await a_drop(client, sale)
            await wait_applied(urls, shard, ["r1"], await last_seq(urls, shard))
            await asyncio.sleep(0.7)  # r1 writes a snapshot
            snapshot = Path(replicas.started["r1"]["dir"]) / "snapshot.bin"
            assert snapshot.exists()
            concert = drop["concert"].id
            # Polls and leaves keep coming while r1 is down: r2 answers every result.
            polls = [apply(client, "STATUS", user=u, token=u) for u in range(1, USERS + 1)]
            replicas.kill("r1")
            answered = await asyncio.gather(*polls)
            assert all(r.code in ("OK", "QUEUE_TOKEN_INVALID") for r in answered)
            leaves = await asyncio.gather(
                *(apply(client, "LEAVE", user=u, token=u) for u in range(1, 5))
            )
            assert [r.code for r in leaves].count("OK") >= 1
            replicas.start("r1", "--tick-s", "0", "--snapshot-every-s", "0.3")
            seq = await last_seq(urls, shard)
            statuses = await wait_applied(urls, shard, ["r1", "r2"], seq)
            _, expected = await replay_hash(urls, shard, await cluster_seed(urls))
            assert statuses["r1"]["state_hash"] == statuses["r2"]["state_hash"] == expected
            assert (await client.read("stats", concert, min_seq=seq)).seats_sold == 8
        finally:
            await log.close()

    asyncio.run(run())


def test_the_stream_leader_killed_mid_drop_loses_no_answered_write(
    replicas: Replicas, nats_cluster: NatsCluster, shard: str
) -> None:
    """The leader's nats-server is SIGKILLed while commands are in flight, restarted later;
    appends retry through the election (same message ids: stored once)."""
    urls = nats_cluster.urls
    for name in ("r1", "r2"):
        replicas.start(name, "--tick-s", "0")

    async def run() -> None:
        await wait_applied(urls, shard, ["r1", "r2"], 0)  # both replicas are up
        client, log = await client_for(urls, shard)
        try:
            drop = asyncio.create_task(a_drop(client, bo.SaleSettings(queue_capacity=5)))
            await asyncio.sleep(0.3)
            leader = await stream_leader(log.js, command_log.shard_route(shard).stream)
            assert leader is not None
            nats_cluster.kill(leader)
            answered = await drop  # every write of the drop was answered, in order
            nats_cluster.restart(leader)
            seq = await last_seq(urls, shard)
            statuses = await wait_applied(urls, shard, ["r1", "r2"], seq)
            _, expected = await replay_hash(urls, shard, await cluster_seed(urls))
            assert {s["state_hash"] for s in statuses.values()} == {expected}
            stats = await client.read("stats", answered["concert"].id, min_seq=seq)
            assert (stats.seats_sold, stats.payments) == (10, 5)  # each write applied once
        finally:
            await log.close()

    asyncio.run(run())


def test_holds_expire_with_no_request_arriving(
    replicas: Replicas, nats_cluster: NatsCluster, shard: str
) -> None:
    """Every replica offers an ADVANCE per 100 ms slot; one per slot is stored."""
    urls = nats_cluster.urls
    for name in ("r1", "r2"):
        replicas.start(name, "--tick-s", "0.1")

    async def run() -> None:
        client, log = await client_for(urls, shard)
        try:
            await apply(client, "CREATE_USER")
            sections = [bo.SectionSpec("A", 1, 4, "VIP", 1_000)]
            sale = bo.SaleSettings(queue_capacity=2, hold_ttl_s=1)
            spec = ("t", "a", "v", [bo.ScheduleSpec(2e9, sections)], sale)
            concert = (await apply(client, "CREATE_CONCERT", concert=spec)).unwrap()
            token = (await apply(client, "JOIN", user=1, target=concert.id)).unwrap()  # type: ignore[attr-defined]
            hold = await apply(
                client, "HOLD", user=1, token=token.id, target=concert.schedules[0].id,  # type: ignore[attr-defined]
                quantity=1,
            )  # fmt: skip
            reservation = hold.unwrap()
            await asyncio.sleep(2.0)  # no request: only the replicas' ticks
            seq = await last_seq(urls, shard)
            read = await client.read("reservation", 1, reservation.id, min_seq=seq)  # type: ignore[attr-defined]
            assert read.status == "EXPIRED"
        finally:
            await log.close()
        route = command_log.shard_route(shard)
        ticks = []
        for message in await stream_messages(urls, route.stream):
            for command in frames.decode_batch(message.data):
                decoded = decode_command(command)
                if decoded["type"] == "ADVANCE":
                    ticks.append(decoded["now"])
        assert len(ticks) >= 10  # 2 s of 100 ms slots (some may be lost to load)
        assert len(ticks) == len(set(ticks))  # two replicas, one tick per slot

    asyncio.run(run())


def test_a_new_replica_starts_from_the_published_snapshot_after_the_stream_is_trimmed(
    replicas: Replicas, nats_cluster: NatsCluster, shard: str
) -> None:
    urls = nats_cluster.urls
    replicas.start("r1", "--tick-s", "0", "--snapshot-every-s", "0.3", "--trim-margin", "2")

    async def run() -> None:
        client, log = await client_for(urls, shard)
        try:
            await a_drop(client, bo.SaleSettings(queue_capacity=3, hold_ttl_s=300))
            seq = await last_seq(urls, shard)
            await wait_applied(urls, shard, ["r1"], seq)
            route = command_log.shard_route(shard)
            deadline = time.monotonic() + 30
            while (await log.js.stream_info(route.stream)).state.first_seq <= 1:
                assert time.monotonic() < deadline, "the stream was never trimmed"
                await asyncio.sleep(0.2)
            replicas.start("r2", "--tick-s", "0")  # an empty directory: the bucket's snapshot
            more = await asyncio.gather(*(apply(client, "CREATE_USER") for _ in range(5)))
            assert sorted(int(r.unwrap()) for r in more) == list(range(USERS + 1, USERS + 6))  # type: ignore[call-overload]
            seq = await last_seq(urls, shard)
            statuses = await wait_applied(urls, shard, ["r1", "r2"], seq)
            assert statuses["r1"]["state_hash"] == statuses["r2"]["state_hash"]
        finally:
            await log.close()
        r2_log = (Path(replicas.started["r2"]["dir"]) / "replica.log").read_text()
        assert "starts at sequence 0" not in r2_log, r2_log

    asyncio.run(run())


def test_the_status_report_is_json_with_the_applied_sequence(
    replicas: Replicas, nats_cluster: NatsCluster, shard: str
) -> None:
    replicas.start("r1", "--tick-s", "0")
    statuses = asyncio.run(wait_applied(nats_cluster.urls, shard, ["r1"], 0))
    report = statuses["r1"]
    assert report["pid"] == replicas.started["r1"]["pid"]
    assert json.loads(json.dumps(report)) == report
