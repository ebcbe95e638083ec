"""The engine's API over the cluster: what an HTTP worker calls instead of the embedded engine.

A state change becomes a command appended to the shard's log (:meth:`ClusterClient.apply`);
its answer is the replica's result, so it is replicated when it is answered. A read is
answered by a replica that has applied at least every message acknowledged before the read
began (:class:`LogHead`): a user's read sees their writes, through any worker. Reads answer
:class:`~.wire.View` objects with the engine views' attributes.

``now`` is the worker's clock (seconds); the engine never moves its clock back, so a worker
whose clock is behind only makes its commands run at the engine's time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors

import boxoffice.errors as bo_errors

from ..engine_api import EngineApi, SeatStatus
from ..errors import ApiError
from .client import ClusterClient
from .log import RETRY_AFTER_S, LogUnavailable


def _no_such_user() -> ApiError:
    """Every user id the HTTP API hands the engine is an access token's: a user the engine
    does not know means a token signed for another store, which is a 401, as a single server
    answers it before asking the engine (a worker cannot ask without a round trip)."""
    return ApiError(401, "UNAUTHENTICATED", "the access token names no user")


def _unavailable(exc: BaseException) -> LogUnavailable:
    """Any failure of the cluster's transport (a refused append, a lost connection, a timed
    out log head) as the 503 ``STORE_UNAVAILABLE`` a client retries, never a 500."""
    return LogUnavailable(
        f"the cluster did not answer: {type(exc).__name__}: {exc}", retry_after_s=RETRY_AFTER_S
    )


class LogHead:
    """The stream's last sequence, fetched at most once at a time: concurrent callers share
    the next fetch that *starts* after they asked, so each sees every message acknowledged
    before its call (a read after a write, through any worker, sees the write).

    Args:
        js: a ``nats.js.JetStreamContext``.
        stream: the shard's stream.
    """

    def __init__(self, js: Any, stream: str) -> None:
        self._js = js
        self._stream = stream
        self._started = 0  # fetches started
        self._done = 0  # the generation of the last fetch that finished
        self._value = 0
        self._error: BaseException | None = None
        self._running = False
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def latest(self) -> int:
        """The stream's last sequence as of some moment after this call began.

        Raises:
            nats.errors.TimeoutError and other NATS errors of the fetch.
        """
        needed = self._started + 1
        while self._done < needed:
            if not self._running:
                self._running = True
                # Held: the loop keeps only a weak reference to a task.
                self._task = asyncio.get_running_loop().create_task(self._fetch())
            self._changed.clear()
            await self._changed.wait()
            if self._error is not None and self._done >= needed:
                raise self._error
        return self._value

    async def _fetch(self) -> None:
        self._started += 1
        generation = self._started
        try:
            info = await self._js.stream_info(self._stream)
            self._value = max(self._value, int(info.state.last_seq))
            self._error = None
        except Exception as exc:
            self._error = exc
        finally:
            self._done = generation
            self._running = False
            self._changed.set()


class RemoteEngine(EngineApi):
    """:class:`~boxoffice_api.engine_api.EngineApi` over one shard of a cluster.

    Args:
        client: the worker's :class:`ClusterClient` of the shard.
        head: the shard's :class:`LogHead`.

    Errors, besides the engine's: ``boxoffice_api.cluster.log.LogUnavailable`` (no quorum:
    nothing was appended, or a retry is de-duplicated) and
    :class:`~.client.ResultUnavailable` (appended, no replica answered in time).
    """

    def __init__(self, client: ClusterClient, head: LogHead, touch_fraction: float = 0.5) -> None:
        self._client = client
        self._head = head
        self._touch_fraction = touch_fraction
        self._touched: dict[int, float] = {}  # token -> when this worker last sent its STATUS
        self._abandon_s: dict[int, float] = {}  # concert -> its abandon timeout (s)

    TOUCHED_MAX = 1_000_000  # tokens remembered; the oldest are forgotten (then: a log write)

    async def queue_status(
        self, user_id: int, token_id: int, *, now: float, concert_id: int | None = None
    ) -> Any:
        """A poll, most often without a log write: a ``STATUS`` command (which keeps a WAITING
        token alive) goes through the log at most once per ``touch_fraction`` x the concert's
        abandon timeout per token from this worker; in between, the poll is the replica's read
        of the user's live token (state, exact position and ETA as of the log's head). A token
        that is no longer live is asked through the log (its final state and reason)."""
        last = self._touched.get(token_id)
        if concert_id is not None and last is not None and self._touch_fraction > 0:
            abandon_s = self._abandon_s.get(concert_id)
            if abandon_s is None:
                concert = await self._read("concert", concert_id)
                abandon_s = self._abandon_s[concert_id] = float(concert.sale.abandon_timeout_s)
            if now - last < self._touch_fraction * abandon_s:
                live = await self._read("live_token", user_id, concert_id)
                if live is not None and live.id == token_id:
                    return live
        token = await self._apply("STATUS", now, user=user_id, token=token_id)
        self._touched.pop(token_id, None)
        self._touched[token_id] = now
        if len(self._touched) > self.TOUCHED_MAX:
            del self._touched[next(iter(self._touched))]
        return token

    async def _apply(self, op: str, now: float, **fields: Any) -> Any:
        try:
            return await super()._apply(op, now, **fields)
        except bo_errors.UserNotFound as exc:
            raise _no_such_user() from exc

    async def _apply_encoded(self, command: bytes) -> bytes:
        try:
            return await self._client.apply(command)
        except (nats.errors.Error, OSError) as exc:
            raise _unavailable(exc) from exc

    async def _read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            min_seq = await self._head.latest()
            return await self._client.read(method, *args, min_seq=min_seq, **kwargs)
        except (nats.errors.Error, OSError) as exc:
            raise _unavailable(exc) from exc
        except bo_errors.UserNotFound as exc:
            raise _no_such_user() from exc

    async def gated_seats(
        self,
        user_id: int,
        token_id: int,
        concert_id: int,
        schedule_id: int,
        status: SeatStatus | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
        now: float,
    ) -> list[Any]:
        """The gate through the log (a poll), then the page from a replica that applied it
        (``replica.gated_page``: the same checks and errors as the engine's)."""
        await self.check_gate(user_id, token_id, concert_id, now=now)
        page: list[Any] = await self._read(
            "gated_page", token_id, concert_id, schedule_id, status, after=after, limit=limit
        )
        return page
