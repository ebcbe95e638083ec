"""The two clients: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

Both run the plans of :mod:`.operations`; what they share (credentials, the queue tokens they
keep, which requests may be repeated, how an answer becomes a value or an exception) is
:class:`_Session`. Only sending a request and sleeping differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, cast

import httpx
import tenacity

from ..errors import BoxOfficeError
from . import operations as ops
from .errors import Overloaded, TooManyPasswordChecks, problem_error
from .models import AccessToken, Concert, Page, QueueStatus, Reservation, Schedule, parse
from .operations import Call, Plan, Sleep, Step

P = ParamSpec("P")
T = TypeVar("T")

Observer = Callable[[str, float, int, "str | None"], None]
"""Called after every attempt of a request with its route (``"POST /v1/payments"``, the path
template), the seconds it took, the HTTP status (0: no answer, a transport error) and the
problem ``code`` (``TRANSPORT_ERROR`` for no answer, None for a 2xx)."""

DEFAULT_ATTEMPTS = 4
DEFAULT_TIMEOUT_S = 30.0
# Without a Retry-After: "full jitter" (a random wait up to 0.1 s x 2^attempt, at most 5 s).
_BACKOFF = tenacity.wait_random_exponential(multiplier=0.1, max=5.0)


def _retryable(exc: BaseException, safe: bool) -> bool:
    """May the request be sent again? A refusal that says nothing was done (503
    ``OVERLOADED``, 429 ``TOO_MANY_PASSWORD_CHECKS``) always; a lost answer (a transport
    error) or any other 503 only when repeating it is harmless (``Call.safe``): the first try
    may have been applied."""
    if isinstance(exc, Overloaded | TooManyPasswordChecks):
        return True
    if isinstance(exc, httpx.TransportError):
        return safe
    return safe and isinstance(exc, BoxOfficeError) and exc.http_status == 503


def _wait_s(state: tenacity.RetryCallState) -> float:
    """The answer's ``Retry-After`` with up to 20 % jitter (so a crowd refused together does
    not come back together), else an exponential backoff with jitter."""
    exc = state.outcome.exception() if state.outcome is not None else None
    retry_after_s = getattr(exc, "retry_after_s", None)
    if retry_after_s is not None:
        return float(retry_after_s) * (1.0 + 0.2 * random.random())
    return float(_BACKOFF(state))


@dataclass(frozen=True)
class _Raised:
    exc: Exception


@dataclass(frozen=True)
class _Done(Generic[T]):
    value: T


def _advance(plan: Plan[T], outcome: object) -> Step | _Done[T]:
    """Hands a plan the outcome of its last step (an answer, or an exception raised into it)
    and answers its next step, or its result."""
    try:
        if isinstance(outcome, _Raised):
            return plan.throw(outcome.exc)
        return plan.send(outcome)
    except StopIteration as done:
        return _Done(done.value)


class _Session:
    """Credentials, kept tokens and the reading of answers, shared by both clients.

    Attributes:
        access_token: the bearer token (set by ``log_in``).
        admin_key: the ``X-Admin-Key`` for the operator's calls.
        queue_tokens: concert id -> the ``X-Queue-Token`` of the last join.
    """

    def __init__(
        self,
        *,
        access_token: str | None,
        admin_key: str | None,
        attempts: int,
        observe: Observer | None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.access_token = access_token
        self.admin_key = admin_key
        self.queue_tokens: dict[int, str] = {}
        self.attempts = attempts
        self.observe = observe
        self._schedule_concert: dict[int, int] = {}
        self._reservation_concert: dict[int, int] = {}

    def _retrying_options(self, call: Call[Any]) -> dict[str, Any]:
        return {
            "stop": tenacity.stop_after_attempt(self.attempts),
            "wait": _wait_s,
            "retry": tenacity.retry_if_exception(lambda exc: _retryable(exc, call.safe)),
            "reraise": True,
        }

    def _headers(self, call: Call[Any]) -> dict[str, str]:
        headers: dict[str, str] = {}
        if call.auth == "admin":
            if self.admin_key is None:
                raise ValueError(f"{call.route} needs the admin key (admin_key=...)")
            headers["X-Admin-Key"] = self.admin_key
        elif call.auth != "none":
            if self.access_token is None:
                raise ValueError(f"{call.route} needs an access token: log_in first")
            headers["Authorization"] = f"Bearer {self.access_token}"
        if call.auth == "queue":
            headers["X-Queue-Token"] = self.queue_tokens[self._concert_of(call)]
        if call.idempotency_key is not None:
            headers["Idempotency-Key"] = call.idempotency_key
        return headers

    def _concert_of(self, call: Call[Any]) -> int:
        """The concert whose queue token a gated call carries (see ``Call.auth``)."""
        concert_id = call.concert_id
        if concert_id is None and call.schedule_id is not None:
            concert_id = self._schedule_concert.get(call.schedule_id)
        if concert_id is None and call.reservation_id is not None:
            concert_id = self._reservation_concert.get(call.reservation_id)
        if concert_id is None and len(self.queue_tokens) == 1:
            (concert_id,) = self.queue_tokens
        if concert_id is None or concert_id not in self.queue_tokens:
            raise ValueError(
                f"{call.route} needs a queue token: join_queue first"
                + ("" if concert_id is not None else ", or name the concert (concert_id=...)")
            )
        return concert_id

    def _remember(self, value: object) -> None:
        """Keeps what later calls need from an answer: the access token, a queue token, which
        concert a schedule or a reservation belongs to."""
        if isinstance(value, AccessToken):
            self.access_token = value.access_token
        elif isinstance(value, QueueStatus) and value.queue_token is not None:
            self.queue_tokens[value.concert_id] = value.queue_token
        elif isinstance(value, Concert):
            for schedule in value.schedules:
                self._schedule_concert[schedule.id] = value.id
        elif isinstance(value, Schedule):
            self._schedule_concert[value.id] = value.concert_id
        elif isinstance(value, Reservation):
            self._reservation_concert[value.id] = value.concert_id
        elif isinstance(value, Page):
            self._remember(value.items)
        elif isinstance(value, list):
            for item in value:
                self._remember(item)

    def _observed(self, call: Call[Any], started: float, status: int, code: str | None) -> None:
        if self.observe is not None:
            self.observe(f"{call.method} {call.route}", time.perf_counter() - started, status, code)

    def _transport_failed(self, call: Call[Any], started: float) -> None:
        self._observed(call, started, 0, "TRANSPORT_ERROR")

    def _answer(self, call: Call[Any], response: httpx.Response, started: float) -> Any:
        """The typed value of a 2xx answer; else raises its problem as a boxoffice error."""
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not response.is_success:
            exc = problem_error(response.status_code, body, response.headers)
            self._observed(call, started, response.status_code, exc.code)
            raise exc
        self._observed(call, started, response.status_code, None)
        value = parse(call.result, body)
        self._remember(value)
        return value


def _described(method: Callable[..., Any], op: Callable[..., Any], cls_name: str) -> None:
    """Gives a generated method the operation's name, docstring and signature (with
    ``self``), for ``help()``, IDEs and documentation tools."""
    signature = inspect.signature(op)
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__name__ = op.__name__
    method.__qualname__ = f"{cls_name}.{op.__name__}"
    method.__doc__ = op.__doc__
    answer = str(signature.return_annotation)  # "Plan[Reservation]": the method answers the T
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self_param, *signature.parameters.values()],
        return_annotation=answer.removeprefix("Plan[").removesuffix("]"),
    )


def _blocking(op: Callable[P, Plan[T]]) -> Callable[Concatenate[Client, P], T]:
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.run(op(*args, **kwargs))

    _described(method, op, "Client")
    return method


def _awaitable(op: Callable[P, Plan[T]]) -> Callable[Concatenate[AsyncClient, P], Awaitable[T]]:
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.run(op(*args, **kwargs))

    _described(method, op, "AsyncClient")
    return method


class Client(_Session):
    """A blocking client of one boxoffice server (``base_url``, e.g.
    ``http://127.0.0.1:8000``), for one user at a time (and the operator, with ``admin_key``).

    Every method is an operation of :mod:`boxoffice.client.operations` (named as its OpenAPI
    operation id). Answers are the dataclasses of :mod:`boxoffice.client.models`; a problem
    answer is raised as the :mod:`boxoffice.errors` class of its ``code``
    (:mod:`boxoffice.client.errors` for the HTTP layer's own codes); a request that got no
    answer raises :class:`httpx.TransportError`.

    Retries (tenacity): up to ``attempts`` tries per call, waiting ``Retry-After`` (or an
    exponential backoff), for a 503 ``OVERLOADED`` or 429 ``TOO_MANY_PASSWORD_CHECKS`` (the
    server did nothing), and for a transport error or another 503 only when the call is safe
    to repeat: a read, a log-in, a join, or a hold, payment or charge with its
    ``Idempotency-Key`` (generated per call unless given, the same for all its tries).

    Args:
        base_url: the server's URL.
        access_token: a bearer token to start with (``log_in`` sets it).
        admin_key: ``X-Admin-Key`` for ``create_concert``, ``get_concert_stats``,
            ``list_events``.
        timeout_s: per-request timeout in seconds.
        attempts: tries per call, the first included (1: no retry).
        http: an ``httpx.Client`` to send with (its ``base_url`` is then used; the caller
            closes it); default: one of this client's own.
        transport: an httpx transport for the client's own ``httpx.Client``.
        sleep: how to wait (polls, retries), in seconds; ``time.sleep`` by default.
        observe: called after every attempt (see :data:`Observer`).
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        access_token: str | None = None,
        admin_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        attempts: int = DEFAULT_ATTEMPTS,
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        observe: Observer | None = None,
    ) -> None:
        super().__init__(
            access_token=access_token, admin_key=admin_key, attempts=attempts, observe=observe
        )
        self._own_http = http is None
        self.http = http or httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport)
        self._sleep = sleep

    def close(self) -> None:
        """Closes the client's own connections (not those of an ``http`` given to it)."""
        if self._own_http:
            self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def run(self, plan: Plan[T]) -> T:
        """Runs an operation's plan (what every method does)."""
        step = _advance(plan, None)
        while not isinstance(step, _Done):
            try:
                if isinstance(step, Call):
                    outcome: Any = self._call(step)
                elif isinstance(step, Sleep):
                    self._sleep(step.seconds)
                    outcome = None
                else:
                    outcome = time.monotonic()
            except Exception as exc:
                outcome = _Raised(exc)
            step = _advance(plan, outcome)
        return step.value

    def _call(self, call: Call[T]) -> T:
        headers = self._headers(call)
        retrying = tenacity.Retrying(sleep=self._sleep, **self._retrying_options(call))
        return cast(T, retrying(self._attempt, call, headers))

    def _attempt(self, call: Call[T], headers: dict[str, str]) -> T:
        started = time.perf_counter()
        try:
            response = self.http.request(
                call.method, call.url, headers=headers, json=call.json, params=call.query
            )
        except httpx.TransportError:
            self._transport_failed(call, started)
            raise
        return self._answer(call, response, started)  # type: ignore[no-any-return]

    sign_up = _blocking(ops.sign_up)
    log_in = _blocking(ops.log_in)
    get_me = _blocking(ops.get_me)
    search_concerts = _blocking(ops.search_concerts)
    get_concert = _blocking(ops.get_concert)
    create_concert = _blocking(ops.create_concert)
    get_concert_stats = _blocking(ops.get_concert_stats)
    list_concerts = _blocking(ops.list_concerts)
    list_events = _blocking(ops.list_events)
    get_health = _blocking(ops.get_health)
    read_test_clock = _blocking(ops.read_test_clock)
    advance_test_clock = _blocking(ops.advance_test_clock)
    join_queue = _blocking(ops.join_queue)
    poll_queue = _blocking(ops.poll_queue)
    leave_queue = _blocking(ops.leave_queue)
    wait_until_active = _blocking(ops.wait_until_active)
    list_schedules = _blocking(ops.list_schedules)
    list_seats = _blocking(ops.list_seats)
    hold_seats = _blocking(ops.hold_seats)
    get_reservation = _blocking(ops.get_reservation)
    list_my_reservations = _blocking(ops.list_my_reservations)
    cancel_reservation = _blocking(ops.cancel_reservation)
    release_seat = _blocking(ops.release_seat)
    refund_reservation = _blocking(ops.refund_reservation)
    pay = _blocking(ops.pay)
    charge_balance = _blocking(ops.charge_balance)
    get_balance = _blocking(ops.get_balance)
    get_balance_history = _blocking(ops.get_balance_history)


async def _asleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class AsyncClient(_Session):
    """The asyncio form of :class:`Client`: the same methods, awaited, the same answers,
    errors and retries. Args as :class:`Client`'s (``http`` an ``httpx.AsyncClient``,
    ``transport`` an async transport, ``sleep`` a coroutine function), and:

    Args:
        limiter: held around each attempt, e.g. an ``asyncio.Semaphore`` shared by many
            clients to bound the requests in flight; the observed time starts once it is
            acquired (so it never counts waiting for it).
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        access_token: str | None = None,
        admin_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        attempts: int = DEFAULT_ATTEMPTS,
        http: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = _asleep,
        observe: Observer | None = None,
        limiter: contextlib.AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        super().__init__(
            access_token=access_token, admin_key=admin_key, attempts=attempts, observe=observe
        )
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(
            base_url=base_url, timeout=timeout_s, transport=transport
        )
        self._sleep = sleep
        self._limiter = limiter or contextlib.nullcontext()

    async def aclose(self) -> None:
        """Closes the client's own connections (not those of an ``http`` given to it)."""
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def run(self, plan: Plan[T]) -> T:
        """Runs an operation's plan (what every method does)."""
        step = _advance(plan, None)
        while not isinstance(step, _Done):
            try:
                if isinstance(step, Call):
                    outcome: Any = await self._call(step)
                elif isinstance(step, Sleep):
                    await self._sleep(step.seconds)
                    outcome = None
                else:
                    outcome = time.monotonic()
            except Exception as exc:
                outcome = _Raised(exc)
            step = _advance(plan, outcome)
        return step.value

    async def _call(self, call: Call[T]) -> T:
        headers = self._headers(call)
        retrying = tenacity.AsyncRetrying(sleep=self._sleep, **self._retrying_options(call))
        return await retrying(self._attempt, call, headers)

    async def _attempt(self, call: Call[T], headers: dict[str, str]) -> T:
        async with self._limiter:
            started = time.perf_counter()
            try:
                response = await self.http.request(
                    call.method, call.url, headers=headers, json=call.json, params=call.query
                )
            except httpx.TransportError:
                self._transport_failed(call, started)
                raise
        return self._answer(call, response, started)  # type: ignore[no-any-return]

    sign_up = _awaitable(ops.sign_up)
    log_in = _awaitable(ops.log_in)
    get_me = _awaitable(ops.get_me)
    search_concerts = _awaitable(ops.search_concerts)
    get_concert = _awaitable(ops.get_concert)
    create_concert = _awaitable(ops.create_concert)
    get_concert_stats = _awaitable(ops.get_concert_stats)
    list_concerts = _awaitable(ops.list_concerts)
    list_events = _awaitable(ops.list_events)
    get_health = _awaitable(ops.get_health)
    read_test_clock = _awaitable(ops.read_test_clock)
    advance_test_clock = _awaitable(ops.advance_test_clock)
    join_queue = _awaitable(ops.join_queue)
    poll_queue = _awaitable(ops.poll_queue)
    leave_queue = _awaitable(ops.leave_queue)
    wait_until_active = _awaitable(ops.wait_until_active)
    list_schedules = _awaitable(ops.list_schedules)
    list_seats = _awaitable(ops.list_seats)
    hold_seats = _awaitable(ops.hold_seats)
    get_reservation = _awaitable(ops.get_reservation)
    list_my_reservations = _awaitable(ops.list_my_reservations)
    cancel_reservation = _awaitable(ops.cancel_reservation)
    release_seat = _awaitable(ops.release_seat)
    refund_reservation = _awaitable(ops.refund_reservation)
    pay = _awaitable(ops.pay)
    charge_balance = _awaitable(ops.charge_balance)
    get_balance = _awaitable(ops.get_balance)
    get_balance_history = _awaitable(ops.get_balance_history)


def _operation_names(cls: type) -> set[str]:
    return {name for name in vars(cls) if name in {op.__name__ for op in ops.OPERATIONS}}


# Each operation is a method of both clients: a new operation must be added to both lists.
assert (
    _operation_names(Client)
    == _operation_names(AsyncClient)
    == {op.__name__ for op in ops.OPERATIONS}
), "an operation is missing from a client"
