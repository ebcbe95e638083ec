"""Every operation of the HTTP API, written once for both clients.

An operation is a generator function (a *plan*): it yields the requests (:class:`Call`) and
waits (:class:`Sleep`) it needs and returns its typed answer; :class:`~.Client` runs plans with
blocking I/O, :class:`~.AsyncClient` with asyncio, so the two cannot drift. The functions'
names are the OpenAPI operation ids (``api/openapi.json``), and each becomes a method of both
clients with the same signature and docstring.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeAlias, TypeVar, cast

from .models import (
    AccessToken,
    Balance,
    Charge,
    Concert,
    Event,
    HistoryEntry,
    Page,
    Payment,
    QueueStatus,
    Reservation,
    Schedule,
    Seat,
    ServerHealth,
    Stats,
    TestClock,
    User,
)

Auth = Literal["none", "access", "queue", "admin"]
T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request.

    Attributes:
        method, route: the HTTP method and the path template, e.g. ``/v1/reservations/{id}``
            (what an observer is told, so latencies group by endpoint).
        path: the values of the template's fields.
        auth: the credentials it carries: ``access`` (the bearer token), ``queue`` (the bearer
            token and the ``X-Queue-Token`` of ``concert_id``, or of the concert that
            ``schedule_id`` or ``reservation_id`` belongs to, or of the only concert joined),
            ``admin`` (``X-Admin-Key``) or ``none``.
        safe: repeating it changes nothing more than sending it once (a read, a log-in, a
            join, or a request with an ``Idempotency-Key``): it is retried after a transport
            error or a 503.
        result: the type of the answer (:func:`.models.parse`).
    """

    method: str
    route: str
    result: type[T]
    path: Mapping[str, int] = field(default_factory=dict)
    json: Any = None
    query: Mapping[str, str | int] | None = None
    auth: Auth = "access"
    concert_id: int | None = None
    schedule_id: int | None = None
    reservation_id: int | None = None
    idempotency_key: str | None = None
    safe: bool = False

    @property
    def url(self) -> str:
        return self.route.format(**self.path) if self.path else self.route


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` before the next step of a plan."""

    seconds: float


class Now:
    """Asks the runner for a monotonic clock reading, in seconds."""


NOW = Now()

Step: TypeAlias = "Call[Any] | Sleep | Now"
Plan: TypeAlias = Generator[Step, Any, T]
"""A plan answering a ``T``: it is sent each Call's answer, None after a Sleep, the clock
after a Now."""


def _request(method: str, route: str, result: type[T], **call: Any) -> Plan[T]:
    value = yield Call(method, route, result, **call)
    return cast(T, value)


def _key(given: str | None) -> str:
    """The Idempotency-Key of one logical call: the caller's, or a fresh random one (kept by
    the call, so every retry of it sends the same key)."""
    return given if given is not None else str(uuid.uuid4())


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# --- accounts ------------------------------------------------------------------------------


def sign_up(email: str, password: str) -> Plan[User]:
    """Creates an account (``POST /v1/users``); log in next. Answers :class:`User`.

    Raises:
        EmailTaken: 409, the email (trimmed, lower case) has an account.
        WeakPassword: 422, the password is too easy to guess.
        InvalidArgument: 422, a malformed email or a password outside 8..256 characters.
    """
    body = {"email": email, "password": password}
    return (yield from _request("POST", "/v1/users", User, json=body, auth="none"))


def log_in(email: str, password: str) -> Plan[AccessToken]:
    """Logs in (``POST /v1/auth/token``); the client keeps the access token and sends it
    from then on. Answers :class:`AccessToken`.

    Raises:
        InvalidCredentials: 401, unknown email or wrong password.
        LoginThrottled: 429, too many failures (``retry_after_s``).
    """
    body = {"email": email, "password": password}
    return (
        yield from _request(
            "POST", "/v1/auth/token", AccessToken, json=body, auth="none", safe=True
        )
    )


def get_me() -> Plan[User]:
    """The logged-in account (``GET /v1/me``): :class:`User`."""
    return (yield from _request("GET", "/v1/me", User, safe=True))


# --- concerts ------------------------------------------------------------------------------


def search_concerts(
    q: str = "", *, starts_from: datetime | None = None, starts_to: datetime | None = None
) -> Plan[list[Concert]]:
    """Concerts whose title or artist contains ``q`` with a schedule starting in
    [``starts_from``, ``starts_to``] (timezone-aware; either may be omitted):
    ``list[Concert]``."""
    query = {"q": q, "from": _time(starts_from), "to": _time(starts_to)}
    found = {k: v for k, v in query.items() if v}
    page = yield from _request("GET", "/v1/concerts", Page[Concert], query=found, safe=True)
    return page.items


def get_concert(concert_id: int) -> Plan[Concert]:
    """One concert with its schedules and sale settings: :class:`Concert`.

    Raises:
        ConcertNotFound: 404.
    """
    path = {"concert_id": concert_id}
    return (yield from _request("GET", "/v1/concerts/{concert_id}", Concert, path=path, safe=True))


def create_concert(body: Mapping[str, Any]) -> Plan[Concert]:
    """Creates a concert (operator, ``X-Admin-Key``) from the JSON body of
    ``POST /v1/admin/concerts`` (title, artist, venue, schedules with sections, sale settings:
    ``docs/http-api.md``): :class:`Concert`.

    Raises:
        AdminKeyInvalid: 403.
        InvalidArgument, LimitExceeded: 422.
    """
    return (
        yield from _request("POST", "/v1/admin/concerts", Concert, json=dict(body), auth="admin")
    )


def list_concerts(limit: int = 100) -> Plan[list[Concert]]:
    """The ``limit`` newest concerts, newest first, with their schedules and sale settings
    (operator): ``list[Concert]``."""
    query = {"limit": limit}
    route = "/v1/admin/concerts"
    return (yield from _request("GET", route, list[Concert], query=query, auth="admin", safe=True))


def get_concert_stats(concert_id: int) -> Plan[Stats]:
    """Queue, seats, reservations, payments and revenue of a concert (operator):
    :class:`Stats`."""
    path = {"concert_id": concert_id}
    route = "/v1/admin/concerts/{concert_id}/stats"
    return (yield from _request("GET", route, Stats, path=path, auth="admin", safe=True))


def list_events(after: int = 0, limit: int = 100) -> Plan[Page[Event]]:
    """Domain events with ``seq > after``, oldest first (operator): ``Page[Event]`` whose
    ``next_cursor`` is the ``after`` of the next page."""
    query = {"after": after, "limit": limit}
    return (
        yield from _request(
            "GET", "/v1/admin/events", Page[Event], query=query, auth="admin", safe=True
        )
    )


def get_health() -> Plan[ServerHealth]:
    """``GET /healthz``: :class:`ServerHealth` (with the password-hash profile).

    Raises:
        StoreUnavailable: 503 once the store cannot take commands (after the retries).
    """
    return (yield from _request("GET", "/healthz", ServerHealth, auth="none", safe=True))


def read_test_clock() -> Plan[TestClock]:
    """The clock of a server in test mode (operator; ``BOXOFFICE_TEST_CLOCK``): its time and
    how far it is ahead of the wall clock. :class:`TestClock`.

    Raises:
        AdminKeyInvalid: 403. NotFound: 404, the server is not in test mode.
    """
    route = "/v1/admin/test-clock"
    return (yield from _request("GET", route, TestClock, auth="admin", safe=True))


def advance_test_clock(seconds: float) -> Plan[TestClock]:
    """Moves a test-mode server's clock ``seconds`` forward (operator), firing every deadline
    up to the new time: a hold whose ``expires_at`` is passed is EXPIRED when this answers.
    :class:`TestClock`. Not retried after a lost answer (it would move the clock twice).

    Raises:
        AdminKeyInvalid: 403. NotFound: 404, the server is not in test mode.
        InvalidArgument: 422, a negative or too large step.
    """
    route = "/v1/admin/test-clock"
    return (yield from _request("POST", route, TestClock, json={"seconds": seconds}, auth="admin"))


# --- the admission queue -------------------------------------------------------------------


def join_queue(concert_id: int) -> Plan[QueueStatus]:
    """Joins the concert's queue (or gets the live token again); the client keeps the queue
    token for the gated calls. :class:`QueueStatus`, ACTIVE at once or WAITING.

    Raises:
        ConcertNotFound: 404.
        QueueFull: 429, the queue is full (``retry_after_s``).
    """
    path = {"concert_id": concert_id}
    route = "/v1/concerts/{concert_id}/queue"
    return (yield from _request("POST", route, QueueStatus, path=path, safe=True))


def poll_queue(concert_id: int) -> Plan[QueueStatus]:
    """The state of the client's queue token for the concert (a poll keeps a WAITING place):
    :class:`QueueStatus`."""
    path = {"concert_id": concert_id}
    route = "/v1/concerts/{concert_id}/queue"
    return (
        yield from _request(
            "GET", route, QueueStatus, path=path, auth="queue", concert_id=concert_id, safe=True
        )
    )


def leave_queue(concert_id: int) -> Plan[QueueStatus]:
    """Leaves the queue (the token becomes EXPIRED, LEFT): :class:`QueueStatus`."""
    path = {"concert_id": concert_id}
    route = "/v1/concerts/{concert_id}/queue"
    return (
        yield from _request(
            "DELETE", route, QueueStatus, path=path, auth="queue", concert_id=concert_id
        )
    )


def wait_until_active(concert_id: int, *, max_wait_s: float | None = None) -> Plan[QueueStatus]:
    """Joins the concert's queue and polls until the token is ACTIVE, waiting the
    ``poll_after_s`` each answer gives (and ``Retry-After`` on a 429 or 503); a token that
    ended meanwhile (abandoned, session over) joins again. Answers the ACTIVE
    :class:`QueueStatus`.

    Raises:
        TimeoutError: still WAITING ``max_wait_s`` seconds after joining (None: no limit).
        QueueFull, ConcertNotFound: as :meth:`join_queue`.
    """
    started: float = yield NOW
    state: QueueStatus = yield from join_queue(concert_id)
    while state.status != "ACTIVE":
        if state.status == "EXPIRED":
            state = yield from join_queue(concert_id)
            continue
        now: float = yield NOW
        if max_wait_s is not None and now - started + state.poll_after_s > max_wait_s:
            raise TimeoutError(f"still WAITING (position {state.position}) after {max_wait_s} s")
        yield Sleep(state.poll_after_s)
        state = yield from poll_queue(concert_id)
    return state


# --- seats and reservations (behind the gate: an ACTIVE queue token) -------------------------


def list_schedules(concert_id: int) -> Plan[list[Schedule]]:
    """The concert's schedules with ``seats_available`` (ACTIVE queue token):
    ``list[Schedule]``.

    Raises:
        QueueNotActive: 403, still WAITING (``position``, ``eta_s``, ``retry_after_s``).
        QueueTokenExpired: 403, the session ended; join again.
    """
    path = {"concert_id": concert_id}
    route = "/v1/concerts/{concert_id}/schedules"
    page = yield from _request(
        "GET", route, Page[Schedule], path=path, auth="queue", concert_id=concert_id, safe=True
    )
    return page.items


def list_seats(
    schedule_id: int,
    *,
    status: Literal["AVAILABLE", "HELD", "SOLD"] | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    concert_id: int | None = None,
) -> Plan[Page[Seat]]:
    """One page of a schedule's seats in seat-map order, optionally only those with
    ``status`` (ACTIVE queue token): ``Page[Seat]``; pass its ``next_cursor`` as ``cursor``.
    ``concert_id`` names the queue token when the client cannot tell (see :class:`Call`).

    Raises:
        ScheduleNotFound: 404. QueueNotActive, QueueTokenExpired: 403.
    """
    query: dict[str, str | int] = {}
    if status is not None:
        query["status"] = status
    if limit is not None:
        query["limit"] = limit
    if cursor is not None:
        query["cursor"] = cursor
    path = {"schedule_id": schedule_id}
    route = "/v1/schedules/{schedule_id}/seats"
    return (
        yield from _request(
            "GET",
            route,
            Page[Seat],
            path=path,
            query=query,
            auth="queue",
            concert_id=concert_id,
            schedule_id=schedule_id,
            safe=True,
        )
    )


def hold_seats(
    schedule_id: int,
    seat_ids: Sequence[int] | None = None,
    *,
    quantity: int | None = None,
    grade: str = "",
    idempotency_key: str | None = None,
    concert_id: int | None = None,
) -> Plan[Reservation]:
    """Holds ``seat_ids``, or ``quantity`` best-available adjacent seats (of ``grade``, if
    given), of one schedule, all or nothing, until the reservation's ``expires_at``:
    a PENDING :class:`Reservation`. An ``Idempotency-Key`` is generated (unless given) and
    reused by the retries of this call.

    Raises:
        SeatUnavailable: 409, a seat is taken (``seat_id``). SeatNotFound,
        ScheduleNotFound: 404. TooManySeats: 422. SeatLimitPerUser: 409.
        QueueNotActive, QueueTokenExpired: 403. HoldRateLimited: 429.
    """
    body: dict[str, Any] = {"schedule_id": schedule_id}
    if seat_ids is not None:
        body["seat_ids"] = list(seat_ids)
    if quantity is not None:
        body["quantity"] = quantity
    if grade:
        body["grade"] = grade
    return (
        yield from _request(
            "POST",
            "/v1/reservations",
            Reservation,
            json=body,
            auth="queue",
            concert_id=concert_id,
            schedule_id=schedule_id,
            idempotency_key=_key(idempotency_key),
            safe=True,
        )
    )


def get_reservation(reservation_id: int) -> Plan[Reservation]:
    """One of the user's reservations: :class:`Reservation`.

    Raises:
        ReservationNotFound: 404 (also another user's).
    """
    path = {"reservation_id": reservation_id}
    route = "/v1/reservations/{reservation_id}"
    return (yield from _request("GET", route, Reservation, path=path, safe=True))


def list_my_reservations() -> Plan[list[Reservation]]:
    """The user's reservations, oldest first: ``list[Reservation]``."""
    page = yield from _request("GET", "/v1/me/reservations", Page[Reservation], safe=True)
    return page.items


def cancel_reservation(reservation_id: int) -> Plan[Reservation]:
    """Cancels a PENDING reservation (its seats become AVAILABLE): the CANCELED
    :class:`Reservation`.

    Raises:
        ReservationNotFound: 404. HoldExpired, ReservationNotPending: 409.
    """
    path = {"reservation_id": reservation_id}
    route = "/v1/reservations/{reservation_id}"
    return (yield from _request("DELETE", route, Reservation, path=path))


def release_seat(reservation_id: int, seat_id: int) -> Plan[Reservation]:
    """Releases one seat of a PENDING reservation (the last one cancels it): the
    :class:`Reservation` after.

    Raises:
        ReservationNotFound, SeatNotInReservation: 404. HoldExpired, ReservationNotPending: 409.
    """
    path = {"reservation_id": reservation_id, "seat_id": seat_id}
    route = "/v1/reservations/{reservation_id}/seats/{seat_id}"
    return (yield from _request("DELETE", route, Reservation, path=path))


def refund_reservation(reservation_id: int) -> Plan[Reservation]:
    """Refunds a CONFIRMED reservation to the wallet: the REFUNDED :class:`Reservation`.

    Raises:
        ReservationNotFound: 404. ReservationNotConfirmed: 409.
    """
    path = {"reservation_id": reservation_id}
    route = "/v1/reservations/{reservation_id}/refund"
    return (yield from _request("POST", route, Reservation, path=path))


# --- money ---------------------------------------------------------------------------------


def pay(
    reservation_id: int, *, idempotency_key: str | None = None, concert_id: int | None = None
) -> Plan[Payment]:
    """Pays a PENDING reservation from the wallet (ACTIVE queue token); the reservation is
    CONFIRMED and the queue token ends. :class:`Payment`. An ``Idempotency-Key`` is generated
    (unless given) and reused by the retries of this call.

    Raises:
        InsufficientBalance, HoldExpired, ReservationNotPending: 409.
        ReservationNotFound: 404. QueueNotActive, QueueTokenExpired: 403.
    """
    return (
        yield from _request(
            "POST",
            "/v1/payments",
            Payment,
            json={"reservation_id": reservation_id},
            auth="queue",
            concert_id=concert_id,
            reservation_id=reservation_id,
            idempotency_key=_key(idempotency_key),
            safe=True,
        )
    )


def charge_balance(amount: int, *, idempotency_key: str | None = None) -> Plan[Charge]:
    """Adds ``amount`` won to the wallet: :class:`Charge` (with the new balance). An
    ``Idempotency-Key`` is generated (unless given) and reused by the retries of this call,
    so a charge retried after a lost answer is applied once.

    Raises:
        InvalidAmount: 422. BalanceLimitExceeded: 409.
    """
    return (
        yield from _request(
            "POST",
            "/v1/me/balance/charges",
            Charge,
            json={"amount": amount},
            idempotency_key=_key(idempotency_key),
            safe=True,
        )
    )


def get_balance() -> Plan[Balance]:
    """The wallet balance in won: :class:`Balance`."""
    return (yield from _request("GET", "/v1/me/balance", Balance, safe=True))


def get_balance_history() -> Plan[list[HistoryEntry]]:
    """CHARGE, PAYMENT and REFUND entries, oldest first: ``list[HistoryEntry]``."""
    page = yield from _request("GET", "/v1/me/balance/history", Page[HistoryEntry], safe=True)
    return page.items


OPERATIONS = (
    sign_up,
    log_in,
    get_me,
    search_concerts,
    get_concert,
    create_concert,
    get_concert_stats,
    list_concerts,
    list_events,
    get_health,
    read_test_clock,
    advance_test_clock,
    join_queue,
    poll_queue,
    leave_queue,
    wait_until_active,
    list_schedules,
    list_seats,
    hold_seats,
    get_reservation,
    list_my_reservations,
    cancel_reservation,
    release_seat,
    refund_reservation,
    pay,
    charge_balance,
    get_balance,
    get_balance_history,
)
"""Every operation, each a method of both clients."""
