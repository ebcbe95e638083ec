"""The command log on NATS JetStream: one stream per shard, found through a routing bucket.

A shard's stream is ``BOXOFFICE_<SHARD>`` on the subject ``boxoffice.<shard>.log``: file
storage, R3 in production (R1 for a one-machine install), a de-duplication window of
:data:`DUPLICATE_WINDOW_S` on the ``Nats-Msg-Id`` header, messages up to
:data:`MESSAGE_BYTES_MAX`. Each message is a batch of encoded commands (:mod:`.frames`).
Workers and replicas find a shard's stream in the KV bucket :data:`ROUTING_BUCKET`
(key = shard, value = ``{"stream", "subject"}``), so that adding shards changes no caller.
Cluster-wide settings (the engine ``seed``) live in the KV bucket :data:`META_BUCKET`. Both are
written create-only: the first writer wins and every later one reads its value.

Appends (:class:`CommandLog`) retry through leader elections and reconnections under the SAME
message id until their deadline, so a retried message is stored once; :class:`Batcher` shares one
message between concurrent submitters and keeps several messages in flight. Both keep
Prometheus histograms (append latency, commands per message) that a worker's ``/metrics``
exports. See ``docs/scale-out.md``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import nats
import nats.errors
import nats.js.errors
from nats.js.api import DiscardPolicy, KeyValueConfig, StorageType, StreamConfig
from prometheus_client import Histogram

import boxoffice.errors as bo_errors

from . import frames

log = logging.getLogger(__name__)

SHARD_DEFAULT = "main"
"""The shard that holds everything while there is one shard."""

ROUTING_BUCKET = "boxoffice_routing"
"""KV bucket: shard name -> JSON ``{"stream": ..., "subject": ...}``."""

META_BUCKET = "boxoffice_meta"
"""KV bucket of cluster-wide settings (``seed``)."""

DUPLICATE_WINDOW_S = 120.0
"""How long the stream remembers a message id: a retry with the same id within this window is
acknowledged with the first copy's sequence and not stored again."""

MESSAGE_BYTES_MAX = frames.COMMAND_BYTES_MAX + 4096
"""The stream's largest message: one largest command (a concert with its seat map) and its
framing. The servers' ``max_payload`` must be at least this (``NatsCluster`` sets 8 MB)."""

APPEND_TIMEOUT_S = 10.0
"""Default deadline of one append, retries included: longer than a stream leader election
(4.4-8.0 s from a leader's SIGKILL to the next acknowledged append on loopback, see
``docs/scale-out.md``), so that a failover delays writes instead of failing them; at most half
the de-duplication window."""

ATTEMPT_TIMEOUT_S = 1.0
"""How long one publish attempt waits for its acknowledgement before it is sent again."""

RETRY_AFTER_S = 2.0
"""What :class:`LogUnavailable` suggests to wait: about one RAFT election."""

APPEND_SECONDS_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0
)  # fmt: skip
"""Buckets of :attr:`CommandLog.append_seconds`: a quorum ack on loopback takes milliseconds,
an append retried through a RAFT election 4-9 s, the longest deadline is a minute."""

BATCH_COMMANDS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384)
"""Buckets of :attr:`Batcher.batch_commands` (commands per appended message)."""

_SHARD_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_RETRYABLE_API_CODES = frozenset({500, 503})


class LogUnavailable(bo_errors.StoreUnavailable):
    """No quorum of the command log acknowledged an append before its deadline (HTTP 503).

    The append may still be stored (its acknowledgement was lost): retrying with the same message
    id within :data:`DUPLICATE_WINDOW_S` stores it at most once. ``retry_after_s`` says when to
    try again.
    """


class ShardNotFound(bo_errors.NotFound):
    """The routing bucket has no entry for the shard (``ensure_shard`` was never run)."""


@dataclass(frozen=True)
class ShardRoute:
    """Where a shard's commands go: its stream's name and subject."""

    shard: str
    stream: str
    subject: str


def shard_route(shard: str) -> ShardRoute:
    """The stream and subject a new shard called ``shard`` gets.

    Raises:
        ValueError: not a shard name (1-64 of ``a-z 0-9 _ -``, starting with a letter or digit).
    """
    if not _SHARD_NAME.fullmatch(shard):
        raise ValueError(f"shard name {shard!r}: 1-64 of a-z, 0-9, _ and -")
    return ShardRoute(
        shard=shard,
        stream=f"BOXOFFICE_{shard.upper()}",  # "-" stays: "a-b" and "a_b" are two streams
        subject=f"boxoffice.{shard}.log",
    )


def stream_config(route: ShardRoute, replicas: int) -> StreamConfig:
    """The JetStream configuration of ``route``'s stream with ``replicas`` copies (1 or 3)."""
    return StreamConfig(
        name=route.stream,
        subjects=[route.subject],
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_msg_size=MESSAGE_BYTES_MAX,
        # Trimming is explicit (behind the newest snapshot), never to make room: no limits.
        discard=DiscardPolicy.OLD,
    )


async def _bucket(js: Any, bucket: str, replicas: int) -> Any:
    try:
        return await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        # Two creators at once both succeed: creating with an equal configuration is idempotent.
        return await js.create_key_value(
            KeyValueConfig(bucket=bucket, history=1, replicas=replicas, storage=StorageType.FILE)
        )


async def _create_or_get(kv: Any, key: str, value: bytes, timeout_s: float = 10.0) -> bytes:
    """Writes ``key`` if it has no value; returns the stored value either way. A bucket just
    created may not have elected its leader yet ("no response from stream"): the write is
    tried again until ``timeout_s``; a create is safe to repeat (it never overwrites)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await kv.create(key, value)
            return value
        except nats.js.errors.KeyWrongLastSequenceError:
            entry = await kv.get(key)
            stored: bytes = entry.value or b""
            return stored
        except (
            nats.js.errors.NoStreamResponseError,
            nats.errors.NoRespondersError,
            nats.errors.TimeoutError,
        ):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def ensure_shard(js: Any, shard: str = SHARD_DEFAULT, replicas: int = 3) -> ShardRoute:
    """Creates ``shard``'s stream (R``replicas``), the routing and meta buckets, and the routing
    entry, each only if missing; returns the route in force (the first writer's).

    ``js`` is a ``nats.js.JetStreamContext``.

    Raises:
        ValueError: a bad shard name, or ``replicas`` not 1..5.
        nats.js.errors.APIError: the stream exists with another configuration, or fewer
            servers than ``replicas`` are up.
    """
    if not 1 <= replicas <= 5:
        raise ValueError(f"replicas is 1..5, got {replicas}")
    new_route = shard_route(shard)
    routing = await _bucket(js, ROUTING_BUCKET, replicas)
    await _bucket(js, META_BUCKET, replicas)
    try:  # an entry written earlier (or by another process just now) is the route in force
        stored: bytes | None = (await routing.get(shard)).value or b""
    except nats.js.errors.NotFoundError:
        stored = None
    if stored is None:
        # The stream first, the entry second: a reader that finds the entry finds the stream.
        await js.add_stream(stream_config(new_route, replicas))
        stored = await _create_or_get(
            routing,
            shard,
            json.dumps({"stream": new_route.stream, "subject": new_route.subject}).encode(),
        )
    route = _parse_route(shard, stored)
    # Idempotent for an equal configuration; recreates a deleted stream; refuses another one.
    await js.add_stream(stream_config(route, replicas))
    return route


def _parse_route(shard: str, value: bytes) -> ShardRoute:
    try:
        fields = json.loads(value)
        return ShardRoute(shard=shard, stream=str(fields["stream"]), subject=str(fields["subject"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise bo_errors.DataLoss(f"routing entry of shard {shard!r}: {value!r}") from exc


async def route(js: Any, shard: str = SHARD_DEFAULT) -> ShardRoute:
    """The stream and subject of ``shard``, from the routing bucket.

    Raises:
        ShardNotFound: no routing bucket or no entry for ``shard``.
        boxoffice.errors.DataLoss: the entry is not a route.
    """
    try:
        kv = await js.key_value(ROUTING_BUCKET)
        entry = await kv.get(shard)
    except nats.js.errors.NotFoundError as exc:  # bucket or key (deleted keys too)
        raise ShardNotFound(f"shard {shard!r} has no stream (run ensure_shard)") from exc
    return _parse_route(shard, entry.value or b"")


async def ensure_meta(js: Any, seed: int, replicas: int | None = None) -> int:
    """Stores ``seed`` as the cluster's engine seed unless one is stored; returns the stored one.

    ``replicas`` sizes the meta bucket if this call creates it (default 1; ``ensure_shard``
    creates it with the stream's replicas).

    Raises:
        boxoffice.errors.DataLoss: the stored seed is not an integer.
    """
    kv = await _bucket(js, META_BUCKET, replicas or 1)
    stored = await _create_or_get(kv, "seed", str(int(seed)).encode())
    try:
        return int(stored)
    except ValueError as exc:
        raise bo_errors.DataLoss(f"cluster seed {stored!r} is not an integer") from exc


async def connect(urls: Sequence[str], name: str | None = None) -> Any:
    """A NATS connection that reconnects forever (a ``nats.aio.client.Client``).

    Raises:
        nats.errors.NoServersError: no server of ``urls`` reachable.
    """

    async def quiet(exc: Exception) -> None:  # the default callback logs every reconnect
        log.debug("nats: %s", exc)

    return await nats.connect(
        servers=list(urls),
        name=name,
        connect_timeout=2,
        reconnect_time_wait=0.1,
        max_reconnect_attempts=-1,
        error_cb=quiet,
    )


class CommandLog:
    """The append side of one shard's command log (workers; replicas for ticks).

    Use :meth:`connect`; call :meth:`close` when done.
    """

    def __init__(self, nc: Any, route: ShardRoute, owns_connection: bool = True) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.route = route
        self._owns_connection = owns_connection
        self.appends = 0  # acknowledged appends
        self.retries = 0  # attempts sent again (a timeout, no leader, a reconnection)
        self.failures = 0  # appends that gave up (LogUnavailable)
        # Not in any registry: the worker's /metrics collector exports it (one per log, so a
        # process may hold many logs, and tests many workers).
        self.append_seconds = Histogram(
            "boxoffice_cluster_append_seconds",
            "Seconds from an append's first attempt to its quorum acknowledgement, retries "
            "through elections included (acknowledged appends only)",
            ["shard"],
            buckets=APPEND_SECONDS_BUCKETS,
            registry=None,
        )
        self._append_seconds = self.append_seconds.labels(route.shard)

    @classmethod
    async def connect(
        cls, urls: Sequence[str], shard: str = SHARD_DEFAULT, name: str | None = None
    ) -> CommandLog:
        """Connects to ``urls`` and looks ``shard`` up in the routing bucket.

        Raises:
            nats.errors.NoServersError: no server reachable.
            ShardNotFound: the shard has no stream.
        """
        nc = await connect(urls, name)
        try:
            return cls(nc, await route(nc.jetstream(), shard))
        except BaseException:
            await nc.close()
            raise

    async def append(self, payload: bytes, msg_id: str, timeout_s: float = APPEND_TIMEOUT_S) -> int:
        """Appends ``payload`` (a :mod:`.frames` message) under message id ``msg_id``; returns
        its stream sequence once a quorum has stored it.

        Retries with the same ``msg_id`` through elections and reconnections until
        ``timeout_s`` (seconds) have passed; a message already stored under ``msg_id`` within
        :data:`DUPLICATE_WINDOW_S` is not stored again and its first sequence is returned.

        Raises:
            LogUnavailable: not acknowledged within ``timeout_s`` (it may still be stored).
            ValueError: ``timeout_s`` not in (0, half the de-duplication window], or the
                payload larger than :data:`MESSAGE_BYTES_MAX`.
            nats.js.errors.APIError: the stream refused it for good (e.g. a wrong stream).
        """
        if not 0 < timeout_s <= DUPLICATE_WINDOW_S / 2:
            # A retry after the window would store the message twice.
            raise ValueError(f"timeout_s is in (0, {DUPLICATE_WINDOW_S / 2}], got {timeout_s}")
        if len(payload) > MESSAGE_BYTES_MAX:
            raise ValueError(f"a log message is at most {MESSAGE_BYTES_MAX} bytes")
        loop = asyncio.get_running_loop()
        # The latency on the process clock: uvloop's loop.time() counts whole milliseconds.
        started_s = time.perf_counter()
        deadline = loop.time() + timeout_s
        pause_s = 0.02
        last_error: BaseException | None = None
        while True:
            left_s = deadline - loop.time()
            if left_s <= 0:
                self.failures += 1
                raise LogUnavailable(
                    f"{self.route.stream}: no quorum acknowledged message {msg_id} within "
                    f"{timeout_s} s ({type(last_error).__name__}: {last_error})",
                    retry_after_s=RETRY_AFTER_S,
                )
            try:
                ack = await self.js.publish(
                    self.route.subject,
                    payload,
                    timeout=min(left_s, ATTEMPT_TIMEOUT_S),
                    stream=self.route.stream,
                    headers={"Nats-Msg-Id": msg_id},
                )
            except nats.js.errors.APIError as exc:
                if exc.code not in _RETRYABLE_API_CODES:
                    raise
                last_error = exc
            except (
                nats.errors.TimeoutError,  # the leader died or an election is under way
                nats.js.errors.NoStreamResponseError,  # no server has the stream's interest
                nats.errors.NoRespondersError,
                nats.errors.ConnectionReconnectingError,
                nats.errors.StaleConnectionError,
                nats.errors.OutboundBufferLimitError,
            ) as exc:
                last_error = exc
            else:
                self.appends += 1
                self._append_seconds.observe(time.perf_counter() - started_s)
                seq: int = ack.seq
                return seq
            self.retries += 1
            if self.nc.is_closed:
                self.failures += 1
                raise LogUnavailable(
                    f"{self.route.stream}: the connection is closed", retry_after_s=RETRY_AFTER_S
                ) from last_error
            await asyncio.sleep(min(pause_s, max(0.0, deadline - loop.time())))
            pause_s = min(pause_s * 2, 0.25)

    async def close(self) -> None:
        """Closes the connection (if this log opened it)."""
        if self._owns_connection and not self.nc.is_closed:
            await self.nc.close()


def msg_id_prefix_default() -> str:
    """``<host>-<pid>-<random>``: unique per process start, so that a restarted worker's
    counter starting again at 0 never repeats an id still in the de-duplication window
    (a repeated id would be dropped as a duplicate)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


class Appender(Protocol):
    """What :class:`Batcher` appends through (:class:`CommandLog`, or a test's stand-in)."""

    async def append(self, payload: bytes, msg_id: str, timeout_s: float) -> int: ...


class Batcher:
    """Groups concurrently submitted commands into log messages, up to ``max_in_flight`` of
    them on their way at once.

    A message is closed when it holds ``max_commands`` commands or ``max_bytes`` bytes, or
    ``linger_s`` seconds after its first command, and sent at once while fewer than
    ``max_in_flight`` messages wait for their acknowledgement. A message on its way never holds
    back the next one: throughput comes from many messages in flight (one R3 append waits
    milliseconds for its quorum's fsync), not from waiting for each acknowledgement in turn.
    When ``max_in_flight`` messages are on their way (the log is slower than this worker), the
    next message keeps filling past its linger until one is acknowledged: a busy log gets fewer,
    fuller messages, which is what it can store more of (it is bound by messages per second,
    not by bytes).

    A command's deadline is ``timeout_s`` after it entered its message's first command, however
    long the message then waited for a slot: its append gets what is left, and a message whose
    deadline passed before a slot freed fails with :class:`LogUnavailable` without being sent.
    So a submitter hears within ``timeout_s`` (and a little) even when the log is down, and the
    commands waiting for a slot never exceed what arrives in ``timeout_s``.

    Each message is appended on its own, so messages on their way together may be stored in
    either order (a submitter that needs an order awaits its first command before submitting
    the next). Message ids are ``<msg_id_prefix>-<counter>``, numbered in the order messages
    are closed, and stay the same through that message's retries.

    ``batch_commands`` is a Prometheus histogram of commands per message, labelled ``shard``
    (the log's, else ``shard``), in no registry: the worker's ``/metrics`` exports it.
    """

    def __init__(
        self,
        log: Appender,
        max_commands: int = 1024,
        max_bytes: int = 256 * 1024,
        linger_s: float = 0.001,
        msg_id_prefix: str | None = None,
        timeout_s: float = APPEND_TIMEOUT_S,
        shard: str | None = None,
        max_in_flight: int = 8,
    ) -> None:
        if max_commands < 1 or max_bytes < 1 or linger_s < 0 or max_in_flight < 1:
            raise ValueError("max_commands, max_bytes and max_in_flight are >= 1, linger_s >= 0")
        self.log = log
        # The log's cost is per message: a full message of small commands (~20-50 bytes each)
        # carries 4x the commands of the 256 a message held before, for the same cost.
        self.max_commands = max_commands
        self.max_bytes = min(max_bytes, MESSAGE_BYTES_MAX)
        self.linger_s = linger_s
        self.msg_id_prefix = msg_id_prefix or msg_id_prefix_default()
        self.timeout_s = timeout_s
        # 8 full messages per round trip of a few ms is over 1 M commands/s: more than one
        # process submits; a log slower than that makes messages fuller instead of more.
        self.max_in_flight = max_in_flight
        self.messages = 0  # messages sent
        route = getattr(log, "route", None)
        self.batch_commands = Histogram(
            "boxoffice_cluster_batch_commands",
            "Commands per log message this worker sent (acknowledged or not)",
            ["shard"],
            buckets=BATCH_COMMANDS_BUCKETS,
            registry=None,
        )
        self._batch_commands = self.batch_commands.labels(
            shard or (route.shard if isinstance(route, ShardRoute) else SHARD_DEFAULT)
        )
        self._counter = 0
        # The open message: its commands and their submitters' futures, index for index.
        self._commands: list[bytes] = []
        self._futures: list[asyncio.Future[tuple[int, int]]] = []
        self._pending_bytes = 0
        self._opened_at = 0.0  # loop time of the open message's first command
        self._timer: asyncio.TimerHandle | None = None
        self._due = False  # the open message's linger is over: it goes with the next free slot
        # Closed messages waiting for a free slot, oldest first: (commands, futures, message id).
        self._closed: collections.deque[_Message] = collections.deque()
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Messages sent and not yet acknowledged (or failed)."""
        return len(self._in_flight)

    async def submit(self, command: bytes) -> tuple[int, int]:
        """Appends ``command`` (one encoded command) in the next message; returns
        ``(stream sequence, index of the command in that message)`` once it is acknowledged.

        Raises:
            LogUnavailable: the message was not acknowledged in time.
            ValueError: an empty command or one over ``frames.COMMAND_BYTES_MAX`` bytes.
        """
        if not 0 < len(command) <= frames.COMMAND_BYTES_MAX:
            raise ValueError(f"a command is 1..{frames.COMMAND_BYTES_MAX} bytes")
        size = len(command) + 3  # its length varint (a command of < 2 MiB takes <= 3 bytes)
        if self._commands and self._pending_bytes + size > self.max_bytes:
            self._close()
            self._send_closed()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, int]] = loop.create_future()
        if not self._commands:
            self._opened_at = loop.time()
        self._commands.append(command)
        self._futures.append(future)
        self._pending_bytes += size
        if len(self._commands) >= self.max_commands or self._pending_bytes >= self.max_bytes:
            self._close()
            self._send_closed()
        elif self._timer is None and not self._due:
            self._timer = loop.call_later(self.linger_s, self._linger_over)
        # A cancelled submitter cancels only its own future: its command stays in the message
        # (which may be on its way already), and the others' results are unaffected.
        return await future

    def _linger_over(self) -> None:
        self._timer = None
        self._due = True
        self._send_closed()

    def _close(self) -> None:
        """Closes the open message (numbering it) and queues it for sending."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due = False
        if not self._commands:
            return
        self._counter += 1
        self._closed.append(
            _Message(
                self._commands,
                self._futures,
                f"{self.msg_id_prefix}-{self._counter}",
                self._opened_at + self.timeout_s,
            )
        )
        self._commands, self._futures, self._pending_bytes = [], [], 0

    def _send_closed(self) -> None:
        """Sends closed messages, then the open one if its linger is over, while slots are
        free."""
        while len(self._in_flight) < self.max_in_flight:
            if not self._closed:
                if not (self._due and self._commands):
                    return
                self._close()
            message = self._closed.popleft()
            self.messages += 1
            self._batch_commands.observe(len(message.commands))
            task = asyncio.get_running_loop().create_task(self._send(message))
            self._in_flight.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._send_closed()

    async def _send(self, message: _Message) -> None:
        try:
            left_s = message.deadline - asyncio.get_running_loop().time()
            if left_s <= 0:  # waited out its time for a slot: the log is slower than us
                raise LogUnavailable(
                    f"message {message.msg_id} found no free slot within {self.timeout_s} s "
                    f"({self.max_in_flight} messages were on their way)",
                    retry_after_s=RETRY_AFTER_S,
                )
            payload = frames.encode_batch(message.commands)
            seq = await self.log.append(payload, message.msg_id, left_s)
        except BaseException as exc:
            for future in message.futures:
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # a submitter that went away must not log it as lost
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for index, future in enumerate(message.futures):
            if not future.done():
                future.set_result((seq, index))

    async def flush(self) -> None:
        """Sends the pending commands now and waits until every message is acknowledged (or
        failed)."""
        while self._in_flight or self._closed or self._commands:
            # Only an open message is ever due: an empty one would start no linger timer.
            self._due = self._due or bool(self._commands)
            self._send_closed()
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)


@dataclass(frozen=True)
class _Message:
    """A closed message of a :class:`Batcher`: its commands, their submitters' futures (index
    for index), its message id and its deadline (loop time)."""

    commands: list[bytes]
    futures: list[asyncio.Future[tuple[int, int]]]
    msg_id: str
    deadline: float
