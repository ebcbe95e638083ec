"""Request and response bodies of HTTP API v1 (JSON, snake_case, RFC 3339 UTC, integer won).

Numbers are bounded only to the engine's 64-bit range here; every domain rule (minimums,
named limits, amounts) is the engine's, so its error codes reach the client unchanged
(``INVALID_AMOUNT`` for a zero charge, ``TOO_MANY_SEATS``, ``LIMIT_EXCEEDED``, ...).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Generic, Literal, Self, TypeVar, overload

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    model_validator,
)

import boxoffice as bo

# The engine's named limits, as a new engine has them (a server's store is created with these
# text and key limits): the request schemas' bounds come from here, so the HTTP layer and the
# engine cannot disagree.
ENGINE_LIMITS = bo.Limits()

Text = Annotated[str, Field(max_length=ENGINE_LIMITS.text_length_max)]
"""Catalog text (title, artist, venue, section name, grade). JSON Schema counts characters,
the engine bytes of UTF-8: text within this many characters but beyond as many bytes
(non-ASCII) is refused by the engine, also with 422 ``INVALID_ARGUMENT``."""

# Strict: a JSON string or float is refused for an integer (money is integer won), a string for
# a number, anything but true/false for a flag.
I64 = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
Id = Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]
Seconds = Annotated[StrictFloat, Field(allow_inf_nan=False, ge=-1e11, le=1e11)]

# JSON Schema's date-time (RFC 3339 section 5.6): pydantic alone would also take a number or a
# numeric string ("0.5") as seconds since the epoch, which the document does not allow.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
# The validation context of responses read from the engine, whose times are epoch seconds.
FROM_ENGINE = {"from_engine": True}


def _rfc3339(value: object, info: ValidationInfo) -> object:
    if isinstance(value, datetime):
        return value
    from_engine = isinstance(info.context, dict) and info.context.get("from_engine")
    if from_engine and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        return value
    raise ValueError("expected an RFC 3339 date-time with a time zone, e.g. 2027-03-01T19:00:00Z")


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
"""An aware date-time given as RFC 3339 text (``2027-03-01T19:00:00Z``, ``…+09:00``)."""


@overload
def utc(seconds: float) -> datetime: ...
@overload
def utc(seconds: None) -> None: ...
def utc(seconds: float | None) -> datetime | None:
    """Engine seconds since the epoch → an aware UTC datetime (None stays None)."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def seconds_of(when: datetime | None) -> float | None:
    """An aware datetime → seconds since the epoch for the engine (None stays None)."""
    return None if when is None else when.timestamp()


class Strict(BaseModel):
    """A request body: unknown fields are refused (422)."""

    model_config = ConfigDict(extra="forbid")


class EngineView(BaseModel):
    """A response read from the engine object with the same field names: ``X.of(obj)``.

    Times arrive as float seconds since the epoch and become UTC datetimes (RFC 3339 ``Z`` in
    JSON); pydantic reads epoch numbers exactly as ``datetime.fromtimestamp(t, UTC)``.
    """

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, engine_object: object) -> Self:
        return cls.model_validate(engine_object, context=FROM_ENGINE)


def _zero_is_none(value: object) -> object:
    return value or None


IdOrNone = Annotated[int | None, BeforeValidator(_zero_is_none)]  # the engine's 0 = no id


# --- accounts ---------------------------------------------------------------------------


Email = Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]


class SignUp(Strict):
    """Email and a new password (8..256 characters, and hard enough to guess: see
    ``BOXOFFICE_PASSWORD_MIN_SCORE``)."""

    # Examples (here and below) show in /docs, and schemathesis sends them first.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": "fan@example.com", "password": "correct horse"}]},
    )

    email: Email
    password: Annotated[str, Field(min_length=8, max_length=256)]


class Credentials(Strict):
    """Email and password, for log-in. The password has no length rule here: a password that
    is not the account's, whatever its length, is 401 ``INVALID_CREDENTIALS``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": "fan@example.com", "password": "correct horse"}]},
    )

    email: Email
    password: str


class UserOut(BaseModel):
    """An account."""

    id: int
    email: str
    created_at: datetime


class AccessToken(BaseModel):
    """An access JWT: send it as ``Authorization: Bearer <access_token>``."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


# --- catalog ----------------------------------------------------------------------------


class SectionIn(Strict):
    """A block of a seat map: ``rows`` x ``seats_per_row`` seats of one grade and price."""

    name: Annotated[Text, Field(min_length=1)]
    rows: I64
    seats_per_row: I64
    grade: Annotated[Text, Field(min_length=1)]
    price: I64 = Field(description="Won per seat.")


class ScheduleIn(Strict):
    """One performance date with its seat map."""

    starts_at: Timestamp
    sections: list[SectionIn] = Field(
        min_length=1, max_length=ENGINE_LIMITS.sections_per_schedule_max
    )


def _without_default(schema: dict[str, JsonValue]) -> None:
    # For a default that follows another field (set by a validator): "default": null in the
    # document would tell clients the opposite of what an omitted field means.
    schema.pop("default", None)


def default_max_seats_per_user(max_seats_per_reservation: int) -> int | None:
    """The cap on a user's held + sold seats of a concert when its sale does not say: two
    full reservations (a fan buying for a group, or holding again after a hold ran out), not
    a hall's worth (without a cap, one account held a whole 2,400-seat schedule in 0.9 s).

    Follows ``max_seats_per_reservation`` so that a concert allowing bigger reservations
    still allows two of them; ``None`` when that field is itself out of range (its own
    error answers the request)."""
    if not 1 <= max_seats_per_reservation <= 2**62:
        return None
    return 2 * max_seats_per_reservation


class Sale(Strict):
    """Sale settings; by default capacity 200, session 10 min, hold 5 min."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    opens_at: Timestamp | None = Field(
        None, description="Before it, joiners enter a pre-queue shuffled at opening."
    )
    queue_capacity: I64 = Field(200, description="Most ACTIVE tokens at once.")
    admission_per_minute: I64 | None = Field(None, description="Cap on new admissions.")
    session_ttl_s: Seconds = 600.0
    hold_ttl_s: Seconds = 300.0
    max_seats_per_reservation: I64 = 4
    max_seats_per_user: I64 | None = Field(
        None,
        description="Held + sold seats per user in this concert (all its schedules); a hold "
        "beyond is 409 SEAT_LIMIT_PER_USER. Omitted: 2 x max_seats_per_reservation (8 with "
        "the default 4). An explicit null means no cap.",
        json_schema_extra=_without_default,
    )
    release_on_payment_failure: StrictBool = False
    abandon_timeout_s: Seconds = 60.0
    poll_interval_s: Seconds = 5.0

    @model_validator(mode="after")
    def _default_max_seats_per_user(self) -> Self:
        if "max_seats_per_user" not in self.model_fields_set:
            self.max_seats_per_user = default_max_seats_per_user(self.max_seats_per_reservation)
        return self

    def to_engine(self) -> bo.SaleSettings:
        return bo.SaleSettings(
            opens_at=seconds_of(self.opens_at),
            queue_capacity=self.queue_capacity,
            admission_per_minute=self.admission_per_minute,
            session_ttl_s=self.session_ttl_s,
            hold_ttl_s=self.hold_ttl_s,
            max_seats_per_reservation=self.max_seats_per_reservation,
            max_seats_per_user=self.max_seats_per_user,
            release_on_payment_failure=self.release_on_payment_failure,
            abandon_timeout_s=self.abandon_timeout_s,
            poll_interval_s=self.poll_interval_s,
        )

    @classmethod
    def of(cls, s: bo.SaleSettings) -> Sale:
        return cls.model_validate(s, context=FROM_ENGINE)


class ConcertIn(Strict):
    """A concert to create: catalog text, schedules with seat maps, sale settings."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "IU 2027 World Tour",
                    "artist": "IU",
                    "venue": "KSPO Dome",
                    "schedules": [
                        {
                            "starts_at": "2027-03-01T19:00:00Z",
                            "sections": [
                                {
                                    "name": "A",
                                    "rows": 10,
                                    "seats_per_row": 20,
                                    "grade": "VIP",
                                    "price": 165000,
                                }
                            ],
                        }
                    ],
                    "sale": {"queue_capacity": 200, "hold_ttl_s": 300},
                }
            ]
        },
    )

    title: Annotated[Text, Field(min_length=1)]
    artist: Text = ""
    venue: Text = ""
    schedules: list[ScheduleIn] = Field(
        min_length=1, max_length=ENGINE_LIMITS.schedules_per_concert_max
    )
    sale: Sale = Field(default_factory=Sale)


class ScheduleOut(EngineView):
    """One performance date with its seat counts."""

    id: int
    concert_id: int
    starts_at: datetime
    seats_total: int
    seats_available: int


class ConcertOut(EngineView):
    """A concert with its schedules and sale settings."""

    id: int
    title: str
    artist: str
    venue: str
    grades: list[str]
    schedules: list[ScheduleOut]
    sale: Sale
    created_at: datetime


class SeatOut(EngineView):
    """One seat of a schedule."""

    id: int
    schedule_id: int
    label: str = Field(description="section-row-number, e.g. A-1-7.")
    section: str
    row: int
    number: int
    grade: str
    price: int
    status: Literal["AVAILABLE", "HELD", "SOLD"]


# --- queue ------------------------------------------------------------------------------


class QueueStatus(BaseModel):
    """A queue token's status: WAITING with position and ETA, ACTIVE, or EXPIRED."""

    token_id: int
    concert_id: int
    status: Literal["WAITING", "ACTIVE", "EXPIRED"]
    position: int | None = Field(description="WAITING only: tokens ahead (0 = next).")
    eta_s: float | None = Field(description="WAITING only: estimated wait in seconds.")
    poll_after_s: float = Field(description="Poll again after this many seconds.")
    expires_at: datetime | None = Field(description="ACTIVE: when the session ends.")
    ended_reason: Literal["LEFT", "ABANDONED", "SESSION_EXPIRED", "COMPLETED"] | None

    @classmethod
    def of(cls, t: bo.QueueToken) -> QueueStatus:
        return cls(
            token_id=t.id,
            concert_id=t.concert_id,
            status=t.status,
            position=t.position,
            eta_s=t.eta_s,
            poll_after_s=t.poll_after_s,
            expires_at=utc(t.expires_at),
            ended_reason=t.ended_reason,
        )


class QueueJoined(QueueStatus):
    """The answer to joining: the token's status and the signed queue token."""

    queue_token: str = Field(description="Send it as X-Queue-Token on gated requests.")


# --- reservations and payments ----------------------------------------------------------


class HoldIn(Strict):
    """Either ``seat_ids`` or ``quantity`` (best-available adjacent seats, optional grade)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"schedule_id": 1, "seat_ids": [3, 4]},
                {"schedule_id": 1, "quantity": 2, "grade": "VIP"},
            ]
        },
    )

    # Which of the two ways a request takes, and what goes with which, is the engine's rule
    # (422 INVALID_ARGUMENT from the engine: docs/engine-rules.md, "Hold seats").
    schedule_id: Id
    seat_ids: list[Id] | None = Field(None, max_length=1024)
    quantity: I64 | None = None
    grade: Text = ""


class ReservationOut(BaseModel):
    """Seats held by one user: PENDING until ``expires_at``, then CONFIRMED, EXPIRED,
    CANCELED or REFUNDED."""

    id: int
    status: Literal["PENDING", "CONFIRMED", "EXPIRED", "CANCELED", "REFUNDED"]
    concert_id: int
    schedule_id: int
    seats: list[int] = Field(description="Seat ids.")
    amount: int = Field(description="Won.")
    created_at: datetime
    expires_at: datetime = Field(description="A PENDING hold ends here.")
    ended_at: datetime | None
    payment_id: int | None

    @classmethod
    def of(cls, r: bo.Reservation) -> ReservationOut:
        return cls(
            id=r.id,
            status=r.status,
            concert_id=r.concert_id,
            schedule_id=r.schedule_id,
            seats=r.seat_ids,
            amount=r.amount,
            created_at=utc(r.created_at),
            expires_at=utc(r.expires_at),
            ended_at=utc(r.ended_at),
            payment_id=r.payment_id,
        )


class PaymentIn(Strict):
    """The reservation to pay."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reservation_id": 1}]}
    )

    reservation_id: Id


class PaymentOut(BaseModel):
    """A payment, with the wallet balance after it."""

    id: int
    reservation_id: int
    amount: int = Field(description="Won.")
    status: Literal["SUCCEEDED", "REFUNDED"]
    paid_at: datetime
    balance: int = Field(description="The wallet balance right after the payment, won.")

    @classmethod
    def of(cls, p: bo.Payment) -> PaymentOut:
        return cls(
            id=p.id,
            reservation_id=p.reservation_id,
            amount=p.amount,
            status=p.status,
            paid_at=utc(p.paid_at),
            balance=p.balance_after,
        )


class ChargeIn(Strict):
    """A wallet top-up."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"amount": 50000}]})

    amount: I64 = Field(description="Won; at least 1 and at most the per-charge limit.")


class BalanceOut(BaseModel):
    """A wallet balance."""

    user_id: int
    balance: int = Field(description="Won.")


class ChargeOut(BaseModel):
    """A charge, with the new balance."""

    id: int = Field(description="The history entry of this charge.")
    amount: int
    balance: int = Field(description="The new balance, won.")
    charged_at: datetime


class HistoryEntryOut(EngineView):
    """One wallet history entry (CHARGE, PAYMENT or REFUND), amounts in won."""

    id: int
    kind: Literal["CHARGE", "PAYMENT", "REFUND"]
    amount: int
    balance_after: int
    at: datetime
    reservation_id: int | None


# --- operators --------------------------------------------------------------------------


class StatsOut(EngineView):
    """The operator's view of one concert."""

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
    revenue: int = Field(description="Won.")


class EventOut(EngineView):
    """One domain event of the journal, numbered by ``seq``."""

    seq: int
    type: str
    at: datetime
    user_id: IdOrNone
    concert_id: IdOrNone
    token_id: IdOrNone
    reservation_id: IdOrNone
    amount: int = Field(description="Won, for money events (0 otherwise).")
    value: int = Field(description="Event-specific number (docs/engine-rules.md), e.g. a balance.")


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A list: ``items``, and ``next_cursor`` where the list is paged."""

    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as the cursor for the next page.")


class ReplicaHealth(BaseModel):
    """One replica as its last report shows it (cluster mode)."""

    name: str
    applied_seq: int = Field(description="The last command-log sequence it applied.")
    lag: int = Field(description="Log messages it has not applied yet (0: up to date).")
    age_s: float = Field(description="Seconds since its last report (one per second).")


class ClusterHealth(BaseModel):
    """The shard a cluster worker serves: the command log's head and the replicas."""

    shard: str
    log_last_seq: int = Field(description="The command log's last sequence.")
    replicas: list[ReplicaHealth]


class Health(BaseModel):
    """Liveness: the store accepts commands."""

    status: Literal["ok"]
    last_event_seq: int = Field(description="The last domain event's sequence number.")
    concerts: int
    users: int
    password_hash_profile: str = Field(
        description="The argon2id parameters of BOXOFFICE_PASSWORD_HASH_PROFILE: what each "
        "sign-up and log-in costs the server (rfc9106_low_memory: t=3, 64 MiB)."
    )
    test_clock: bool | None = Field(
        None,
        description="Present, and true, only when the server runs in test mode "
        "(BOXOFFICE_TEST_CLOCK): its clock is moved forward by POST /v1/admin/test-clock.",
    )
    cluster: ClusterHealth | None = Field(
        None, description="Present only on a cluster worker (BOXOFFICE_CLUSTER)."
    )


# --- test mode (BOXOFFICE_TEST_CLOCK) ---------------------------------------------------------

TEST_CLOCK_ADVANCE_MAX_S = 10 * 366 * 86_400  # ten years in one step: far past any TTL


class ClockAdvance(Strict):
    """How far to move the test clock forward, in seconds (0 reads it)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"seconds": 301}]})

    seconds: Annotated[float, Field(ge=0, le=TEST_CLOCK_ADVANCE_MAX_S, allow_inf_nan=False)]


class ClockOut(BaseModel):
    """The server's test clock."""

    now: datetime = Field(description="The server's time now, RFC 3339 UTC.")
    offset_s: float = Field(description="How far it is ahead of the wall clock, seconds.")
