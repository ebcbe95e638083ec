"""A live ticket drop over HTTP against a running boxoffice server (``boxoffice drop``).

N virtual users run at once (asyncio; each a :class:`boxoffice.client.AsyncClient` over a few
shared connection pools, at most ``concurrency`` requests in flight). First each user signs up,
logs in and charges the wallet (at most ``password_concurrency`` of them at once: the server
hashes every password); then, all at once (or spread over ``ramp_s``), each joins the
concert's admission queue, polls until ACTIVE (after
``poll_after_s`` or ``Retry-After`` seconds, times ``poll_scale``), reads the dates and the
available seats, holds 1..``max_seats_per_reservation`` seats (best-available ``quantity``, or
explicit adjacent seats), pays, and reads back its own reservations and balance. The client
retries what is safe to repeat (holds, payments and charges carry an ``Idempotency-Key``,
the same for every try). A user who finds no seat leaves the queue, freeing the slot for the
next one.

Before the users start, the drop says which password-hash profile the server uses and what one
sign-up cost (argon2id's RFC 9106 profile takes most of a drop's time on a small machine);
while they run, a progress bar on stderr counts users done, purchases and errors.

Afterwards the drop checks consistency from what the server reports: the admin stats
(``GET /v1/admin/concerts/{id}/stats``), the event feed (``GET /v1/admin/events``), the seat map
(read by an auditor user through the gate) and the users' own reads. Sold seats must be the seats
of the CONFIRMED reservations, no seat may be in two CONFIRMED reservations, and revenue must equal
the sum of the payments the clients saw succeed.

``run_drop(DropConfig(...))`` is the API (a coroutine answering a ``DropResult``);
``add_parser(subparsers)`` registers the ``drop`` subcommand of the ``boxoffice`` command (entry
point ``boxoffice.commands:drop``). It lives in the HTTP service's package, not the engine's: it
speaks only HTTP, through the client. The client (httpx, tenacity) and tqdm are imported when a
drop runs, so the rest of the command line works without them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import ssl
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from boxoffice.errors import (
    BoxOfficeError,
    HoldExpired,
    InsufficientBalance,
    QueueNotActive,
    QueueTokenExpired,
    SeatUnavailable,
)

from .testing import concert_body, section

if TYPE_CHECKING:
    from boxoffice.client import AsyncClient, Payment, Reservation, Seat

__all__ = [
    "Check",
    "ConsistencyReport",
    "DropConfig",
    "DropError",
    "DropResult",
    "EndpointStats",
    "add_parser",
    "run_drop",
]

PASSWORD = "drop-password-0123"
PRICES = {"VIP": 165_000, "R": 132_000, "S": 99_000}
T = TypeVar("T")
_KEEPALIVE_EXPIRY_S = 2.0  # below any server keep-alive timeout we set (5 s by default)
_CONNECTIONS_PER_CLIENT = 8
_SEAT_PAGE = 1000  # AVAILABLE seats a user reads before choosing


class DropError(Exception):
    """The drop could not be set up or read back (server unreachable, admin key refused, unknown
    concert); the message says which request failed and how."""


@dataclass(frozen=True)
class DropConfig:
    """What to run.

    Attributes:
        url: the server's base URL, e.g. ``http://127.0.0.1:8000``.
        users: virtual users (each buys at most one reservation).
        concurrency: most requests in flight at once (also the connection pool size).
        concert_id: the concert to sell; ``None`` creates a fresh one with ``seats`` seats (one
            schedule; sections VIP, R and S at 165,000 / 132,000 / 99,000 won).
        admin_key: ``X-Admin-Key`` (needed to create the concert and for the check).
        seats, queue_capacity, hold_ttl_s, session_ttl_s: settings of a created concert.
        seed: seeds each user's choices (seat count, best-available or explicit, start delay).
        poll_scale: factor on every server-given wait (``poll_after_s``, ``Retry-After``);
            below 1 polls faster than the server asks (for tests).
        ramp_s: users start spread uniformly over this many seconds (0: all at once).
        best_available_share: the share of holds that ask for ``quantity`` best-available
            seats; the others pick explicit adjacent seats from the seat map.
        hold_attempts: holds a user tries (re-reading the seat map) before giving up.
        charge_amount: won charged up front; a payment short of balance charges the rest.
        replay_share: the share of buyers who resend their payment with the same
            Idempotency-Key, which must answer the same payment and change nothing.
        max_wait_s: a user still WAITING after this many seconds leaves the queue.
        password_concurrency: sign-ups and log-ins in flight at once. The server hashes at
            most ``BOXOFFICE_PASSWORD_HASH_PER_CLIENT_MAX`` (4) of one client address at once
            and refuses more (429 ``TOO_MANY_PASSWORD_CHECKS``): all users come from this one.
        timeout_s: per-request timeout in seconds.
        progress: say the server's password-hash profile and show a progress bar (users done,
            purchases, errors), on stderr.
    """

    url: str
    users: int = 100
    concurrency: int = 64
    concert_id: int | None = None
    admin_key: str | None = None
    seats: int = 100
    queue_capacity: int = 50
    hold_ttl_s: float = 300.0
    session_ttl_s: float = 600.0
    seed: int = 0
    poll_scale: float = 1.0
    ramp_s: float = 0.0
    best_available_share: float = 0.5
    hold_attempts: int = 4
    charge_amount: int = 1_000_000
    replay_share: float = 0.1
    max_wait_s: float = 600.0
    timeout_s: float = 30.0
    password_concurrency: int = 4
    progress: bool = False

    def __post_init__(self) -> None:
        if min(self.users, self.concurrency, self.seats, self.queue_capacity) < 1:
            raise ValueError("users, concurrency, seats and queue_capacity must be at least 1")
        if self.password_concurrency < 1:
            raise ValueError("password_concurrency must be at least 1")
        if self.poll_scale < 0 or self.ramp_s < 0 or self.hold_attempts < 1:
            raise ValueError("poll_scale and ramp_s must be >= 0, hold_attempts >= 1")
        if not 0 <= self.best_available_share <= 1 or not 0 <= self.replay_share <= 1:
            raise ValueError("best_available_share and replay_share must be in [0, 1]")


@dataclass(frozen=True)
class EndpointStats:
    """Latency of one endpoint (``route`` is the template, e.g. ``POST /v1/reservations``), in
    milliseconds over every attempt; ``errors`` counts answers that were not 2xx."""

    route: str
    requests: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class Check:
    """One consistency rule: ``ok`` and what was compared (``detail``)."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ConsistencyReport:
    """The checks read back from the server; ``ok`` when every check holds. ``stats`` is the
    admin stats answer after the drop, ``events`` how many domain events were read."""

    ok: bool
    checks: list[Check]
    stats: dict[str, Any]
    events: int


@dataclass(frozen=True)
class DropResult:
    """What a drop did and saw.

    ``duration_s`` is the wall time of the users (setup and the check excluded); the rates are
    per second of it. It begins with ``accounts_s``: every user signs up, logs in and charges
    the wallet (at most ``password_concurrency`` hashing at once) before the sale, which they
    then all join at once. ``outcomes`` counts users by ``PURCHASED``, ``SOLD_OUT`` (no seat left
    for them), ``GAVE_UP`` (waited longer than ``max_wait_s``) and ``FAILED`` (an unexpected
    answer; see ``failures``). ``errors`` counts non-2xx answers by problem ``code``
    (``TRANSPORT_ERROR`` when there was no answer); ``server_errors`` counts 5xx answers. Money
    is in won, times in seconds. ``password_hash_profile`` is the server's (``None`` if it does
    not say), ``sign_up_s`` and ``log_in_s`` what one sign-up and one log-in took before the
    users started.
    """

    url: str
    concert_id: int
    concert_created: bool
    users: int
    concurrency: int
    seed: int
    password_hash_profile: str | None
    sign_up_s: float
    log_in_s: float
    duration_s: float
    accounts_s: float
    requests: int
    requests_per_s: float
    purchases: int
    purchases_per_s: float
    seats_bought: int
    revenue: int
    last_purchase_s: float | None
    outcomes: dict[str, int]
    queue_wait_s: dict[str, float]
    endpoints: list[EndpointStats]
    statuses: dict[str, int]
    errors: dict[str, int]
    server_errors: int
    failures: list[str]
    consistency: ConsistencyReport

    @property
    def ok(self) -> bool:
        """The consistency check passed."""
        return self.consistency.ok

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what ``--json`` prints), with ``ok`` added."""
        return {"ok": self.ok, **asdict(self)}

    def format(self) -> str:
        """A human-readable report: throughput, latency per endpoint, errors, the check."""
        out = [
            f"boxoffice drop: {self.users} users against {self.url}, concert {self.concert_id}"
            + (" (created)" if self.concert_created else ""),
            f"  duration     {self.duration_s:.2f} s (concurrency {self.concurrency}, "
            f"seed {self.seed})",
            f"  passwords    {self.password_hash_profile or 'profile not named'}: one sign-up "
            f"{self.sign_up_s:.2f} s, one log-in {self.log_in_s:.2f} s",
            f"  accounts     {self.accounts_s:.2f} s (sign-ups, log-ins and charges, before the "
            "sale)",
            f"  requests     {self.requests:,} ({self.requests_per_s:,.1f}/s)",
            f"  purchases    {self.purchases:,} ({self.purchases_per_s:,.1f}/s), "
            f"{self.seats_bought:,} seats, {self.revenue:,} won"
            + (
                f", last at {self.last_purchase_s:.2f} s"
                if self.last_purchase_s is not None
                else ""
            ),
            "  users        " + ", ".join(f"{v:,} {k}" for k, v in self.outcomes.items()),
            "  queue wait   " + ", ".join(f"{k} {v:.2f} s" for k, v in self.queue_wait_s.items()),
            "",
            f"  {'endpoint':<50} {'n':>6} {'non-2xx':>7} {'p50':>7} {'p90':>7} {'p99':>7} "
            f"{'max':>7}  ms",
        ]
        for e in self.endpoints:
            out.append(
                f"  {e.route:<50} {e.requests:>6} {e.errors:>7} {e.p50_ms:>7.1f} "
                f"{e.p90_ms:>7.1f} {e.p99_ms:>7.1f} {e.max_ms:>7.1f}"
            )
        out += ["", "  statuses     " + ", ".join(f"{k}: {v}" for k, v in self.statuses.items())]
        out.append(
            "  errors       "
            + (", ".join(f"{k}: {v}" for k, v in self.errors.items()) if self.errors else "none")
        )
        if self.server_errors:
            out.append(f"  5xx answers  {self.server_errors}")
        for failure in self.failures[:10]:
            out.append(f"  failed user  {failure}")
        c = self.consistency
        out += ["", f"consistency check: {'PASS' if c.ok else 'FAIL'} ({c.events} events read)"]
        for check in c.checks:
            out.append(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        return "\n".join(out)


# --- what the users' clients saw -------------------------------------------------------------


@dataclass
class _Recorder:
    """Every attempt of every request, by route (the client's observer)."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    non_2xx: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)

    def add(self, route: str, seconds: float, status: int, code: str | None) -> None:
        self.latencies.setdefault(route, []).append(seconds)
        self.statuses[str(status) if status else "none"] += 1
        if not 200 <= status < 300:
            self.non_2xx[route] += 1
            self.codes[code or f"HTTP_{status}"] += 1

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def errors(self) -> int:
        return sum(self.codes.values())


# --- one virtual user ----------------------------------------------------------------------


class _SessionOver(Exception):
    """The queue token stopped passing the gate (session expired): join again."""


@dataclass
class _Payment:
    id: int
    reservation_id: int
    amount: int


@dataclass
class _User:
    index: int
    client: AsyncClient  # this user's: keeps the access and queue tokens
    concert_id: int
    config: DropConfig
    email: str
    rng: random.Random
    logged_in: bool = False
    outcome: str = "FAILED"
    failure: str = ""
    charged: int = 0
    paid: int = 0
    holds: list[int] = field(default_factory=list)  # reservation ids the user saw held
    payment: _Payment | None = None
    pending: Reservation | None = None  # the held, unpaid reservation
    replay_ok: bool | None = None
    waited_s: list[float] = field(default_factory=list)
    reservations: list[dict[str, Any]] = field(default_factory=list)  # read at the end
    balance: int | None = None
    purchased_at: float | None = None
    max_seats: int = 4  # the concert's max_seats_per_reservation (and per user)
    password_slots: asyncio.Semaphore | None = None  # shared by all users (password_concurrency)
    _keys: int = 0

    def key(self, what: str) -> str:
        self._keys += 1
        return f"drop-{self.email}-{what}-{self._keys}"

    async def open_account(self) -> None:
        """Before the sale: signs up, logs in, charges the wallet."""
        try:
            await self._log_in()
            await self._charge(self.config.charge_amount)
        except Exception as exc:  # an unexpected answer (or a bug) must not stop the others
            self.outcome, self.failure = "FAILED", f"user {self.index}: {_describe(exc)}"

    async def run(self, started: float) -> None:
        """The sale: queue, hold, pay (unless the account failed), then read back."""
        if self.config.ramp_s:
            await asyncio.sleep(self.rng.uniform(0, self.config.ramp_s))
        try:
            if not self.failure:
                self.outcome = await self._shop(started)
        except Exception as exc:
            self.outcome, self.failure = "FAILED", f"user {self.index}: {_describe(exc)}"
        try:
            if self.outcome != "PURCHASED":  # give back a hold, free the queue slot
                await self._clean_up()
            await self._read_back()
        except Exception as exc:
            self.failure = self.failure or f"user {self.index}: reading back: {_describe(exc)}"

    async def _log_in(self) -> None:
        slots = self.password_slots or contextlib.nullcontext()
        async with slots:
            await self.client.sign_up(self.email, PASSWORD)
        async with slots:
            await self.client.log_in(self.email, PASSWORD)
        self.logged_in = True

    async def _charge(self, amount: int) -> None:
        await self.client.charge_balance(amount, idempotency_key=self.key("charge"))
        self.charged += amount

    async def _shop(self, started: float) -> str:
        """Queue, hold, pay; after a session that ended, joins again (at most 3 sessions)."""
        for _session in range(3):
            if not await self._join_and_wait():
                return "GAVE_UP"
            try:
                return await self._buy(started)
            except _SessionOver:
                continue
        return "GAVE_UP"

    async def _join_and_wait(self) -> bool:
        """Joins (or rejoins) the queue and polls until ACTIVE; False after ``max_wait_s``."""
        joined_at = time.monotonic()
        try:
            await self.client.wait_until_active(self.concert_id, max_wait_s=self.config.max_wait_s)
        except TimeoutError:
            return False
        self.waited_s.append(time.monotonic() - joined_at)
        return True

    async def _gated(self, request: Callable[[], Awaitable[T]]) -> T:
        """A gated request; ``_SessionOver`` when the token no longer passes, after waiting
        out a QUEUE_NOT_ACTIVE (its Retry-After) a few times."""
        for _ in range(20):
            try:
                return await request()
            except QueueNotActive as exc:
                wait = exc.retry_after_s if exc.retry_after_s is not None else 1.0
                await asyncio.sleep(max(wait * self.config.poll_scale, 0.01))
            except QueueTokenExpired as exc:
                raise _SessionOver from exc
        raise _SessionOver

    async def _buy(self, started: float) -> str:
        """Holds and pays; ``PURCHASED`` or ``SOLD_OUT``."""
        for _attempt in range(self.config.hold_attempts):
            if self.pending is None and not await self._hold():
                return "SOLD_OUT"
            if self.pending is not None and await self._pay(started):
                return "PURCHASED"
        return "SOLD_OUT"

    async def _hold(self) -> bool:
        """Holds seats of a schedule with seats left; False when none are left."""
        found = await self._gated(lambda: self.client.list_schedules(self.concert_id))
        schedules = [s for s in found if s.seats_available > 0]
        if not schedules:
            return False
        schedule_id = self.rng.choice(schedules).id
        seats = await self._available_seats(schedule_id)
        if not seats:
            return False
        quantity = self.rng.randint(1, self.max_seats)
        if self.rng.random() < self.config.best_available_share:
            chosen: dict[str, Any] = {"quantity": min(quantity, len(seats))}
        else:
            chosen = {"seat_ids": _adjacent(seats, self.rng.randrange(len(seats)), quantity)}
        key = self.key("hold")
        try:
            held = await self._gated(
                lambda: self.client.hold_seats(
                    schedule_id, idempotency_key=key, concert_id=self.concert_id, **chosen
                )
            )
        except SeatUnavailable:
            return True  # a seat taken by someone else: the next attempt reads the map again
        self.pending = held
        self.holds.append(held.id)
        return True

    async def _available_seats(self, schedule_id: int) -> list[Seat]:
        """The first ``_SEAT_PAGE`` AVAILABLE seats in seat-map order (front rows first): what a
        fan looks at, without moving megabytes per user in a big hall."""
        page = await self._gated(
            lambda: self.client.list_seats(
                schedule_id, status="AVAILABLE", limit=_SEAT_PAGE, concert_id=self.concert_id
            )
        )
        return page.items

    async def _pay(self, started: float) -> bool:
        """Pays the pending reservation; True when paid (a short balance is topped up)."""
        assert self.pending is not None
        reservation_id = self.pending.id
        key = self.key("pay")
        for _ in range(2):
            try:
                payment = await self.client.pay(
                    reservation_id, idempotency_key=key, concert_id=self.concert_id
                )
            except InsufficientBalance:
                await self._charge(max(self.pending.amount - self.charged + self.paid, 1))
                continue
            except HoldExpired:
                self.pending = None
                return False
            except QueueTokenExpired as exc:
                raise _SessionOver from exc
            self.payment = _Payment(payment.id, reservation_id, payment.amount)
            self.paid += payment.amount
            self.purchased_at = time.monotonic() - started
            self.pending = None
            if self.rng.random() < self.config.replay_share:
                await self._replay(payment, key)
            return True
        return False

    async def _replay(self, payment: Payment, key: str) -> None:
        """Sends the payment again with its Idempotency-Key: the same payment must come back."""
        try:
            again = await self.client.pay(
                payment.reservation_id, idempotency_key=key, concert_id=self.concert_id
            )
        except BoxOfficeError:
            self.replay_ok = False
        else:
            self.replay_ok = again == payment

    async def _clean_up(self) -> None:
        """Without a purchase: cancel a held reservation, leave the queue (errors are only
        counted)."""
        if self.pending is not None and self.logged_in:
            with contextlib.suppress(Exception):
                await self.client.cancel_reservation(self.pending.id)
            self.pending = None
        if self.concert_id in self.client.queue_tokens:
            with contextlib.suppress(Exception):
                await self.client.leave_queue(self.concert_id)

    async def _read_back(self) -> None:
        """The user's own reads: their reservations and their balance."""
        if not self.logged_in:
            return
        self.reservations = [asdict(r) for r in await self.client.list_my_reservations()]
        self.balance = (await self.client.get_balance()).balance


def _describe(exc: Exception) -> str:
    """An unexpected answer as ``CODE: detail`` (a boxoffice error) or its repr."""
    return str(exc) if isinstance(exc, BoxOfficeError) else repr(exc)


def _adjacent(seats: list[Seat], start: int, quantity: int) -> list[int]:
    """Up to ``quantity`` available seats from ``start`` on, in one row, in seat-map order."""
    first = seats[start]
    row = [s for s in seats[start:] if s.section == first.section and s.row == first.row]
    return [s.id for s in row[:quantity]]


# --- setup and the check ---------------------------------------------------------------------


def _concert_body(config: DropConfig) -> dict[str, Any]:
    """One schedule of ``config.seats`` seats in rows of 10 (wider for more than 20,000 seats,
    to stay within 1,000 rows a section): the front half of the full rows VIP, the rest R, a
    last partial row S."""
    width = min(config.seats, max(10, math.ceil(config.seats / 2000)))
    full, rest = divmod(config.seats, width)
    vip = (full + 1) // 2
    sections = [("A", vip, width, "VIP"), ("B", full - vip, width, "R"), ("C", 1, rest, "S")]
    return concert_body(
        title=f"Drop {time.strftime('%Y-%m-%d %H:%M:%S')}",
        artist="boxoffice drop",
        venue="Load Hall",
        sections=[section(n, r, w, g, PRICES[g]) for n, r, w, g in sections if r and w],
        queue_capacity=config.queue_capacity,
        session_ttl_s=config.session_ttl_s,
        hold_ttl_s=config.hold_ttl_s,
        max_seats_per_reservation=4,
    )


async def _setup(what: str, request: Awaitable[T]) -> T:
    """A request of the drop's own set-up or read-back; any failure is a :class:`DropError`."""
    try:
        return await request
    except BoxOfficeError as exc:
        raise DropError(f"{what} answered {exc.http_status} {exc}") from exc
    except Exception as exc:  # no answer at all (a transport error), or not the API
        raise DropError(f"{what} failed: {exc!r}") from exc


async def _events(operator: AsyncClient, after: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor: int | None = after
    while cursor is not None:
        page = await _setup("GET /v1/admin/events", operator.list_events(cursor, 1000))
        events += [asdict(e) for e in page.items]
        cursor = int(page.next_cursor) if page.next_cursor is not None else None
    return events


async def _audit_seat_map(auditor: _User) -> dict[int, set[int]]:
    """SOLD seat ids per schedule, read through the gate by the auditor user (who joins the
    queue after the drop, like any fan, and leaves after reading)."""
    client, concert_id = auditor.client, auditor.concert_id
    try:
        if not await auditor._join_and_wait():
            raise DropError(f"the auditor waited more than {auditor.config.max_wait_s} s")
    except BoxOfficeError as exc:
        raise DropError(f"the auditor could not get in: {exc}") from exc
    sold: dict[int, set[int]] = {}
    schedules = await _setup("the auditor's dates", client.list_schedules(concert_id))
    for schedule in schedules:
        ids: set[int] = set()
        cursor: str | None = "0"
        while cursor is not None:
            page = await _setup(
                "the auditor's seat map",
                client.list_seats(schedule.id, status="SOLD", cursor=cursor, concert_id=concert_id),
            )
            ids |= {s.id for s in page.items}
            cursor = page.next_cursor
        sold[schedule.id] = ids
    await _setup("the auditor leaving", client.leave_queue(concert_id))
    return sold


def _check(checks: list[Check], name: str, ok: bool, detail: str) -> None:
    checks.append(Check(name, ok, detail))


@dataclass(frozen=True)
class _Observed:
    """What the consistency rules compare: the users' own reads (``u.reservations``,
    ``u.balance``) and what they saw succeed (payments, holds), the admin stats ``before`` and
    ``after`` the drop, the events since it began (``events_complete``: the server still had
    the first of them) and the seat map's SOLD seats per schedule. ``fresh``: the drop created
    the concert; on a concert that existed before, the stats are compared by difference."""

    users: list[_User]
    fresh: bool
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    events: list[dict[str, Any]]
    events_complete: bool
    sold_map: dict[int, set[int]]
    concert_id: int

    @property
    def payments(self) -> list[_Payment]:
        return [u.payment for u in self.users if u.payment is not None]

    @property
    def confirmed(self) -> list[dict[str, Any]]:
        return [r for u in self.users for r in u.reservations if r["status"] == "CONFIRMED"]

    @property
    def map_sold(self) -> set[int]:
        return set[int]().union(*self.sold_map.values())

    def delta(self, name: str) -> int:
        """How much a stats counter grew during the drop."""
        return int(self.after[name]) - int(self.before[name])


def _consistency(
    users: list[_User],
    fresh: bool,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    events: list[dict[str, Any]],
    events_complete: bool,
    sold_map: dict[int, set[int]],
    concert_id: int,
) -> list[Check]:
    """Every consistency rule (see the module docstring), in the report's order; the arguments
    are those of :class:`_Observed`."""
    observed = _Observed(users, fresh, before, after, events, events_complete, sold_map, concert_id)
    checks: list[Check] = []
    _seat_checks(checks, observed)
    _payment_checks(checks, observed)
    _event_checks(checks, observed)
    _wallet_checks(checks, observed)
    return checks


def _seat_checks(checks: list[Check], o: _Observed) -> None:
    """No seat sold twice; the seat map's SOLD seats, the stats and the CONFIRMED reservations
    name the same seats."""
    confirmed = o.confirmed
    seat_owners: Counter[int] = Counter(s for r in confirmed for s in r["seats"])
    confirmed_seats = set(seat_owners)
    map_sold = o.map_sold
    twice = sorted(s for s, n in seat_owners.items() if n > 1)
    _check(
        checks,
        "no seat sold twice",
        not twice,
        f"{len(confirmed_seats)} seats in {len(confirmed)} CONFIRMED reservations"
        + (f"; in two or more: {twice[:10]}" if twice else ""),
    )
    if o.fresh or int(o.before["seats_sold"]) == 0:
        extra, missing = sorted(map_sold - confirmed_seats), sorted(confirmed_seats - map_sold)
        _check(
            checks,
            "seat map SOLD = seats of CONFIRMED reservations",
            not extra and not missing,
            f"{len(map_sold)} SOLD, {len(confirmed_seats)} confirmed"
            + (f"; SOLD but not confirmed {extra[:10]}" if extra else "")
            + (f"; confirmed but not SOLD {missing[:10]}" if missing else ""),
        )
    else:
        missing = sorted(confirmed_seats - map_sold)
        _check(
            checks,
            "seats of CONFIRMED reservations are SOLD in the seat map",
            not missing and len(map_sold) - int(o.before["seats_sold"]) == len(confirmed_seats),
            f"{len(map_sold)} SOLD ({o.before['seats_sold']} before), "
            f"{len(confirmed_seats)} confirmed"
            + (f"; confirmed but not SOLD {missing[:10]}" if missing else ""),
        )
    _check(
        checks,
        "stats seats_sold = seat map SOLD",
        int(o.after["seats_sold"]) == len(map_sold),
        f"{o.after['seats_sold']} = {len(map_sold)}",
    )
    _check(
        checks,
        "stats seats_sold = seats of CONFIRMED reservations",
        o.delta("seats_sold") == len(confirmed_seats),
        f"{o.delta('seats_sold')} = {len(confirmed_seats)}",
    )


def _payment_checks(checks: list[Check], o: _Observed) -> None:
    """The CONFIRMED reservations are the payments the clients saw succeed, and the stats'
    revenue and payments (and the PaymentSucceeded events, when complete) add up to them."""
    payments, confirmed = o.payments, o.confirmed
    paid_ids = {p.reservation_id: p for p in payments}
    mismatched = [
        r["id"]
        for r in confirmed
        if r["id"] not in paid_ids or r["payment_id"] != paid_ids[r["id"]].id
    ]
    unconfirmed = sorted(set(paid_ids) - {int(r["id"]) for r in confirmed})
    _check(
        checks,
        "CONFIRMED reservations = successful payments",
        not mismatched and not unconfirmed,
        f"{len(confirmed)} confirmed, {len(payments)} paid"
        + (f"; confirmed without a payment seen {mismatched[:10]}" if mismatched else "")
        + (f"; paid but not confirmed {unconfirmed[:10]}" if unconfirmed else ""),
    )
    _check(
        checks,
        "stats reservations_confirmed = CONFIRMED reservations",
        o.delta("reservations_confirmed") == len(confirmed),
        f"{o.delta('reservations_confirmed')} = {len(confirmed)}",
    )
    client_revenue = sum(p.amount for p in payments)
    event_revenue = sum(int(e["amount"]) for e in _paid_events(o))
    if not o.events_complete:  # the server keeps only its newest events
        event_revenue = client_revenue
    _check(
        checks,
        "revenue = sum of successful payments",
        o.delta("revenue") == client_revenue == event_revenue,
        f"stats {o.delta('revenue'):,} = clients {client_revenue:,}"
        + (f" = events {event_revenue:,} won" if o.events_complete else " won"),
    )
    _check(
        checks,
        "payments: stats = clients",
        o.delta("payments") == len(payments),
        f"{o.delta('payments')} = {len(payments)}",
    )


def _our_events(o: _Observed) -> list[dict[str, Any]]:
    return [e for e in o.events if e["concert_id"] == o.concert_id]


def _paid_events(o: _Observed) -> list[dict[str, Any]]:
    return [e for e in _our_events(o) if e["type"] == "PaymentSucceeded"]


def _event_checks(checks: list[Check], o: _Observed) -> None:
    """The event feed names the payments and holds the clients saw (only when the server still
    keeps every event since the drop began)."""
    if not o.events_complete:
        _check(checks, "events", True, "not compared: the server no longer keeps the first ones")
        return
    payments, paid_events = o.payments, _paid_events(o)
    seen = {(p.id, p.reservation_id, p.amount) for p in payments}
    logged = {(int(e["value"]), int(e["reservation_id"]), int(e["amount"])) for e in paid_events}
    _check(
        checks,
        "PaymentSucceeded events = payments seen by clients",
        seen == logged,
        f"{len(paid_events)} = {len(payments)}"
        + (f"; differ: {sorted(seen ^ logged)[:5]}" if seen != logged else ""),
    )
    holds_seen = sum(len(u.holds) for u in o.users)
    held_events = sum(1 for e in _our_events(o) if e["type"] == "ReservationHeld")
    _check(
        checks,
        "ReservationHeld events = holds seen by clients",
        held_events == holds_seen if o.fresh else held_events >= holds_seen,
        f"{held_events} {'=' if o.fresh else '>='} {holds_seen}",
    )


def _wallet_checks(checks: list[Check], o: _Observed) -> None:
    """Seat counts add up to the total; each wallet holds its charges minus its payments; a
    payment retried with its Idempotency-Key answered the same payment."""
    after = o.after
    total = int(after["seats_available"]) + int(after["seats_held"]) + int(after["seats_sold"])
    _check(
        checks,
        "available + held + sold = seats_total",
        total == int(after["seats_total"]),
        f"{after['seats_available']} + {after['seats_held']} + {after['seats_sold']} = "
        f"{after['seats_total']}",
    )
    users = o.users
    off = [
        f"user {u.index}: {u.balance} != {u.charged - u.paid}"
        for u in users
        if u.balance is not None and u.balance != u.charged - u.paid
    ]
    unread = sum(1 for u in users if u.logged_in and u.balance is None)
    _check(
        checks,
        "balances = charges - payments",
        not off and not unread,
        f"{sum(1 for u in users if u.balance is not None)} wallets read"
        + (f"; {unread} unread" if unread else "")
        + (f"; {off[:5]}" if off else ""),
    )
    replays = [u.replay_ok for u in users if u.replay_ok is not None]
    _check(
        checks,
        "payment retried with its Idempotency-Key answers the same payment",
        all(replays),
        f"{sum(replays)}/{len(replays)} replays",
    )


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (0 < q <= 1)."""
    return values[max(math.ceil(q * len(values)) - 1, 0)]


def _endpoint_stats(rec: _Recorder) -> list[EndpointStats]:
    stats = []
    for route, seconds in rec.latencies.items():
        ms = sorted(s * 1000 for s in seconds)
        stats.append(
            EndpointStats(
                route,
                len(ms),
                rec.non_2xx[route],
                round(_percentile(ms, 0.5), 3),
                round(_percentile(ms, 0.9), 3),
                round(_percentile(ms, 0.99), 3),
                round(ms[-1], 3),
            )
        )
    return stats


# --- the drop ------------------------------------------------------------------------------


class _Progress:
    """The drop as it runs, on stderr (tqdm): one bar for the accounts, one for the sale, each
    counting users done, with the purchases and the answers that were not 2xx. Silent unless
    ``config.progress``."""

    def __init__(self, config: DropConfig, rec: _Recorder) -> None:
        self.config = config
        self.rec = rec
        self.purchases = 0
        self.bar: Any = None

    def start(self, what: str) -> None:
        """A new bar for the next phase (after the notices: they come first)."""
        self.close()
        if self.config.progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.config.users, unit="user", desc=what, file=sys.stderr, mininterval=0.5
            )

    def say(self, line: str) -> None:
        if self.config.progress:
            print(line, file=sys.stderr, flush=True)

    def user_done(self, user: _User) -> None:
        self.purchases += user.payment is not None
        if self.bar is not None:
            self.bar.set_postfix(purchases=self.purchases, errors=self.rec.errors, refresh=False)
            self.bar.update(1)

    async def refresh(self) -> None:
        """Refreshes the figures every second while users wait (none finishes then)."""
        while True:
            await asyncio.sleep(1.0)
            if self.bar is not None:
                self.bar.set_postfix(purchases=self.purchases, errors=self.rec.errors)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _hashing_notice(profile: str | None, sign_up_s: float, log_in_s: float) -> str:
    """What the server's password hashing costs, said before the users start (each of them
    signs up and logs in; the progress bar's rate shows what that adds up to)."""
    name = profile or "not named by this server"
    text = (
        f"boxoffice drop: the server hashes passwords with PASSWORD_HASH_PROFILE={name}: "
        f"one sign-up took {sign_up_s:.2f} s and one log-in {log_in_s:.2f} s here"
    )
    if profile != "cheapest":
        text += (
            "; every user signs up and logs in, so on a small machine hashing is most of the "
            "drop (a server started with BOXOFFICE_PASSWORD_HASH_PROFILE=cheapest measures "
            "the drop, not the hashing)"
        )
    return text


async def run_drop(config: DropConfig) -> DropResult:
    """Runs a drop against ``config.url`` and checks it (see the module docstring).

    Returns the result even when the check fails (``result.ok`` is False then).

    Raises:
        DropError: setup or read-back failed: the server did not answer, the admin key was
            refused (403 ``ADMIN_KEY_INVALID``), the concert is unknown, the auditor never got
            in.
        ImportError: the client's packages (httpx, tenacity) or tqdm are not installed.
    """
    import httpx

    from boxoffice.client import AsyncClient

    admin_key = config.admin_key or os.environ.get("BOXOFFICE_ADMIN_KEY")
    if not admin_key:
        raise DropError("an admin key is needed (--admin-key or BOXOFFICE_ADMIN_KEY)")
    shards = math.ceil(config.concurrency / _CONNECTIONS_PER_CLIENT)
    per_client = math.ceil(config.concurrency / shards)
    # Idle connections are dropped by the client before the server's keep-alive timeout (5 s
    # by default, httpx's own expiry too) can close them: a request sent on a connection the
    # server is closing at that moment is reset (ReadError) or unanswered, and polls of users
    # waiting a few seconds between phases hit that race under load.
    limits = httpx.Limits(
        max_connections=per_client,
        max_keepalive_connections=per_client,
        keepalive_expiry=_KEEPALIVE_EXPIRY_S,
    )
    timeout = httpx.Timeout(config.timeout_s, pool=None)
    tls = ssl.create_default_context()  # one for all clients: building one is slow
    run_id = secrets.token_hex(4)
    rec = _Recorder()
    progress = _Progress(config, rec)

    async def scaled_sleep(seconds: float) -> None:  # every server-given wait x poll_scale
        await asyncio.sleep(max(seconds * config.poll_scale, 0.01))

    async with contextlib.AsyncExitStack() as stack:
        stack.callback(progress.close)
        # Several small pools rather than one big one: httpcore scans the whole pool on every
        # request, which makes one pool of hundreds of connections slow on the client side.
        # Each pool lets as many requests in flight as it has connections (the limiter), so
        # the measured latency never includes waiting for a connection.
        pools = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=config.url, limits=limits, timeout=timeout, verify=tls)
            )
            for _ in range(shards)
        ]
        slots = [asyncio.Semaphore(per_client) for _ in pools]

        def client(shard: int, *, recorded: bool = True, **options: Any) -> AsyncClient:
            return AsyncClient(
                http=pools[shard % shards],
                limiter=slots[shard % shards],
                sleep=scaled_sleep,
                observe=rec.add if recorded else None,
                **options,
            )

        operator = client(0, recorded=False, admin_key=admin_key)
        health = await _setup("GET /healthz", operator.get_health())
        first_seq = health.last_event_seq
        fresh = config.concert_id is None
        if config.concert_id is None:
            created = await _setup(
                "POST /v1/admin/concerts", operator.create_concert(_concert_body(config))
            )
            concert_id = created.id
        else:
            concert_id = config.concert_id
        stats_route = "GET /v1/admin/concerts/{concert_id}/stats"
        before = asdict(await _setup(stats_route, operator.get_concert_stats(concert_id)))

        password_slots = asyncio.Semaphore(config.password_concurrency)

        def user(i: int, recorded: bool = True) -> _User:
            return _User(
                index=i,
                client=client(i, recorded=recorded),
                concert_id=concert_id,
                config=config,
                email=f"drop-{run_id}-{i}@example.com",
                rng=random.Random(f"{config.seed}:{i}"),
                password_slots=password_slots,
            )

        auditor = user(config.users, recorded=False)  # not in the figures
        clock = time.monotonic()
        await _setup("the auditor's sign-up", auditor.client.sign_up(auditor.email, PASSWORD))
        sign_up_s, clock = time.monotonic() - clock, time.monotonic()
        await _setup("the auditor's log-in", auditor.client.log_in(auditor.email, PASSWORD))
        log_in_s = time.monotonic() - clock
        auditor.logged_in = True
        progress.say(_hashing_notice(health.password_hash_profile, sign_up_s, log_in_s))
        concert = await _setup(
            "GET /v1/concerts/{concert_id}", auditor.client.get_concert(concert_id)
        )
        users = [user(i) for i in range(config.users)]
        for u in users:
            u.max_seats = concert.sale.max_seats_per_reservation

        async def open_account(u: _User) -> None:
            await u.open_account()
            progress.user_done(u)

        async def run_user(u: _User) -> None:
            await u.run(started)
            progress.user_done(u)

        # The accounts first (hashing-bound: password_concurrency at once), then the sale,
        # which every user joins at once (or over ramp_s), as fans do when it opens.
        started = time.monotonic()
        refresher = asyncio.create_task(progress.refresh())
        try:
            progress.start("accounts")
            await asyncio.gather(*(open_account(u) for u in users))
            accounts_s = time.monotonic() - started
            progress.start("users done")
            await asyncio.gather(*(run_user(u) for u in users))
        finally:
            refresher.cancel()
            progress.close()
        duration = time.monotonic() - started

        sold_map = await _audit_seat_map(auditor)
        after = asdict(await _setup(stats_route, operator.get_concert_stats(concert_id)))
        events = await _events(operator, first_seq)

    events_complete = not events or int(events[0]["seq"]) == first_seq + 1
    checks = _consistency(
        users, fresh, before, after, events, events_complete, sold_map, concert_id
    )
    purchases = [u for u in users if u.payment is not None]
    waits = sorted(w for u in users for w in u.waited_s)
    wait_stats = (
        {
            "p50": round(_percentile(waits, 0.5), 3),
            "p90": round(_percentile(waits, 0.9), 3),
            "max": round(waits[-1], 3),
        }
        if waits
        else {}
    )
    outcomes = Counter(u.outcome for u in users)
    last = max((u.purchased_at for u in users if u.purchased_at is not None), default=None)
    return DropResult(
        url=config.url,
        concert_id=concert_id,
        concert_created=fresh,
        users=config.users,
        concurrency=config.concurrency,
        seed=config.seed,
        password_hash_profile=health.password_hash_profile,
        sign_up_s=round(sign_up_s, 3),
        log_in_s=round(log_in_s, 3),
        duration_s=round(duration, 3),
        accounts_s=round(accounts_s, 3),
        requests=rec.requests,
        requests_per_s=round(rec.requests / duration, 1),
        purchases=len(purchases),
        purchases_per_s=round(len(purchases) / duration, 2),
        seats_bought=sum(
            len(r["seats"]) for u in users for r in u.reservations if r["status"] == "CONFIRMED"
        ),
        revenue=sum(u.paid for u in users),
        last_purchase_s=round(last, 3) if last is not None else None,
        outcomes={k: outcomes[k] for k in ("PURCHASED", "SOLD_OUT", "GAVE_UP", "FAILED")},
        queue_wait_s=wait_stats,
        endpoints=_endpoint_stats(rec),
        statuses=dict(sorted(rec.statuses.items())),
        errors=dict(rec.codes.most_common()),
        server_errors=sum(n for s, n in rec.statuses.items() if s.startswith("5")),
        failures=[u.failure for u in users if u.failure],
        consistency=ConsistencyReport(
            ok=all(c.ok for c in checks), checks=checks, stats=dict(after), events=len(events)
        ),
    )


# --- the command line ----------------------------------------------------------------------


# (flag, type, help) of the DropConfig fields the command line sets; the defaults are DropConfig's.
_OPTIONS: list[tuple[str, type, str]] = [
    ("--users", int, "virtual users"),
    ("--concurrency", int, "most requests in flight"),
    ("--concert-id", int, "the concert to sell (default: create a fresh one)"),
    ("--admin-key", str, "X-Admin-Key (default: $BOXOFFICE_ADMIN_KEY)"),
    ("--seats", int, "seats of a created concert"),
    ("--queue-capacity", int, "queue capacity of a created concert"),
    ("--hold-ttl-s", float, "hold TTL of a created concert"),
    ("--session-ttl-s", float, "session TTL of a created concert"),
    ("--seed", int, "seeds the users' choices"),
    ("--poll-scale", float, "factor on the server's poll_after_s and Retry-After (<1: faster)"),
    ("--ramp-s", float, "spread the users' starts over this many seconds"),
    ("--best-available-share", float, "share of holds asking for best-available seats"),
    ("--charge-amount", int, "won each user charges up front"),
    ("--max-wait-s", float, "a user still waiting after this many seconds leaves"),
    (
        "--password-concurrency",
        int,
        "sign-ups and log-ins in flight (the server's BOXOFFICE_PASSWORD_HASH_PER_CLIENT_MAX)",
    ),
    ("--timeout-s", float, "per-request timeout in seconds"),
]


def _field(flag: str) -> str:
    return flag[2:].replace("-", "_")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers ``drop`` on an ``argparse`` subparsers object, with
    ``set_defaults(run=f)``: ``f(args)`` runs the drop and answers the exit status, 0 when the
    consistency check passed, 1 when it failed, 2 when the drop could not run (bad options,
    server unreachable, admin key refused)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "drop",
        help="a live ticket drop over HTTP against a running server",
        description="A live ticket drop over HTTP against a running boxoffice server: N "
        "virtual users sign up, charge, queue, hold and pay; prints throughput, latency "
        "percentiles per endpoint, errors by code and a consistency check read back from the "
        "server. Says first which password-hash profile the server uses and what one sign-up "
        "costs; shows progress on stderr. Exit status 1 when the check fails.",
    )
    defaults = DropConfig(url="")
    p.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    for flag, kind, text in _OPTIONS:
        default = getattr(defaults, _field(flag))
        shown = f" (default {default})" if default is not None else ""
        p.add_argument(flag, type=kind, default=default, help=text + shown)
    # The earlier spelling still parses (not shown): the simulator's flag is --queue-capacity too.
    p.add_argument(
        "--capacity",
        dest="queue_capacity",
        type=int,
        help=argparse.SUPPRESS,
        default=argparse.SUPPRESS,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar and no password-hash notice on stderr",
    )
    p.set_defaults(run=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    try:
        config = DropConfig(
            url=args.url.rstrip("/"),
            progress=not args.no_progress,
            **{_field(f): getattr(args, _field(f)) for f, _, _ in _OPTIONS},
        )
    except ValueError as exc:
        print(f"boxoffice drop: {exc}", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(run_drop(config))
    except ImportError as exc:
        print(
            f"boxoffice drop needs the client and tqdm ({exc}): "
            "pip install 'boxoffice[client]' tqdm",
            file=sys.stderr,
        )
        return 2
    except DropError as exc:
        print(f"boxoffice drop: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.format())
    return 0 if result.ok else 1
