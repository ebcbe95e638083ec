"""A plain-Python reference model of ``docs/engine-rules.md``: the oracle for the engine.

``ReferenceModel`` has the public methods of :class:`boxoffice.Engine` (same names, same
arguments, same exception classes and codes from :mod:`boxoffice.errors`) and returns views
with the same attribute names. It is written to be obviously right rather than fast: plain
lists and dicts, linear scans, one deadline set that is searched for its minimum. Time is
kept in integer microseconds exactly as the rules say; views convert to float seconds
(``us / 1e6``) at the edge, like the engine.

It never calls the engine: the only thing it imports from ``boxoffice`` is the exception
tree, so that the two can be compared class by class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from boxoffice import errors

US_PER_S = 1_000_000
MASK64 = (1 << 64) - 1

# Deadline kinds, in the order the rules fire them at equal times.
K_OPEN = 0
K_HOLD = 1
K_SESSION = 2
K_ABANDON = 3
K_TICK = 4
K_IDEMPOTENCY = 5
# Abandons due at the same instant fire concert by concert, in token id order within a
# concert (the engine keeps one abandon line per queue): their deadline id sorts that way.
ABANDON_ORDER = 1 << 40

RECENT_ADMISSIONS_MAX = 1024
ETA_WINDOW_US = 60 * US_PER_S
ETA_MAX_US = 10 * 365 * 24 * 3600 * US_PER_S
ADMISSION_PER_MINUTE_MAX = 60_000_000


def llround(x: float) -> int:
    """C's ``llround``: nearest integer, halves away from zero, on the exact double."""
    if x < 0:
        return -llround(-x)
    whole = math.floor(x)
    # x - whole is exact for doubles (Sterbenz), so the comparison is on the true fraction.
    return whole + 1 if x - whole >= 0.5 else whole


def seconds_to_us(seconds: float) -> int:
    return llround(float(seconds) * 1e6)


def us_to_seconds(us: int) -> float:
    return us / 1e6


def opt_seconds(us: int | None) -> float | None:
    return None if us is None else us / 1e6


def splitmix64(state: int) -> tuple[int, int]:
    """One SplitMix64 step: (new state, output)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def fisher_yates(items: list[int], seed: int) -> list[int]:
    """Shuffles a copy of ``items``: i from the end down to 1, j = next % (i + 1)."""
    out = list(items)
    state = seed & MASK64
    for i in range(len(out) - 1, 0, -1):
        state, r = splitmix64(state)
        j = r % (i + 1)
        out[i], out[j] = out[j], out[i]
    return out


# --- inputs ---------------------------------------------------------------------------------


class SectionLike(Protocol):
    name: str
    rows: int
    seats_per_row: int
    grade: str
    price: int


class ScheduleLike(Protocol):
    starts_at: float

    @property
    def sections(self) -> Sequence[SectionLike]: ...


class SaleLike(Protocol):
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


@dataclass
class ModelLimits:
    """The engine's named limits (``boxoffice.Limits``), same names and defaults."""

    users_max: int = 100_000_000
    concerts_max: int = 100_000
    schedules_per_concert_max: int = 256
    sections_per_schedule_max: int = 256
    seats_per_schedule_max: int = 200_000
    rows_per_section_max: int = 1_000
    seats_per_row_max: int = 1_000
    seats_per_reservation_max: int = 16
    queue_length_max: int = 5_000_000
    queue_capacity_max: int = 1_000_000
    price_max: int = 10_000_000
    charge_amount_max: int = 10_000_000
    balance_max: int = 100_000_000
    text_length_max: int = 200
    idempotency_key_length_max: int = 128
    idempotency_ttl_s: float = 24 * 3600.0
    event_retention_max: int = 1_000_000
    list_limit_max: int = 10_000


# --- views (same attribute names as the engine's) -------------------------------------------


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Schedule:
    id: int
    concert_id: int
    starts_at: float
    seats_total: int
    seats_available: int
    seats_held: int
    seats_sold: int


@dataclass(frozen=True)
class Concert:
    id: int
    title: str
    artist: str
    venue: str
    sale: SaleSettings
    grades: list[str]
    schedules: list[Schedule]
    created_at: float


@dataclass(frozen=True)
class Seat:
    id: int
    schedule_id: int
    label: str
    section: str
    row: int
    number: int
    grade: str
    price: int
    status: str


@dataclass(frozen=True)
class QueueToken:
    id: int
    user_id: int
    concert_id: int
    status: str
    ended_reason: str | None
    position: int | None
    eta_s: float | None
    poll_after_s: float
    joined_at: float
    activated_at: float | None
    expires_at: float | None
    ended_at: float | None
    created: bool = False  # join_queue only: this call made the token


@dataclass(frozen=True)
class Reservation:
    id: int
    user_id: int
    concert_id: int
    schedule_id: int
    token_id: int
    status: str
    seat_ids: list[int]
    amount: int
    created_at: float
    expires_at: float
    ended_at: float | None
    payment_id: int | None


@dataclass(frozen=True)
class Payment:
    id: int
    reservation_id: int
    user_id: int
    amount: int
    status: str
    paid_at: float
    balance_after: int


@dataclass(frozen=True)
class Charge:
    entry_id: int
    user_id: int
    amount: int
    balance: int
    at: float


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    user_id: int
    kind: str
    amount: int
    balance_after: int
    at: float
    reservation_id: int | None


@dataclass(frozen=True)
class ConcertStats:
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


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    at: float
    user_id: int
    concert_id: int
    token_id: int
    reservation_id: int
    amount: int
    value: int


# --- internal state -------------------------------------------------------------------------


@dataclass
class _Sale:
    opens_at_us: int | None
    queue_capacity: int
    admission_per_minute: int | None
    session_ttl_us: int
    hold_ttl_us: int
    max_seats_per_reservation: int
    max_seats_per_user: int | None
    release_on_payment_failure: bool
    abandon_timeout_us: int
    poll_interval_us: int

    def admission_interval_us(self) -> int:
        assert self.admission_per_minute is not None
        return ADMISSION_PER_MINUTE_MAX // self.admission_per_minute


@dataclass
class _Section:
    name: str
    rows: int
    seats_per_row: int
    grade: str
    price: int
    first_seat_id: int


@dataclass
class _Schedule:
    id: int
    concert_id: int
    starts_at_us: int
    sections: list[_Section]
    seat_ids: list[int]


@dataclass
class _Seat:
    id: int
    schedule_id: int
    section: str
    row: int
    number: int
    grade: str
    price: int
    status: str = "AVAILABLE"
    reservation_id: int | None = None


@dataclass
class _Concert:
    id: int
    title: str
    artist: str
    venue: str
    sale: _Sale
    grades: list[str]
    schedule_ids: list[int]
    created_at_us: int
    # The admission queue of the concert.
    open: bool = False
    next_seq: int = 0
    prequeue: list[int] = field(default_factory=list)  # token ids, in join order
    next_admit_at_us: int = 0
    recent_admissions_us: list[int] = field(default_factory=list)
    joined_total: int = 0
    admitted_total: int = 0
    abandoned_total: int = 0


@dataclass
class _Token:
    id: int
    user_id: int
    concert_id: int
    status: str  # WAITING, ACTIVE, EXPIRED
    seq: int | None  # join sequence; None in the pre-queue
    joined_at_us: int
    last_seen_at_us: int
    abandon_at_us: int | None = None  # the abandon deadline while WAITING
    ended_reason: str | None = None
    activated_at_us: int | None = None
    expires_at_us: int | None = None
    ended_at_us: int | None = None


def _abandon_id(t: _Token) -> int:
    """The id of a token's abandon deadline: (concert, token) order at equal times."""
    return t.concert_id * ABANDON_ORDER + t.id


@dataclass
class _Reservation:
    id: int
    user_id: int
    concert_id: int
    schedule_id: int
    token_id: int
    status: str
    seat_ids: list[int]
    amount: int
    created_at_us: int
    expires_at_us: int
    ended_at_us: int | None = None
    payment_id: int | None = None


@dataclass
class _Payment:
    id: int
    reservation_id: int
    user_id: int
    concert_id: int
    amount: int
    status: str
    paid_at_us: int
    balance_after: int


@dataclass
class _Entry:
    id: int
    user_id: int
    kind: str
    amount: int
    balance_after: int
    at_us: int
    reservation_id: int | None


@dataclass
class _IdempotencyRecord:
    id: int
    fingerprint: tuple[Any, ...]
    result: Any
    expires_at_us: int


def _text_too_long(text: str, limit: int) -> bool:
    return len(text.encode("utf-8")) > limit


def _check_range(name: str, value: int, low: int, named_max: int) -> None:
    """Below the minimum is INVALID_ARGUMENT; above a named limit, LIMIT_EXCEEDED."""
    if value < low:
        raise errors.InvalidArgument(f"{name} must be >= {low}")
    if value > named_max:
        raise errors.LimitExceeded(f"{name} must be <= {named_max}")


def _ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


class ReferenceModel:
    """The rules of ``docs/engine-rules.md`` in plain Python (see the module docstring)."""

    def __init__(self, *, seed: int = 0, limits: ModelLimits | None = None) -> None:
        self.seed = seed
        self.limits = limits if limits is not None else ModelLimits()
        self._clock_us = 0
        self._deadlines: set[tuple[int, int, int]] = set()
        self._users: list[int] = []  # wallets: index = user id - 1
        self._funding = 0  # the external funding account (may go negative)
        self._revenue: dict[int, int] = {}  # concert id -> revenue account balance
        self._concerts: dict[int, _Concert] = {}
        self._schedules: dict[int, _Schedule] = {}
        self._seats: dict[int, _Seat] = {}
        self._tokens: dict[int, _Token] = {}
        self._reservations: dict[int, _Reservation] = {}
        self._payments: dict[int, _Payment] = {}
        self._entries: list[_Entry] = []
        self._events: list[Event] = []
        self._idempotency: dict[tuple[int, str, str], _IdempotencyRecord] = {}
        self._idempotency_by_id: dict[int, tuple[int, str, str]] = {}
        self._next_idempotency_id = 1

    # --- time -------------------------------------------------------------------------------

    @property
    def clock(self) -> float:
        return us_to_seconds(self._clock_us)

    @property
    def clock_us(self) -> int:
        return self._clock_us

    @property
    def last_event_seq(self) -> int:
        return len(self._events)

    def _begin(self, now: float) -> int:
        """Validates ``now``, advances the clock to it, fires due deadlines; the call's time."""
        x = float(now)
        if not math.isfinite(x) or x < 0 or x >= 1e11:
            raise errors.InvalidArgument(f"now must be finite and in [0, 1e11), got {now!r}")
        self._clock_us = max(self._clock_us, llround(x * 1e6))
        while self._deadlines:
            first = min(self._deadlines)
            if first[0] > self._clock_us:
                break
            self._deadlines.remove(first)
            self._fire(first)
        return self._clock_us

    def pending_deadlines(self) -> list[tuple[int, int, int]]:
        """Every scheduled (at_us, kind, id), earliest first (for tests that jump to them)."""
        return sorted(self._deadlines)

    def advance(self, *, now: float) -> None:
        self._begin(now)

    def _fire(self, deadline: tuple[int, int, int]) -> None:
        at, kind, ident = deadline
        if kind == K_OPEN:
            self._open_queue(self._concerts[ident], at)
        elif kind == K_HOLD:
            r = self._reservations[ident]
            assert r.status == "PENDING"
            self._end_pending(r, "EXPIRED", at, "ReservationExpired")
        elif kind == K_SESSION:
            t = self._tokens[ident]
            assert t.status == "ACTIVE"
            self._end_token(t, "SESSION_EXPIRED", at, "QueueSessionExpired")
        elif kind == K_ABANDON:
            t = self._tokens[ident % ABANDON_ORDER]
            assert t.status == "WAITING"
            self._concerts[t.concert_id].abandoned_total += 1
            # No admission here: an abandoned token held no slot, and every abandon due at
            # `at` fires before the admission tick due at `at` (the rules list admission for
            # session expiry, leave and payment; "after a token ends" is read as those).
            self._end_token(t, "ABANDONED", at, "QueueAbandoned", admit=False)
        elif kind == K_TICK:
            self._admit(self._concerts[ident], at)
        elif kind == K_IDEMPOTENCY:
            key = self._idempotency_by_id.pop(ident)
            del self._idempotency[key]
        else:  # pragma: no cover
            raise AssertionError(f"unknown deadline kind {kind}")

    # --- events -----------------------------------------------------------------------------

    def _emit(
        self,
        type_: str,
        at: int,
        *,
        user: int = 0,
        concert: int = 0,
        token: int = 0,
        reservation: int = 0,
        amount: int = 0,
        value: int = 0,
    ) -> None:
        seq = len(self._events) + 1
        self._events.append(
            Event(seq, type_, us_to_seconds(at), user, concert, token, reservation, amount, value)
        )

    def events(self, after: int = 0, limit: int = 1000) -> list[Event]:
        keep = self._events[-self.limits.event_retention_max :]
        return [e for e in keep if e.seq > after][: max(0, limit)]

    # --- lookups ----------------------------------------------------------------------------

    def _check_user(self, user_id: int) -> None:
        if not 1 <= user_id <= len(self._users):
            raise errors.UserNotFound(f"user {user_id} not found")

    def _check_key(self, key: str) -> None:
        if _text_too_long(key, self.limits.idempotency_key_length_max):
            raise errors.InvalidArgument("idempotency key too long")

    def _concert(self, concert_id: int) -> _Concert:
        c = self._concerts.get(concert_id)
        if c is None:
            raise errors.ConcertNotFound(f"concert {concert_id} not found")
        return c

    def _schedule(self, schedule_id: int) -> _Schedule:
        s = self._schedules.get(schedule_id)
        if s is None:
            raise errors.ScheduleNotFound(f"schedule {schedule_id} not found")
        return s

    def _owned_reservation(self, user_id: int, reservation_id: int) -> _Reservation:
        r = self._reservations.get(reservation_id)
        if r is None or r.user_id != user_id:
            raise errors.ReservationNotFound(f"reservation {reservation_id} not found")
        return r

    def _user_token(self, user_id: int, token_id: int) -> _Token:
        t = self._tokens.get(token_id)
        if t is None or t.user_id != user_id:
            raise errors.QueueTokenInvalid(f"queue token {token_id} is not valid")
        return t

    # --- idempotency ------------------------------------------------------------------------

    def _replay(self, user_id: int, op: str, key: str, fingerprint: tuple[Any, ...]) -> Any:
        """The stored result for (user, op, key), None if none; raises on another request."""
        if key == "":
            return None
        record = self._idempotency.get((user_id, op, key))
        if record is None:
            return None
        if record.fingerprint != fingerprint:
            raise errors.IdempotencyKeyReused(f"idempotency key {key!r} reused")
        return record.result

    def _remember(
        self, user_id: int, op: str, key: str, fingerprint: tuple[Any, ...], result: Any, now: int
    ) -> None:
        if key == "":
            return
        ident = self._next_idempotency_id
        self._next_idempotency_id += 1
        expires = now + seconds_to_us(self.limits.idempotency_ttl_s)
        self._idempotency[(user_id, op, key)] = _IdempotencyRecord(
            ident, fingerprint, result, expires
        )
        self._idempotency_by_id[ident] = (user_id, op, key)
        self._deadlines.add((expires, K_IDEMPOTENCY, ident))

    # --- ledger -----------------------------------------------------------------------------

    def _balance(self, user_id: int) -> int:
        return self._users[user_id - 1]

    def _set_balance(self, user_id: int, balance: int) -> None:
        self._users[user_id - 1] = balance

    def _record(
        self, user_id: int, kind: str, amount: int, at: int, reservation: int | None
    ) -> _Entry:
        entry = _Entry(
            len(self._entries) + 1,
            user_id,
            kind,
            amount,
            self._balance(user_id),
            at,
            reservation,
        )
        self._entries.append(entry)
        return entry

    # --- catalog ----------------------------------------------------------------------------

    def create_user(self, *, now: float) -> int:
        at = self._begin(now)
        if len(self._users) >= self.limits.users_max:
            raise errors.LimitExceeded("users_max reached")
        self._users.append(0)
        user_id = len(self._users)
        self._emit("UserCreated", at, user=user_id)
        return user_id

    def create_concert(
        self,
        *,
        title: str,
        artist: str = "",
        venue: str = "",
        schedules: Sequence[ScheduleLike],
        sale: SaleLike | None = None,
        now: float,
    ) -> Concert:
        at = self._begin(now)
        lim = self.limits
        if title == "":
            raise errors.InvalidArgument("title is empty")
        texts = [title, artist, venue]
        for sched in schedules:
            for sec in sched.sections:
                texts += [sec.name, sec.grade]
        if any(_text_too_long(t, lim.text_length_max) for t in texts):
            raise errors.InvalidArgument("text too long")
        if len(self._concerts) >= lim.concerts_max:
            raise errors.LimitExceeded("concerts_max reached")
        if len(schedules) == 0:
            raise errors.InvalidArgument("no schedules")
        if len(schedules) > lim.schedules_per_concert_max:
            raise errors.LimitExceeded("too many schedules")
        for sched in schedules:
            if len(sched.sections) == 0:
                raise errors.InvalidArgument("no sections")
            if len(sched.sections) > lim.sections_per_schedule_max:
                raise errors.LimitExceeded("too many sections")
        for sched in schedules:
            total = 0
            for sec in sched.sections:
                if sec.name == "" or sec.grade == "":
                    raise errors.InvalidArgument("empty section name or grade")
                _check_range("rows", sec.rows, 1, lim.rows_per_section_max)
                _check_range("seats_per_row", sec.seats_per_row, 1, lim.seats_per_row_max)
                _check_range("price", sec.price, 1, lim.price_max)
                total += sec.rows * sec.seats_per_row
            if total > lim.seats_per_schedule_max:
                raise errors.LimitExceeded("too many seats in a schedule")
        s = self._validate_sale(sale)

        concert_id = len(self._concerts) + 1
        grades: list[str] = []
        schedule_ids: list[int] = []
        for spec in schedules:
            schedule_id = len(self._schedules) + 1
            sections: list[_Section] = []
            seat_ids: list[int] = []
            for sec in spec.sections:
                if sec.grade not in grades:
                    grades.append(sec.grade)
                first = len(self._seats) + 1
                sections.append(
                    _Section(sec.name, sec.rows, sec.seats_per_row, sec.grade, sec.price, first)
                )
                for row in range(1, sec.rows + 1):
                    for number in range(1, sec.seats_per_row + 1):
                        seat_id = len(self._seats) + 1
                        self._seats[seat_id] = _Seat(
                            seat_id, schedule_id, sec.name, row, number, sec.grade, sec.price
                        )
                        seat_ids.append(seat_id)
            self._schedules[schedule_id] = _Schedule(
                schedule_id, concert_id, seconds_to_us(spec.starts_at), sections, seat_ids
            )
            schedule_ids.append(schedule_id)
        c = _Concert(concert_id, title, artist, venue, s, grades, schedule_ids, at)
        self._concerts[concert_id] = c
        self._revenue[concert_id] = 0
        self._emit("ConcertCreated", at, concert=concert_id)
        if s.opens_at_us is None or s.opens_at_us <= at:
            c.open = True
        else:
            self._deadlines.add((s.opens_at_us, K_OPEN, concert_id))
        return self._view_concert(c)

    def _validate_sale(self, sale: SaleLike | None) -> _Sale:
        if sale is None:
            s = _Sale(None, 200, None, 600 * US_PER_S, 300 * US_PER_S, 4, None, False,
                      60 * US_PER_S, 5 * US_PER_S)  # fmt: skip
        else:
            s = _Sale(
                None if sale.opens_at is None else seconds_to_us(sale.opens_at),
                sale.queue_capacity,
                sale.admission_per_minute,
                seconds_to_us(sale.session_ttl_s),
                seconds_to_us(sale.hold_ttl_s),
                sale.max_seats_per_reservation,
                sale.max_seats_per_user,
                bool(sale.release_on_payment_failure),
                seconds_to_us(sale.abandon_timeout_s),
                seconds_to_us(sale.poll_interval_s),
            )
        lim = self.limits
        _check_range("queue_capacity", s.queue_capacity, 1, lim.queue_capacity_max)
        if s.admission_per_minute is not None:
            _check_range(
                "admission_per_minute", s.admission_per_minute, 1, ADMISSION_PER_MINUTE_MAX
            )
        for name, us in (
            ("session_ttl_s", s.session_ttl_us),
            ("hold_ttl_s", s.hold_ttl_us),
            ("abandon_timeout_s", s.abandon_timeout_us),
            ("poll_interval_s", s.poll_interval_us),
        ):
            if us <= 0:
                raise errors.InvalidArgument(f"{name} must be positive")
        if s.poll_interval_us > s.abandon_timeout_us:
            raise errors.InvalidArgument("poll_interval_s must be <= abandon_timeout_s")
        _check_range(
            "max_seats_per_reservation",
            s.max_seats_per_reservation,
            1,
            lim.seats_per_reservation_max,
        )
        if s.max_seats_per_user is not None and s.max_seats_per_user < 1:
            raise errors.InvalidArgument("max_seats_per_user must be >= 1")
        if s.opens_at_us is not None and s.opens_at_us < 0:
            raise errors.InvalidArgument("opens_at must be >= 0")
        return s

    # --- admission queue --------------------------------------------------------------------

    def _live_tokens(self, c: _Concert) -> list[_Token]:
        return [
            t
            for t in self._tokens.values()
            if t.concert_id == c.id and t.status in ("WAITING", "ACTIVE")
        ]

    def _active_count(self, c: _Concert) -> int:
        return sum(1 for t in self._live_tokens(c) if t.status == "ACTIVE")

    def _waiting_in_line(self, c: _Concert) -> list[_Token]:
        """WAITING tokens with a join sequence, lowest sequence first."""
        line = [t for t in self._live_tokens(c) if t.status == "WAITING" and t.seq is not None]
        return sorted(line, key=lambda t: t.seq if t.seq is not None else -1)

    def _set_abandon(self, t: _Token, at: int | None) -> None:
        if t.abandon_at_us is not None:
            self._deadlines.discard((t.abandon_at_us, K_ABANDON, _abandon_id(t)))
        t.abandon_at_us = at
        if at is not None:
            self._deadlines.add((at, K_ABANDON, _abandon_id(t)))

    def _admit(self, c: _Concert, at: int) -> None:
        s = c.sale
        while c.open and self._active_count(c) < s.queue_capacity:
            line = self._waiting_in_line(c)
            if not line:
                break
            if s.admission_per_minute is not None and at < c.next_admit_at_us:
                self._deadlines.add((c.next_admit_at_us, K_TICK, c.id))
                break
            t = line[0]
            t.status = "ACTIVE"
            t.activated_at_us = at
            t.expires_at_us = at + s.session_ttl_us
            self._set_abandon(t, None)
            self._deadlines.add((t.expires_at_us, K_SESSION, t.id))
            self._emit("QueueAdmitted", at, user=t.user_id, concert=c.id, token=t.id)
            c.admitted_total += 1
            c.recent_admissions_us.append(at)
            c.recent_admissions_us = c.recent_admissions_us[-RECENT_ADMISSIONS_MAX:]
            if s.admission_per_minute is not None:
                c.next_admit_at_us = max(c.next_admit_at_us, at) + s.admission_interval_us()

    def _open_queue(self, c: _Concert, at: int) -> None:
        c.open = True
        order = fisher_yates(c.prequeue, self.seed ^ c.id)
        size = len(order)
        c.prequeue = []
        for token_id in order:
            self._tokens[token_id].seq = c.next_seq
            c.next_seq += 1
        self._emit("QueueOpened", at, concert=c.id, value=size)
        self._admit(c, at)

    def _touch(self, t: _Token, now: int) -> None:
        t.last_seen_at_us = now
        if t.status == "WAITING":
            abandon = self._concerts[t.concert_id].sale.abandon_timeout_us
            self._set_abandon(t, now + abandon)

    def _end_token(self, t: _Token, reason: str, at: int, event: str, admit: bool = True) -> None:
        c = self._concerts[t.concert_id]
        if t.status == "WAITING":
            self._set_abandon(t, None)
            if t.seq is None:
                c.prequeue.remove(t.id)
        else:
            assert t.status == "ACTIVE" and t.expires_at_us is not None
            self._deadlines.discard((t.expires_at_us, K_SESSION, t.id))
            t.expires_at_us = None
        t.status = "EXPIRED"
        t.ended_reason = reason
        t.ended_at_us = at
        self._emit(event, at, user=t.user_id, concert=c.id, token=t.id)
        if admit:
            self._admit(c, at)

    def _position(self, t: _Token) -> int | None:
        if t.status != "WAITING" or t.seq is None:
            return None
        c = self._concerts[t.concert_id]
        return sum(1 for o in self._waiting_in_line(c) if o.seq is not None and o.seq < t.seq)

    def _eta_us(self, t: _Token, now: int) -> int | None:
        if t.status != "WAITING":
            return None
        c = self._concerts[t.concert_id]
        s = c.sale
        if t.seq is None:
            assert s.opens_at_us is not None
            return max(0, s.opens_at_us - now)
        position = self._position(t)
        assert position is not None
        p = position + 1
        recent = c.recent_admissions_us[-RECENT_ADMISSIONS_MAX:]
        n = sum(1 for a in recent if now - ETA_WINDOW_US < a <= now)
        if n > 0:
            eta = p * ETA_WINDOW_US // n
        elif s.admission_per_minute is not None:
            eta = p * s.admission_interval_us()
        else:
            eta = p * s.session_ttl_us // s.queue_capacity
        if s.admission_per_minute is not None:
            eta = max(eta, p * s.admission_interval_us())
        return min(eta, ETA_MAX_US)

    def _view_token(self, t: _Token, now: int) -> QueueToken:
        c = self._concerts[t.concert_id]
        return QueueToken(
            id=t.id,
            user_id=t.user_id,
            concert_id=t.concert_id,
            status=t.status,
            ended_reason=t.ended_reason,
            position=self._position(t),
            eta_s=opt_seconds(self._eta_us(t, now)),
            poll_after_s=us_to_seconds(c.sale.poll_interval_us),
            joined_at=us_to_seconds(t.joined_at_us),
            activated_at=opt_seconds(t.activated_at_us),
            expires_at=opt_seconds(t.expires_at_us),
            ended_at=opt_seconds(t.ended_at_us),
        )

    def join_queue(self, user_id: int, concert_id: int, *, now: float) -> QueueToken:
        at = self._begin(now)
        self._check_user(user_id)
        c = self._concert(concert_id)
        for t in self._live_tokens(c):
            if t.user_id == user_id:
                self._touch(t, at)
                return self._view_token(t, at)
        if len(self._live_tokens(c)) >= self.limits.queue_length_max:
            raise errors.QueueFull("the queue is full")
        token_id = len(self._tokens) + 1
        t = _Token(token_id, user_id, c.id, "WAITING", None, at, at)
        self._tokens[token_id] = t
        c.joined_total += 1
        if c.open:
            t.seq = c.next_seq
            c.next_seq += 1
        else:
            c.prequeue.append(token_id)
        self._emit(
            "QueueJoined", at, user=user_id, concert=c.id, token=token_id, value=int(not c.open)
        )
        self._set_abandon(t, at + c.sale.abandon_timeout_us)
        self._admit(c, at)
        return replace(self._view_token(t, at), created=True)

    def queue_status(self, user_id: int, token_id: int, *, now: float) -> QueueToken:
        at = self._begin(now)
        self._check_user(user_id)
        t = self._user_token(user_id, token_id)
        self._touch(t, at)
        return self._view_token(t, at)

    def leave_queue(self, user_id: int, token_id: int, *, now: float) -> QueueToken:
        at = self._begin(now)
        self._check_user(user_id)
        t = self._user_token(user_id, token_id)
        if t.status != "EXPIRED":
            self._end_token(t, "LEFT", at, "QueueLeft")
        return self._view_token(t, at)

    def _gate(self, user_id: int, token_id: int, concert_id: int, at: int) -> _Token:
        t = self._tokens.get(token_id)
        if t is None or t.user_id != user_id or t.concert_id != concert_id:
            raise errors.QueueTokenInvalid(f"queue token {token_id} is not valid here")
        self._touch(t, at)
        if t.status == "EXPIRED":
            raise errors.QueueTokenExpired(f"queue token {token_id} has expired")
        if t.status == "WAITING":
            eta = self._eta_us(t, at)
            assert eta is not None
            raise errors.QueueNotActive(
                f"queue token {token_id} is waiting",
                position=self._position(t),
                eta_s=us_to_seconds(eta),
                retry_after_s=us_to_seconds(self._concerts[concert_id].sale.poll_interval_us),
            )
        return t

    def check_gate(self, user_id: int, token_id: int, concert_id: int, *, now: float) -> QueueToken:
        at = self._begin(now)
        self._check_user(user_id)
        t = self._gate(user_id, token_id, concert_id, at)
        return self._view_token(t, at)

    # --- seats and reservations -------------------------------------------------------------

    def _user_seat_count(self, user_id: int, concert_id: int) -> int:
        return sum(
            len(r.seat_ids)
            for r in self._reservations.values()
            if r.user_id == user_id
            and r.concert_id == concert_id
            and r.status in ("PENDING", "CONFIRMED")
        )

    def _best_available(self, sched: _Schedule, quantity: int, grade: str) -> list[int] | None:
        fitting: list[list[int]] = []
        for sec in sched.sections:
            if grade and sec.grade != grade:
                continue
            for row in range(sec.rows):
                first = sec.first_seat_id + row * sec.seats_per_row
                run: list[int] = []
                for seat_id in [*range(first, first + sec.seats_per_row), None]:
                    if seat_id is not None and self._seats[seat_id].status == "AVAILABLE":
                        run.append(seat_id)
                        continue
                    if len(run) >= quantity:
                        fitting.append(run)
                    run = []
        for run in fitting:
            if len(run) - quantity != 1:
                return run[:quantity]
        return fitting[0][:quantity] if fitting else None

    def _view_reservation(self, r: _Reservation) -> Reservation:
        return Reservation(
            id=r.id,
            user_id=r.user_id,
            concert_id=r.concert_id,
            schedule_id=r.schedule_id,
            token_id=r.token_id,
            status=r.status,
            seat_ids=list(r.seat_ids),
            amount=r.amount,
            created_at=us_to_seconds(r.created_at_us),
            expires_at=us_to_seconds(r.expires_at_us),
            ended_at=opt_seconds(r.ended_at_us),
            payment_id=r.payment_id,
        )

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
        at = self._begin(now)
        self._check_user(user_id)
        self._check_key(idempotency_key)
        seats = list(seat_ids) if seat_ids is not None else []
        fingerprint = (schedule_id, tuple(seats), quantity, grade)
        stored = self._replay(user_id, "hold", idempotency_key, fingerprint)
        if stored is not None:
            assert isinstance(stored, Reservation)
            return stored
        sched = self._schedule(schedule_id)
        c = self._concerts[sched.concert_id]
        token = self._gate(user_id, token_id, c.id, at)
        # The rules say "exactly one of a non-empty seat_ids or quantity > 0"; a negative
        # quantity is read as invalid input in every case (the rules leave it open).
        if quantity < 0 or (len(seats) > 0) == (quantity > 0):
            raise errors.InvalidArgument("give exactly one of seat_ids or quantity")
        if grade and seats:
            raise errors.InvalidArgument("grade only goes with quantity")
        count = len(seats) if seats else quantity
        if count > c.sale.max_seats_per_reservation:
            raise errors.TooManySeats(f"at most {c.sale.max_seats_per_reservation} seats")
        if len(set(seats)) != len(seats):
            raise errors.InvalidArgument("a seat is listed twice")
        if grade and grade not in c.grades:
            raise errors.InvalidArgument(f"unknown grade {grade!r}")
        cap = c.sale.max_seats_per_user
        if cap is not None and self._user_seat_count(user_id, c.id) + count > cap:
            raise errors.SeatLimitPerUser(f"at most {cap} seats per user")
        if seats:
            for seat_id in seats:
                seat = self._seats.get(seat_id)
                if seat is None or seat.schedule_id != schedule_id:
                    raise errors.SeatNotFound(f"seat {seat_id} not found", seat_id=seat_id)
                if seat.status != "AVAILABLE":
                    raise errors.SeatUnavailable(f"seat {seat_id} is taken", seat_id=seat_id)
            chosen = seats
        else:
            best = self._best_available(sched, quantity, grade)
            if best is None:
                raise errors.SeatUnavailable(f"no {quantity} adjacent seats available")
            chosen = best

        reservation_id = len(self._reservations) + 1
        r = _Reservation(
            id=reservation_id,
            user_id=user_id,
            concert_id=c.id,
            schedule_id=schedule_id,
            token_id=token.id,
            status="PENDING",
            seat_ids=list(chosen),
            amount=sum(self._seats[s].price for s in chosen),
            created_at_us=at,
            expires_at_us=at + c.sale.hold_ttl_us,
        )
        self._reservations[reservation_id] = r
        for seat_id in chosen:
            self._seats[seat_id].status = "HELD"
            self._seats[seat_id].reservation_id = reservation_id
        self._deadlines.add((r.expires_at_us, K_HOLD, reservation_id))
        self._emit(
            "ReservationHeld",
            at,
            user=user_id,
            concert=c.id,
            token=token.id,
            reservation=reservation_id,
            amount=r.amount,
            value=len(chosen),
        )
        view = self._view_reservation(r)
        self._remember(user_id, "hold", idempotency_key, fingerprint, view, at)
        return view

    def _free_seat(self, seat_id: int) -> None:
        seat = self._seats[seat_id]
        seat.status = "AVAILABLE"
        seat.reservation_id = None

    def _end_pending(self, r: _Reservation, status: str, at: int, event: str) -> None:
        assert r.status == "PENDING"
        self._deadlines.discard((r.expires_at_us, K_HOLD, r.id))
        for seat_id in r.seat_ids:
            self._free_seat(seat_id)
        r.status = status
        r.ended_at_us = at
        self._emit(
            event,
            at,
            user=r.user_id,
            concert=r.concert_id,
            token=r.token_id,
            reservation=r.id,
            amount=r.amount,
            value=len(r.seat_ids),  # not in the rules; the engine's choice
        )

    def _pending_reservation(self, user_id: int, reservation_id: int) -> _Reservation:
        r = self._owned_reservation(user_id, reservation_id)
        if r.status == "EXPIRED":
            raise errors.HoldExpired(f"reservation {reservation_id} expired")
        if r.status != "PENDING":
            raise errors.ReservationNotPending(f"reservation {reservation_id} is {r.status}")
        return r

    def release_seat(
        self, user_id: int, reservation_id: int, seat_id: int, *, now: float
    ) -> Reservation:
        at = self._begin(now)
        self._check_user(user_id)
        r = self._pending_reservation(user_id, reservation_id)
        if seat_id not in r.seat_ids:
            raise errors.SeatNotInReservation(f"seat {seat_id} is not in it", seat_id=seat_id)
        self._free_seat(seat_id)
        r.seat_ids.remove(seat_id)
        r.amount -= self._seats[seat_id].price
        self._emit(
            "SeatReleased",
            at,
            user=user_id,
            concert=r.concert_id,
            token=r.token_id,
            reservation=r.id,
            amount=self._seats[seat_id].price,
            value=seat_id,
        )
        if not r.seat_ids:
            self._end_pending(r, "CANCELED", at, "ReservationCanceled")
        return self._view_reservation(r)

    def cancel(self, user_id: int, reservation_id: int, *, now: float) -> Reservation:
        at = self._begin(now)
        self._check_user(user_id)
        r = self._pending_reservation(user_id, reservation_id)
        self._end_pending(r, "CANCELED", at, "ReservationCanceled")
        return self._view_reservation(r)

    # --- ledger commands --------------------------------------------------------------------

    def charge(self, user_id: int, amount: int, *, idempotency_key: str = "", now: float) -> Charge:
        at = self._begin(now)
        self._check_user(user_id)
        self._check_key(idempotency_key)
        fingerprint = (amount,)
        stored = self._replay(user_id, "charge", idempotency_key, fingerprint)
        if stored is not None:
            assert isinstance(stored, Charge)
            return stored
        if amount < 1 or amount > self.limits.charge_amount_max:
            raise errors.InvalidAmount(f"amount must be in 1..{self.limits.charge_amount_max}")
        if self._balance(user_id) + amount > self.limits.balance_max:
            raise errors.BalanceLimitExceeded(f"balance would exceed {self.limits.balance_max}")
        self._funding -= amount
        self._set_balance(user_id, self._balance(user_id) + amount)
        entry = self._record(user_id, "CHARGE", amount, at, None)
        self._emit("BalanceCharged", at, user=user_id, amount=amount, value=self._balance(user_id))
        result = Charge(entry.id, user_id, amount, self._balance(user_id), us_to_seconds(at))
        self._remember(user_id, "charge", idempotency_key, fingerprint, result, at)
        return result

    def _view_payment(self, p: _Payment) -> Payment:
        return Payment(
            p.id,
            p.reservation_id,
            p.user_id,
            p.amount,
            p.status,
            us_to_seconds(p.paid_at_us),
            p.balance_after,
        )

    def pay(
        self,
        user_id: int,
        token_id: int,
        reservation_id: int,
        *,
        idempotency_key: str = "",
        now: float,
    ) -> Payment:
        at = self._begin(now)
        self._check_user(user_id)
        self._check_key(idempotency_key)
        fingerprint = (reservation_id,)
        stored = self._replay(user_id, "pay", idempotency_key, fingerprint)
        if stored is not None:
            assert isinstance(stored, Payment)
            return stored
        r = self._owned_reservation(user_id, reservation_id)
        c = self._concerts[r.concert_id]
        token = self._gate(user_id, token_id, c.id, at)
        r = self._pending_reservation(user_id, reservation_id)
        balance = self._balance(user_id)
        if balance < r.amount:
            self._emit(
                "PaymentFailed",
                at,
                user=user_id,
                concert=c.id,
                token=token.id,
                reservation=r.id,
                amount=r.amount,
                value=balance,
            )
            if c.sale.release_on_payment_failure:
                self._end_pending(r, "CANCELED", at, "ReservationCanceled")
            raise errors.InsufficientBalance(f"balance {balance} < amount {r.amount}")
        self._set_balance(user_id, balance - r.amount)
        self._revenue[c.id] += r.amount
        payment_id = len(self._payments) + 1
        p = _Payment(
            payment_id,
            r.id,
            user_id,
            c.id,
            r.amount,
            "SUCCEEDED",
            at,
            self._balance(user_id),
        )
        self._payments[payment_id] = p
        self._record(user_id, "PAYMENT", r.amount, at, r.id)
        for seat_id in r.seat_ids:
            self._seats[seat_id].status = "SOLD"
        self._deadlines.discard((r.expires_at_us, K_HOLD, r.id))
        r.status = "CONFIRMED"
        r.ended_at_us = at
        r.payment_id = payment_id
        self._emit(
            "PaymentSucceeded",
            at,
            user=user_id,
            concert=c.id,
            token=token.id,
            reservation=r.id,
            amount=r.amount,
            value=payment_id,
        )
        self._end_token(token, "COMPLETED", at, "QueueCompleted")
        view = self._view_payment(p)
        self._remember(user_id, "pay", idempotency_key, fingerprint, view, at)
        return view

    def refund(self, user_id: int, reservation_id: int, *, now: float) -> Reservation:
        at = self._begin(now)
        self._check_user(user_id)
        r = self._owned_reservation(user_id, reservation_id)
        if r.status != "CONFIRMED":
            raise errors.ReservationNotConfirmed(f"reservation {reservation_id} is {r.status}")
        assert r.payment_id is not None
        p = self._payments[r.payment_id]
        self._revenue[r.concert_id] -= p.amount
        self._set_balance(user_id, self._balance(user_id) + p.amount)
        p.status = "REFUNDED"
        r.status = "REFUNDED"
        for seat_id in r.seat_ids:
            self._free_seat(seat_id)
        self._record(user_id, "REFUND", p.amount, at, r.id)
        self._emit(
            "ReservationRefunded",
            at,
            user=user_id,
            concert=r.concert_id,
            token=r.token_id,
            reservation=r.id,
            amount=p.amount,
            value=len(r.seat_ids),  # not in the rules; the engine's choice
        )
        return self._view_reservation(r)

    # --- queries ----------------------------------------------------------------------------

    def _view_schedule(self, s: _Schedule) -> Schedule:
        statuses = [self._seats[i].status for i in s.seat_ids]
        return Schedule(
            id=s.id,
            concert_id=s.concert_id,
            starts_at=us_to_seconds(s.starts_at_us),
            seats_total=len(statuses),
            seats_available=statuses.count("AVAILABLE"),
            seats_held=statuses.count("HELD"),
            seats_sold=statuses.count("SOLD"),
        )

    def _view_concert(self, c: _Concert) -> Concert:
        s = c.sale
        sale = SaleSettings(
            opens_at=opt_seconds(s.opens_at_us),
            queue_capacity=s.queue_capacity,
            admission_per_minute=s.admission_per_minute,
            session_ttl_s=us_to_seconds(s.session_ttl_us),
            hold_ttl_s=us_to_seconds(s.hold_ttl_us),
            max_seats_per_reservation=s.max_seats_per_reservation,
            max_seats_per_user=s.max_seats_per_user,
            release_on_payment_failure=s.release_on_payment_failure,
            abandon_timeout_s=us_to_seconds(s.abandon_timeout_us),
            poll_interval_s=us_to_seconds(s.poll_interval_us),
        )
        return Concert(
            id=c.id,
            title=c.title,
            artist=c.artist,
            venue=c.venue,
            sale=sale,
            grades=list(c.grades),
            schedules=[self._view_schedule(self._schedules[i]) for i in c.schedule_ids],
            created_at=us_to_seconds(c.created_at_us),
        )

    def concert(self, concert_id: int, *, now: float) -> Concert:
        self._begin(now)
        return self._view_concert(self._concert(concert_id))

    def concerts(
        self,
        query: str = "",
        *,
        starts_from: float | None = None,
        starts_to: float | None = None,
        now: float,
    ) -> list[Concert]:
        self._begin(now)
        lo = None if starts_from is None else seconds_to_us(starts_from)
        hi = None if starts_to is None else seconds_to_us(starts_to)
        q = _ascii_lower(query)
        out = []
        for c in self._concerts.values():
            if q not in _ascii_lower(c.title) and q not in _ascii_lower(c.artist):
                continue
            starts = [self._schedules[i].starts_at_us for i in c.schedule_ids]
            if any((lo is None or lo <= t) and (hi is None or t <= hi) for t in starts):
                out.append(self._view_concert(c))
        return out

    def schedules(self, concert_id: int, *, now: float) -> list[Schedule]:
        self._begin(now)
        c = self._concert(concert_id)
        return [self._view_schedule(self._schedules[i]) for i in c.schedule_ids]

    def seats(self, schedule_id: int, status: str | None = None, *, now: float) -> list[Seat]:
        self._begin(now)
        sched = self._schedule(schedule_id)
        out = []
        for seat_id in sched.seat_ids:
            seat = self._seats[seat_id]
            if status is not None and seat.status != status:
                continue
            out.append(
                Seat(
                    id=seat.id,
                    schedule_id=seat.schedule_id,
                    label=f"{seat.section}-{seat.row}-{seat.number}",
                    section=seat.section,
                    row=seat.row,
                    number=seat.number,
                    grade=seat.grade,
                    price=seat.price,
                    status=seat.status,
                )
            )
        return out

    def reservation(self, user_id: int, reservation_id: int, *, now: float) -> Reservation:
        self._begin(now)
        self._check_user(user_id)
        return self._view_reservation(self._owned_reservation(user_id, reservation_id))

    def reservations(self, user_id: int, *, now: float) -> list[Reservation]:
        self._begin(now)
        self._check_user(user_id)
        return [
            self._view_reservation(r) for r in self._reservations.values() if r.user_id == user_id
        ]

    def balance(self, user_id: int, *, now: float) -> int:
        self._begin(now)
        self._check_user(user_id)
        return self._balance(user_id)

    def history(self, user_id: int, *, now: float) -> list[HistoryEntry]:
        self._begin(now)
        self._check_user(user_id)
        return [
            HistoryEntry(
                e.id,
                e.user_id,
                e.kind,
                e.amount,
                e.balance_after,
                us_to_seconds(e.at_us),
                e.reservation_id,
            )
            for e in self._entries
            if e.user_id == user_id
        ]

    def stats(self, concert_id: int, *, now: float) -> ConcertStats:
        self._begin(now)
        c = self._concert(concert_id)
        live = self._live_tokens(c)
        statuses = [
            self._seats[seat_id].status
            for sid in c.schedule_ids
            for seat_id in self._schedules[sid].seat_ids
        ]
        res = [r.status for r in self._reservations.values() if r.concert_id == c.id]
        return ConcertStats(
            concert_id=c.id,
            queue_waiting=sum(1 for t in live if t.status == "WAITING"),
            queue_active=sum(1 for t in live if t.status == "ACTIVE"),
            queue_joined_total=c.joined_total,
            queue_admitted_total=c.admitted_total,
            queue_abandoned_total=c.abandoned_total,
            seats_total=len(statuses),
            seats_available=statuses.count("AVAILABLE"),
            seats_held=statuses.count("HELD"),
            seats_sold=statuses.count("SOLD"),
            reservations_pending=res.count("PENDING"),
            reservations_confirmed=res.count("CONFIRMED"),
            reservations_expired=res.count("EXPIRED"),
            reservations_canceled=res.count("CANCELED"),
            reservations_refunded=res.count("REFUNDED"),
            # Every payment made, refunded ones included (the rules do not say; the engine's).
            payments=sum(1 for p in self._payments.values() if p.concert_id == c.id),
            revenue=self._revenue[c.id],
        )

    # --- introspection for tests ------------------------------------------------------------

    def user_ids(self) -> list[int]:
        return list(range(1, len(self._users) + 1))

    def concert_ids(self) -> list[int]:
        return list(self._concerts)

    def concert_grades(self, concert_id: int) -> list[str]:
        return list(self._concerts[concert_id].grades)

    def schedule_ids(self) -> list[int]:
        return list(self._schedules)

    def schedule_seat_ids(self, schedule_id: int) -> list[int]:
        return list(self._schedules[schedule_id].seat_ids)

    def concert_of_schedule(self, schedule_id: int) -> int:
        return self._schedules[schedule_id].concert_id

    def token_rows(self) -> list[tuple[int, int, int, str]]:
        """(token id, user id, concert id, status) of every token."""
        return [(t.id, t.user_id, t.concert_id, t.status) for t in self._tokens.values()]

    def reservation_rows(self) -> list[tuple[int, int, int, str, list[int]]]:
        """(id, user id, concert id, status, seat ids) of every reservation."""
        return [
            (r.id, r.user_id, r.concert_id, r.status, list(r.seat_ids))
            for r in self._reservations.values()
        ]

    def wallet(self, user_id: int) -> int:
        return self._balance(user_id)

    def amount_of(self, reservation_id: int) -> int:
        return self._reservations[reservation_id].amount

    def check_invariants(self) -> None:
        """Asserts the invariants of the rules over the model's own state."""
        for seat in self._seats.values():
            if seat.status == "AVAILABLE":
                assert seat.reservation_id is None
                continue
            assert seat.reservation_id is not None
            r = self._reservations[seat.reservation_id]
            assert r.schedule_id == seat.schedule_id and seat.id in r.seat_ids
            assert (seat.status, r.status) in (("HELD", "PENDING"), ("SOLD", "CONFIRMED"))
        for r in self._reservations.values():
            if r.status in ("PENDING", "CONFIRMED"):
                for seat_id in r.seat_ids:
                    assert self._seats[seat_id].reservation_id == r.id
            if r.status == "PENDING":
                assert (r.expires_at_us, K_HOLD, r.id) in self._deadlines
                assert r.expires_at_us > self._clock_us
        assert self._funding + sum(self._users) + sum(self._revenue.values()) == 0
        assert all(b >= 0 for b in self._users)
        assert all(b >= 0 for b in self._revenue.values())
        for c in self._concerts.values():
            paid = sum(
                p.amount
                for p in self._payments.values()
                if p.concert_id == c.id and p.status == "SUCCEEDED"
            )
            assert paid == self._revenue[c.id]
            assert self._active_count(c) <= c.sale.queue_capacity
            users = [t.user_id for t in self._live_tokens(c)]
            assert len(users) == len(set(users)), "one live token per user and concert"
        for t in self._tokens.values():
            if t.status == "WAITING":
                assert t.abandon_at_us is not None
                assert (t.abandon_at_us, K_ABANDON, _abandon_id(t)) in self._deadlines
            if t.status == "ACTIVE":
                assert t.expires_at_us is not None
                assert (t.expires_at_us, K_SESSION, t.id) in self._deadlines
        assert all(d[0] > self._clock_us for d in self._deadlines)
