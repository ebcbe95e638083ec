"""The engine's API over a real cluster answers exactly what the embedded engine answers.

One script of calls (commands and reads, refusals included) runs against ``boxoffice.Engine``
in this process and against :class:`RemoteEngine` over a 3-server cluster with two replicas
(no ticks, so both see the same times); every answer, value or error, must be equal.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from nats_helpers import create_shard
from replica_helpers import Replicas, cluster_seed, wait_applied

import boxoffice as bo
import boxoffice.errors as bo_errors
from boxoffice_api.cluster import log as command_log
from boxoffice_api.cluster.client import ClusterClient
from boxoffice_api.cluster.nats import NatsCluster
from boxoffice_api.cluster.remote_engine import LogHead, RemoteEngine, subscribe_digests
from boxoffice_api.cluster.wire import to_wire

T0 = 1_900_000_000.0


async def answer(call: Callable[[], Any]) -> Any:
    """A call's answer as comparable data: ("ok", value) or ("error", code, message, details)."""
    try:
        value = call()
        if inspect.isawaitable(value):
            value = await value
    except bo_errors.BoxOfficeError as exc:
        details = (exc.position, exc.eta_s, exc.seat_id, exc.retry_after_s)
        return ("error", exc.code, str(exc), details)
    return ("ok", normalize(to_wire(value)))


def normalize(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: normalize(v) for k, v in data.items() if k != "__view__"}
    if isinstance(data, list):
        return [normalize(v) for v in data]
    return data


async def script(engine: Any) -> list[Any]:
    """A small drop, refusals included; ``engine`` is embedded or remote."""
    out: list[Any] = []

    async def step(call: Callable[[], Awaitable[Any] | Any]) -> Any:
        result = await answer(call)
        out.append(result)
        return result[1] if result[0] == "ok" else None

    users = [await step(lambda: engine.create_user(now=T0)) for _ in range(4)]
    sections = [bo.SectionSpec("A", 2, 5, "VIP", 90_000), bo.SectionSpec("B", 2, 5, "R", 50_000)]
    sale = bo.SaleSettings(queue_capacity=2, hold_ttl_s=120, max_seats_per_reservation=4)
    concert = await step(
        lambda: engine.create_concert(
            title="IU", artist="IU", venue="KSPO", schedules=[bo.ScheduleSpec(2e9, sections)],
            sale=sale, now=T0,
        )
    )  # fmt: skip
    other = await step(
        lambda: engine.create_concert(
            title="Other", schedules=[bo.ScheduleSpec(2e9, sections[:1])], now=T0 + 1
        )
    )
    cid, schedule = concert["id"], concert["schedules"][0]["id"]
    tokens = []
    for user in users:
        tokens.append(await step(partial(engine.join_queue, user, cid, now=T0 + 2)))
    t = [tok["id"] for tok in tokens]
    await step(lambda: engine.queue_status(users[3], t[3], now=T0 + 3))
    await step(lambda: engine.check_gate(users[3], t[3], cid, now=T0 + 3))  # WAITING: refused
    await step(lambda: engine.check_gate(users[0], t[0], cid, now=T0 + 3))
    await step(lambda: engine.gated_seats(users[0], t[0], cid, schedule, limit=3, now=T0 + 4))
    await step(
        lambda: engine.gated_seats(users[0], t[0], cid, schedule, "AVAILABLE", after=3, now=T0 + 4)
    )
    other_schedule = other["schedules"][0]["id"]
    await step(lambda: engine.gated_seats(users[0], t[0], cid, other_schedule, now=T0 + 4))
    await step(lambda: engine.gated_seats(users[0], t[0], cid, 999, now=T0 + 4))
    await step(lambda: engine.gated_seats(users[3], t[3], cid, schedule, now=T0 + 4))
    held = await step(lambda: engine.hold(users[0], t[0], schedule, [1, 2, 3], now=T0 + 5))
    await step(lambda: engine.hold(users[1], t[1], schedule, [3, 4], now=T0 + 5))  # taken
    best = await step(
        lambda: engine.hold(users[1], t[1], schedule, quantity=2, grade="R", now=T0 + 5)
    )
    await step(lambda: engine.hold(users[1], t[1], schedule, quantity=9, now=T0 + 5))
    await step(lambda: engine.charge(users[0], 500_000, idempotency_key="k1", now=T0 + 6))
    await step(lambda: engine.charge(users[0], 500_000, idempotency_key="k1", now=T0 + 6))
    await step(lambda: engine.charge(users[1], 0, now=T0 + 6))
    await step(lambda: engine.release_seat(users[0], held["id"], 3, now=T0 + 7))
    await step(lambda: engine.pay(users[0], t[0], held["id"], idempotency_key="p", now=T0 + 8))
    await step(lambda: engine.pay(users[1], t[1], best["id"], now=T0 + 8))  # no money
    await step(lambda: engine.cancel(users[1], best["id"], now=T0 + 9))
    await step(lambda: engine.refund(users[0], held["id"], now=T0 + 10))
    await step(lambda: engine.leave_queue(users[2], t[2], now=T0 + 11))
    await step(lambda: engine.queue_status(users[3], t[3], now=T0 + 11))
    for read in (
        lambda: engine.concert(cid, now=T0 + 11),
        lambda: engine.concert(77, now=T0 + 11),
        lambda: engine.concerts("iu", now=T0 + 11),
        lambda: engine.concerts(starts_from=3e9, now=T0 + 11),
        lambda: engine.schedules(cid, now=T0 + 11),
        lambda: engine.reservation(users[0], held["id"], now=T0 + 11),
        lambda: engine.reservation(users[1], held["id"], now=T0 + 11),
        lambda: engine.reservations(users[1], now=T0 + 11),
        lambda: engine.balance(users[0], now=T0 + 11),
        lambda: engine.history(users[0], now=T0 + 11),
        lambda: engine.stats(cid, now=T0 + 11),
        lambda: engine.events(0, 1000),
    ):
        await step(read)
    return out


@pytest.fixture
def replicated(nats_cluster: NatsCluster, shard: str, tmp_path: Path) -> Iterator[list[str]]:
    """The shard with two replicas (no ticks: both engines see only the script's times);
    yields the cluster's URLs; the replicas are stopped by pid."""
    urls = nats_cluster.urls
    create_shard(urls, shard, 3)
    replicas = Replicas(tmp_path, urls, shard)
    try:
        for name in ("r1", "r2"):
            replicas.start(name, "--tick-s", "0")
        asyncio.run(wait_applied(urls, shard, ["r1", "r2"], 0))
        yield urls
    finally:
        replicas.stop_all()


@contextlib.asynccontextmanager
async def remote_engine(
    urls: list[str], shard: str, touch_fraction: float = 0.5, digests: bool = False
) -> AsyncIterator[tuple[RemoteEngine, LogHead]]:
    """A worker's :class:`RemoteEngine` of ``shard`` and its log head; with ``digests``, fed
    with the replicas' queue digests as a worker's is."""
    log = await command_log.CommandLog.connect(urls, shard)
    try:
        client = ClusterClient(log.nc, command_log.Batcher(log, timeout_s=30), shard)
        head = LogHead(log.js, log.route.stream)
        remote = RemoteEngine(client, head, touch_fraction=touch_fraction)
        if digests:
            await subscribe_digests(log.nc, shard, remote.digests)
        yield remote, head
    finally:
        await log.close()


def test_remote_answers_equal_embedded_answers(replicated: list[str], shard: str) -> None:
    async def run() -> tuple[list[Any], int, int]:
        # Every poll through the log, like the embedded engine (touch_fraction 0).
        async with remote_engine(replicated, shard, touch_fraction=0) as (remote, _):
            answers = await script(remote)
            return answers, await cluster_seed(replicated), await remote.state_hash()

    remote_answers, seed, remote_hash = asyncio.run(run())
    embedded = bo.Engine(seed=seed)
    embedded_answers = asyncio.run(script(embedded))
    assert len(remote_answers) == len(embedded_answers)
    for i, (got, expected) in enumerate(zip(remote_answers, embedded_answers, strict=True)):
        assert got == expected, f"step {i}: {got} != {expected}"
    assert sum(a[0] == "error" for a in embedded_answers) >= 10  # refusals were exercised
    assert remote_hash == embedded.state_hash()


def test_polls_between_touches_are_replica_reads_without_a_log_write(
    replicated: list[str], shard: str
) -> None:
    async def run() -> None:
        async with remote_engine(replicated, shard) as (remote, head):
            users = [await remote.create_user(now=T0) for _ in range(3)]
            sale = bo.SaleSettings(queue_capacity=1, abandon_timeout_s=60)
            spec = [bo.ScheduleSpec(2e9, [bo.SectionSpec("A", 1, 2, "R", 1)])]
            concert = await remote.create_concert(title="t", schedules=spec, sale=sale, now=T0)
            tokens = [await remote.join_queue(u, concert.id, now=T0 + 1) for u in users]
            waiting = tokens[2]
            first = await remote.queue_status(
                users[2], waiting.id, now=T0 + 2, concert_id=concert.id
            )  # the first poll touches: through the log
            seq = await head.latest()
            polls = [
                await remote.queue_status(
                    users[2], waiting.id, now=T0 + 3 + i, concert_id=concert.id
                )
                for i in range(5)
            ]
            assert await head.latest() == seq  # no log write for them
            assert {(p.status, p.position) for p in polls} == {(first.status, 1)}
            await remote.leave_queue(users[0], tokens[0].id, now=T0 + 10)
            moved = await remote.queue_status(
                users[2], waiting.id, now=T0 + 11, concert_id=concert.id
            )
            assert (moved.status, moved.position) == ("WAITING", 0)  # as of the log's head
            await remote.leave_queue(users[2], waiting.id, now=T0 + 12)
            ended = await remote.queue_status(
                users[2], waiting.id, now=T0 + 13, concert_id=concert.id
            )  # no longer live: asked through the log, its final state
            assert (ended.status, ended.ended_reason) == ("EXPIRED", "LEFT")
            far = await remote.queue_status(
                users[1], tokens[1].id, now=T0 + 100, concert_id=concert.id
            )
            assert far.status in ("ACTIVE", "WAITING")

    asyncio.run(run())


async def digest_of(remote: RemoteEngine, concert_id: int, joined: int) -> bo.QueueDigest:
    """The concert's digest once the replicas published one with ``joined`` join sequences."""
    for _ in range(100):
        digest = remote.digests.last(concert_id)
        if digest is not None and digest.joined >= joined:
            return digest
        await asyncio.sleep(0.1)
    raise AssertionError(f"no digest of concert {concert_id} with {joined} joins in 10 s")


def test_polls_are_answered_from_the_replicas_queue_digest_without_a_log_write(
    replicated: list[str], shard: str
) -> None:
    async def run() -> None:
        async with (
            remote_engine(replicated, shard, digests=True) as (remote, head),
            remote_engine(replicated, shard, digests=True) as (other_worker, _),
        ):
            users = [await remote.create_user(now=T0) for _ in range(6)]
            sale = bo.SaleSettings(queue_capacity=1, abandon_timeout_s=60)
            spec = [bo.ScheduleSpec(2e9, [bo.SectionSpec("A", 1, 2, "R", 1)])]
            concert = await remote.create_concert(title="d", schedules=spec, sale=sale, now=T0)
            tokens = [await remote.join_queue(u, concert.id, now=T0 + 1) for u in users]
            assert [t.join_seq for t in tokens] == list(range(6))
            await digest_of(remote, concert.id, joined=6)
            seq = await head.latest()
            before = dict(remote.polls)

            async def poll(i: int, now: float) -> Any:
                return await remote.queue_status(
                    users[i], tokens[i].id, now=now, concert_id=concert.id
                )

            for i in range(1, 6):  # the WAITING ones, answered as the replica would
                got = await poll(i, T0 + 2)
                live = await remote._read("live_token", users[i], concert.id)
                assert normalize(to_wire(got)) == normalize(to_wire(live))
                assert (got.status, got.position) == ("WAITING", i - 1)
            assert remote.polls["digest"] - before["digest"] == 5
            assert remote.polls["log"] == before["log"]
            assert await head.latest() == seq  # no log write for them

            # A token that leaves through another worker: the next digest knows.
            await other_worker.leave_queue(users[2], tokens[2].id, now=T0 + 3)
            for _ in range(100):
                moved = await poll(4, T0 + 4)
                if moved.position == 2:
                    break
                await asyncio.sleep(0.1)
            assert (moved.status, moved.position) == ("WAITING", 2)
            # Leaving through this worker: its next poll is the engine's final answer at once.
            await remote.leave_queue(users[5], tokens[5].id, now=T0 + 5)
            ended = await poll(5, T0 + 5)
            assert (ended.status, ended.ended_reason) == ("EXPIRED", "LEFT")
            # The admitted token is not WAITING in the digest: the engine answers.
            first = await poll(0, T0 + 5)
            assert first.status == "ACTIVE"

            # Half the abandon timeout after its join, a poll still answers from the digest
            # and sends the token's STATUS in the background: one log write per touch.
            seq = await head.latest()
            touched = await poll(3, T0 + 31)
            assert touched.status == "WAITING"
            for _ in range(100):
                if await head.latest() > seq:
                    break
                await asyncio.sleep(0.05)
            assert await head.latest() == seq + 1
            await poll(3, T0 + 32)  # touched a second ago: no write
            await asyncio.sleep(0.3)
            assert await head.latest() == seq + 1

    asyncio.run(run())
