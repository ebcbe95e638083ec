"""What an HTTP worker holds in cluster mode: the connection, the shard's log, the engine API
over it, and the accounts in a KV bucket. Nothing else: a worker keeps no state of its own,
so any number of them, on any machines, serve the same API (``boxoffice serve --cluster``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import tenacity

import boxoffice.errors as bo_errors

from ..accounts import Account, EmailTaken
from . import log as command_log
from .client import ClusterClient
from .remote_engine import LogHead, RemoteEngine, subscribe_digests

ACCOUNTS_BUCKET = "boxoffice_accounts"
ACCOUNT_OP_TIMEOUT_S = 10.0


def _email_key(email: str) -> str:
    # KV keys allow [-/_=.a-zA-Z0-9]: an email is stored under its digest.
    return "email." + hashlib.sha256(email.encode()).hexdigest()


def _user_key(user_id: int) -> str:
    return f"user.{user_id}"


def _encode(account: Account) -> bytes:
    return json.dumps(
        {
            "user_id": account.user_id,
            "email": account.email,
            "password_hash": account.password_hash,
            "created_at": account.created_at,
        }
    ).encode()


def _decode(value: bytes | None) -> Account | None:
    if not value:
        return None
    data = json.loads(value)
    return Account(
        int(data["user_id"]), str(data["email"]), str(data["password_hash"]), data["created_at"]
    )


class KvAccounts:
    """The accounts of ``accounts.AccountStore``'s interface in the replicated KV bucket
    ``boxoffice_accounts`` (an email is unique: its key is written create-only).

    The methods block, like ``AccountStore``'s: handlers call them in a worker thread
    (``asyncio.to_thread``), and they run the bucket's operations on the service's event loop.

    Args:
        kv: the bucket (``nats.js.kv.KeyValue``).
        loop: the event loop the NATS connection lives on.
    """

    def __init__(self, kv: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._kv = kv
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def _run(self, coroutine: Any) -> Any:
        if threading.get_ident() == self._loop_thread:
            coroutine.close()
            raise RuntimeError("KvAccounts blocks: call it from a worker thread")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout=ACCOUNT_OP_TIMEOUT_S)
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            future.cancel()
            # The bucket has no quorum or the connection is down: 503, retried by clients.
            raise bo_errors.StoreUnavailable(
                f"the accounts bucket did not answer: {type(exc).__name__}",
                retry_after_s=command_log.RETRY_AFTER_S,
            ) from exc

    async def _get(self, key: str) -> bytes | None:
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        value: bytes | None = entry.value
        return value

    def find(self, email: str) -> Account | None:
        """The account with this (normalized) email, or None."""
        return _decode(self._run(self._get(_email_key(email))))

    def by_user(self, user_id: int) -> Account | None:
        """The account of an engine user, or None."""
        return _decode(self._run(self._get(_user_key(user_id))))

    def add(self, user_id: int, email: str, password_hash: str) -> Account:
        """Stores a new account (replicated when this returns).

        Raises:
            EmailTaken: the email is in use (its key exists).
        """
        account = Account(user_id, email, password_hash, time.time())

        async def add() -> None:
            from nats.js.errors import KeyWrongLastSequenceError

            try:
                await self._kv.create(_email_key(email), _encode(account))
            except KeyWrongLastSequenceError as exc:
                raise EmailTaken(email) from exc
            await self._kv.put(_user_key(user_id), _encode(account))

        self._run(add())
        return account

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """Replaces a hash (after a login with outdated argon2 parameters)."""

        async def update() -> None:
            current = _decode(await self._get(_user_key(user_id)))
            if current is None:
                return
            account = Account(user_id, current.email, password_hash, current.created_at)
            await self._kv.put(_email_key(current.email), _encode(account))
            await self._kv.put(_user_key(user_id), _encode(account))

        self._run(update())

    def secret(self, name: str) -> str:
        """Cluster secrets come from settings (every worker must share them)."""
        raise RuntimeError(f"cluster mode: {name} comes from settings, not from the store")

    def close(self) -> None:
        """Nothing to close: the connection belongs to the :class:`ClusterBackend`."""


@dataclass(frozen=True)
class ReplicaReport:
    """One replica as its last report in the ``boxoffice_replicas`` bucket shows it.

    Attributes:
        name: the replica's name (``r1``).
        applied_seq: the stream sequence of the last message it applied.
        lag: messages it is behind the log's head (0: up to date).
        age_s: seconds since the report (replicas report every second; a dead one ages).
        failovers: consumer re-creations since the replica started.
    """

    name: str
    applied_seq: int
    lag: int
    age_s: float
    failovers: int = 0


@dataclass(frozen=True)
class ClusterObservation:
    """What a worker sees of its shard: the log's head and every replica's last report.

    Attributes:
        shard: the shard's name.
        log_last_seq: the stream's last sequence (the head of the command log).
        replicas: by name.
    """

    shard: str
    log_last_seq: int
    replicas: list[ReplicaReport]


STARTUP_TIMEOUT_S = 30.0
"""How long a worker keeps asking for its shard's route and the accounts bucket at start."""

_TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.ServiceUnavailableError,
)


async def _accounts_bucket(js: Any, stream: str) -> Any:
    """The accounts bucket, created with the stream's replication when it does not exist."""
    from nats.js.errors import BucketNotFoundError

    try:
        return await js.key_value(ACCOUNTS_BUCKET)
    except BucketNotFoundError:
        info = await js.stream_info(stream)
        return await js.create_key_value(
            bucket=ACCOUNTS_BUCKET, history=1, replicas=info.config.num_replicas or 1
        )


@dataclass
class ClusterBackend:
    """One worker's view of the cluster: connection, log, engine API, accounts.

    ``concert_stats`` and ``observation`` are what the last :meth:`refresh_metrics` read, for
    the Prometheus collector (which cannot wait for the network itself).
    """

    nc: Any
    log: command_log.CommandLog
    batcher: command_log.Batcher
    engine_api: RemoteEngine
    accounts: KvAccounts
    head: LogHead
    observation: ClusterObservation | None = None
    concert_stats: list[tuple[int, Any]] | None = None
    users: int = 0
    last_event_seq: int = 0
    _observed: tuple[float, ClusterObservation] | None = None  # (monotonic time, answer)

    OBSERVED_MAX_AGE_S = 1.0
    """How long :meth:`observe`'s answer serves again (health probes come often; replicas
    report once a second anyway)."""

    async def observe(self, max_age_s: float = OBSERVED_MAX_AGE_S) -> ClusterObservation:
        """The log's head and the replicas' last reports (none when the bucket is out of
        reach; the log's head is required); an answer at most ``max_age_s`` seconds old is
        given again without asking the cluster.

        Raises:
            nats.errors.TimeoutError and other NATS errors of reading the head.
        """
        cached = self._observed
        if cached is not None and time.monotonic() - cached[0] <= max_age_s:
            return cached[1]
        observation = await self._observe()
        self._observed = (time.monotonic(), observation)
        return observation

    async def _observe(self) -> ClusterObservation:
        from .status import replica_statuses

        last_seq = await self.head.latest()
        shard = self.log.route.shard
        statuses = await replica_statuses([], shard, self.nc.jetstream())
        now = time.time()
        replicas = [
            ReplicaReport(
                name=name,
                applied_seq=int(report.get("applied_seq", 0)),
                lag=max(0, last_seq - int(report.get("applied_seq", 0))),
                age_s=max(0.0, now - float(report.get("at", now))),
                failovers=int(report.get("failovers", 0)),
            )
            for name, report in sorted(statuses.items())
        ]
        return ClusterObservation(shard=shard, log_last_seq=last_seq, replicas=replicas)

    async def refresh_metrics(self, now: float, concerts_max: int) -> None:
        """Reads what ``/metrics`` exports in cluster mode: :meth:`observe`, and the stats of
        the last ``concerts_max`` concerts from the replicas (concurrently, 50 at a time).

        Raises:
            the errors of :meth:`observe` and of the engine reads (e.g. ``ResultUnavailable``).
        """
        # Nothing old is exported as if it were current: a failed refresh clears the cluster's
        # numbers (the scrape then shows the worker's own), a good one replaces them at once.
        self.observation = None
        self.concert_stats = None
        observation = await self.observe(max_age_s=0.0)
        last = await self.engine_api.concert_count()
        ids = list(range(max(1, last - concerts_max + 1), last + 1))
        stats: list[tuple[int, Any]] = []
        for start in range(0, len(ids), 50):
            chunk = ids[start : start + 50]
            answers = await asyncio.gather(
                *(self.engine_api.stats(concert_id, now=now) for concert_id in chunk)
            )
            stats.extend(zip(chunk, answers, strict=True))
        users = await self.engine_api.user_count()
        last_event_seq = await self.engine_api.last_event_seq()
        self.observation, self.concert_stats = observation, stats
        self.users, self.last_event_seq = users, last_event_seq

    @classmethod
    async def connect(
        cls, urls: list[str], shard: str, append_timeout_s: float = 10.0
    ) -> ClusterBackend:
        """Connects to the cluster and looks the shard up (a request that times out is asked
        again for up to :data:`STARTUP_TIMEOUT_S`).

        Raises:
            nats.errors.NoServersError: no server reachable.
            nats.errors.TimeoutError: the cluster did not answer in :data:`STARTUP_TIMEOUT_S`.
            boxoffice_api.cluster.log.ShardNotFound: the shard has no stream.
        """
        nc = await command_log.connect(urls, name=f"worker-{os.getpid()}")
        try:
            js = nc.jetstream()
            # A loaded machine or an election can time a request out: try again, for a while.
            async for attempt in tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception_type(_TRANSIENT),
                stop=tenacity.stop_after_delay(STARTUP_TIMEOUT_S),
                wait=tenacity.wait_exponential(multiplier=0.1, max=2.0),
                reraise=True,
            ):
                with attempt:
                    route = await command_log.route(js, shard)
                    kv = await _accounts_bucket(js, route.stream)
            log = command_log.CommandLog(nc, route, owns_connection=False)
            batcher = command_log.Batcher(log, timeout_s=append_timeout_s)
            client = ClusterClient(nc, batcher, shard)
            head = LogHead(js, route.stream)
            engine_api = RemoteEngine(client, head)
            await subscribe_digests(nc, shard, engine_api.digests)
            accounts = KvAccounts(kv, asyncio.get_running_loop())
        except BaseException:
            await nc.close()
            raise
        return cls(nc, log, batcher, engine_api, accounts, head)

    async def close(self) -> None:
        """Sends what is pending, then closes the connection."""
        try:
            await self.batcher.flush()
        finally:
            await self.nc.close()
