"""Typed stubs of the C++ extension ``boxoffice._core`` (checked by mypy and by tests)."""

from collections.abc import Sequence
from typing import Any, Literal

from typing_extensions import Buffer

TokenStatusName = Literal["WAITING", "ACTIVE", "EXPIRED"]
TokenEndName = Literal["LEFT", "ABANDONED", "SESSION_EXPIRED", "COMPLETED"]
SeatStatusName = Literal["AVAILABLE", "HELD", "SOLD"]
ReservationStatusName = Literal["PENDING", "CONFIRMED", "EXPIRED", "CANCELED", "REFUNDED"]
PaymentStatusName = Literal["SUCCEEDED", "REFUNDED"]
EntryKindName = Literal["CHARGE", "PAYMENT", "REFUND"]

ERROR_CODES: dict[str, tuple[str, int, int]]
"""Every stable error code -> (absl status code name, HTTP status, batch result code)."""
OPS: dict[str, int]
"""Op name -> its value: the journal record type, ``COMMAND_DTYPE['op']`` and ``batch.Op``."""

def encode_command(
    op: str,
    *,
    now: float,
    user: int = 0,
    token: int = 0,
    target: int = 0,
    arg: int = 0,
    quantity: int = 0,
    grade: str = "",
    key: str = "",
    seats: Sequence[int] = (),
    concert: tuple[str, str, str, Sequence[ScheduleSpec], SaleSettings | None] | None = None,
) -> bytes:
    """One command in its wire (and journal) encoding; see ``boxoffice.commands``."""

def decode_result(data: bytes) -> tuple[str, object, Exception | None]:
    """An encoded result as ``(code, value or None, exception or None)``; DataLoss if malformed."""

def journal_records(path: str) -> tuple[int, list[bytes]]:
    """Every record still in the journal of the store file at ``path``, in sequence order.

    Returns ``(first_seq, records)``: ``first_seq`` is the seq of ``records[0]`` (the last seq
    plus one when there are none). It is 1 unless a snapshot compacted the journal, which then
    starts just after the newest snapshot. Opens the journal as its writer (it takes the
    store's lock): pass a copy of a store a server has open
    (``boxoffice.sim.copy_store``). Raises StoreUnavailable (no such file), StoreLocked,
    StoreVersionUnsupported, DataLoss.
    """

def decode_record(record: bytes) -> dict[str, Any]:
    """One journal record (``cpp/include/boxoffice/command.h``) as a dict.

    Keys: ``type`` (``ADVANCE``, ``CREATE_USER``, ``CREATE_CONCERT``, ``JOIN``, ``STATUS``,
    ``LEAVE``, ``GATE``, ``HOLD``, ``RELEASE_SEAT``, ``CANCEL``, ``CHARGE``, ``PAY``,
    ``REFUND``, or ``BATCH`` for a record of a journal written before the one command path),
    ``op`` (for ``BATCH``: the batch op name of that time, e.g. ``HOLD_BEST``; else None),
    ``now`` (float seconds, as the caller gave it), ``user``, ``token``,
    ``target`` (concert, schedule or reservation, by type), ``arg`` (seat or amount),
    ``quantity``, ``grade`` (a name; "" for BATCH), ``grade_index`` (BATCH: 0 = any, k = the
    concert's k-th grade), ``key`` (the idempotency key, "" if none) and ``seats`` (HOLD).
    Raises DataLoss for a malformed record.
    """

class Limits:
    users_max: int
    concerts_max: int
    schedules_per_concert_max: int
    sections_per_schedule_max: int
    seats_per_schedule_max: int
    rows_per_section_max: int
    seats_per_row_max: int
    seats_per_reservation_max: int
    queue_length_max: int
    queue_capacity_max: int
    price_max: int
    charge_amount_max: int
    balance_max: int
    text_length_max: int
    idempotency_key_length_max: int
    idempotency_ttl_s: float
    event_retention_max: int
    list_limit_max: int
    def __init__(self, **kwargs: int | float) -> None: ...

class SaleSettings:
    opens_at: float | None
    queue_capacity: int
    admission_per_minute: int | None
    session_ttl_s: float
    hold_ttl_s: float
    max_seats_per_reservation: int
    max_seats_per_user: int | None
    release_on_payment_failure: bool
    abandon_timeout_s: float
    poll_interval_s: float
    def __init__(
        self,
        *,
        opens_at: float | None = None,
        queue_capacity: int = 200,
        admission_per_minute: int | None = None,
        session_ttl_s: float = 600.0,
        hold_ttl_s: float = 300.0,
        max_seats_per_reservation: int = 4,
        max_seats_per_user: int | None = None,
        release_on_payment_failure: bool = False,
        abandon_timeout_s: float = 60.0,
        poll_interval_s: float = 5.0,
    ) -> None: ...

class SectionSpec:
    name: str
    rows: int
    seats_per_row: int
    grade: str
    price: int
    def __init__(
        self, name: str, rows: int, seats_per_row: int, grade: str, price: int
    ) -> None: ...

class ScheduleSpec:
    starts_at: float
    sections: list[SectionSpec]
    def __init__(self, starts_at: float, sections: Sequence[SectionSpec]) -> None: ...

class Schedule:
    @property
    def id(self) -> int: ...
    @property
    def concert_id(self) -> int: ...
    @property
    def starts_at(self) -> float: ...
    @property
    def seats_total(self) -> int: ...
    @property
    def seats_available(self) -> int: ...
    @property
    def seats_held(self) -> int: ...
    @property
    def seats_sold(self) -> int: ...

class Concert:
    @property
    def id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def artist(self) -> str: ...
    @property
    def venue(self) -> str: ...
    @property
    def sale(self) -> SaleSettings: ...
    @property
    def grades(self) -> list[str]: ...
    @property
    def schedules(self) -> list[Schedule]: ...
    @property
    def created_at(self) -> float: ...

class Seat:
    @property
    def id(self) -> int: ...
    @property
    def schedule_id(self) -> int: ...
    @property
    def label(self) -> str: ...
    @property
    def section(self) -> str: ...
    @property
    def row(self) -> int: ...
    @property
    def number(self) -> int: ...
    @property
    def grade(self) -> str: ...
    @property
    def price(self) -> int: ...
    @property
    def status(self) -> SeatStatusName: ...

class QueueToken:
    @property
    def id(self) -> int: ...
    @property
    def user_id(self) -> int: ...
    @property
    def concert_id(self) -> int: ...
    @property
    def status(self) -> TokenStatusName: ...
    @property
    def join_seq(self) -> int | None:
        """The order of admission (0 = first to join the opened queue); None in the pre-queue.
        A :class:`QueueDigest` answers a poll from it."""
    @property
    def ended_reason(self) -> TokenEndName | None: ...
    @property
    def position(self) -> int | None: ...
    @property
    def eta_s(self) -> float | None: ...
    @property
    def poll_after_s(self) -> float: ...
    @property
    def joined_at(self) -> float: ...
    @property
    def activated_at(self) -> float | None: ...
    @property
    def expires_at(self) -> float | None: ...
    @property
    def ended_at(self) -> float | None: ...
    @property
    def created(self) -> bool:
        """``join_queue`` only: True when this call made the token, False when it returned
        the user's live one (HTTP 201 or 200); False in every other answer."""

class QueueDigest:
    """One concert's waiting room as of one moment (``Engine.queue_digest``): enough to answer
    a WAITING token's poll exactly as the engine would have at ``as_of``. A cluster's replicas
    publish one per busy concert about once a second; HTTP workers answer polls from it
    (docs/scale-out.md, "Polls"). The bytes carry the queue's rank bitmap from its head on, as
    runs of 64-bit words: a few bytes for a long line of WAITING tokens.

    Args:
        data: the bytes ``Engine.queue_digest`` returned.

    Raises:
        DataLoss: the bytes are not a digest (truncated, damaged, another version).
    """
    def __init__(self, data: bytes) -> None: ...
    @property
    def concert_id(self) -> int:
        """The concert whose queue this is."""
    @property
    def as_of(self) -> float:
        """The engine clock (s since the epoch) the digest was taken at."""
    @property
    def open(self) -> bool:
        """The queue is open (False: joins wait in the pre-queue, without positions)."""
    @property
    def abandon_timeout_s(self) -> float:
        """How long a WAITING token may go without a poll before it loses its place (s)."""
    @property
    def waiting(self) -> int:
        """WAITING tokens, the pre-queue's included."""
    @property
    def active(self) -> int:
        """ACTIVE tokens (sessions running) as of ``as_of``."""
    @property
    def joined(self) -> int:
        """Join sequences issued: the digest knows ``join_seq`` in ``[0, joined)``."""
    @property
    def encoded_bytes(self) -> int:
        """The size of the bytes it was decoded from (bytes)."""
    def position(self, join_seq: int) -> int | None:
        """WAITING tokens ahead of the token with this join sequence, or None when that token
        was not WAITING as of the digest (ACTIVE, EXPIRED) or joined after it."""
    def waiting_token(
        self, token_id: int, *, user_id: int, join_seq: int, joined_at: float
    ) -> QueueToken | None:
        """The answer to a poll of a WAITING token, as the engine would have given it at
        ``as_of`` (position, ETA in s, poll interval); None when the digest cannot say (the
        token was not WAITING then, or joined after it): ask the engine."""

class Reservation:
    @property
    def id(self) -> int: ...
    @property
    def user_id(self) -> int: ...
    @property
    def concert_id(self) -> int: ...
    @property
    def schedule_id(self) -> int: ...
    @property
    def token_id(self) -> int: ...
    @property
    def status(self) -> ReservationStatusName: ...
    @property
    def seat_ids(self) -> list[int]: ...
    @property
    def amount(self) -> int: ...
    @property
    def created_at(self) -> float: ...
    @property
    def expires_at(self) -> float: ...
    @property
    def ended_at(self) -> float | None: ...
    @property
    def payment_id(self) -> int | None: ...

class Payment:
    @property
    def id(self) -> int: ...
    @property
    def reservation_id(self) -> int: ...
    @property
    def user_id(self) -> int: ...
    @property
    def amount(self) -> int: ...
    @property
    def status(self) -> PaymentStatusName: ...
    @property
    def paid_at(self) -> float: ...
    @property
    def balance_after(self) -> int: ...

class Charge:
    @property
    def entry_id(self) -> int: ...
    @property
    def user_id(self) -> int: ...
    @property
    def amount(self) -> int: ...
    @property
    def balance(self) -> int: ...
    @property
    def at(self) -> float: ...

class HistoryEntry:
    @property
    def id(self) -> int: ...
    @property
    def user_id(self) -> int: ...
    @property
    def kind(self) -> EntryKindName: ...
    @property
    def amount(self) -> int: ...
    @property
    def balance_after(self) -> int: ...
    @property
    def at(self) -> float: ...
    @property
    def reservation_id(self) -> int | None: ...

class ConcertStats:
    @property
    def concert_id(self) -> int: ...
    @property
    def queue_waiting(self) -> int: ...
    @property
    def queue_active(self) -> int: ...
    @property
    def queue_joined_total(self) -> int: ...
    @property
    def queue_admitted_total(self) -> int: ...
    @property
    def queue_abandoned_total(self) -> int: ...
    @property
    def seats_total(self) -> int: ...
    @property
    def seats_available(self) -> int: ...
    @property
    def seats_held(self) -> int: ...
    @property
    def seats_sold(self) -> int: ...
    @property
    def reservations_pending(self) -> int: ...
    @property
    def reservations_confirmed(self) -> int: ...
    @property
    def reservations_expired(self) -> int: ...
    @property
    def reservations_canceled(self) -> int: ...
    @property
    def reservations_refunded(self) -> int: ...
    @property
    def payments(self) -> int: ...
    @property
    def revenue(self) -> int: ...

class Event:
    @property
    def seq(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def at(self) -> float: ...
    @property
    def user_id(self) -> int: ...
    @property
    def concert_id(self) -> int: ...
    @property
    def token_id(self) -> int: ...
    @property
    def reservation_id(self) -> int: ...
    @property
    def amount(self) -> int: ...
    @property
    def value(self) -> int: ...

class Engine:
    def __init__(
        self,
        path: str | None = None,
        *,
        durability: str = "full",
        group_commit_interval_s: float = 0.0,
        snapshot_every_records: int = 1_000_000,
        seed: int = 0,
        limits: Limits | None = None,
        snapshot: bytes | None = None,
    ) -> None:
        """An engine, in memory (``path`` None), from a snapshot, or recovered from a store.

        See ``boxoffice.Engine`` for the arguments and errors.
        """
    def snapshot_bytes(self) -> bytes:
        """The whole state as snapshot bytes (``Engine(snapshot=...)`` restores it); a
        consistent cut between two commands; changes nothing, not even the clock."""
    @property
    def last_seq(self) -> int:
        """The journal sequence of the last command this thread applied (0 in memory)."""
    def _wait_durable(self, seq: int) -> None: ...
    def _poll_durable(self, seq: int) -> bool: ...
    def _add_durable_listener(self) -> int: ...
    def _remove_durable_listener(self, fd: int) -> None: ...
    def _snapshot(self) -> None: ...
    def _close(self) -> None: ...
    def _recovery(self) -> dict[str, int | bool]: ...
    def _store_status(self) -> None: ...
    @property
    def limits(self) -> Limits:
        """The named limits this engine enforces (a store keeps those it was created with)."""
    @property
    def seed(self) -> int:
        """The pre-queue shuffle's seed (a store keeps the one it was created with)."""
    @property
    def clock(self) -> float:
        """The engine's time in seconds since the epoch: the latest ``now`` it was given (it
        never goes back; an earlier ``now`` is read as this one)."""
    @property
    def last_event_seq(self) -> int:
        """The sequence number of the last event (:meth:`events`), 0 before the first."""
    @property
    def user_count(self) -> int:
        """Users are numbered 1..user_count."""
    @property
    def concert_count(self) -> int:
        """Concerts are numbered 1..concert_count."""
    def create_user(self, *, now: float) -> int:
        """Creates a user with an empty wallet and returns its id (1, 2, ...).

        Raises:
            LimitExceeded: ``users_max`` users exist already.
        """
    def create_concert(
        self,
        *,
        title: str,
        artist: str = "",
        venue: str = "",
        schedules: Sequence[ScheduleSpec],
        sale: SaleSettings | None = None,
        now: float,
    ) -> Concert:
        """Creates a concert with its schedules, seat maps and sale settings.

        Args:
            title, artist, venue: catalog text, at most ``text_length_max`` bytes each.
            schedules: 1..``schedules_per_concert_max`` schedules; seat ids are assigned in
                seat-map order (section, row, seat).
            sale: queue capacity, admission rate, TTLs (seconds), seat limits, failure policy.
            now: seconds since the Unix epoch.

        Returns:
            The concert with its schedules and seat counts.

        Raises:
            InvalidArgument: empty or malformed fields (a number below its minimum).
            LimitExceeded: a number above its named limit (seats per schedule, ...).
        """
    def join_queue(self, user_id: int, concert_id: int, *, now: float) -> QueueToken:
        """Joins the concert's admission queue, or returns the user's live token (a poll).

        Returns:
            The token: ACTIVE at once while fewer than ``queue_capacity`` are ACTIVE, else
            WAITING with ``position`` (tokens ahead), ``eta_s`` and ``poll_after_s``;
            ``created`` is False when it is the user's live token (never a second place).

        Raises:
            UserNotFound, ConcertNotFound; QueueFull (retry after ``retry_after_s``).
        """
    def queue_status(self, user_id: int, token_id: int, *, now: float) -> QueueToken:
        """A poll: the token's status, exact position and ETA; keeps a WAITING token alive.

        Raises:
            UserNotFound; QueueTokenInvalid (unknown token or another user's).
        """
    def leave_queue(self, user_id: int, token_id: int, *, now: float) -> QueueToken:
        """Leaves the queue (the token becomes EXPIRED, LEFT); a freed slot admits the next.

        Raises:
            UserNotFound; QueueTokenInvalid.
        """
    def check_gate(self, user_id: int, token_id: int, concert_id: int, *, now: float) -> QueueToken:
        """The gate: returns the token when it is the user's ACTIVE token for the concert.

        Counts as a poll.

        Raises:
            UserNotFound; QueueTokenInvalid (unknown, another user's or another concert's);
            QueueTokenExpired; QueueNotActive (WAITING: ``position``, ``eta_s``,
            ``retry_after_s``).
        """
    def hold(
        self,
        user_id: int,
        token_id: int,
        schedule_id: int,
        seat_ids: Sequence[int] | None = None,
        *,
        quantity: int = 0,
        grade: str = "",
        idempotency_key: str = "",
        now: float,
    ) -> Reservation:
        """Holds seats of one schedule, all or nothing, until ``expires_at``.

        Args:
            user_id, token_id: the user and their ACTIVE queue token for the concert.
            schedule_id: the schedule whose seats to hold.
            seat_ids: explicit seats; or instead
            quantity, grade: best-available adjacent seats in one row (any grade if "").
            idempotency_key: a retry with the same key and request returns the first result.
            now: seconds since the Unix epoch.

        Returns:
            A PENDING reservation; ``amount`` in won, ``expires_at = now + hold_ttl_s``.

        Raises:
            UserNotFound, ScheduleNotFound, SeatNotFound; the gate's errors;
            InvalidArgument, TooManySeats, IdempotencyKeyReused; SeatLimitPerUser;
            SeatUnavailable (``seat_id`` names the taken seat).
        """
    def release_seat(
        self, user_id: int, reservation_id: int, seat_id: int, *, now: float
    ) -> Reservation:
        """Releases one seat of a PENDING reservation (the last seat cancels it).

        Raises:
            UserNotFound; ReservationNotFound (also another user's); HoldExpired;
            ReservationNotPending; SeatNotInReservation.
        """
    def cancel(self, user_id: int, reservation_id: int, *, now: float) -> Reservation:
        """Cancels a PENDING reservation; its seats become AVAILABLE.

        Raises:
            UserNotFound; ReservationNotFound; HoldExpired; ReservationNotPending.
        """
    def charge(self, user_id: int, amount: int, *, idempotency_key: str = "", now: float) -> Charge:
        """Adds ``amount`` won to the user's wallet.

        Raises:
            UserNotFound; InvalidAmount (< 1 or > ``charge_amount_max``);
            BalanceLimitExceeded (balance would pass ``balance_max``); IdempotencyKeyReused.
        """
    def pay(
        self,
        user_id: int,
        token_id: int,
        reservation_id: int,
        *,
        idempotency_key: str = "",
        now: float,
    ) -> Payment:
        """Pays the user's PENDING reservation from their wallet, all or nothing.

        On success the seats are SOLD, the reservation CONFIRMED, the token EXPIRED
        (COMPLETED) and the next waiting user admitted.

        Raises:
            UserNotFound; ReservationNotFound (also another user's); the gate's errors;
            HoldExpired; ReservationNotPending; IdempotencyKeyReused;
            InsufficientBalance (the reservation stays PENDING, or is CANCELED when the
            concert sets ``release_on_payment_failure``).
        """
    def refund(self, user_id: int, reservation_id: int, *, now: float) -> Reservation:
        """Refunds a CONFIRMED reservation: money back to the wallet, seats AVAILABLE.

        Raises:
            UserNotFound; ReservationNotFound; ReservationNotConfirmed.
        """
    def advance(self, *, now: float) -> None:
        """Fires every deadline up to ``now`` (every other call does this first)."""
    def concert(self, concert_id: int, *, now: float) -> Concert:
        """One concert. Raises ConcertNotFound."""
    def concerts(
        self,
        query: str = "",
        *,
        starts_from: float | None = None,
        starts_to: float | None = None,
        now: float,
    ) -> list[Concert]:
        """Concerts whose title or artist contains ``query`` (ASCII case-insensitive) with a
        schedule starting in [``starts_from``, ``starts_to``] (seconds; None = open)."""
    def live_token(self, user_id: int, concert_id: int, *, now: float) -> QueueToken | None:
        """The user's WAITING or ACTIVE token for the concert, or None. A read: it neither
        joins nor counts as a poll. Raises UserNotFound, ConcertNotFound."""
    def schedules(self, concert_id: int, *, now: float) -> list[Schedule]:
        """The concert's schedules with seat counts. Raises ConcertNotFound."""
    def seats(
        self,
        schedule_id: int,
        status: SeatStatusName | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
        now: float,
    ) -> list[Seat]:
        """The schedule's seats in seat-map order, optionally only those with ``status``.

        Args:
            after, limit: one page: at most ``limit`` seats (all when None) with id > ``after``
                (a page costs O(limit), not O(schedule)).

        Raises:
            ScheduleNotFound; InvalidArgument (unknown status, negative limit).
        """
    def gated_seats(
        self,
        user_id: int,
        token_id: int,
        concert_id: int,
        schedule_id: int,
        status: SeatStatusName | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
        now: float,
    ) -> list[Seat]:
        """The seats page behind the gate, in one call: :meth:`check_gate` for ``concert_id``
        (journaled, counts as a poll), then one page of :meth:`seats` of ``schedule_id``,
        under one lock (nothing changes in between).

        Raises:
            The gate's errors (QueueNotActive, QueueTokenExpired, QueueTokenInvalid), then
            ScheduleNotFound, then QueueTokenInvalid when the schedule belongs to another
            concert; InvalidArgument (unknown status, negative limit).
        """
    def reservation(self, user_id: int, reservation_id: int, *, now: float) -> Reservation:
        """One of the user's reservations. Raises UserNotFound, ReservationNotFound."""
    def reservations(self, user_id: int, *, now: float) -> list[Reservation]:
        """The user's reservations, oldest first. Raises UserNotFound."""
    def balance(self, user_id: int, *, now: float) -> int:
        """The user's wallet balance in won. Raises UserNotFound."""
    def history(self, user_id: int, *, now: float) -> list[HistoryEntry]:
        """The user's CHARGE, PAYMENT and REFUND entries with ``balance_after`` (won)."""
    def stats(self, concert_id: int, *, now: float) -> ConcertStats:
        """Operator view: queue, seats, reservations, payments, revenue (won)."""
    def queue_digest(self, concert_id: int, *, now: float) -> bytes:
        """The concert's queue as of ``now`` (s), encoded for :class:`QueueDigest` (bytes: runs
        of the rank bitmap, O(WAITING span / 64) to build). Raises ConcertNotFound,
        InvalidArgument (a ``now`` out of range), LimitExceeded (a line spanning more than
        268 M join sequences: its polls go to the engine)."""
    def events(self, after: int = 0, limit: int = 1000) -> list[Event]:
        """Domain events with ``seq > after``, oldest first, at most ``limit``
        (capped by ``list_limit_max``; only the last ``event_retention_max`` are kept)."""
    def state_hash(self) -> int:
        """A 64-bit digest of the whole state: equal for engines fed the same commands."""
    def check_invariants(self) -> None:
        """Checks every invariant (docs/engine-rules.md). Raises InternalError if one is broken."""
    def _apply_batch(self, commands: Buffer, results: Buffer) -> None: ...
    def apply_encoded(self, command: bytes) -> bytes:
        """Applies one encoded command; returns its encoded result (``boxoffice.commands``)."""
    def _replay_record(self, record: bytes) -> None:
        """Decodes one journal record and applies it through ``Engine::Replay`` (the code
        recovery uses; a command that failed when recorded fails again, silently). Raises
        DataLoss for a malformed record."""
