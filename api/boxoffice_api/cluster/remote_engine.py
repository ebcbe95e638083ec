"""The engine's API over the cluster: what an HTTP worker calls instead of the embedded engine.

A state change becomes a command appended to the shard's log (:meth:`ClusterClient.apply`);
its answer is the replica's result, so it is replicated when it is answered. A read is
answered by a replica that has applied at least every message acknowledged before the read
began (:class:`LogHead`): a user's read sees their writes, through any worker. Reads answer
:class:`~.wire.View` objects with the engine views' attributes.

Polls (most of a drop's traffic) are answered from the replicas' queue digests
(:class:`QueueDigests`) when they can be: exact as of the digest, no log write and no round
trip, and still while the log has no quorum. See :meth:`RemoteEngine.queue_status`.

``now`` is the worker's clock (seconds); the engine never moves its clock back, so a worker
whose clock is behind only makes its commands run at the engine's time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, NamedTuple

import nats.errors

import boxoffice as bo
import boxoffice.errors as bo_errors

from ..engine_api import EngineApi, SeatStatus
from ..errors import ApiError
from .client import ClusterClient
from .log import RETRY_AFTER_S, LogUnavailable

if TYPE_CHECKING:
    from ..security import QueueClaims

log = logging.getLogger(__name__)


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

    @property
    def last_seen(self) -> int:
        """The highest last sequence any fetch has found (0 before the first); no request."""
        return self._value

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


class QueueDigests:
    """The newest queue digest of each concert, as the replicas publish them (about once a
    second per concert with WAITING tokens, ``cluster/replica.py``): the worker's copy of each
    waiting room, from which it answers polls.

    Args:
        fresh_s: a digest received longer ago than this (s, by this worker's monotonic clock)
            is not used: the replicas that sent it stopped publishing. Nor is one taken more
            than ``fresh_s`` before now (by the engine clock it carries) at a sequence below
            the log's head as this worker last saw it: a replica stuck behind the log keeps
            publishing its old state.
    """

    FRESH_S = 3.0

    def __init__(self, fresh_s: float = FRESH_S) -> None:
        self._fresh_s = fresh_s
        self._by_concert: dict[int, tuple[int, bo.QueueDigest, float]] = {}
        self.received = 0
        self.damaged = 0

    def offer(self, concert_id: int, seq: int, data: bytes) -> None:
        """Keeps the digest of ``concert_id`` taken at stream sequence ``seq`` (the replica's
        applied sequence, from the message's ``Boxoffice-Seq`` header) unless a newer one is
        held. A digest of a line with nobody WAITING is dropped, and the one held with it:
        it answers no poll. Damaged bytes are counted and dropped (logged), never raised."""
        self.received += 1
        held = self._by_concert.get(concert_id)
        if held is not None and held[0] > seq:
            return  # a replica behind the one that sent the held digest
        try:
            digest = bo.QueueDigest(data)
        except bo_errors.DataLoss as exc:
            self.damaged += 1
            log.warning("queue digest of concert %d dropped: %s", concert_id, exc)
            return
        if digest.concert_id != concert_id:
            self.damaged += 1
            log.warning("digest for concert %d names %d", concert_id, digest.concert_id)
            return
        if digest.waiting == 0:
            self._by_concert.pop(concert_id, None)
            return
        self._by_concert[concert_id] = (seq, digest, time.monotonic())

    def fresh(self, concert_id: int, now: float, log_seq: int = 0) -> bo.QueueDigest | None:
        """The concert's newest digest if it is fresh: received in the last ``fresh_s``
        seconds, and taken either at most ``fresh_s`` before ``now`` (s since the epoch) or
        at a sequence of at least ``log_seq`` (the log's head as last seen: while the log
        stands still, a digest of its head stays exact however old its clock)."""
        held = self._by_concert.get(concert_id)
        if held is None or time.monotonic() - held[2] > self._fresh_s:
            return None
        seq, digest, _ = held
        if seq < log_seq and now - digest.as_of > self._fresh_s:
            return None
        return digest

    def last(self, concert_id: int) -> bo.QueueDigest | None:
        """The concert's newest digest, however old."""
        held = self._by_concert.get(concert_id)
        return None if held is None else held[1]

    def ages(self, now: float) -> list[tuple[int, float]]:
        """``(concert_id, age_s)`` of every digest held: ``now`` minus the engine clock it was
        taken at (s; it grows while the log stands still, e.g. without a quorum)."""
        return [(c, max(0.0, now - d.as_of)) for c, (_, d, _) in sorted(self._by_concert.items())]


async def subscribe_digests(nc: Any, shard: str, digests: QueueDigests) -> Any:
    """Feeds ``digests`` with every queue digest the replicas of ``shard`` publish; returns the
    subscription. A message without a concert number or a sequence is counted as damaged."""
    from .replica import DIGEST_SEQ_HEADER, digest_subject

    async def on_digest(msg: Any) -> None:
        try:
            concert_id = int(msg.subject.rsplit(".", 1)[1])
            seq = int((msg.headers or {})[DIGEST_SEQ_HEADER])
        except (ValueError, KeyError, IndexError):
            digests.damaged += 1
            return
        digests.offer(concert_id, seq, msg.data)

    return await nc.subscribe(digest_subject(shard, "*"), cb=on_digest)


_POLLS = frozenset({"JOIN", "STATUS", "GATE"})
"""The commands that count as a poll of their token (they reset its abandon timeout)."""


class _KnownToken(NamedTuple):
    """What a poll from a digest needs of a WAITING token, from an engine answer."""

    user_id: int
    concert_id: int
    join_seq: int
    joined_at: float


class RemoteEngine(EngineApi):
    """:class:`~boxoffice_api.engine_api.EngineApi` over one shard of a cluster.

    Args:
        client: the worker's :class:`ClusterClient` of the shard.
        head: the shard's :class:`LogHead`.

    Errors, besides the engine's: ``boxoffice_api.cluster.log.LogUnavailable`` (no quorum:
    nothing was appended, or a retry is de-duplicated) and
    :class:`~.client.ResultUnavailable` (appended, no replica answered in time).
    """

    def __init__(
        self,
        client: ClusterClient,
        head: LogHead,
        touch_fraction: float = 0.5,
        digests: QueueDigests | None = None,
    ) -> None:
        self._client = client
        self._head = head
        self._touch_fraction = touch_fraction
        self._touched: dict[int, float] = {}  # token -> when this worker last sent its STATUS
        self._abandon_s: dict[int, float] = {}  # concert -> its abandon timeout (s)
        self.digests = digests if digests is not None else QueueDigests()
        # WAITING tokens this worker has seen an engine answer for, least recently seen first.
        self._known: OrderedDict[int, _KnownToken] = OrderedDict()
        # Tokens this worker has seen end (or refused): their claims no longer say WAITING.
        self._ended: OrderedDict[int, None] = OrderedDict()
        self._touches: set[asyncio.Task[None]] = set()  # held: the loop keeps weak references
        self.polls = {"digest": 0, "replica": 0, "log": 0}  # polls answered, by source
        self.touch_failures = 0

    TOUCHED_MAX = 1_000_000  # tokens remembered; the oldest are forgotten (then: a log write)

    async def queue_status(
        self,
        user_id: int,
        token_id: int,
        *,
        now: float,
        concert_id: int | None = None,
        claims: QueueClaims | None = None,
    ) -> Any:
        """A poll, most often without a log write or a round trip:

        1. **From the queue digest**: a WAITING token whose user, concert and join sequence
           this worker knows, from an engine answer or from the token's verified ``claims``
           (when they name this user, token and concert, and carry the join sequence and
           time: any worker knows a token on its first poll there), is
           answered from its concert's digest (received in the last
           :attr:`QueueDigests.FRESH_S` s) if the digest has that join sequence WAITING, exact
           as of the digest (position, ETA, poll interval). Its liveness goes to the engine as
           a ``STATUS`` command in the worker's batches, at most once per ``touch_fraction`` x
           the abandon timeout per token (the join counts as the first), without the poll
           waiting for it. A token this worker saw end is not taken from its claims again.
        2. **From a replica**: between touches, a token the digest cannot answer (joined after
           it, or not WAITING in it) is the replica's read of the user's live token, as of
           the log's head.
        3. **Through the log**: otherwise (a touch is due, the token is no longer live: its
           final state and reason) the ``STATUS`` command's own answer.

        When 2 or 3 fail with ``StoreUnavailable`` (the log has no quorum, no replica answers),
        the last digest answers, however old, if it can. The gate (seats, holds, payments need
        ACTIVE) is never decided here: those go through the log. A digest is about a second
        behind the log, so a token the engine just admitted may be answered WAITING
        (position 0) for about that long; one that left through this worker is forgotten at
        once (its next poll asks the engine), through another worker up to a second later.
        """
        if (
            claims is not None
            and claims.join_seq is not None
            and claims.joined_at is not None
            and (claims.user_id, claims.token_id, claims.concert_id)
            == (user_id, token_id, concert_id)
            and token_id not in self._known
            and token_id not in self._ended
        ):
            self._known[token_id] = _KnownToken(
                user_id, claims.concert_id, claims.join_seq, claims.joined_at
            )
            if len(self._known) > self.TOUCHED_MAX:
                self._known.popitem(last=False)
            if token_id not in self._touched:  # the join was the engine's last poll of it
                self._mark_touched(token_id, claims.joined_at)
        answer = self._from_digest(user_id, token_id, concert_id, now, fresh_only=True)
        if answer is not None:
            return answer
        try:
            return await self._poll_engine(user_id, token_id, now, concert_id)
        except bo_errors.StoreUnavailable:
            # No quorum (or no replica): the last digest, however old, still knows the line.
            answer = self._from_digest(user_id, token_id, concert_id, now, fresh_only=False)
            if answer is None:
                raise
            return answer

    def _from_digest(
        self, user_id: int, token_id: int, concert_id: int | None, now: float, fresh_only: bool
    ) -> Any:
        """The poll's answer from the concert's digest (and a touch when one is due), or None
        when the digest cannot give it."""
        known = self._known.get(token_id)
        if known is None or known.user_id != user_id or concert_id != known.concert_id:
            return None
        digest = (
            self.digests.fresh(known.concert_id, now, self._head.last_seen)
            if fresh_only
            else self.digests.last(known.concert_id)
        )
        if digest is None:
            return None
        answer = digest.waiting_token(
            token_id, user_id=user_id, join_seq=known.join_seq, joined_at=known.joined_at
        )
        if answer is not None:
            self._touch_later(user_id, token_id, now, digest.abandon_timeout_s)
            self.polls["digest"] += 1
        return answer

    async def _poll_engine(
        self, user_id: int, token_id: int, now: float, concert_id: int | None
    ) -> Any:
        last = self._touched.get(token_id)
        if concert_id is not None and last is not None and self._touch_fraction > 0:
            abandon_s = self._abandon_s.get(concert_id)
            if abandon_s is None:
                concert = await self._read("concert", concert_id)
                abandon_s = self._abandon_s[concert_id] = float(concert.sale.abandon_timeout_s)
            if now - last < self._touch_fraction * abandon_s:
                live = await self._read("live_token", user_id, concert_id)
                if live is not None and live.id == token_id:
                    self._remember(live)
                    self.polls["replica"] += 1
                    return live
        token = await self._apply("STATUS", now, user=user_id, token=token_id)
        self.polls["log"] += 1
        return token

    def _mark_touched(self, token_id: int, now: float) -> None:
        self._touched.pop(token_id, None)
        self._touched[token_id] = now
        if len(self._touched) > self.TOUCHED_MAX:
            del self._touched[next(iter(self._touched))]

    def _touch_later(self, user_id: int, token_id: int, now: float, abandon_s: float) -> None:
        """Sends the token's ``STATUS`` (it keeps a WAITING token's place) when its last one
        from this worker is ``touch_fraction`` x ``abandon_s`` old, without waiting for it."""
        last = self._touched.get(token_id)
        if last is not None and now - last < self._touch_fraction * abandon_s:
            return
        self._mark_touched(token_id, now)
        task = asyncio.get_running_loop().create_task(self._touch(user_id, token_id, now))
        self._touches.add(task)
        task.add_done_callback(self._touches.discard)

    async def _touch(self, user_id: int, token_id: int, now: float) -> None:
        try:
            await self._apply("STATUS", now, user=user_id, token=token_id)
        except Exception as exc:  # no quorum, or the token ended: the next poll asks again
            self._touched.pop(token_id, None)
            self.touch_failures += 1
            log.debug("touch of token %d not applied: %s: %s", token_id, type(exc).__name__, exc)

    def _remember(self, token: Any) -> None:
        """Keeps a WAITING token's facts for polls from the digest; forgets any other."""
        if token.status == "WAITING" and token.join_seq is not None:
            self._known.pop(token.id, None)
            self._known[token.id] = _KnownToken(
                token.user_id, token.concert_id, token.join_seq, token.joined_at
            )
            if len(self._known) > self.TOUCHED_MAX:
                self._known.popitem(last=False)
        elif token.status == "EXPIRED":
            self._forget(token.id)
        else:  # ACTIVE, or in the pre-queue: a digest does not have it WAITING
            self._known.pop(token.id, None)

    ENDED_MAX = 100_000  # ended tokens remembered (each only turns the claims' shortcut off)

    def _forget(self, token_id: int) -> None:
        """The token ended (or was refused): neither remembered nor taken from its claims,
        which a digest up to a second old may still have WAITING."""
        self._known.pop(token_id, None)
        self._ended.pop(token_id, None)
        self._ended[token_id] = None
        if len(self._ended) > self.ENDED_MAX:
            self._ended.popitem(last=False)

    async def _apply(self, op: str, now: float, **fields: Any) -> Any:
        try:
            result = await super()._apply(op, now, **fields)
        except bo_errors.UserNotFound as exc:
            raise _no_such_user() from exc
        except bo_errors.StoreUnavailable:
            raise  # the log or the replicas did not answer: nothing is known of the token
        except bo_errors.BoxOfficeError:
            if "token" in fields:  # refused (ended, someone else's): ask the engine next time
                self._forget(fields["token"])
            raise
        if isinstance(result, bo.QueueToken):
            self._remember(result)
            if op in _POLLS:
                self._mark_touched(result.id, now)
        return result

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
