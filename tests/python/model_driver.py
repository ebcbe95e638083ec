"""The engine and the plain-Python reference model driven in lock step: the helper library
of the model comparison (``test_model_equivalence.py``) and the deterministic simulator
(``dst.py``). A helper module, not a test module: both import it, and neither imports the other.

- choosers (:class:`RandomChooser`, :class:`DataChooser` for Hypothesis) pick arguments;
- :class:`Driver` applies one random action to both sides and compares results, then
  ``compare_state`` compares the whole observable state (:data:`FIELDS` says which fields of
  each type count, :func:`diff` lists differences);
- :data:`ACTIONS` weighs the actions of a random stream.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from hypothesis import strategies as st
from reference_model import ModelLimits, ReferenceModel, llround

import boxoffice as bo
from boxoffice import errors

T = TypeVar("T")

T0_US = 1_700_000_000 * 1_000_000  # virtual time starts here (2023-11-14)
KEYS = ["", "", "", "", "a", "a", "b", "k-long-9"]  # "k-long-9" is too long (limit 8)


# --- choosing arguments: the same generators serve Hypothesis and random.Random ---------------


class Chooser(Protocol):
    def pick(self, label: str, options: Sequence[T]) -> T: ...


class RandomChooser:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, label: str, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]


class DataChooser:
    """Draws through Hypothesis. Option lists start with the typical value and end with the
    odd ones; Hypothesis favours both ends of a range, so the last slot repeats the first."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def pick(self, label: str, options: Sequence[T]) -> T:
        return self.data.draw(st.sampled_from([*options, options[0]]), label=label)


# --- normal forms of results ----------------------------------------------------------------

FIELDS: dict[str, tuple[str, ...]] = {
    "QueueToken": (
        "id", "user_id", "concert_id", "status", "ended_reason", "position", "eta_s",
        "poll_after_s", "joined_at", "activated_at", "expires_at", "ended_at", "created",
    ),
    "Reservation": (
        "id", "user_id", "concert_id", "schedule_id", "token_id", "status", "seat_ids",
        "amount", "created_at", "expires_at", "ended_at", "payment_id",
    ),
    "Payment": ("id", "reservation_id", "user_id", "amount", "status", "paid_at", "balance_after"),
    "Charge": ("entry_id", "user_id", "amount", "balance", "at"),
    "HistoryEntry": ("id", "user_id", "kind", "amount", "balance_after", "at", "reservation_id"),
    "Schedule": (
        "id", "concert_id", "starts_at", "seats_total", "seats_available", "seats_held",
        "seats_sold",
    ),
    "Concert": ("id", "title", "artist", "venue", "sale", "grades", "schedules", "created_at"),
    "SaleSettings": (
        "opens_at", "queue_capacity", "admission_per_minute", "session_ttl_s", "hold_ttl_s",
        "max_seats_per_reservation", "max_seats_per_user", "release_on_payment_failure",
        "abandon_timeout_s", "poll_interval_s",
    ),
    "Seat": ("id", "schedule_id", "label", "section", "row", "number", "grade", "price", "status"),
    "ConcertStats": (
        "concert_id", "queue_waiting", "queue_active", "queue_joined_total",
        "queue_admitted_total", "queue_abandoned_total", "seats_total", "seats_available",
        "seats_held", "seats_sold", "reservations_pending", "reservations_confirmed",
        "reservations_expired", "reservations_canceled", "reservations_refunded", "payments",
        "revenue",
    ),
    "Event": (
        "seq", "type", "at", "user_id", "concert_id", "token_id", "reservation_id", "amount",
        "value",
    ),
}  # fmt: skip


def seconds_us(x: float) -> int:
    """A float of seconds from a view, as the integer microseconds it stands for."""
    return llround(x * 1e6)


def norm(x: object) -> object:
    """A comparable normal form of a result: floats (always seconds) become microseconds."""
    if x is None or isinstance(x, bool | int | str):
        return x
    if isinstance(x, float):
        return ("us", seconds_us(x)) if math.isfinite(x) else ("float", repr(x))
    if isinstance(x, list | tuple):
        return [norm(v) for v in x]
    name = type(x).__name__
    if name not in FIELDS:
        raise TypeError(f"no normal form for {name}: {x!r}")
    return (name, {f: norm(getattr(x, f)) for f in FIELDS[name]})


def norm_error(e: BaseException) -> object:
    if not isinstance(e, errors.BoxOfficeError):
        return ("raised", type(e).__name__, str(e))
    details: dict[str, object] = {}
    if isinstance(e, errors.QueueNotActive):
        details = {
            "position": e.position,
            "eta_us": None if e.eta_s is None else seconds_us(e.eta_s),
            "retry_after_us": None if e.retry_after_s is None else seconds_us(e.retry_after_s),
        }
    elif isinstance(e, errors.SeatUnavailable):
        details = {"seat_id": e.seat_id}
    return ("raised", type(e).__name__, e.code, details)


def diff(a: object, b: object, path: str = "") -> list[str]:
    """Readable differences between two normal forms."""
    if type(a) is not type(b):
        return [f"{path or '<root>'}: engine={a!r} model={b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in a:
            out += diff(a[k], b.get(k), f"{path}.{k}")
        return out
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{path}: length engine={len(a)} model={len(b)}: engine={a!r} model={b!r}"]
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            inner = diff(x, y, f"{path}[{i}]")
            if inner and isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], dict):
                inner += [f"  engine {path}[{i}] = {x!r}", f"  model  {path}[{i}] = {y!r}"]
            out += inner
        return out
    return [] if a == b else [f"{path or '<root>'}: engine={a!r} model={b!r}"]


def code(v: object) -> str:
    """Python source for an argument value (floats round-trip through repr)."""
    if isinstance(v, float) and not math.isfinite(v):
        return f"float({str(v)!r})"
    return repr(v)


def brief(x: object) -> str:
    """A short comment on a result for the reproduction script."""
    n = norm(x)
    if isinstance(n, tuple) and len(n) == 2 and isinstance(n[1], dict):
        d = n[1]
        keys = [k for k in ("id", "entry_id", "status", "position", "amount") if k in d]
        return f"{n[0]}(" + ", ".join(f"{k}={d[k]!r}" for k in keys) + ")"
    text = repr(n)
    return text if len(text) < 80 else text[:77] + "..."


# --- the driver: one engine, one model, the same commands -----------------------------------


@dataclass
class Keyed:
    """A command sent with an idempotency key, kept to be sent again."""

    op: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class Mismatch(AssertionError):
    pass


def small_limits(ch: Chooser) -> dict[str, int | float]:
    return {
        "users_max": 6,
        "concerts_max": 3,
        "schedules_per_concert_max": 2,
        "sections_per_schedule_max": 2,
        "seats_per_schedule_max": 10,
        "rows_per_section_max": 3,
        "seats_per_row_max": 6,
        "seats_per_reservation_max": 4,
        "queue_length_max": ch.pick("queue_length_max", [2, 3, 4, 6]),
        "queue_capacity_max": 5,
        "price_max": 60_000,
        "charge_amount_max": 100_000,
        "balance_max": 150_000,
        "text_length_max": 16,
        "idempotency_key_length_max": 8,
        "idempotency_ttl_s": ch.pick("idempotency_ttl_s", [20.0, 10.0, 300.0]),
    }


class Driver:
    """Sends every command to both sides, compares, and keeps a replayable trace."""

    def __init__(self, seed: int, limits: dict[str, int | float]) -> None:
        self.engine = bo.Engine(seed=seed, limits=bo.Limits(**limits))
        self.model = ReferenceModel(seed=seed, limits=ModelLimits(**limits))  # type: ignore[arg-type]
        self.now_us = T0_US
        self.now_noise = 0.0  # sub-microsecond part added to the next `now` (rounding)
        self.events_seen = 0
        self.keyed: list[Keyed] = []
        self.trace = [
            "import boxoffice as bo",
            f"eng = bo.Engine(seed={seed}, limits=bo.Limits(**{limits!r}))",
        ]

    @classmethod
    def start(cls, ch: Chooser) -> Driver:
        d = cls(ch.pick("seed", [0, 1, 7, 2**63 + 5]), small_limits(ch))
        for _ in range(ch.pick("users", [2, 3, 4])):
            d.create_user(ch)
        d.create_concert(ch, valid=True)
        return d

    # --- plumbing ---------------------------------------------------------------------------

    def now(self) -> float:
        return (self.now_us + self.now_noise) / 1e6

    def script(self) -> str:
        return "\n".join(self.trace)

    def fail(self, what: str, lines: list[str]) -> None:
        shown = "\n".join(lines[:30])
        raise Mismatch(f"{what}\n{shown}\n\n--- reproduce on the engine ---\n{self.script()}\n")

    def call(
        self, name: str, *args: Any, render: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        """Runs one command on both sides; returns the (equal) result or None if it raised."""
        rendered = [code(a) for a in args] + [
            f"{k}={(render or {}).get(k) or code(v)}" for k, v in kwargs.items()
        ]
        line = f"eng.{name}({', '.join(rendered)})"
        try:
            e_out: object = ("ok", norm(getattr(self.engine, name)(*args, **kwargs)))
        except Exception as exc:
            e_out = norm_error(exc)
        m_result: Any = None
        try:
            m_result = getattr(self.model, name)(*args, **kwargs)
            m_out: object = ("ok", norm(m_result))
            expected = brief(m_result)
        except errors.BoxOfficeError as exc:
            m_out = norm_error(exc)
            expected = f"raises {exc.code}"
        self.trace.append(f"{line}  # model: {expected}")
        if e_out != m_out:
            self.fail(f"{name}: engine and model disagree", diff(e_out, m_out))
        self.engine_check()
        return m_result

    def engine_check(self) -> None:
        try:
            self.engine.check_invariants()
        except errors.BoxOfficeError as exc:
            self.fail("engine.check_invariants() failed", [str(exc)])
        self.model.check_invariants()

    def query(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Compares a read-only query (at the current clock, so it changes nothing)."""
        try:
            e_out: object = ("ok", norm(getattr(self.engine, name)(*args, **kwargs)))
        except Exception as exc:
            e_out = norm_error(exc)
        try:
            m_out: object = ("ok", norm(getattr(self.model, name)(*args, **kwargs)))
        except errors.BoxOfficeError as exc:
            m_out = norm_error(exc)
        if e_out != m_out:
            shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            self.fail(f"state differs: {name}({shown})", diff(e_out, m_out))

    def compare_state(self, full: bool = True) -> None:
        """Compares everything observable; `full=False` skips the per-user lists (cost)."""
        m = self.model
        now = m.clock
        if seconds_us(self.engine.clock) != m.clock_us:
            self.fail("clock differs", [f"engine={self.engine.clock!r} model={m.clock!r}"])
        self.query("events", self.events_seen, 10**4)
        if self.engine.last_event_seq != m.last_event_seq:
            self.fail(
                "last_event_seq differs", [f"{self.engine.last_event_seq=} {m.last_event_seq=}"]
            )
        self.events_seen = m.last_event_seq
        concerts = m.concert_ids()
        for c in [*concerts, len(concerts) + 1]:
            self.query("concert", c, now=now)
            self.query("stats", c, now=now)
        for s in m.schedule_ids():
            self.query("seats", s, now=now)
        users = m.user_ids()
        for u in [*users, len(users) + 1]:
            self.query("balance", u, now=now)
            if full:
                self.query("reservations", u, now=now)
                self.query("history", u, now=now)
        self.engine_check()

    # --- choosing ids -----------------------------------------------------------------------

    def pick_user(self, ch: Chooser) -> int:
        users = self.model.user_ids()
        return ch.pick("user", users * 4 + [0, len(users) + 1])

    def pick_concert(self, ch: Chooser) -> int:
        concerts = self.model.concert_ids()
        return ch.pick("concert", concerts * 4 + [len(concerts) + 1])

    def pick_schedule(self, ch: Chooser) -> int:
        schedules = self.model.schedule_ids()
        return ch.pick("schedule", schedules * 4 + [len(schedules) + 1])

    def pick_token(self, ch: Chooser, user: int, concert: int) -> int:
        rows = self.model.token_rows()
        own = [t[0] for t in rows if t[1] == user and t[2] == concert]
        mine = [t[0] for t in rows if t[1] == user]
        anyone = [t[0] for t in rows]
        options = own[-1:] * 8 + own[-3:] + mine[-3:] + anyone[-3:] + [0, len(rows) + 1]
        return ch.pick("token", options)

    def pick_session(self, ch: Chooser) -> tuple[int, int, int]:
        """(user, token, concert): mostly an ACTIVE token, so that gated commands get through."""
        rows = self.model.token_rows()
        active = [(u, t, c) for t, u, c, state in rows if state == "ACTIVE"]
        live = [(u, t, c) for t, u, c, state in rows if state != "EXPIRED"]
        kind = ch.pick("session", ["active"] * 6 + ["live"] * 2 + ["any"] * 2)
        if kind == "active" and not active:  # like a client: join first
            self.join_queue(ch)
            rows = self.model.token_rows()
            active = [(u, t, c) for t, u, c, state in rows if state == "ACTIVE"]
            live = [(u, t, c) for t, u, c, state in rows if state != "EXPIRED"]
        if kind != "any" and (active or live):
            return ch.pick(kind, active if active and kind == "active" else live or active)
        user = self.pick_user(ch)
        concert = self.pick_concert(ch)
        return user, self.pick_token(ch, user, concert), concert

    def pick_reservation(self, ch: Chooser, statuses: tuple[str, ...]) -> tuple[int, int, int]:
        """(user, reservation, concert): mostly a recent one in `statuses`, with its owner."""
        rows = self.model.reservation_rows()
        preferred = [r for r in rows if r[3] in statuses]
        options = [(r[1], r[0], r[2]) for r in preferred[-4:] * 4 + rows[-4:]]
        if not options or ch.pick("odd_reservation", [False] * 5 + [True]):
            user = self.pick_user(ch)
            return user, ch.pick("reservation", [r[0] for r in rows[-3:]] + [len(rows) + 1]), 1
        user, reservation, concert = ch.pick("reservation", options)
        return (
            self.pick_user(ch) if ch.pick("stranger", [False] * 7 + [True]) else user,
            reservation,
            concert,
        )

    def pick_key(self, ch: Chooser) -> str:
        return ch.pick("idempotency_key", KEYS)

    def concert_of_schedule(self, schedule: int) -> int:
        if schedule in self.model.schedule_ids():
            return self.model.concert_of_schedule(schedule)
        return 1

    # --- time -------------------------------------------------------------------------------

    def set_time(self, us: int, ch: Chooser) -> None:
        self.now_us = us
        self.now_noise = ch.pick("noise", [0.0] * 6 + [0.3, 0.5, 0.7])
        if ch.pick("advance", [False, False, True]):
            self.call("advance", now=self.now())

    def jump_small(self, ch: Chooser) -> None:
        step = ch.pick("small_us", [0, 1, 999, 100_000, 500_000, 1_000_000, 2_500_000])
        self.set_time(max(self.now_us, self.model.clock_us) + step, ch)

    def jump_to_deadline(self, ch: Chooser) -> None:
        deadlines = self.model.pending_deadlines()
        if not deadlines:
            self.jump_small(ch)
            return
        at = ch.pick("deadline", deadlines[:6])[0]
        self.set_time(at + ch.pick("offset_us", [0, 0, 0, -1, 1]), ch)

    def jump_large(self, ch: Chooser) -> None:
        step_s = ch.pick("large_s", [15, 30, 61, 120, 301, 700, 3600])
        self.set_time(max(self.now_us, self.model.clock_us) + step_s * 1_000_000, ch)

    def jump_back(self, ch: Chooser) -> None:
        # A late caller: `now` before the clock, so the call runs at the clock.
        back = ch.pick("back_us", [1, 1000, 5_000_000])
        self.set_time(self.model.clock_us - back, ch)

    def invalid_now(self, ch: Chooser) -> None:
        bad = ch.pick("bad_now", [math.nan, math.inf, -math.inf, -1.0, -1e-3, 1e11, 2e11])
        op = ch.pick("op", ["advance", "create_user", "balance", "join_queue"])
        if op == "balance":
            self.call("balance", 1, now=bad)
        elif op == "join_queue":
            self.call("join_queue", 1, 1, now=bad)
        else:
            self.call(op, now=bad)

    # --- commands ---------------------------------------------------------------------------

    def create_user(self, ch: Chooser) -> None:
        self.call("create_user", now=self.now())

    def create_concert(self, ch: Chooser, valid: bool = False) -> None:
        flaw = "none" if valid else ch.pick(
            "flaw",
            ["none"] * 10 + [
                "empty_title", "long_title", "no_schedules", "no_sections", "three_schedules",
                "capacity0", "poll_gt_abandon", "zero_price", "max_res_too_big", "neg_opens",
                "apm0", "msu0", "zero_rows", "default_sale",
            ],
        )  # fmt: skip
        now_s = self.now_us / 1e6
        schedules: list[bo.ScheduleSpec] = []
        schedule_code: list[str] = []
        n_schedules = {"no_schedules": 0, "three_schedules": 3}.get(
            flaw, ch.pick("schedules", [1, 1, 2])
        )
        for i in range(n_schedules):
            sections: list[bo.SectionSpec] = []
            section_code: list[str] = []
            n_sections = 0 if flaw == "no_sections" else ch.pick("sections", [1, 1, 2])
            for j in range(n_sections):
                args = (
                    "AB"[j],
                    0 if flaw == "zero_rows" else ch.pick("rows", [1, 1, 2]),
                    ch.pick("seats_per_row", [3, 1, 2, 4, 5, 6]),
                    ch.pick("grade", ["R", "S", "VIP"]),
                    0 if flaw == "zero_price" else ch.pick("price", [10_000, 30_000, 50_000]),
                )
                sections.append(bo.SectionSpec(*args))
                section_code.append(f"bo.SectionSpec{args!r}")
            starts = now_s + 86400.0 * (i + 1)
            schedules.append(bo.ScheduleSpec(starts, sections))
            schedule_code.append(f"bo.ScheduleSpec({starts!r}, [{', '.join(section_code)}])")
        opens = ch.pick("opens", ["none", "none", "future", "future", "past", "now", "zero"])
        sale_kwargs: dict[str, Any] = {
            "opens_at": {
                "none": None,
                "future": now_s + ch.pick("opens_in_s", [0.5, 3.0, 20.0]),
                "past": now_s - 100.0,
                "now": now_s,
                "zero": 0.0,
            }[opens],
            "queue_capacity": ch.pick("capacity", [1, 1, 2, 3]),
            "admission_per_minute": ch.pick("apm", [None, None, None, 1, 2, 6, 60, 60_000]),
            "session_ttl_s": ch.pick("session_ttl_s", [30.0, 10.0, 4.0, 120.0]),
            "hold_ttl_s": ch.pick("hold_ttl_s", [10.0, 3.0, 60.0]),
            "max_seats_per_reservation": ch.pick("max_seats_per_reservation", [1, 2, 3, 4]),
            "max_seats_per_user": ch.pick("max_seats_per_user", [None, None, 1, 2, 3]),
            "release_on_payment_failure": ch.pick("release_on_payment_failure", [False, True]),
            "abandon_timeout_s": ch.pick("abandon_timeout_s", [10.0, 4.0, 15.0]),
            "poll_interval_s": ch.pick("poll_interval_s", [1.0, 4.0]),
        }
        flaws: dict[str, dict[str, Any]] = {
            "capacity0": {"queue_capacity": 0},
            "poll_gt_abandon": {"poll_interval_s": 20.0},
            "max_res_too_big": {"max_seats_per_reservation": 5},
            "neg_opens": {"opens_at": -1.0},
            "apm0": {"admission_per_minute": 0},
            "msu0": {"max_seats_per_user": 0},
        }
        sale_kwargs |= flaws.get(flaw, {})
        sale_code = "bo.SaleSettings(**" + repr(sale_kwargs) + ")"
        try:
            sale = None if flaw == "default_sale" else bo.SaleSettings(**sale_kwargs)
        except errors.BoxOfficeError as exc:
            # The binding checks `opens_at` (a time) when the settings are built; the rules
            # want INVALID_ARGUMENT for it, and no command reaches either side.
            self.trace.append(f"# {sale_code} raises {exc.code}")
            if not isinstance(exc, errors.InvalidArgument) or flaw != "neg_opens":
                self.fail("SaleSettings refused valid settings", [repr(exc)])
            return
        if sale is None:
            sale_code = "None"
        title = {"empty_title": "", "long_title": "T" * 17}.get(
            flaw, ch.pick("title", ["IU Tour", "Drop", "iu night"])
        )
        self.call(
            "create_concert",
            title=title,
            artist=ch.pick("artist", ["IU", "", "Newjeans"]),
            venue="KSPO",
            schedules=schedules,
            sale=sale,
            now=self.now(),
            render={"schedules": f"[{', '.join(schedule_code)}]", "sale": sale_code},
        )

    def join_queue(self, ch: Chooser) -> None:
        self.call("join_queue", self.pick_user(ch), self.pick_concert(ch), now=self.now())

    def queue_status(self, ch: Chooser) -> None:
        user = self.pick_user(ch)
        token = self.pick_token(ch, user, self.pick_concert(ch))
        self.call("queue_status", user, token, now=self.now())

    def leave_queue(self, ch: Chooser) -> None:
        user = self.pick_user(ch)
        token = self.pick_token(ch, user, self.pick_concert(ch))
        self.call("leave_queue", user, token, now=self.now())

    def check_gate(self, ch: Chooser) -> None:
        user = self.pick_user(ch)
        concert = self.pick_concert(ch)
        token = self.pick_token(
            ch, user, ch.pick("gate_concert", [concert] * 4 + [concert % 3 + 1])
        )
        self.call("check_gate", user, token, concert, now=self.now())

    def observe_tokens(self, ch: Chooser) -> None:
        """Polls the live tokens and the last expired ones (a poll touches: it is a command)."""
        rows = self.model.token_rows()
        expired = [r for r in rows if r[3] == "EXPIRED"][-3:]
        for token, user, _concert, _state in [r for r in rows if r[3] != "EXPIRED"] + expired:
            self.call("queue_status", user, token, now=self.now())

    def _seat_choice(self, ch: Chooser, schedule: int) -> list[int]:
        own = (
            self.model.schedule_seat_ids(schedule) if schedule in self.model.schedule_ids() else []
        )
        every = [s for sid in self.model.schedule_ids() for s in self.model.schedule_seat_ids(sid)]
        options = own * 6 + every + [len(every) + 1]
        seats = [ch.pick("seat", options) for _ in range(ch.pick("n_seats", [1, 1, 2, 2, 3, 5]))]
        if ch.pick("duplicate", [False] * 9 + [True]):
            seats.append(seats[0])
        return seats

    def pick_schedule_of(self, ch: Chooser, concert: int) -> int:
        mine = [
            s for s in self.model.schedule_ids() if self.model.concert_of_schedule(s) == concert
        ]
        return ch.pick("schedule", mine * 4 + [self.pick_schedule(ch)])

    def hold_seats(self, ch: Chooser) -> None:
        user, token, concert = self.pick_session(ch)
        schedule = self.pick_schedule_of(ch, concert)
        seats = self._seat_choice(ch, schedule)
        odd = ch.pick("odd", ["none"] * 12 + ["quantity", "grade", "negative"])
        quantity = {"quantity": 1, "negative": -1}.get(odd, 0)
        grade = "R" if odd == "grade" else ""
        key = self.pick_key(ch)
        self.call(
            "hold", user, token, schedule, seats,
            quantity=quantity, grade=grade, idempotency_key=key, now=self.now(),
        )  # fmt: skip
        self.keyed.append(
            Keyed("hold", (user, token, schedule, seats),
                  {"quantity": quantity, "grade": grade, "idempotency_key": key})
        )  # fmt: skip

    def hold_best(self, ch: Chooser) -> None:
        user, token, concert = self.pick_session(ch)
        schedule = self.pick_schedule_of(ch, concert)
        concert = self.concert_of_schedule(schedule)
        grades = self.model.concert_grades(concert) if concert in self.model.concert_ids() else []
        grade = ch.pick("grade", ["", "", *grades, "ZZ"])
        quantity = ch.pick("quantity", [2, 1, 1, 2, 3, 0, 5])
        seats: list[int] | None = ch.pick("seat_ids", [None, None, []])
        key = self.pick_key(ch)
        self.call(
            "hold", user, token, schedule, seats,
            quantity=quantity, grade=grade, idempotency_key=key, now=self.now(),
        )  # fmt: skip
        self.keyed.append(
            Keyed("hold", (user, token, schedule, seats),
                  {"quantity": quantity, "grade": grade, "idempotency_key": key})
        )  # fmt: skip

    def release_seat(self, ch: Chooser) -> None:
        user, reservation, _concert = self.pick_reservation(ch, ("PENDING",))
        rows = {r[0]: r for r in self.model.reservation_rows()}
        seats = rows[reservation][4] if reservation in rows else []
        seat = ch.pick("seat", seats * 3 + [1, 2])
        self.call("release_seat", user, reservation, seat, now=self.now())

    def cancel(self, ch: Chooser) -> None:
        user, reservation, _concert = self.pick_reservation(ch, ("PENDING",))
        self.call("cancel", user, reservation, now=self.now())

    def charge(self, ch: Chooser) -> None:
        user = self.pick_user(ch)
        amount = ch.pick("amount", [50_000, 30_000, 100_000, 10_000, 1, 0, -1, 100_001, 60_000])
        key = self.pick_key(ch)
        self.call("charge", user, amount, idempotency_key=key, now=self.now())
        self.keyed.append(Keyed("charge", (user, amount), {"idempotency_key": key}))

    def pay(self, ch: Chooser) -> None:
        active = {(u, c): t for t, u, c, state in self.model.token_rows() if state == "ACTIVE"}
        payable = [
            (r[1], active[(r[1], r[2])], r[0])
            for r in self.model.reservation_rows()
            if r[3] == "PENDING" and (r[1], r[2]) in active
        ]
        affordable = [p for p in payable if self.model.wallet(p[0]) >= self.model.amount_of(p[2])]
        prefer_payable: bool = ch.pick("payable", [True] * 3 + [False] * 2)
        if payable and prefer_payable:
            user, token, reservation = ch.pick("pay", affordable * 2 + payable)
        else:
            user, reservation, concert = self.pick_reservation(ch, ("PENDING",))
            token = self.pick_token(ch, user, concert)
        key = self.pick_key(ch)
        self.call("pay", user, token, reservation, idempotency_key=key, now=self.now())
        self.keyed.append(Keyed("pay", (user, token, reservation), {"idempotency_key": key}))

    def buy(self, ch: Chooser) -> None:
        """The happy path of a payment: charge what is missing, then pay."""
        active = {(u, c): t for t, u, c, state in self.model.token_rows() if state == "ACTIVE"}
        payable = [
            (r[1], active[(r[1], r[2])], r[0])
            for r in self.model.reservation_rows()
            if r[3] == "PENDING" and (r[1], r[2]) in active
        ]
        if not payable:
            self.hold_best(ch)
            return
        user, token, reservation = ch.pick("buy", payable)
        missing = self.model.amount_of(reservation) - self.model.wallet(user)
        if missing > 0:
            self.call("charge", user, min(missing, 100_000), now=self.now())
        self.call("pay", user, token, reservation, now=self.now())

    def refund(self, ch: Chooser) -> None:
        user, reservation, _concert = self.pick_reservation(ch, ("CONFIRMED",))
        self.call("refund", user, reservation, now=self.now())

    def replay(self, ch: Chooser) -> None:
        """Sends a keyed command again: the same request, or another one under its key."""
        keyed = [k for k in self.keyed if k.kwargs["idempotency_key"]]
        if not keyed:
            self.charge(ch)
            return
        k = ch.pick("keyed", keyed[-6:])
        args = list(k.args)
        how = ch.pick("how", ["same", "same", "other"])
        if how == "other":  # change the fingerprint, keep the key
            if k.op == "charge":
                args[1] = args[1] + 1
            elif k.op == "pay":
                args[2] = args[2] + 1
            elif args[3]:
                args[3] = [*args[3][:-1], args[3][-1] + 1]
            else:
                k = Keyed(k.op, k.args, k.kwargs | {"quantity": k.kwargs["quantity"] + 1})
        elif k.op in ("hold", "pay"):  # the token is not part of the fingerprint
            args[1] = ch.pick("replay_token", [args[1], args[1] + 1])
        self.call(k.op, *args, **k.kwargs, now=self.now())

    def queries(self, ch: Chooser) -> None:
        """Queries with odd arguments (they advance the clock to `now`)."""
        what = ch.pick("query", ["concerts", "seats", "reservation", "schedules", "concert"])
        now = self.now()
        if what == "concerts":
            q = ch.pick("q", ["", "iu", "IU", "drop", "zz", "Tour"])
            lo = ch.pick("from", [None, self.now_us / 1e6, self.now_us / 1e6 + 86400.0])
            hi = ch.pick("to", [None, self.now_us / 1e6 + 86400.0, self.now_us / 1e6])
            self.call("concerts", q, starts_from=lo, starts_to=hi, now=now)
        elif what == "seats":
            status = ch.pick("status", [None, "AVAILABLE", "HELD", "SOLD"])
            self.call("seats", self.pick_schedule(ch), status, now=now)
        elif what == "reservation":
            user, reservation, _concert = self.pick_reservation(ch, ("PENDING", "CONFIRMED"))
            self.call("reservation", user, reservation, now=now)
        elif what == "schedules":
            self.call("schedules", self.pick_concert(ch), now=now)
        else:
            self.call("concert", self.pick_concert(ch), now=now)


# Every action of a random stream, with weights (the Hypothesis machine has one rule each).
ACTIONS: list[tuple[str, int]] = [
    ("jump_small", 6),
    ("jump_to_deadline", 5),
    ("jump_large", 2),
    ("jump_back", 1),
    ("invalid_now", 1),
    ("create_user", 1),
    ("create_concert", 1),
    ("join_queue", 6),
    ("queue_status", 3),
    ("leave_queue", 2),
    ("check_gate", 2),
    ("observe_tokens", 1),
    ("hold_seats", 6),
    ("hold_best", 4),
    ("release_seat", 2),
    ("cancel", 2),
    ("charge", 4),
    ("pay", 4),
    ("buy", 2),
    ("refund", 1),
    ("replay", 3),
    ("queries", 1),
]
