"""The exception tree of boxoffice: one class per stable error code.

Every error the engine reports carries a ``code`` (``"SEAT_UNAVAILABLE"``,
``"HOLD_EXPIRED"``, ...) that is the same string in C++, here, and in the HTTP layer's
RFC 9457 problem responses; ``http_status`` is the status that layer answers with. Both
come from one table, ``BOXOFFICE_ERROR_CODES`` in ``cpp/include/boxoffice/errors.h``,
which the extension exposes as ``boxoffice._core.ERROR_CODES``: a class here names its
``code`` and takes its ``http_status`` from that table (writing one by hand is a
``TypeError``), and ``tests/python/test_errors.py`` fails when a code of the table has no
class. The classes group by what the caller should do next (after ``absl::StatusCode``):
:class:`InvalidArgument` (fix the request, also a :class:`ValueError`), :class:`NotFound`
(also a :class:`LookupError`), :class:`Conflict` (the state forbids it; don't retry until
it changes), :class:`LimitExceeded` (a named limit was reached), :class:`PermissionDenied`
and :class:`StoreError` (the durable store cannot be used).

The C++ extension builds these in one place (``RefusalException`` in
``cpp/bindings/core_module.cc``): an instance of the class :func:`error_class` gives for the
code, with the slots ``BoxOfficeError.__init__`` sets filled in directly (a class with an
``__init__`` of its own is called with the message and, as keywords, the details).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ._core import ERROR_CODES as _CODE_TABLE

__all__ = [
    "BalanceLimitExceeded",
    "BoxOfficeError",
    "ConcertNotFound",
    "Conflict",
    "DataLoss",
    "HoldExpired",
    "IdempotencyKeyReused",
    "InsufficientBalance",
    "InternalError",
    "InvalidAmount",
    "InvalidArgument",
    "LimitExceeded",
    "NotFound",
    "PermissionDenied",
    "QueueFull",
    "QueueNotActive",
    "QueueTokenExpired",
    "QueueTokenInvalid",
    "ReservationNotConfirmed",
    "ReservationNotFound",
    "ReservationNotPending",
    "ScheduleNotFound",
    "SeatLimitPerUser",
    "SeatNotFound",
    "SeatNotInReservation",
    "SeatUnavailable",
    "StoreClosed",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "StoreVersionUnsupported",
    "TooManySeats",
    "UserNotFound",
    "error_class",
]

# code -> the class that raises it; filled as the classes below are defined.
_BY_CODE: dict[str, type[BoxOfficeError]] = {}


class BoxOfficeError(Exception):
    """Base of every boxoffice error.

    Attributes:
        code: the stable error code, e.g. ``"SEAT_UNAVAILABLE"``.
        http_status: the HTTP status the API layer answers with, from the C++ code table
            (``boxoffice._core.ERROR_CODES``). A family class whose ``code`` is not in the
            table (``NotFound``, ``Conflict``, ``PermissionDenied``, ``StoreError``) has the
            status of its family, used only when Python code raises it directly.
        message: a human-readable explanation.
        position: QUEUE_NOT_ACTIVE only: WAITING tokens ahead (``None`` if unknown).
        eta_s: QUEUE_NOT_ACTIVE only: estimated wait in seconds.
        seat_id: seat errors: the seat the error is about.
        retry_after_s: seconds after which a retry may succeed (queue errors).
    """

    # Slots, not the instance dict: the extension fills them without running __init__
    # (a refusal is a normal answer on the engine's hot path), and an exception with no
    # dict is cheaper to make and to free. __reduce__ keeps them through pickle and copy.
    __slots__ = ("eta_s", "message", "position", "retry_after_s", "seat_id")

    code: ClassVar[str] = "INTERNAL"
    http_status: ClassVar[int] = _CODE_TABLE["INTERNAL"][1]
    message: str
    position: int | None
    eta_s: float | None
    seat_id: int | None
    retry_after_s: float | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if not isinstance(code, str) or code not in _CODE_TABLE:
            return  # a family, or a subclass that keeps its parent's code
        row = _CODE_TABLE[code]
        if "http_status" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__}: the HTTP status of {code} is written in the C++ code table "
                "(cpp/include/boxoffice/errors.h), not here"
            )
        if code in _BY_CODE:
            raise TypeError(f"{cls.__name__}: {code} already has {_BY_CODE[code].__name__}")
        cls.http_status = row[1]
        _BY_CODE[code] = cls

    def __init__(
        self,
        message: str = "",
        *,
        position: int | None = None,
        eta_s: float | None = None,
        seat_id: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.eta_s = eta_s
        self.seat_id = seat_id
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException.__reduce__ carries only args and the instance dict, not slots.
        state = dict(self.__dict__)
        state.update((name, getattr(self, name)) for name in BoxOfficeError.__slots__)
        return type(self), self.args, state


class InternalError(BoxOfficeError):
    """A broken invariant or an unexpected state: a bug, never bad input."""

    code = "INTERNAL"


class InvalidArgument(BoxOfficeError, ValueError):
    """The request itself is wrong; fix it before retrying."""

    code = "INVALID_ARGUMENT"


class InvalidAmount(InvalidArgument):
    """A charge amount is not positive or above ``charge_amount_max``."""

    code = "INVALID_AMOUNT"


class TooManySeats(InvalidArgument):
    """More seats than the concert's ``max_seats_per_reservation``."""

    code = "TOO_MANY_SEATS"


class IdempotencyKeyReused(InvalidArgument):
    """The idempotency key was used before with a different request."""

    code = "IDEMPOTENCY_KEY_REUSED"


class NotFound(BoxOfficeError, LookupError):
    """Unknown id, or a resource that belongs to someone else (HTTP 404)."""

    code = "NOT_FOUND"  # a family, not a code of the table
    http_status = 404


class UserNotFound(NotFound):
    code = "USER_NOT_FOUND"


class ConcertNotFound(NotFound):
    code = "CONCERT_NOT_FOUND"


class ScheduleNotFound(NotFound):
    code = "SCHEDULE_NOT_FOUND"


class SeatNotFound(NotFound):
    code = "SEAT_NOT_FOUND"


class SeatNotInReservation(NotFound):
    code = "SEAT_NOT_IN_RESERVATION"


class ReservationNotFound(NotFound):
    code = "RESERVATION_NOT_FOUND"


class Conflict(BoxOfficeError):
    """The current state forbids the command; retry only after it changes (HTTP 409)."""

    code = "CONFLICT"  # a family, not a code of the table
    http_status = 409


class SeatUnavailable(Conflict):
    """A seat is HELD or SOLD (``seat_id`` names it), or no adjacent block is free."""

    code = "SEAT_UNAVAILABLE"


class HoldExpired(Conflict):
    """The reservation passed ``expires_at``; its seats were released."""

    code = "HOLD_EXPIRED"


class ReservationNotPending(Conflict):
    """The reservation is already CONFIRMED, CANCELED or REFUNDED."""

    code = "RESERVATION_NOT_PENDING"


class ReservationNotConfirmed(Conflict):
    """Only a CONFIRMED reservation can be refunded."""

    code = "RESERVATION_NOT_CONFIRMED"


class InsufficientBalance(Conflict):
    """The wallet holds less than the reservation's amount."""

    code = "INSUFFICIENT_BALANCE"


class LimitExceeded(BoxOfficeError):
    """A named limit of the engine was reached (see ``boxoffice.Limits``)."""

    code = "LIMIT_EXCEEDED"


class BalanceLimitExceeded(LimitExceeded):
    """The charge would raise the balance above ``balance_max``."""

    code = "BALANCE_LIMIT_EXCEEDED"


class SeatLimitPerUser(LimitExceeded):
    """The user would hold or own more than ``max_seats_per_user`` seats of the concert."""

    code = "SEAT_LIMIT_PER_USER"


class QueueFull(LimitExceeded):
    """The admission queue reached ``queue_length_max`` live tokens; retry later."""

    code = "QUEUE_FULL"


class StoreError(BoxOfficeError):
    """The durable store cannot be used right now (HTTP 503)."""

    code = "STORE_ERROR"  # a family, not a code of the table
    http_status = 503


class StoreUnavailable(StoreError):
    """The store's directory is missing or not writable, or an I/O error occurred."""

    code = "STORE_UNAVAILABLE"


class StoreLocked(StoreError):
    """Another process (or engine) has the store open for writing."""

    code = "STORE_LOCKED"


class StoreVersionUnsupported(StoreError):
    """The store was written by a newer boxoffice; upgrade to open it."""

    code = "STORE_VERSION_UNSUPPORTED"


class StoreClosed(StoreError):
    """The engine's store was closed (or the engine is in memory only)."""

    code = "STORE_CLOSED"


class DataLoss(BoxOfficeError):
    """The store is damaged beyond a torn tail (a checksum failed in the middle)."""

    code = "DATA_LOSS"


class PermissionDenied(BoxOfficeError):
    """The gate refuses the request (HTTP 403)."""

    code = "PERMISSION_DENIED"  # a family, not a code of the table
    http_status = 403


class QueueTokenInvalid(PermissionDenied):
    """The queue token is unknown or names another user or concert."""

    code = "QUEUE_TOKEN_INVALID"


class QueueNotActive(Conflict):
    """The queue token is still WAITING; ``position`` and ``eta_s`` say how long."""

    code = "QUEUE_NOT_ACTIVE"


class QueueTokenExpired(Conflict):
    """The queue token is EXPIRED (left, abandoned, session over or completed)."""

    code = "QUEUE_TOKEN_EXPIRED"


def error_class(code: str) -> type[BoxOfficeError]:
    """The exception class for a stable error ``code`` (``InternalError`` if unknown)."""
    return _BY_CODE.get(code, InternalError)
