"""What the HTTP API answers, as typed values (frozen dataclasses).

Field names, units and meanings are the API's (``docs/http-api.md``, "Response objects"):
money in whole won (``int``), durations in seconds (``float``, names ending ``_s``), times as
timezone-aware :class:`datetime.datetime` in UTC, ids as ``int``. A field the server adds in a
later version is ignored, so an older client keeps working against a newer server.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

__all__ = [
    "AccessToken",
    "Balance",
    "Charge",
    "Concert",
    "Event",
    "HistoryEntry",
    "Page",
    "Payment",
    "QueueStatus",
    "Reservation",
    "Sale",
    "Schedule",
    "Seat",
    "ServerHealth",
    "Stats",
    "TestClock",
    "User",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class User:
    """An account: ``POST /v1/users``, ``GET /v1/me``."""

    id: int
    email: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AccessToken:
    """The log-in answer; ``expires_in`` in seconds."""

    access_token: str
    token_type: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class Sale:
    """A concert's sale settings (``POST /v1/admin/concerts``'s ``sale``)."""

    opens_at: datetime | None
    queue_capacity: int
    admission_per_minute: int | None
    session_ttl_s: float
    hold_ttl_s: float
    max_seats_per_reservation: int
    max_seats_per_user: int | None
    release_on_payment_failure: bool
    abandon_timeout_s: float
    poll_interval_s: float


@dataclass(frozen=True, slots=True)
class Schedule:
    """One performance of a concert, with its seat counts."""

    id: int
    concert_id: int
    starts_at: datetime
    seats_total: int
    seats_available: int


@dataclass(frozen=True, slots=True)
class Concert:
    """A concert with its schedules and sale settings; ``grades`` in seat-map order."""

    id: int
    title: str
    artist: str
    venue: str
    grades: list[str]
    schedules: list[Schedule]
    sale: Sale
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Seat:
    """One seat of a schedule; ``label`` is ``section-row-number``, ``price`` in won."""

    id: int
    schedule_id: int
    label: str
    section: str
    row: int
    number: int
    grade: str
    price: int
    status: Literal["AVAILABLE", "HELD", "SOLD"]


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """A queue token's state. ``position`` (tokens ahead, 0 = next) and ``eta_s`` while
    WAITING; ``expires_at`` (the session's end) while ACTIVE; ``ended_reason`` once EXPIRED;
    ``poll_after_s`` always. ``queue_token`` (the ``X-Queue-Token`` value) only in a join's
    answer, ``None`` in a poll's."""

    token_id: int
    concert_id: int
    status: Literal["WAITING", "ACTIVE", "EXPIRED"]
    position: int | None
    eta_s: float | None
    poll_after_s: float
    expires_at: datetime | None
    ended_reason: Literal["LEFT", "ABANDONED", "SESSION_EXPIRED", "COMPLETED"] | None
    queue_token: str | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    """Seats held by one user: PENDING until ``expires_at``, then CONFIRMED, EXPIRED,
    CANCELED or REFUNDED. ``seats`` are seat ids, ``amount`` in won."""

    id: int
    status: Literal["PENDING", "CONFIRMED", "EXPIRED", "CANCELED", "REFUNDED"]
    concert_id: int
    schedule_id: int
    seats: list[int]
    amount: int
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    payment_id: int | None


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment; ``balance`` is the wallet right after it, in won."""

    id: int
    reservation_id: int
    amount: int
    status: Literal["SUCCEEDED", "REFUNDED"]
    paid_at: datetime
    balance: int


@dataclass(frozen=True, slots=True)
class Charge:
    """A charge of the wallet: ``id`` of its history entry, ``balance`` after it, in won."""

    id: int
    amount: int
    balance: int
    charged_at: datetime


@dataclass(frozen=True, slots=True)
class Balance:
    """The wallet of ``user_id``, in won."""

    user_id: int
    balance: int


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One wallet entry; ``amount`` is positive, ``kind`` gives the direction."""

    id: int
    kind: Literal["CHARGE", "PAYMENT", "REFUND"]
    amount: int
    balance_after: int
    at: datetime
    reservation_id: int | None


@dataclass(frozen=True, slots=True)
class Stats:
    """An operator's view of one concert (``GET /v1/admin/concerts/{id}/stats``)."""

    concert_id: int
    queue_waiting: int
    queue_active: int
    queue_joined_total: int
    queue_admitted_total: int
    queue_abandoned_total: int
    seats_total: int
    seats_available: int
    seats_held: int
    seats_sold: int
    reservations_pending: int
    reservations_confirmed: int
    reservations_expired: int
    reservations_canceled: int
    reservations_refunded: int
    payments: int
    revenue: int


@dataclass(frozen=True, slots=True)
class Event:
    """A domain event of the journal (``docs/http-api.md``, "Events")."""

    seq: int
    type: str
    at: datetime
    user_id: int | None
    concert_id: int | None
    token_id: int | None
    reservation_id: int | None
    amount: int
    value: int


@dataclass(frozen=True, slots=True)
class ServerHealth:
    """``GET /healthz``: the store accepts commands. ``password_hash_profile`` names the
    argon2id parameters sign-ups and log-ins cost (``None`` from a server that does not say);
    ``test_clock`` is True on a server in test mode only."""

    status: str
    last_event_seq: int
    concerts: int
    users: int
    password_hash_profile: str | None = None
    test_clock: bool | None = None


@dataclass(frozen=True, slots=True)
class TestClock:
    """A test-mode server's clock: its time ``now`` and ``offset_s`` ahead of the wall clock."""

    __test__ = False  # not a test class for pytest, whatever its name

    now: datetime
    offset_s: float


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a paged list; pass ``next_cursor`` back for the next (``None``: the last)."""

    items: list[T]
    next_cursor: str | None


def parse(kind: Any, data: Any) -> Any:
    """``data`` (decoded JSON) as a value of ``kind``: a dataclass above, ``list[X]``,
    ``X | None``, ``datetime`` (RFC 3339) or a plain JSON type (taken as it is).

    Raises:
        TypeError: a field the dataclass requires is missing.
    """
    origin = typing.get_origin(kind)
    if origin is typing.Union or origin is types.UnionType:
        if data is None:
            return None
        (inner,) = [a for a in typing.get_args(kind) if a is not type(None)]
        return parse(inner, data)
    if origin is list:
        (inner,) = typing.get_args(kind)
        return [parse(inner, item) for item in data]
    if kind is datetime:
        return datetime.fromisoformat(data)
    target = origin or kind
    if isinstance(target, type) and dataclasses.is_dataclass(target):
        hints = _hints(target)
        if origin is not None:  # Page[Seat]: the item type stands for T
            hints = hints | {"items": types.GenericAlias(list, typing.get_args(kind))}
        known = {f.name for f in dataclasses.fields(target)}
        return target(**{k: parse(hints[k], v) for k, v in data.items() if k in known})
    return data


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)
