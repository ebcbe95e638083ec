"""What every request needs: the engine, the accounts, the token signer, the clock.

One :class:`Service` per server process, opened by the app's lifespan and closed on shutdown
(which takes a last snapshot). The real clock is read here, at the edge: routes pass
``service.now()`` to the engine as ``now``. In test mode (``BOXOFFICE_TEST_CLOCK``) that clock
is a :class:`TestClock`, which a test moves forward.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boxoffice as bo

from . import store_files
from .accounts import AccountStore
from .engine_api import EmbeddedEngineApi, EngineApi
from .errors import ApiError
from .rate_limits import HoldRateLimiter
from .security import PasswordHashing, Passwords, Tokens, default_hash_threads
from .settings import Settings

if TYPE_CHECKING:
    from .cluster.worker import ClusterBackend, KvAccounts


class LoginThrottle:
    """Two limits on failed logins, past which a login answers 429 ``LOGIN_THROTTLED``
    (with Retry-After) before any password is checked:

    - per email and client address: ``attempts_per_minute`` failures in a sliding 60 s
      window (one guesser from one address);
    - per email, from any address: after ``account_failures_free`` failures in a row, each
      further failure locks the email out for ``account_lockout_base_s``, doubled per failure
      up to ``account_lockout_max_s`` (guessers spread over many addresses). A success resets
      it; so does a day without failures. Attempts refused while locked do not count, so the
      owner retrying does not lengthen the lock-out, and it never exceeds the cap.

    Args:
        attempts_per_minute: failed attempts allowed per email and address per 60 s.
        account_failures_free: failures of one email before its lock-outs start.
        account_lockout_base_s, account_lockout_max_s: the first lock-out and the cap.
        keys_max: keys tracked per limit (the least recently failed are dropped first), so a
            flood of made-up emails cannot grow memory without bound.
    """

    WINDOW_S = 60.0
    FORGET_AFTER_S = 86_400.0  # an email's failures are forgotten after a quiet day

    def __init__(
        self,
        attempts_per_minute: int,
        account_failures_free: int = 10,
        account_lockout_base_s: float = 1.0,
        account_lockout_max_s: float = 900.0,
        keys_max: int = 100_000,
    ) -> None:
        self._limit = attempts_per_minute
        self._free = account_failures_free
        self._base_s = account_lockout_base_s
        self._max_s = account_lockout_max_s
        self._keys_max = keys_max
        self._failures: dict[str, deque[float]] = {}  # "email address" -> failure times
        self._accounts: dict[str, _AccountFailures] = {}  # email -> its run of failures

    def check(self, email: str, client: str, now: float) -> None:
        """Raises ApiError 429 ``LOGIN_THROTTLED`` (with Retry-After) while either limit
        holds for ``email`` from ``client`` at ``now`` (seconds)."""
        account = self._accounts.get(email)
        if account is not None and now - account.last_failure_at >= self.FORGET_AFTER_S:
            del self._accounts[email]
        elif account is not None and now < account.locked_until:
            raise _throttled(account.locked_until - now)
        failures = self._failures.get(f"{email} {client}")
        if failures is None:
            return
        while failures and failures[0] <= now - self.WINDOW_S:
            failures.popleft()
        if len(failures) >= self._limit:
            raise _throttled(failures[0] + self.WINDOW_S - now)

    def failed(self, email: str, client: str, now: float) -> None:
        """Counts a failed (or in-flight) attempt for ``email`` from ``client`` at ``now``."""
        key = f"{email} {client}"
        failures = self._failures.pop(key, None) or deque(maxlen=self._limit)
        failures.append(now)
        self._failures[key] = failures  # re-inserted: dicts keep insertion order
        _trim(self._failures, self._keys_max)
        account = self._accounts.pop(email, None) or _AccountFailures()
        account.count += 1
        account.last_failure_at = now
        beyond = account.count - self._free
        if beyond > 0:  # 1 s, 2 s, 4 s, ... (the exponent bounded: no float overflow)
            lockout_s = min(self._max_s, self._base_s * 2.0 ** min(beyond - 1, 64))
            account.locked_until = now + lockout_s
        self._accounts[email] = account
        _trim(self._accounts, self._keys_max)

    def succeeded(self, email: str, client: str) -> None:
        """Clears both counts of ``email`` after a successful login from ``client``."""
        self._failures.pop(f"{email} {client}", None)
        self._accounts.pop(email, None)


@dataclass(slots=True)
class _AccountFailures:
    count: int = 0
    last_failure_at: float = 0.0
    locked_until: float = 0.0


def _throttled(retry_after_s: float) -> ApiError:
    return ApiError(
        429,
        "LOGIN_THROTTLED",
        "too many failed logins for this account; try again later",
        retry_after_s=retry_after_s,
    )


def _trim(entries: dict[str, Any], keys_max: int) -> None:
    """Drops the least recently inserted entries beyond ``keys_max``."""
    while len(entries) > keys_max:
        del entries[next(iter(entries))]


class TestClock:
    """The wall clock plus an offset that only grows: time goes on as usual, and
    :meth:`advance` jumps it forward (the engine never goes back). Only a server in test mode
    has one (``BOXOFFICE_TEST_CLOCK``); the offset lives in the process, so a restart starts
    again from the wall clock.

    Args:
        wall: the underlying clock, in seconds since the Unix epoch.
    """

    __test__ = False  # a clock, not a test class for pytest to collect

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self.offset_s = 0.0

    def now(self) -> float:
        """The wall clock plus :attr:`offset_s`, in seconds since the Unix epoch."""
        return self._wall() + self.offset_s

    def advance(self, seconds: float) -> float:
        """Moves the clock ``seconds`` forward; returns the new :meth:`now`.

        Raises:
            ValueError: ``seconds`` is negative or not finite (the clock only goes forward).
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"the test clock only goes forward: advance({seconds!r})")
        self.offset_s += seconds
        return self.now()


class Service:
    """The engine and everything around it for one server process.

    Args:
        settings: the server settings; ``settings.db`` is created (with its directory, 0700;
            the file 0600) or, if it exists with group or other bits, tightened to 0600. In
            cluster mode (``settings.cluster``) there is no store: call :meth:`start`.

    Raises:
        boxoffice.errors.StoreLocked: another server has the store open.
        boxoffice.errors.StoreError, boxoffice.errors.DataLoss: see ``boxoffice.Engine``.
        store_files.TestClockRefused: ``settings.test_clock`` on a store that was served
            without it.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The clock every request reads, and the only one (the engine never reads a clock):
        # the wall clock, or in test mode a TestClock a test moves forward.
        self.test_clock = TestClock() if settings.test_clock else None
        self.now: Callable[[], float] = (
            time.time if self.test_clock is None else self.test_clock.now
        )
        # Cluster mode (settings.cluster): no engine here; :meth:`start` connects the worker to
        # the cluster, whose engine API and accounts replace the embedded ones.
        self.cluster: ClusterBackend | None = None
        self.accounts: AccountStore | KvAccounts
        if settings.cluster is None:
            self._open_store(settings)
        secret = (
            settings.jwt_secret.get_secret_value()
            if settings.jwt_secret is not None
            else self.accounts.secret("jwt_secret")
        )
        self.admin_key = (
            settings.admin_key.get_secret_value()
            if settings.admin_key is not None
            else self.accounts.secret("admin_key")
        )
        self.passwords = Passwords(settings.password_hash_profile, settings.password_min_score)
        self.password_hashing = PasswordHashing(
            settings.password_hash_threads or default_hash_threads(),
            settings.password_hash_queue_max,
            settings.password_hash_per_client_max,
        )
        self.tokens = Tokens(
            secret,
            settings.jwt_issuer,
            settings.jwt_audience,
            settings.access_token_ttl_s,
            settings.queue_token_ttl_s,
        )
        self.login_throttle = LoginThrottle(
            settings.login_attempts_per_minute,
            settings.login_account_failures_free,
            settings.login_account_lockout_base_s,
            settings.login_account_lockout_max_s,
        )
        # Emails being signed up right now: a second sign-up of one email while the first
        # is in flight is refused, so two at once cannot both create an engine user.
        self.signups_in_flight: set[str] = set()
        # The journal sequence of the last command applied by any request (reads wait for it).
        self.command_seq = 0
        # Hold attempts per user per concert (429 HOLD_RATE_LIMITED), against hoarding.
        self.hold_limiter = HoldRateLimiter(settings.holds_per_minute)
        # What handlers call: the engine's calls as coroutines (the cluster's in cluster mode).
        self.engine_api: EngineApi = EmbeddedEngineApi(self)

    def _open_store(self, settings: Settings) -> None:
        store_files.prepare(settings.db)
        limits = (
            None
            if settings.queue_length_max is None
            else bo.Limits(queue_length_max=settings.queue_length_max)
        )
        self.engine = bo.Engine(
            settings.db,
            durability=settings.durability,
            group_commit_interval_s=settings.group_commit_interval_s,
            snapshot_every_records=settings.snapshot_every_records,
            limits=limits,  # used when the store is created; an existing one keeps its own
            seed=store_files.new_store_seed(),  # likewise; secret: it orders the pre-queues
        )
        store_files.check_opened(self.engine, settings.db, settings.store_free_bytes_min)
        self.accounts = AccountStore(settings.db)
        try:
            store_files.mark_clock(
                self.accounts,
                settings.db,
                test_clock=settings.test_clock,
                created=bool(self.engine.recovery["created"]),
            )
        except store_files.TestClockRefused:
            self.accounts.close()
            self.engine.close()
            raise

    async def start(self) -> None:
        """Connects to the cluster in cluster mode (nothing to do embedded).

        Raises:
            nats.errors.NoServersError: no NATS server reachable.
            boxoffice_api.cluster.log.ShardNotFound: the shard has no stream.
        """
        if self.settings.cluster is None:
            return
        from .cluster.worker import ClusterBackend

        self.cluster = await ClusterBackend.connect(
            self.settings.cluster_urls, self.settings.shard, self.settings.append_timeout_s
        )
        self.accounts = self.cluster.accounts
        self.engine_api = self.cluster.engine_api

    async def aclose(self) -> None:
        """Closes the service: the cluster connection in cluster mode, else :meth:`close`."""
        if self.cluster is None:
            self.close()
            return
        self.password_hashing.close()
        await self.cluster.close()

    def user_may_exist(self, user_id: int) -> bool:
        """False for a user id beyond the engine's users (numbered 1..user_count): a token
        signed for a store that was since replaced. In cluster mode always True here: the
        replicas' engine refuses an unknown user itself (404 ``USER_NOT_FOUND``)."""
        return self.cluster is not None or user_id <= self.engine.user_count

    def command(self) -> _Durable:
        """Wraps engine commands (``async with service.command():``): on leaving, success or
        error, waits (without blocking the event loop) until they are durable, so no answer
        is sent for an unjournaled change.

        Engine calls run on the event-loop thread, so ``last_seq`` read on exit is this
        request's last command (there is no ``await`` between the command and the read).
        """
        return _Durable(self, command=True)

    def read(self) -> _Durable:
        """Wraps engine queries (``async with service.read():``): on leaving, waits until
        every command applied *before* the query is durable, so a read never shows a change a
        crash could take back. Clock records of queries are not waited for: they only fire
        deadlines at their own times, which a replay fires identically (same states, same
        event numbers), so a read costs nothing once the last command's group is on disk."""
        return _Durable(self, command=False)

    def close(self) -> None:
        """Closes the accounts and the engine (last snapshot, catalog rewrite)."""
        self.password_hashing.close()
        self.accounts.close()
        self.engine.close()


class _Durable:
    """The context of :meth:`Service.command` and :meth:`Service.read`: a plain class, as an
    ``asynccontextmanager`` generator costs several times more per request."""

    __slots__ = ("_command", "_seq", "_service")

    def __init__(self, service: Service, *, command: bool) -> None:
        self._service = service
        self._command = command
        self._seq = service.command_seq

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        service = self._service
        if self._command:
            seq = service.engine.last_seq  # read before any await: this request's last command
            service.command_seq = max(service.command_seq, seq)
        else:
            seq = self._seq  # the commands applied before the query
        await service.engine.wait_durable_async(seq)
