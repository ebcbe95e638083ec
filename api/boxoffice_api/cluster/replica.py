"""An engine replica: the C++ engine applying a shard's command log, strictly in sequence order.

``boxoffice replica --cluster URLS --shard NAME --dir PATH`` runs one. Every replica of a shard
applies the same messages in the same order through ``Engine.apply_encoded``, so all of them
hold the same state (equal ``state_hash``) at the same log sequence; any of them can answer.

What a replica does:

- **Applies** the stream from its last applied sequence + 1, one message after the other. A
  message whose sequence is not exactly the next is never applied: a redelivery (lower) is
  skipped; a gap (higher: the stream was trimmed behind this replica) makes it reload the
  newest snapshot. After any error the consumer is re-created from the next sequence.
- **Answers results**: requests on ``boxoffice.<shard>.results`` (queue group ``replicas``, so
  one replica answers each) carry a stream sequence; the reply is the encoded results of that
  message's commands (``frames.encode_batch`` of ``boxoffice.commands`` results), sent once the
  replica has applied it. The results of the last ``results_window`` messages are kept.
- **Keeps time moving**: every ``tick_s`` it offers an ``ADVANCE`` to the slot's start under the
  message id ``tick-<shard>-<slot>``; JetStream's de-duplication stores one per slot whichever
  replicas offer it, so holds and sessions expire with no request arriving.
- **Snapshots** every ``snapshot_every_s`` into ``<dir>/snapshot.bin`` (atomically) and, when
  ``publish_snapshots``, into the Object Store bucket ``boxoffice_snapshots`` (object ``<shard>``),
  after which it trims the stream up to ``trim_margin`` messages behind the snapshot. A restarted
  replica starts from the newer of its file and the bucket's object, then applies the tail.
- **Publishes queue digests**: every ``digest_every_s`` (1 s) the digest of each concert
  with WAITING tokens (``boxoffice.QueueDigest``: position and ETA of every WAITING token as of
  now, in a few bytes), on ``boxoffice.<shard>.digest.<concert>`` with the applied sequence in
  the ``Boxoffice-Seq`` header; plain NATS publish, so digests still flow while the log has no
  quorum. HTTP workers answer polls from them (:mod:`.remote_engine`).
- **Reports** its applied sequence and state hash in the KV bucket ``boxoffice_replicas``
  (key ``<shard>.<name>``) every second, for ``boxoffice cluster status``.

Time: each command carries the ``now`` of the worker that built it; the engine never moves its
clock back (a command older than the engine's clock runs at the clock), so replicas that apply
the same sequence agree whatever the workers' clocks said (``docs/scale-out.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import struct
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boxoffice as bo
import boxoffice.errors as bo_errors
from boxoffice.commands import encode_command

from ..engine_api import READS
from . import frames

log = logging.getLogger("boxoffice.replica")

SNAPSHOT_MAGIC = b"BOXREPL1"
_HEADER = struct.Struct("<8sQI")  # magic, stream sequence, crc32 of sequence + engine bytes
SNAPSHOT_BUCKET = "boxoffice_snapshots"
REPLICAS_BUCKET = "boxoffice_replicas"
RESULTS_QUEUE_GROUP = "replicas"
ERROR_HEADER = "Boxoffice-Error"
MALFORMED_RESULT = b"\xff"
"""The result of a command that did not decode (not a valid encoded result: reading it with
``decode_result`` raises DataLoss). Workers append only valid commands."""


def results_subject(shard: str) -> str:
    """The request subject for "the results of stream sequence N" of ``shard``."""
    return f"boxoffice.{shard}.results"


def digest_subject(shard: str, concert_id: int | str) -> str:
    """The subject of ``shard``'s queue digests of one concert (``"*"``: of every concert)."""
    return f"boxoffice.{shard}.digest.{concert_id}"


DIGEST_SEQ_HEADER = "Boxoffice-Seq"
"""The header of a digest message: the stream sequence the replica had applied."""

DIGEST_CONCERTS_MAX = 1_000
"""Digests are published for the newest concerts only (a drop's concert is among them)."""


def query_subject(shard: str) -> str:
    """The request subject for reads of ``shard``'s state (:data:`READS`)."""
    return f"boxoffice.{shard}.query"


def gated_page(
    engine: bo.Engine,
    token_id: int,
    concert_id: int,
    schedule_id: int,
    status: str | None = None,
    *,
    after: int = 0,
    limit: int | None = None,
) -> list[bo.Seat]:
    """The seats page of ``Engine.gated_seats`` after its gate (a ``GATE`` command, already
    applied through the log), with the same checks in the same order and the same errors:
    ScheduleNotFound, then QueueTokenInvalid when the schedule is another concert's."""
    now = engine.clock
    if schedule_id not in {s.id for s in engine.schedules(concert_id, now=now)}:
        engine.seats(schedule_id, limit=0, now=now)  # ScheduleNotFound when there is none
        owner = next(
            c.id for c in engine.concerts(now=now) if schedule_id in {s.id for s in c.schedules}
        )
        raise bo_errors.QueueTokenInvalid(
            f"queue token {token_id} is for concert {concert_id}, not concert {owner} of "
            f"schedule {schedule_id}"
        )
    return engine.seats(schedule_id, status, after=after, limit=limit, now=now)  # type: ignore[arg-type]


def tick_msg_id(shard: str, slot: int) -> str:
    """The message id of the ``ADVANCE`` of time slot ``slot`` (one stored per slot)."""
    return f"tick-{shard}-{slot}"


# --- snapshot files -------------------------------------------------------------------------


def encode_snapshot(seq: int, engine_bytes: bytes) -> bytes:
    """A replica snapshot: the engine's snapshot bytes tagged with the stream sequence of the
    last message they include (``SNAPSHOT_MAGIC``, sequence u64, crc32, engine bytes)."""
    crc = zlib.crc32(engine_bytes, zlib.crc32(struct.pack("<Q", seq)))
    return _HEADER.pack(SNAPSHOT_MAGIC, seq, crc) + engine_bytes


def decode_snapshot(data: bytes) -> tuple[int, bytes]:
    """``(stream sequence, engine snapshot bytes)`` of :func:`encode_snapshot`'s bytes.

    Raises:
        boxoffice.errors.DataLoss: not a whole replica snapshot (magic, length, checksum).
    """
    if len(data) < _HEADER.size:
        raise bo_errors.DataLoss("replica snapshot: truncated header")
    magic, seq, crc = _HEADER.unpack_from(data)
    body = data[_HEADER.size :]
    if magic != SNAPSHOT_MAGIC:
        raise bo_errors.DataLoss("replica snapshot: not a boxoffice replica snapshot")
    if zlib.crc32(body, zlib.crc32(struct.pack("<Q", seq))) != crc:
        raise bo_errors.DataLoss("replica snapshot: checksum mismatch")
    return seq, body


def write_snapshot_file(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (temporary file, fsync, rename, fsync dir)."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --- the state machine, without I/O ---------------------------------------------------------


class OutOfOrder(Exception):
    """A message that is not the next one: ``seq`` > applied + 1 (a gap)."""


@dataclass
class ReplicaState:
    """The engine and the log position it is at; applies messages strictly in order.

    Args:
        engine: an in-memory engine (``boxoffice.Engine()`` or ``Engine(snapshot=...)``).
        applied_seq: the stream sequence of the last message ``engine`` includes.
        results_window: messages whose results are kept for :meth:`results`.
    """

    engine: bo.Engine
    applied_seq: int = 0
    results_window: int = 100_000
    undecodable: int = 0  # messages that were not a batch of commands (skipped, counted)
    _results: OrderedDict[int, list[bytes] | None] = field(default_factory=OrderedDict)

    def apply(self, seq: int, data: bytes) -> bool:
        """Applies the message at stream sequence ``seq``; False when it was applied before.

        Raises:
            OutOfOrder: ``seq`` is beyond the next sequence (nothing is applied).
        """
        if seq <= self.applied_seq:
            return False
        if seq != self.applied_seq + 1:
            raise OutOfOrder(f"message {seq} after {self.applied_seq}")
        results: list[bytes] | None
        try:
            commands = frames.decode_batch(data)
        except bo_errors.DataLoss as exc:
            # Every replica skips the same bytes in the same way: they stay equal.
            log.error("log message %d is not a batch of commands: %s", seq, exc)
            self.undecodable += 1
            results = None
        else:
            apply = self.engine.apply_encoded
            results = []
            for command in commands:
                try:
                    results.append(apply(command))
                except bo_errors.DataLoss as exc:  # a malformed command: applied by nobody
                    log.error("log message %d holds a malformed command: %s", seq, exc)
                    self.undecodable += 1
                    results.append(MALFORMED_RESULT)
        self.applied_seq = seq
        self._results[seq] = results
        while len(self._results) > self.results_window:
            self._results.popitem(last=False)
        return True

    def results(self, seq: int) -> list[bytes] | None:
        """The encoded results of message ``seq`` (:data:`MALFORMED_RESULT` for a command
        that did not decode), or None if it was not a batch of commands.

        Raises:
            KeyError: ``seq`` is not applied yet, or older than the window.
        """
        return self._results[seq]

    def snapshot(self) -> bytes:
        """The state as replica snapshot bytes (:func:`encode_snapshot`)."""
        return encode_snapshot(self.applied_seq, self.engine.snapshot_bytes())

    @classmethod
    def from_snapshot(cls, data: bytes, results_window: int = 100_000) -> ReplicaState:
        """The state of replica snapshot bytes.

        Raises:
            boxoffice.errors.DataLoss: damaged bytes.
        """
        seq, engine_bytes = decode_snapshot(data)
        return cls(bo.Engine(snapshot=engine_bytes), seq, results_window)


# --- the process ----------------------------------------------------------------------------


@dataclass
class ReplicaOptions:
    """How a replica runs (``boxoffice replica`` flags).

    Attributes:
        urls: NATS server URLs (``nats://127.0.0.1:4222``).
        shard: the shard whose log to apply (its stream is found in the routing bucket).
        directory: where the replica keeps ``snapshot.bin``.
        name: the replica's name (unique per shard; the status key).
        tick_s: the period of the offered ``ADVANCE`` commands (s; 0 = none).
        snapshot_every_s: the period of snapshots (s; 0 = none).
        publish_snapshots: also put snapshots in the Object Store and trim the stream.
        trim_margin: messages kept in the stream behind the published snapshot.
        results_window: messages whose results are kept.
        fetch_batch: messages asked for per pull.
        digest_every_s: the period of queue digests (s; 0 = none).
    """

    urls: list[str]
    shard: str
    directory: Path
    name: str
    tick_s: float = 0.1
    snapshot_every_s: float = 30.0
    publish_snapshots: bool = True
    trim_margin: int = 10_000
    results_window: int = 100_000
    fetch_batch: int = 512
    digest_every_s: float = 1.0


class Replica:
    """One engine replica of one shard (see the module's docstring); ``await run()``."""

    def __init__(self, options: ReplicaOptions) -> None:
        self.options = options
        self.state: ReplicaState | None = None
        self._waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._stopping = asyncio.Event()
        self._nc: Any = None
        self._js: Any = None
        self._stream = ""
        self._subject = ""
        self.failovers = 0  # consumers re-created after an error
        self._digest_busy: set[int] = set()  # concerts with WAITING tokens at the last digest

    def stop(self) -> None:
        """Asks :meth:`run` to return (after a last snapshot)."""
        self._stopping.set()

    async def run(self) -> None:
        """Connects, loads the newest snapshot, then applies, answers, ticks and snapshots
        until :meth:`stop`.

        Raises:
            nats.errors.NoServersError: no server reachable at start.
            boxoffice_api.cluster.log.ShardNotFound: the shard has no stream.
        """
        from . import log as command_log

        opts = self.options
        opts.directory.mkdir(parents=True, exist_ok=True)
        self._nc = await command_log.connect(opts.urls, name=opts.name)
        self._js = self._nc.jetstream()
        pause_s = 0.1
        while True:  # an election or a restarting server: keep trying, the log comes back
            try:
                shard_route = await command_log.route(self._js, opts.shard)
                # The cluster's seed (secret: it orders the pre-queues). `cluster up` stores
                # one; else the first replica's random candidate wins and all use it.
                seed = await command_log.ensure_meta(self._js, secrets.randbits(63))
                self.state = await self._load(seed)
                break
            except (command_log.ShardNotFound, bo_errors.DataLoss):
                raise
            except Exception as exc:
                log.warning("replica %s: starting: %s: %s", opts.name, type(exc).__name__, exc)
                if self._stopping.is_set():
                    await self._nc.close()
                    return
                await asyncio.sleep(pause_s)
                pause_s = min(2 * pause_s, 2.0)
        self._stream, self._subject = shard_route.stream, shard_route.subject
        log.info(
            "replica %s of %s starts at sequence %d", opts.name, opts.shard, self.state.applied_seq
        )
        results_sub = await self._nc.subscribe(
            results_subject(opts.shard), queue=RESULTS_QUEUE_GROUP, cb=self._answer
        )
        query_sub = await self._nc.subscribe(
            query_subject(opts.shard), queue=RESULTS_QUEUE_GROUP, cb=self._query
        )
        tasks = [
            asyncio.create_task(self._consume(), name="consume"),
            asyncio.create_task(self._report(), name="report"),
        ]
        if opts.tick_s > 0:
            tasks.append(asyncio.create_task(self._tick(), name="tick"))
        if opts.snapshot_every_s > 0:
            tasks.append(asyncio.create_task(self._snapshots(), name="snapshots"))
        if opts.digest_every_s > 0:
            tasks.append(asyncio.create_task(self._digests(), name="digests"))
        try:
            await self._stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for sub in (results_sub, query_sub):
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            with contextlib.suppress(Exception):
                self._save_local()
            with contextlib.suppress(Exception):
                await self._nc.close()

    # -- loading

    async def _load(self, seed: int) -> ReplicaState:
        """The newer of the local snapshot file and the bucket's object; a fresh engine
        (with the cluster's seed) when there is neither."""
        opts = self.options
        best: tuple[int, bytes] | None = None
        path = opts.directory / "snapshot.bin"
        if path.exists():
            data = path.read_bytes()
            try:
                best = (decode_snapshot(data)[0], data)
            except bo_errors.DataLoss as exc:
                log.error("ignoring %s: %s", path, exc)
        published = await self._published_snapshot()
        if published is not None and (best is None or published[0] > best[0]):
            best = published
        if best is None:
            return ReplicaState(bo.Engine(seed=seed), 0, opts.results_window)
        return ReplicaState.from_snapshot(best[1], opts.results_window)

    async def _published_snapshot(self) -> tuple[int, bytes] | None:
        try:
            store = await self._js.object_store(SNAPSHOT_BUCKET)
            result = await store.get(self.options.shard)
        except Exception as exc:  # no bucket or no object yet: nothing published
            log.info("no published snapshot of %s (%s)", self.options.shard, type(exc).__name__)
            return None
        data = bytes(result.data or b"")
        try:
            return decode_snapshot(data)[0], data
        except bo_errors.DataLoss as exc:
            log.error("ignoring the published snapshot of %s: %s", self.options.shard, exc)
            return None

    # -- applying

    async def _consume(self) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import FetchTimeoutError

        assert self.state is not None
        opts = self.options
        while not self._stopping.is_set():
            sub = None
            try:
                config = ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=self.state.applied_seq + 1,
                    ack_policy=AckPolicy.NONE,
                    inactive_threshold=30.0,
                )
                sub = await self._js.pull_subscribe(
                    self._subject, stream=self._stream, config=config
                )
                silent = 0
                while not self._stopping.is_set():
                    try:
                        messages = await sub.fetch(opts.fetch_batch, timeout=1.0, heartbeat=0.2)
                    except FetchTimeoutError:
                        continue  # the consumer's heartbeats came: it is alive, the log idle
                    except TimeoutError:
                        # Not even a heartbeat: the consumer's server may be gone (it lived on
                        # a server that was killed); re-create it on a live one.
                        silent += 1
                        if silent >= 2:
                            raise
                        continue
                    silent = 0
                    for message in messages:
                        self._apply(message.metadata.sequence.stream, message.data)
            except asyncio.CancelledError:
                raise
            except OutOfOrder as exc:
                log.warning("replica %s: %s; reloading the published snapshot", opts.name, exc)
                await self._reload_after_gap()
            except Exception as exc:  # a leader election, a lost connection, a deleted consumer
                self.failovers += 1
                log.warning(
                    "replica %s: consumer failed (%s: %s); re-creating it from %d",
                    opts.name,
                    type(exc).__name__,
                    exc,
                    self.state.applied_seq + 1,
                )
                await asyncio.sleep(0.25)
            finally:
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()

    def _apply(self, seq: int, data: bytes) -> None:
        assert self.state is not None
        if self.state.apply(seq, data) and self._waiters:
            self._wake_through(seq)

    def _wake_through(self, seq: int) -> None:
        """Settles every waiter for a sequence at or below ``seq`` (a reload can jump)."""
        for waited in [s for s in self._waiters if s <= seq]:
            for future in self._waiters.pop(waited):
                if not future.done():
                    future.set_result(None)

    async def _reload_after_gap(self) -> None:
        assert self.state is not None
        published = await self._published_snapshot()
        if published is None or published[0] <= self.state.applied_seq:
            await asyncio.sleep(1.0)  # nothing newer to load: try the stream again
            return
        self.state = ReplicaState.from_snapshot(published[1], self.options.results_window)
        self._wake_through(self.state.applied_seq)  # their results are gone: they hear GONE

    # -- answering

    async def _answer(self, msg: Any) -> None:
        assert self.state is not None
        try:
            seq = int(msg.data)
        except ValueError:
            await msg.respond(b"", headers={ERROR_HEADER: "BAD_REQUEST"})
            return
        if not await self._until_applied(seq, 5.0):
            return  # the requester retries (another replica may be ahead)
        try:
            results = self.state.results(seq)
        except KeyError:
            await msg.respond(b"", headers={ERROR_HEADER: "GONE"})
            return
        if results is None:
            await msg.respond(b"", headers={ERROR_HEADER: "UNDECODABLE"})
            return
        await msg.respond(frames.encode_batch(results))

    async def _until_applied(self, seq: int, timeout_s: float) -> bool:
        """Waits until message ``seq`` is applied; False after ``timeout_s``."""
        assert self.state is not None
        if seq <= self.state.applied_seq:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(seq, []).append(future)
        try:
            await asyncio.wait_for(future, timeout=timeout_s)
        except TimeoutError:
            return False
        return True

    async def _query(self, msg: Any) -> None:
        """Answers a read: ``{"min_seq", "method", "args", "kwargs"}`` -> ``{"value",
        "applied_seq"}`` or ``{"error"}``, once at least ``min_seq`` is applied."""
        from .wire import error_to_wire, to_wire

        assert self.state is not None
        try:
            request = json.loads(msg.data)
            method = str(request["method"])
            args = list(request.get("args", []))
            kwargs = dict(request.get("kwargs", {}))
            min_seq = int(request.get("min_seq", 0))
            if method not in READS and method != "gated_page":
                raise ValueError(f"not a read: {method!r}")
        except (ValueError, KeyError, TypeError) as exc:
            await msg.respond(
                json.dumps({"error": {"code": "INVALID_ARGUMENT", "message": str(exc)}}).encode()
            )
            return
        if not await self._until_applied(min_seq, 5.0):
            return  # the requester retries (another replica may be ahead)
        engine = self.state.engine
        answer: dict[str, Any]
        try:
            member = getattr(engine, method, None)
            value: Any
            if method == "gated_page":
                value = gated_page(engine, *args, **kwargs)
            elif callable(member):
                if READS[method]:
                    kwargs["now"] = engine.clock
                value = member(*args, **kwargs)
            else:
                value = member
            answer = {"value": to_wire(value)}
        except bo_errors.BoxOfficeError as exc:
            answer = {"error": error_to_wire(exc)}
        except (TypeError, ValueError) as exc:  # arguments of the wrong shape
            answer = {"error": {"code": "INVALID_ARGUMENT", "message": str(exc)}}
        answer["applied_seq"] = self.state.applied_seq
        await msg.respond(json.dumps(answer).encode())

    # -- time, snapshots, status

    async def _tick(self) -> None:
        opts = self.options
        while True:
            now = time.time()
            slot = int(now / opts.tick_s) + 1
            await asyncio.sleep(max(0.0, slot * opts.tick_s - now))
            payload = frames.encode_batch([encode_command("ADVANCE", now=slot * opts.tick_s)])
            try:
                await self._js.publish(
                    self._subject,
                    payload,
                    stream=self._stream,
                    timeout=max(opts.tick_s, 0.5),
                    headers={"Nats-Msg-Id": tick_msg_id(opts.shard, slot)},
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # no quorum right now: the next slot's tick will do
                log.debug("tick %d not appended: %s", slot, exc)

    def queue_digests(self) -> list[tuple[int, bytes]]:
        """The digests to publish now: ``(concert_id, bytes)`` of each of the newest
        :data:`DIGEST_CONCERTS_MAX` concerts with WAITING tokens, and one last time of each
        that had some at the previous call (so workers see the line empty). Taken between two
        messages, at the engine's clock: they are exact as of ``applied_seq``."""
        assert self.state is not None
        engine = self.state.engine
        clock = engine.clock
        last = engine.concert_count
        digests = []
        busy = set()
        for concert_id in range(max(1, last - DIGEST_CONCERTS_MAX + 1), last + 1):
            if engine.stats(concert_id, now=clock).queue_waiting > 0:
                busy.add(concert_id)
            elif concert_id not in self._digest_busy:
                continue
            try:
                digests.append((concert_id, engine.queue_digest(concert_id, now=clock)))
            except bo_errors.LimitExceeded:  # a line too long for a digest: the engine answers
                continue
        self._digest_busy = busy
        return digests

    async def _digests(self) -> None:
        opts = self.options
        while True:
            await asyncio.sleep(opts.digest_every_s)
            assert self.state is not None
            headers = {DIGEST_SEQ_HEADER: str(self.state.applied_seq)}
            try:
                for concert_id, data in self.queue_digests():
                    await self._nc.publish(
                        digest_subject(opts.shard, concert_id), data, headers=headers
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # disconnected: the next period's digests will do
                log.debug("queue digests not published: %s", exc)

    def _save_local(self) -> bytes:
        assert self.state is not None
        data = self.state.snapshot()
        write_snapshot_file(self.options.directory / "snapshot.bin", data)
        return data

    async def _save_local_async(self) -> bytes:
        assert self.state is not None
        # The cut is taken on the event loop's thread, between two messages, so the sequence
        # and the state match; only the file write leaves the loop.
        data = self.state.snapshot()
        path = self.options.directory / "snapshot.bin"
        await asyncio.to_thread(write_snapshot_file, path, data)
        return data

    async def _snapshots(self) -> None:
        opts = self.options
        last = -1
        while True:
            await asyncio.sleep(opts.snapshot_every_s)
            assert self.state is not None
            seq = self.state.applied_seq
            if seq == last:
                continue
            data = await self._save_local_async()
            last = seq
            if opts.publish_snapshots:
                try:
                    await self._publish(seq, data)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("snapshot %d not published: %s", seq, exc)

    async def _publish(self, seq: int, data: bytes) -> None:
        from nats.js.errors import BucketNotFoundError

        try:
            store = await self._js.object_store(SNAPSHOT_BUCKET)
        except BucketNotFoundError:
            store = await self._js.create_object_store(SNAPSHOT_BUCKET)
        published = await self._published_snapshot()
        if published is not None and published[0] >= seq:
            return  # another replica published a newer one
        await store.put(self.options.shard, data)
        trim_below = seq - self.options.trim_margin
        if trim_below > 1:
            await self._js.purge_stream(self._stream, seq=trim_below)

    async def _report(self) -> None:
        from nats.js.errors import BucketNotFoundError

        opts = self.options
        kv = None
        while True:
            assert self.state is not None
            try:
                if kv is None:
                    try:
                        kv = await self._js.key_value(REPLICAS_BUCKET)
                    except BucketNotFoundError:
                        kv = await self._js.create_key_value(bucket=REPLICAS_BUCKET, history=1)
                status = {
                    "name": opts.name,
                    "pid": os.getpid(),
                    "applied_seq": self.state.applied_seq,
                    "state_hash": self.state.engine.state_hash(),
                    "failovers": self.failovers,
                    "at": time.time(),
                }
                await kv.put(f"{opts.shard}.{opts.name}", json.dumps(status).encode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("status not reported: %s", exc)
            await asyncio.sleep(1.0)
