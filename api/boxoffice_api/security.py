"""Password hashing (argon2id) and the two signed tokens: the access JWT and the queue token.

Both tokens are HS256 JWTs with the algorithm pinned on decode (``none`` and algorithm
confusion are refused by PyJWT when ``algorithms`` is fixed), and ``exp``, ``iat``, ``iss``,
``aud`` and ``sub`` required and checked. ``typ`` keeps them apart: a queue token is never
accepted as an access token, nor the reverse. A queue token's signature only says who it was
issued to; whether it may pass the gate is decided by the engine's live state on every
request (``Engine.check_gate``).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import argon2
import jwt
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST, RFC_9106_HIGH_MEMORY, RFC_9106_LOW_MEMORY
from zxcvbn import zxcvbn

from .errors import ApiError
from .secret_strength import ZXCVBN_CHARS_MAX

T = TypeVar("T")

ALGORITHM = "HS256"
_PROFILES = {
    "rfc9106_low_memory": RFC_9106_LOW_MEMORY,
    "rfc9106_high_memory": RFC_9106_HIGH_MEMORY,
    "cheapest": CHEAPEST,
}


class Passwords:
    """argon2id hashing with the parameters of an RFC 9106 profile, and the sign-up strength
    rule. Every method is slow on purpose (argon2id, zxcvbn): call them through
    :class:`PasswordHashing`, never on the event loop.

    Args:
        profile: ``rfc9106_low_memory`` (the default: t=3, 64 MiB), ``rfc9106_high_memory``
            (t=1, 2 GiB) or ``cheapest`` (tests only).
        min_score: the lowest zxcvbn score (0..4) a new password may have.
    """

    def __init__(self, profile: str, min_score: int = 3) -> None:
        self._hasher = PasswordHasher.from_parameters(_PROFILES[profile])
        self.memory_cost_kib = _PROFILES[profile].memory_cost
        self._min_score = min_score
        # Verifying against this hash when the email is unknown takes as long as a real
        # check, so response times do not reveal which emails have accounts.
        self._dummy = self._hasher.hash("not a password of anyone")

    def hash(self, password: str) -> str:
        """The argon2id PHC string of ``password`` (salted; slow on purpose)."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; compares against a dummy hash when None."""
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and bool(
                password_hash
            )
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the current profile's."""
        return self._hasher.check_needs_rehash(password_hash)

    def hash_new(self, password: str, email: str) -> str:
        """The argon2id hash of a new password (sign-up), once it passed the strength rule.

        zxcvbn estimates how many guesses the password takes, knowing common passwords, words,
        names, keyboard patterns, repeats, dates and the account's own email.

        Raises:
            ApiError: 422 ``WEAK_PASSWORD``, its detail zxcvbn's warning and suggestions.
        """
        result = zxcvbn(password[:ZXCVBN_CHARS_MAX], user_inputs=_user_inputs(email))
        if result["score"] < self._min_score:
            feedback = result["feedback"]
            advice = " ".join([feedback["warning"], *feedback["suggestions"]]).strip()
            raise ApiError(
                422,
                "WEAK_PASSWORD",
                f"the password is too easy to guess (strength {result['score']} of 4, at least "
                f"{self._min_score} needed). {advice or 'Use a longer, less common password.'}",
            )
        return self.hash(password)


def _user_inputs(email: str) -> list[str]:
    """The email, its local part and its labels: a password made of them is easy to guess."""
    parts = [part for part in re.split(r"[^a-z0-9]+", email.lower()) if len(part) >= 3]
    return [email, email.partition("@")[0], *parts, "boxoffice"]


def default_hash_threads() -> int:
    """One thread per CPU this process may use, less one kept for the event loop (at least 1)."""
    return max(1, len(os.sched_getaffinity(0)) - 1)


class PasswordHashing:
    """Runs password work (argon2id hashes and verifications, strength checks) on its own
    small thread pool, with a bounded wait and a bound per client address.

    An argon2id hash of the default profile takes ~60-300 ms of a core and 64 MiB; done on the
    default thread pool, a flood of log-ins with made-up emails took every core from the event
    loop and the engine. Here at most ``threads`` run at once (memory at most ``threads`` x the
    profile's memory cost), at most ``queue_max`` more wait, and one client address has at
    most ``per_client_max`` admitted; beyond, the request is refused at once, before any work.
    Waiting work is served by client address in turn (round robin): an address with many
    log-ins waiting delays another address's by one of them besides those running, not by all.

    Args:
        threads: hashes running at once (the pool's threads); the default leaves a core.
        queue_max: admitted requests waiting for a thread, beyond the running ones.
        per_client_max: admitted (running or waiting) requests per client address.
    """

    def __init__(self, threads: int, queue_max: int, per_client_max: int) -> None:
        self.threads = threads
        self._admitted_max = threads + queue_max
        self._per_client_max = per_client_max
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="password-hash")
        self._lock = threading.Lock()  # the counters change on the loop and on pool threads
        self._admitted = 0  # running + waiting
        self._running = 0
        self._per_client: dict[str, int] = {}  # at most threads + queue_max entries
        # Work not yet started, per client, in the order the clients take turns.
        self._lines: dict[str, deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]]] = {}
        self._seconds_ewma = 0.1  # a work item's duration, for Retry-After
        self.refused_busy = 0  # 503 OVERLOADED answers
        self.refused_client = 0  # 429 TOO_MANY_PASSWORD_CHECKS answers

    @property
    def running(self) -> int:
        """Work items running on the pool's threads now."""
        return self._running

    @property
    def waiting(self) -> int:
        """Admitted requests not yet running (waiting for a thread, or before their work)."""
        return self._admitted - self._running

    def admit(self, client: str) -> PasswordSlot:
        """Reserves a place for one work item of ``client`` (a client address); use the slot
        as a context manager, and call :meth:`PasswordSlot.run` at most once inside it.

        Raises:
            ApiError: 429 ``TOO_MANY_PASSWORD_CHECKS`` when ``client`` has ``per_client_max``
                admitted; 503 ``OVERLOADED`` when ``threads + queue_max`` are. Both with
                ``Retry-After``: the time the admitted work needs, at least 1 s.
        """
        with self._lock:
            retry_after_s = max(1.0, (self._admitted / self.threads + 1) * self._seconds_ewma)
            if self._per_client.get(client, 0) >= self._per_client_max:
                self.refused_client += 1
                raise ApiError(
                    429,
                    "TOO_MANY_PASSWORD_CHECKS",
                    "this client address has too many sign-ups or log-ins in progress",
                    retry_after_s=retry_after_s,
                )
            if self._admitted >= self._admitted_max:
                self.refused_busy += 1
                raise ApiError(
                    503,
                    "OVERLOADED",
                    "too many sign-ups and log-ins in progress; retry later",
                    retry_after_s=retry_after_s,
                )
            self._admitted += 1
            self._per_client[client] = self._per_client.get(client, 0) + 1
        return PasswordSlot(self, client)

    def _release(self, client: str) -> None:
        with self._lock:
            self._admitted -= 1
            count = self._per_client.pop(client) - 1
            if count:
                self._per_client[client] = count

    def _submit(self, client: str, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        # Released when the work ends, or when it is canceled before it started (the request
        # went away): a hash still running for a gone request keeps its place until it ends.
        future.add_done_callback(lambda _: self._release(client))
        with self._lock:
            self._lines.setdefault(client, deque()).append((future, fn, args))
        # One pool task per work item; each runs the next item in turn (_run_next).
        self._executor.submit(self._run_next)
        return future

    def _run_next(self) -> None:
        """Runs the first waiting item of the client whose turn it is. Clients take turns
        (round robin), so a client with many items waiting delays another's by at most one
        of its own per thread, not by all of them."""
        with self._lock:
            client, line = next(iter(self._lines.items()))
            del self._lines[client]
            future, fn, args = line.popleft()
            if line:
                self._lines[client] = line  # to the end: the other clients go first
            if not future.set_running_or_notify_cancel():
                return  # canceled while waiting (and already released)
            self._running += 1
        start = time.perf_counter()
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn(*args)
        except BaseException as exc:  # the caller gets the error (ApiError, argon2 errors)
            error = exc
        # The count drops before the caller hears: one that looks at `running` once it has
        # its answer must not see its own work still running.
        elapsed_s = time.perf_counter() - start
        with self._lock:
            self._running -= 1
            self._seconds_ewma += 0.2 * (elapsed_s - self._seconds_ewma)
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def close(self) -> None:
        """Stops the threads after the running work; waiting work is canceled."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            lines, self._lines = list(self._lines.values()), {}
        for line in lines:  # outside the lock: a cancel runs _release
            for future, _, _ in line:
                future.cancel()


class PasswordSlot:
    """A place admitted by :meth:`PasswordHashing.admit`; released on leaving the ``with``
    block when nothing was run, else when the work ends."""

    def __init__(self, pool: PasswordHashing, client: str) -> None:
        self._pool = pool
        self._client = client
        self._submitted = False

    def __enter__(self) -> PasswordSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._submitted:
            self._submitted = True
            self._pool._release(self._client)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a pool thread, awaited without blocking the event loop; its
        exception is raised here. Canceling the await cancels the work if it has not started.
        """
        if self._submitted:
            raise RuntimeError("a password slot runs one work item")
        self._submitted = True
        return await asyncio.wrap_future(self._pool._submit(self._client, fn, *args))


@dataclass(frozen=True)
class QueueClaims:
    """What a queue token names: its user, concert and engine token id, and, in tokens issued
    since the cluster's queue digests, the token's join sequence and join time (``joined_at``,
    seconds since the epoch), so any cluster worker can answer its polls from a digest (None in
    older tokens)."""

    user_id: int
    concert_id: int
    token_id: int
    join_seq: int | None = None
    joined_at: float | None = None


class Tokens:
    """Issues and verifies access JWTs and queue tokens.

    Args:
        secret: the HS256 key (at least 32 bytes of entropy).
        issuer, audience: the ``iss`` and ``aud`` claims written and required.
        access_ttl_s, queue_ttl_s: lifetimes in seconds.
    """

    def __init__(
        self, secret: str, issuer: str, audience: str, access_ttl_s: int, queue_ttl_s: int
    ) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self.access_ttl_s = access_ttl_s
        self._queue_ttl_s = queue_ttl_s
        # Tokens whose signature and claims were verified, by their exact text, with what they
        # were read as (`exp`, `typ`, and the user id or QueueClaims): a client sends the same
        # two tokens with every request, and PyJWT takes ~150 us to verify one. A hit still
        # checks `exp`; a forged or altered token is different text.
        self._verified: dict[str, tuple[float, str, Any]] = {}

    def _encode(self, claims: dict[str, Any], ttl_s: int) -> str:
        now = int(time.time())
        claims |= {
            "iss": self._issuer,
            "aud": self._audience,
            "iat": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    VERIFIED_MAX = 65_536  # tokens remembered (oldest forgotten first)

    def _remembered(self, token: str, typ: str) -> Any:
        """What ``token`` was read as when verified, if it is remembered as a token of type
        ``typ`` (else None: it is verified afresh).

        Raises:
            jwt.ExpiredSignatureError: it is remembered and its ``exp`` has passed.
        """
        cached = self._verified.get(token)
        if cached is None:
            return None
        exp, kind, value = cached
        if exp <= time.time():  # PyJWT's rule: expired once now >= exp
            self._verified.pop(token, None)
            raise jwt.ExpiredSignatureError("Signature has expired")
        return value if kind == typ else None

    def _remember(self, token: str, claims: dict[str, Any], value: Any) -> None:
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            if len(self._verified) >= self.VERIFIED_MAX:
                self._verified.pop(next(iter(self._verified)), None)
            self._verified[token] = (exp, claims["typ"], value)

    def _decode(self, token: str) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            token,
            self._secret,
            algorithms=[ALGORITHM],
            audience=self._audience,
            issuer=self._issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "typ"]},
        )
        return claims

    def access_token(self, user_id: int) -> str:
        """A signed access JWT for ``user_id``, valid ``access_ttl_s`` seconds."""
        return self._encode({"sub": str(user_id), "typ": "access"}, self.access_ttl_s)

    def user_of(self, token: str) -> int:
        """The user id of a valid access token.

        Raises:
            ApiError: 401 ``TOKEN_EXPIRED`` or ``UNAUTHENTICATED`` (bad signature, algorithm,
                issuer, audience, type or shape).
        """
        try:
            user_id: int | None = self._remembered(token, "access")
            if user_id is not None:
                return user_id
            claims = self._decode(token)
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(401, "TOKEN_EXPIRED", "the access token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise ApiError(401, "UNAUTHENTICATED", "the access token is not valid") from exc
        if claims.get("typ") != "access":
            raise ApiError(401, "UNAUTHENTICATED", "not an access token")
        user_id = _positive_int(claims.get("sub"), "UNAUTHENTICATED", 401)
        self._remember(token, claims, user_id)
        return user_id

    def queue_token(
        self,
        user_id: int,
        concert_id: int,
        token_id: int,
        join_seq: int | None = None,
        joined_at: float | None = None,
    ) -> str:
        """A signed queue token naming the user, the concert and the engine token id, and
        the token's join sequence (``jsq``) and join time (``jat``, s) when given."""
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "typ": "queue",
            "cid": concert_id,
            "tid": token_id,
        }
        if join_seq is not None and joined_at is not None:
            claims |= {"jsq": join_seq, "jat": joined_at}
        return self._encode(claims, self._queue_ttl_s)

    def queue_claims(self, token: str) -> QueueClaims:
        """The claims of a validly signed queue token (liveness is the engine's to decide).

        Raises:
            ApiError: 403 ``QUEUE_TOKEN_EXPIRED`` (signature lifetime over) or
                ``QUEUE_TOKEN_INVALID`` (forged, malformed, or not a queue token).
        """
        try:
            remembered: QueueClaims | None = self._remembered(token, "queue")
            if remembered is not None:
                return remembered
            claims = self._decode(token)
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(403, "QUEUE_TOKEN_EXPIRED", "the queue token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise ApiError(403, "QUEUE_TOKEN_INVALID", "the queue token is not valid") from exc
        if claims.get("typ") != "queue":
            raise ApiError(403, "QUEUE_TOKEN_INVALID", "not a queue token")
        jsq, jat = claims.get("jsq"), claims.get("jat")
        join_seq: int | None = None
        joined_at: float | None = None
        if jsq is not None or jat is not None:  # both, as numbers, or neither
            if (
                isinstance(jsq, bool)
                or not isinstance(jsq, int)
                or not 0 <= jsq < 2**63
                or isinstance(jat, bool)
                or not isinstance(jat, (int, float))
                or not 0 <= jat < 1e11  # also refuses NaN
            ):
                raise ApiError(403, "QUEUE_TOKEN_INVALID", "the token's claims are malformed")
            join_seq, joined_at = jsq, float(jat)
        queue_claims = QueueClaims(
            user_id=_positive_int(claims.get("sub"), "QUEUE_TOKEN_INVALID", 403),
            concert_id=_positive_int(claims.get("cid"), "QUEUE_TOKEN_INVALID", 403),
            token_id=_positive_int(claims.get("tid"), "QUEUE_TOKEN_INVALID", 403),
            join_seq=join_seq,
            joined_at=joined_at,
        )
        self._remember(token, claims, queue_claims)
        return queue_claims


def _positive_int(value: object, code: str, status: int) -> int:
    if isinstance(value, bool):
        value = None
    try:
        number = int(value) if isinstance(value, (int, str)) else 0
    except ValueError:
        number = 0
    if not 0 < number < 2**63:
        raise ApiError(status, code, "the token's claims are malformed")
    return number
