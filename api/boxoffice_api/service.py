"""What every request needs: the engine, the accounts, the token signer, the clock.

One :class:`Service` per server process, opened by the app's lifespan and closed on shutdown
(which takes a last snapshot). The real clock is read here, at the edge: routes pass
``service.now()`` to the engine as ``now``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import boxoffice as bo

from .accounts import AccountStore
from .errors import ApiError
from .security import Passwords, Tokens
from .settings import Settings


class LoginThrottle:
    """Failed logins per key (email and client address) in a sliding window; past the limit,
    logins answer 429.

    Args:
        attempts_per_minute: failed attempts allowed per key per 60 s.
        keys_max: keys tracked at once (the oldest entries are dropped first), so a flood of
            made-up emails cannot grow memory without bound.
    """

    WINDOW_S = 60.0

    def __init__(self, attempts_per_minute: int, keys_max: int = 100_000) -> None:
        self._limit = attempts_per_minute
        self._keys_max = keys_max
        self._failures: dict[str, deque[float]] = {}

    def check(self, key: str, now: float) -> None:
        """Raises ApiError 429 ``LOGIN_THROTTLED`` (with Retry-After) while throttled."""
        failures = self._failures.get(key)
        if failures is None:
            return
        while failures and failures[0] <= now - self.WINDOW_S:
            failures.popleft()
        if len(failures) >= self._limit:
            raise ApiError(
                429,
                "LOGIN_THROTTLED",
                "too many failed logins for this account; try again later",
                retry_after_s=failures[0] + self.WINDOW_S - now,
            )

    def failed(self, key: str, now: float) -> None:
        """Counts a failed (or in-flight) attempt for the key at ``now`` (seconds)."""
        failures = self._failures.pop(key, None) or deque(maxlen=self._limit)
        failures.append(now)
        self._failures[key] = failures  # re-inserted: dicts keep insertion order
        if len(self._failures) > self._keys_max:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, key: str) -> None:
        """Clears the key's count after a successful login."""
        self._failures.pop(key, None)


class Service:
    """The engine and everything around it for one server process.

    Args:
        settings: the server settings; ``settings.db`` is created (with its directory).

    Raises:
        boxoffice.errors.StoreLocked: another server has the store open.
        boxoffice.errors.StoreError, boxoffice.errors.DataLoss: see ``boxoffice.Engine``.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.db.parent.mkdir(parents=True, exist_ok=True)
        limits = (
            None
            if settings.queue_length_max is None
            else bo.Limits(queue_length_max=settings.queue_length_max)
        )
        self.engine = bo.Engine(
            settings.db,
            durability=settings.durability,
            snapshot_every_records=settings.snapshot_every_records,
            limits=limits,  # used when the store is created; an existing one keeps its own
        )
        self.accounts = AccountStore(settings.db)
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
        self.passwords = Passwords(settings.password_hash_profile)
        self.tokens = Tokens(
            secret,
            settings.jwt_issuer,
            settings.jwt_audience,
            settings.access_token_ttl_s,
            settings.queue_token_ttl_s,
        )
        self.login_throttle = LoginThrottle(settings.login_attempts_per_minute)
        # Emails being signed up right now: a second sign-up of one email while the first
        # is in flight is refused, so two at once cannot both create an engine user.
        self.signups_in_flight: set[str] = set()
        # The journal sequence of the last command applied by any request (reads wait for it).
        self.command_seq = 0

    @staticmethod
    def now() -> float:
        """The wall clock in seconds since the Unix epoch (the engine never goes back)."""
        return time.time()

    @asynccontextmanager
    async def command(self) -> AsyncIterator[None]:
        """Wraps engine commands: on leaving, success or error, waits (without blocking the
        event loop) until they are durable, so no answer is sent for an unjournaled change.

        Engine calls run on the event-loop thread, so ``last_seq`` read on exit is this
        request's last command (there is no ``await`` between the command and the read).
        """
        try:
            yield
        finally:
            seq = self.engine.last_seq  # read before any await: this request's last command
            self.command_seq = max(self.command_seq, seq)
            await self.engine.wait_durable_async(seq)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        """Wraps engine queries: on leaving, waits until every command applied *before* the
        query is durable, so a read never shows a change a crash could take back. Clock
        records of queries are not waited for: they only fire deadlines at their own times,
        which a replay fires identically (same states, same event numbers), so a read costs
        nothing once the last command's group is on disk."""
        seq = self.command_seq
        try:
            yield
        finally:
            await self.engine.wait_durable_async(seq)

    def close(self) -> None:
        """Closes the accounts and the engine (last snapshot, catalog rewrite)."""
        self.accounts.close()
        self.engine.close()
