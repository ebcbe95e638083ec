"""The command log on real nats-servers: set-up, de-duplication, batching, and appends through
a SIGKILLed stream leader and a lost quorum (every acknowledged append stored exactly once)."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

import nats.js.errors
import pytest
from nats_helpers import create_shard, stream_messages

from boxoffice.commands import encode_command
from boxoffice_api.cluster import frames
from boxoffice_api.cluster import log as command_log
from boxoffice_api.cluster.nats import NatsCluster, stream_leader


def message(text: str) -> bytes:
    return frames.encode_batch([text.encode()])


async def leader_of(log: command_log.CommandLog, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            name = await stream_leader(log.js, log.route.stream)
        except (nats.errors.TimeoutError, nats.js.errors.APIError):
            name = None
        if name:
            return name
        assert time.monotonic() < deadline, "no stream leader elected"
        await asyncio.sleep(0.1)


def assert_stream_is(urls: list[str], stream: str, acked: dict[bytes, int]) -> None:
    """The stream holds exactly the acknowledged payloads, each once, at its acknowledged
    sequence."""
    messages = asyncio.run(stream_messages(urls, stream))
    stored = [(m.data, m.seq) for m in messages]
    assert sorted(stored, key=lambda pair: pair[1]) == sorted(acked.items(), key=lambda p: p[1])


def test_ensure_shard_route_and_meta_first_writer_wins(nats_cluster: NatsCluster, shard: str):
    async def run() -> None:
        nc = await command_log.connect(nats_cluster.urls)
        try:
            js = nc.jetstream()
            with pytest.raises(command_log.ShardNotFound):
                await command_log.route(js, shard)
            created = await command_log.ensure_shard(js, shard, replicas=3)
            assert created == command_log.shard_route(shard)
            assert created.stream == f"BOXOFFICE_{shard.upper()}"
            assert created.subject == f"boxoffice.{shard}.log"
            assert await command_log.ensure_shard(js, shard, replicas=3) == created
            assert await command_log.route(js, shard) == created
            info = await js.stream_info(created.stream)
            assert info.config.num_replicas == 3
            assert info.config.duplicate_window == command_log.DUPLICATE_WINDOW_S
            assert info.config.max_msg_size == command_log.MESSAGE_BYTES_MAX
            with pytest.raises(nats.js.errors.BadRequestError):  # another configuration
                await command_log.ensure_shard(js, shard, replicas=1)
            first = await command_log.ensure_meta(js, 41)
            assert await command_log.ensure_meta(js, first + 1) == first
        finally:
            await nc.close()

    asyncio.run(run())


def test_shard_names_map_to_distinct_streams() -> None:
    names = ["a-b", "a_b", "ab", "main"]
    routes = [command_log.shard_route(name) for name in names]
    assert len({r.stream for r in routes}) == len({r.subject for r in routes}) == len(names)
    assert command_log.shard_route("main").stream == "BOXOFFICE_MAIN"


def test_bad_shard_name_is_refused() -> None:
    for name in ("", "Main", "a.b", "a b", "x" * 65):
        with pytest.raises(ValueError):
            command_log.shard_route(name)


def test_retried_message_id_is_stored_once(nats_cluster: NatsCluster, shard: str):
    route = create_shard(nats_cluster.urls, shard)

    async def run() -> dict[bytes, int]:
        log = await command_log.CommandLog.connect(nats_cluster.urls, shard)
        try:
            first = await log.append(message("one"), "m-1")
            again = await log.append(message("one"), "m-1")
            # The id decides, not the payload: a retry is the same message by definition.
            other_payload = await log.append(message("changed"), "m-1")
            second = await log.append(message("two"), "m-2")
            assert first == again == other_payload
            assert second == first + 1
            return {message("one"): first, message("two"): second}
        finally:
            await log.close()

    assert_stream_is(nats_cluster.urls, route.stream, asyncio.run(run()))


def test_batcher_groups_concurrent_submits_in_submit_order(nats_cluster: NatsCluster, shard: str):
    route = create_shard(nats_cluster.urls, shard)
    commands = [encode_command("STATUS", now=1.0, user=1, token=i + 1) for i in range(40)]

    async def run() -> list[tuple[int, int]]:
        log = await command_log.CommandLog.connect(nats_cluster.urls, shard)
        try:
            batcher = command_log.Batcher(log, max_commands=16, linger_s=0.05, msg_id_prefix="b")
            results = await asyncio.gather(*(batcher.submit(c) for c in commands))
            await batcher.flush()
            assert batcher.messages == 3  # 16 + 16 + 8 (the last one after the linger)
            return results
        finally:
            await log.close()

    results = asyncio.run(run())
    seqs = sorted({seq for seq, _ in results})
    assert len(seqs) == 3
    assert [index for _, index in results] == list(range(16)) * 2 + list(range(8))
    messages = {m.seq: m for m in asyncio.run(stream_messages(nats_cluster.urls, route.stream))}
    assert sorted(messages) == seqs
    for command, (seq, index) in zip(commands, results, strict=True):
        assert frames.decode_batch(messages[seq].data)[index] == command
    assert [messages[seq].headers["Nats-Msg-Id"] for seq in seqs] == ["b-1", "b-2", "b-3"]


def test_batcher_splits_at_max_bytes(nats_cluster: NatsCluster, shard: str):
    create_shard(nats_cluster.urls, shard)

    async def run() -> list[tuple[int, int]]:
        log = await command_log.CommandLog.connect(nats_cluster.urls, shard)
        try:
            batcher = command_log.Batcher(log, max_bytes=2500, linger_s=0.05)
            return await asyncio.gather(*(batcher.submit(b"c" * 1000) for _ in range(5)))
        finally:
            await log.close()

    results = asyncio.run(run())
    assert [index for _, index in results] == [0, 1, 0, 1, 0]
    assert len({seq for seq, _ in results}) == 3


async def append_until(
    log: command_log.CommandLog,
    writer: int,
    acked: dict[bytes, int],
    stop: asyncio.Event,
) -> None:
    """Appends ``w<writer>-<n>`` messages one after another until ``stop``; records each
    acknowledged one. A generous deadline: every append outlasts an election."""
    n = 0
    while not stop.is_set():
        n += 1
        payload = message(f"w{writer}-{n}")
        acked[payload] = await log.append(payload, f"w{writer}-{n}", timeout_s=30.0)


def test_appends_through_stream_leader_sigkill_and_restart(nats_cluster: NatsCluster, shard: str):
    route = create_shard(nats_cluster.urls, shard)
    acked: dict[bytes, int] = {}

    async def run() -> None:
        log = await command_log.CommandLog.connect(nats_cluster.urls, shard)
        stop = asyncio.Event()
        writers = [asyncio.create_task(append_until(log, w, acked, stop)) for w in range(4)]
        try:
            await asyncio.sleep(0.5)
            leader = await leader_of(log)
            before = len(acked)
            await asyncio.to_thread(nats_cluster.kill, leader)
            while len(acked) < before + 50:  # appends acknowledged by the new leader
                await asyncio.sleep(0.05)
                assert not any(w.done() for w in writers), [w.exception() for w in writers]
            assert await leader_of(log) != leader
            await asyncio.to_thread(nats_cluster.restart, leader)
            after_restart = len(acked)
            while len(acked) < after_restart + 50:
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.gather(*writers)
            assert log.retries > 0  # the kill was felt
        finally:
            stop.set()
            for writer in writers:
                writer.cancel()
            await asyncio.gather(*writers, return_exceptions=True)
            await log.close()

    asyncio.run(run())
    assert_stream_is(nats_cluster.urls, route.stream, acked)
    wait_all_servers_hold(nats_cluster, route.stream, max(acked.values()))


def wait_all_servers_hold(cluster: NatsCluster, stream: str, last_seq: int) -> None:
    """Every server's copy of ``stream`` reaches ``last_seq`` (the restarted one catches up)."""
    from boxoffice_api.cluster.nats import _http_json

    deadline = time.monotonic() + 30.0
    for server in cluster.servers:
        while True:
            jsz: Any = _http_json(f"{server.monitor_url}/jsz?streams=true")
            streams = [
                s
                for account in (jsz or {}).get("account_details", [])
                for s in account.get("stream_detail", [])
                if s.get("name") == stream
            ]
            if streams and streams[0]["state"]["last_seq"] == last_seq:
                break
            assert time.monotonic() < deadline, f"{server.name} did not catch up to {last_seq}"
            time.sleep(0.1)


def test_two_of_three_down_append_raises_log_unavailable_and_nothing_is_lost(
    nats_cluster: NatsCluster, shard: str
):
    route = create_shard(nats_cluster.urls, shard)
    acked: dict[bytes, int] = {}

    async def run() -> None:
        log = await command_log.CommandLog.connect(nats_cluster.urls, shard)
        try:
            for n in range(20):
                acked[message(f"before-{n}")] = await log.append(message(f"before-{n}"), f"b{n}")
            leader = await leader_of(log)
            follower = next(s.name for s in nats_cluster.servers if s.name != leader)
            await asyncio.to_thread(nats_cluster.kill, leader)
            await asyncio.to_thread(nats_cluster.kill, follower)
            assert not nats_cluster.streams_current()  # one server: no stream has a leader
            timeout_s = 2.0
            started = time.monotonic()
            with pytest.raises(command_log.LogUnavailable) as raised:
                await log.append(message("during"), "during", timeout_s=timeout_s)
            # Within its deadline (and one attempt's rounding), not after a TCP timeout.
            assert time.monotonic() - started < timeout_s + command_log.ATTEMPT_TIMEOUT_S + 2.0
            assert raised.value.retry_after_s == command_log.RETRY_AFTER_S
            assert raised.value.http_status == 503
            await asyncio.to_thread(nats_cluster.restart, leader, False)
            await asyncio.to_thread(nats_cluster.restart, follower, False)
            await asyncio.to_thread(nats_cluster.wait_ready)
            await asyncio.to_thread(nats_cluster.wait_streams_current)
            # The client retries the refused append under its id: stored once, whether or not
            # the first attempt reached a disk.
            acked[message("during")] = await log.append(message("during"), "during", 30.0)
            acked[message("after")] = await log.append(message("after"), "after", 30.0)
        finally:
            await log.close()

    asyncio.run(run())
    assert_stream_is(nats_cluster.urls, route.stream, acked)
    wait_all_servers_hold(nats_cluster, route.stream, max(acked.values()))


def test_r1_stream_on_one_server(nats_single: NatsCluster, shard: str):
    route = create_shard(nats_single.urls, shard, replicas=1)

    async def run() -> dict[bytes, int]:
        log = await command_log.CommandLog.connect(nats_single.urls, shard)
        try:
            assert await stream_leader(log.js, route.stream) in (None, "n1")
            return {
                message(f"r1-{n}"): await log.append(message(f"r1-{n}"), f"r{n}") for n in range(5)
            }
        finally:
            await log.close()

    assert_stream_is(nats_single.urls, route.stream, asyncio.run(run()))


class FakeLog:
    """A log whose append waits for ``release`` and then answers or raises ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.release = asyncio.Event()
        self.payloads: list[tuple[bytes, str]] = []

    async def append(self, payload: bytes, msg_id: str, timeout_s: float) -> int:
        self.payloads.append((payload, msg_id))
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return len(self.payloads)


def test_batcher_cancelled_submitter_leaves_the_others_their_results():
    async def run() -> None:
        fake = FakeLog()
        batcher = command_log.Batcher(fake, linger_s=0.0, msg_id_prefix="p")
        tasks = [asyncio.create_task(batcher.submit(bytes([i + 1]))) for i in range(3)]
        await asyncio.sleep(0.01)  # the message is on its way
        tasks[1].cancel()
        fake.release.set()
        assert await tasks[0] == (1, 0)
        assert await tasks[2] == (1, 2)
        with pytest.raises(asyncio.CancelledError):
            await tasks[1]
        assert fake.payloads == [(frames.encode_batch([b"\x01", b"\x02", b"\x03"]), "p-1")]

    asyncio.run(run())


def test_batcher_failed_append_fails_every_submitter_of_the_message():
    async def run() -> None:
        unavailable = command_log.LogUnavailable("no quorum", retry_after_s=2.0)
        fake = FakeLog(error=unavailable)
        batcher = command_log.Batcher(fake, linger_s=0.0)
        tasks = [asyncio.create_task(batcher.submit(b"c")) for _ in range(4)]
        fake.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert results == [unavailable] * 4
        assert len(fake.payloads) == 1

    asyncio.run(run())


def test_batcher_refuses_empty_and_oversized_commands():
    async def run() -> None:
        batcher = command_log.Batcher(FakeLog())
        for command in (b"", b"x" * (frames.COMMAND_BYTES_MAX + 1)):
            with pytest.raises(ValueError):
                await batcher.submit(command)

    asyncio.run(run())


class GatedLog:
    """A log whose every append waits until the test answers it: ``answer(n, seq)`` or
    ``fail(n, error)`` for the ``n``-th append (0-based), in any order."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str]] = []
        self.outcomes: list[asyncio.Future[int]] = []

    async def append(self, payload: bytes, msg_id: str, timeout_s: float) -> int:
        self.calls.append((payload, msg_id))
        outcome: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.outcomes.append(outcome)
        return await outcome

    def answer(self, n: int, seq: int) -> None:
        self.outcomes[n].set_result(seq)

    def fail(self, n: int, error: BaseException) -> None:
        self.outcomes[n].set_exception(error)


def note_answer(answered: list[int], i: int, _: object) -> None:
    answered.append(i)


def test_batcher_keeps_messages_in_flight_and_each_answers_on_its_own_ack():
    async def run() -> None:
        gated = GatedLog()
        batcher = command_log.Batcher(gated, max_commands=2, linger_s=10.0, msg_id_prefix="f")
        tasks = [asyncio.create_task(batcher.submit(bytes([i + 1]))) for i in range(6)]
        await asyncio.sleep(0.01)
        # Three full messages are on their way at once: none waited for another's ack.
        assert [msg_id for _, msg_id in gated.calls] == ["f-1", "f-2", "f-3"]
        assert [frames.decode_batch(p) for p, _ in gated.calls] == [
            [b"\x01", b"\x02"], [b"\x03", b"\x04"], [b"\x05", b"\x06"]
        ]  # fmt: skip
        assert batcher.in_flight == 3
        answered: list[int] = []
        for i, task in enumerate(tasks):
            task.add_done_callback(partial(note_answer, answered, i))
        gated.answer(2, seq=7)  # the last message is stored first
        await asyncio.sleep(0.01)
        assert sorted(answered) == [4, 5]
        assert [await tasks[4], await tasks[5]] == [(7, 0), (7, 1)]
        error = command_log.LogUnavailable("no quorum", retry_after_s=2.0)
        gated.fail(1, error)  # fails its own two submitters only
        gated.answer(0, seq=8)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert results == [(8, 0), (8, 1), error, error, (7, 0), (7, 1)]
        assert batcher.in_flight == 0
        assert len(gated.calls) == 3  # a failed message is not sent again by the Batcher

    asyncio.run(run())


class FlakyJetStream:
    """``js.publish`` that times out ``failures`` times, then acknowledges sequence 1."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.headers: list[dict[str, str]] = []

    async def publish(self, subject: str, payload: bytes, **kwargs: Any) -> Any:
        self.headers.append(dict(kwargs["headers"]))
        if len(self.headers) <= self.failures:
            raise nats.errors.TimeoutError
        return type("Ack", (), {"seq": 1})()


class FakeConnection:
    def __init__(self, js: FlakyJetStream) -> None:
        self.js, self.is_closed = js, False

    def jetstream(self) -> FlakyJetStream:
        return self.js


def test_an_append_retried_after_timeouts_keeps_its_message_id_and_times_it_once():
    async def run() -> None:
        js = FlakyJetStream(failures=2)
        log = command_log.CommandLog(FakeConnection(js), command_log.shard_route("t"), False)
        assert await log.append(message("one"), "w-1", timeout_s=5.0) == 1
        assert [h["Nats-Msg-Id"] for h in js.headers] == ["w-1"] * 3
        assert (log.appends, log.retries, log.failures) == (1, 2, 0)
        samples = {
            s.name: s.value
            for metric in log.append_seconds.collect()
            for s in metric.samples
            if s.labels.get("shard") == "t"
        }
        # One append observed, its latency including the two retries' pauses (20 + 40 ms).
        assert samples["boxoffice_cluster_append_seconds_count"] == 1
        assert samples["boxoffice_cluster_append_seconds_sum"] >= 0.06

    asyncio.run(run())


def test_batcher_at_max_in_flight_fills_the_next_message_until_a_slot_frees():
    async def run() -> None:
        gated = GatedLog()
        batcher = command_log.Batcher(
            gated, max_commands=3, linger_s=0.0, max_in_flight=2, msg_id_prefix="c"
        )
        first = [asyncio.create_task(batcher.submit(b"a"))]
        await asyncio.sleep(0.01)
        first.append(asyncio.create_task(batcher.submit(b"b")))
        await asyncio.sleep(0.01)
        assert [msg_id for _, msg_id in gated.calls] == ["c-1", "c-2"]
        # Both slots are taken: the next commands wait past their linger in one message; a
        # full one is closed (numbered) and the next opened, none sent yet.
        later = [asyncio.create_task(batcher.submit(bytes([n]))) for n in range(1, 6)]
        await asyncio.sleep(0.01)
        assert len(gated.calls) == 2 and batcher.in_flight == 2
        gated.answer(1, seq=1)  # a slot frees: the oldest closed message goes first
        await asyncio.sleep(0.01)
        assert gated.calls[2] == (frames.encode_batch([b"\x01", b"\x02", b"\x03"]), "c-3")
        gated.answer(0, seq=2)  # then the open one, whose linger is over
        await asyncio.sleep(0.01)
        assert gated.calls[3] == (frames.encode_batch([b"\x04", b"\x05"]), "c-4")
        gated.answer(2, seq=3)
        gated.answer(3, seq=4)
        assert await asyncio.gather(*first, *later) == [
            (2, 0), (1, 0), (3, 0), (3, 1), (3, 2), (4, 0), (4, 1)
        ]  # fmt: skip
        await batcher.flush()
        assert (batcher.messages, batcher.in_flight) == (4, 0)

    asyncio.run(run())


def test_batcher_flush_sends_what_waits_for_a_slot():
    async def run() -> None:
        fake = FakeLog()
        fake.release.set()
        batcher = command_log.Batcher(fake, max_commands=2, linger_s=60.0, max_in_flight=1)
        tasks = [asyncio.create_task(batcher.submit(bytes([n]))) for n in range(1, 6)]
        await asyncio.sleep(0)
        await batcher.flush()  # the last, open message too, without waiting a minute
        assert [seq for seq, _ in await asyncio.gather(*tasks)] == [1, 1, 2, 2, 3]
        assert batcher.in_flight == 0 and len(fake.payloads) == 3

    asyncio.run(run())


class TimedGatedLog(GatedLog):
    """A :class:`GatedLog` that also records the timeout each append was given."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    async def append(self, payload: bytes, msg_id: str, timeout_s: float) -> int:
        self.timeouts.append(timeout_s)
        return await super().append(payload, msg_id, timeout_s)


def test_batcher_a_message_that_waits_out_its_deadline_for_a_slot_fails_unsent():
    async def run() -> None:
        gated = TimedGatedLog()
        batcher = command_log.Batcher(
            gated, max_commands=1, linger_s=0.0, max_in_flight=1, timeout_s=0.2, msg_id_prefix="d"
        )
        first = asyncio.create_task(batcher.submit(b"a"))
        await asyncio.sleep(0.01)
        late = [asyncio.create_task(batcher.submit(bytes([n]))) for n in (1, 2)]
        await asyncio.sleep(0.25)  # the log is stuck past every deadline
        gated.fail(0, command_log.LogUnavailable("no quorum", retry_after_s=2.0))
        results = await asyncio.gather(first, *late, return_exceptions=True)
        assert all(isinstance(r, command_log.LogUnavailable) for r in results)
        assert "no free slot" in str(results[1]) and "no free slot" in str(results[2])
        assert [msg_id for _, msg_id in gated.calls] == ["d-1"]  # the late ones never went out
        # A message sent after waiting gets what is left of its time, not a fresh timeout.
        gated = TimedGatedLog()
        batcher = command_log.Batcher(gated, max_commands=1, linger_s=0.0, max_in_flight=1)
        second = asyncio.create_task(batcher.submit(b"b"))
        await asyncio.sleep(0.01)
        third = asyncio.create_task(batcher.submit(b"c"))
        await asyncio.sleep(0.05)
        gated.answer(0, seq=5)
        await asyncio.sleep(0.01)
        assert gated.timeouts[1] <= gated.timeouts[0] - 0.05
        gated.answer(1, seq=6)
        assert list(await asyncio.gather(second, third)) == [(5, 0), (6, 0)]

    asyncio.run(run())
