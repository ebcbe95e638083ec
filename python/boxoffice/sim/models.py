"""The models of a simulated ticket drop: who arrives when, what they try, what is on sale.

Every model is a frozen dataclass with documented units: times and durations in seconds
(arrival times are relative to the sale's opening, negative before it), money in integer won,
probabilities in [0, 1]. Invalid values raise ``ValueError`` when the dataclass is made.

The models only decide what users *try* and *when*; the engine decides every outcome.
All randomness is drawn up front by :func:`draw_population` from one seeded
``numpy.random.Generator``, in a fixed order, so the same :class:`SimConfig` always gives the
same traffic. ``docs/simulation.md`` describes every parameter.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from .. import SaleSettings, SectionSpec

__all__ = [
    "ArrivalModel",
    "Behaviour",
    "BurstArrivals",
    "CsvArrivals",
    "Grade",
    "PoissonArrivals",
    "Population",
    "Sale",
    "SimConfig",
    "Venue",
    "draw_population",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]


def _probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


def _positive(name: str, value: float) -> None:
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value}")


def _non_negative(name: str, value: float) -> None:
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a non-negative finite number, got {value}")


# ---------------------------------------------------------------------------------------------
# Arrivals: each model returns the users' arrival times, sorted, in seconds after the opening.


@dataclass(frozen=True)
class BurstArrivals:
    """A crowd at the opening: a share arrives early and waits in the pre-queue.

    ``early_fraction`` of the users arrive uniformly in the ``early_window_s`` seconds before
    ``opens_at`` (they join the pre-queue, whose order the engine shuffles at the opening);
    the others arrive after the opening, with exponential delays of mean ``spread_s`` seconds
    (so the arrival rate peaks at the opening and decays).
    """

    early_fraction: float = 0.1
    early_window_s: float = 600.0
    spread_s: float = 60.0

    def __post_init__(self) -> None:
        _probability("early_fraction", self.early_fraction)
        _positive("early_window_s", self.early_window_s)
        _positive("spread_s", self.spread_s)

    def sample(self, users: int, rng: np.random.Generator) -> FloatArray:
        """``users`` arrival times in seconds after the opening, sorted (shape ``(users,)``)."""
        early = rng.random(users) < self.early_fraction
        before = -self.early_window_s * rng.random(users)
        after = rng.exponential(self.spread_s, users)
        return np.sort(np.where(early, before, after))


@dataclass(frozen=True)
class PoissonArrivals:
    """A steady stream: a Poisson process of ``rate_per_s`` arrivals per second.

    The first arrival comes an exponential gap after ``start_s`` (seconds relative to the
    opening; negative to start in the pre-queue).
    """

    rate_per_s: float = 1_000.0
    start_s: float = 0.0

    def __post_init__(self) -> None:
        _positive("rate_per_s", self.rate_per_s)
        if not math.isfinite(self.start_s):
            raise ValueError("start_s must be finite")

    def sample(self, users: int, rng: np.random.Generator) -> FloatArray:
        """``users`` arrival times in seconds after the opening, sorted (shape ``(users,)``)."""
        gaps = rng.exponential(1.0 / self.rate_per_s, users)
        return np.asarray(self.start_s + np.cumsum(gaps), dtype=np.float64)


@dataclass(frozen=True)
class CsvArrivals:
    """Arrivals read from a CSV file of timestamps, one user per row.

    Args:
        path: the CSV file (with a header row).
        column: the column of timestamps (default: the first column).
        opens_at: the sale's opening in the file's clock: seconds since the Unix epoch or an
            ISO 8601 string; the timestamps are then epoch seconds or ISO 8601 strings too.
            ``None`` means the values are already seconds relative to the opening
            (negative before it).

    ``sample(users)`` uses the ``users`` earliest rows (rows with equal times keep file order)
    and raises ``ValueError`` when the file has fewer rows, a missing column, or a value that
    is not a time.
    """

    path: str | os.PathLike[str]
    column: str | None = None
    opens_at: float | str | None = None

    def load(self) -> FloatArray:
        """Every row's arrival, in seconds after the opening, sorted (stable)."""
        import pandas as pd

        frame = pd.read_csv(self.path)
        if frame.shape[1] == 0:
            raise ValueError(f"{self.path}: no columns")
        column = frame.columns[0] if self.column is None else self.column
        if column not in frame.columns:
            raise ValueError(f"{self.path}: no column {column!r} (has {list(frame.columns)})")
        values = frame[column]
        if self.opens_at is None:
            times = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        else:
            times = self._epoch_seconds(values) - self._epoch_seconds(pd.Series([self.opens_at]))[0]
        if not np.isfinite(times).all():
            bad = int(np.flatnonzero(~np.isfinite(times))[0])
            raise ValueError(f"{self.path}: row {bad + 1} of {column!r} is not a time")
        return np.sort(times, kind="stable")

    @staticmethod
    def _epoch_seconds(values: object) -> FloatArray:
        import pandas as pd

        series = pd.Series(values)
        numeric = pd.to_numeric(series, errors="coerce")
        if numeric.notna().all():
            return np.asarray(numeric.to_numpy(dtype=np.float64), dtype=np.float64)
        stamps = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
        seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        return np.asarray(seconds.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)

    def sample(self, users: int, rng: np.random.Generator) -> FloatArray:
        """The ``users`` earliest arrivals of the file (``rng`` is unused: a file is fixed)."""
        times = self.load()
        if users > len(times):
            raise ValueError(f"{self.path} has {len(times)} arrivals, fewer than {users} users")
        return times[:users]


ArrivalModel: TypeAlias = BurstArrivals | PoissonArrivals | CsvArrivals
"""Any of the arrival models."""


# ---------------------------------------------------------------------------------------------
# What is on sale.


@dataclass(frozen=True)
class Grade:
    """One seat grade of the venue: its ``name``, its ``share`` of the seats and its ``price``
    in won per seat."""

    name: str
    share: float
    price_won: int


@dataclass(frozen=True)
class Venue:
    """The seat map of the one schedule on sale.

    ``seats`` seats in rows of ``seats_per_row``, split between ``grades`` by their shares
    (rounded; the last grade takes the remainder). Sections come front to back in grade order
    (best first), so best-available fills the front grade first. A grade gets as many sections
    (``VIP``, ``VIP2``, ...) as the engine's 1,000-rows-per-section limit needs, and a short last
    row when its seat count is not a multiple of ``seats_per_row``.
    """

    seats: int = 10_000
    seats_per_row: int = 50
    grades: tuple[Grade, ...] = (
        Grade("VIP", 0.2, 165_000),
        Grade("R", 0.4, 132_000),
        Grade("S", 0.4, 99_000),
    )

    def __post_init__(self) -> None:
        if self.seats < 1:
            raise ValueError(f"seats must be at least 1, got {self.seats}")
        if not 1 <= self.seats_per_row <= 1_000:
            raise ValueError(f"seats_per_row must be in 1..1000, got {self.seats_per_row}")
        if not self.grades:
            raise ValueError("a venue needs at least one grade")
        names = [g.name for g in self.grades]
        if len(set(names)) != len(names):
            raise ValueError(f"grade names must be distinct, got {names}")
        for g in self.grades:
            _probability(f"share of grade {g.name}", g.share)
            if g.price_won < 1:
                raise ValueError(f"price of grade {g.name} must be at least 1 won")
        if not math.isclose(sum(g.share for g in self.grades), 1.0, abs_tol=1e-9):
            raise ValueError("grade shares must sum to 1")

    def seats_per_grade(self) -> list[int]:
        """Seats of each grade, in grade order (sums to ``seats``)."""
        counts = [round(g.share * self.seats) for g in self.grades[:-1]]
        counts.append(self.seats - sum(counts))
        if min(counts) < 0:
            raise ValueError("grade shares round to a negative seat count")
        return counts

    def sections(self) -> list[SectionSpec]:
        """The seat map as engine sections, front to back."""
        rows_max = 1_000
        sections: list[SectionSpec] = []
        for grade, count in zip(self.grades, self.seats_per_grade(), strict=True):
            full_rows, rest = divmod(count, self.seats_per_row)
            parts: list[tuple[int, int]] = []
            while full_rows > 0:
                rows = min(full_rows, rows_max)
                parts.append((rows, self.seats_per_row))
                full_rows -= rows
            if rest:
                parts.append((1, rest))
            for i, (rows, per_row) in enumerate(parts):
                name = grade.name if i == 0 else f"{grade.name}{i + 1}"
                sections.append(SectionSpec(name, rows, per_row, grade.name, grade.price_won))
        return sections


@dataclass(frozen=True)
class Sale:
    """The sale settings under test (``boxoffice.SaleSettings``; seconds, counts).

    Attributes:
        queue_capacity: most ACTIVE queue tokens at once (shoppers let in).
        admission_per_minute: cap on new admissions per minute, or None for no cap.
        session_ttl_s: how long an ACTIVE token stays active.
        hold_ttl_s: how long a PENDING reservation holds its seats.
        max_seats_per_reservation: seats one hold may take (users wanting more ask for this).
        release_on_payment_failure: a failed payment cancels the hold at once.
        abandon_timeout_s: a WAITING user who has not polled for this long loses the place.
        poll_interval_s: the poll interval the engine tells clients (``poll_after_s``).
            20 s here, not the engine's default 5 s: with a million users waiting,
            polls are nearly all of the commands, and 5 s makes 3.7 times as many.
    """

    queue_capacity: int = 2_000
    admission_per_minute: int | None = None
    session_ttl_s: float = 600.0
    hold_ttl_s: float = 300.0
    max_seats_per_reservation: int = 4
    release_on_payment_failure: bool = False
    abandon_timeout_s: float = 60.0
    poll_interval_s: float = 20.0

    def __post_init__(self) -> None:
        if self.queue_capacity < 1:
            raise ValueError(f"queue_capacity must be at least 1, got {self.queue_capacity}")
        if self.admission_per_minute is not None and self.admission_per_minute < 1:
            raise ValueError("admission_per_minute must be at least 1 (or None)")
        for name in ("session_ttl_s", "hold_ttl_s", "abandon_timeout_s", "poll_interval_s"):
            _positive(name, getattr(self, name))
        if self.max_seats_per_reservation < 1:
            raise ValueError("max_seats_per_reservation must be at least 1")
        if self.poll_interval_s > self.abandon_timeout_s:
            raise ValueError("poll_interval_s must not exceed abandon_timeout_s")

    def settings(self, opens_at: float) -> SaleSettings:
        """The engine's ``SaleSettings`` for a sale opening at ``opens_at`` (epoch seconds)."""
        return SaleSettings(
            opens_at=opens_at,
            queue_capacity=self.queue_capacity,
            admission_per_minute=self.admission_per_minute,
            session_ttl_s=self.session_ttl_s,
            hold_ttl_s=self.hold_ttl_s,
            max_seats_per_reservation=self.max_seats_per_reservation,
            release_on_payment_failure=self.release_on_payment_failure,
            abandon_timeout_s=self.abandon_timeout_s,
            poll_interval_s=self.poll_interval_s,
        )


# ---------------------------------------------------------------------------------------------
# What users try.


@dataclass(frozen=True)
class Behaviour:
    """How users behave; each user draws their own values up front.

    Attributes:
        poll_interval_s: seconds between a waiting user's polls; None follows the sale's
            ``poll_interval_s`` (what the engine answers in ``poll_after_s``).
        patience_s: mean of the exponential time (from arrival) a user waits before giving
            up; ``math.inf`` never gives up. Checked at each poll.
        tidy_p: share of users who, when they quit at any point, say so (leave the queue,
            cancel their hold); the others just close the tab, and the engine's timeouts end
            their token (abandon timeout, session TTL) and their hold (hold TTL).
        seats_weights: relative weights of wanting 1, 2, 3, 4, ... seats (one weight per
            count); a user asks for at most the sale's ``max_seats_per_reservation``.
        best_available_p: share of users who take best-available seats of any grade; the
            others want one grade, chosen in proportion to its seats.
        switch_grade_p: share of grade-wanting users who switch to any grade when their
            grade has no seats left (the others keep trying their grade).
        hold_attempts: failed holds (no seats) after which a user gives up.
        choose_time_s: mean of the exponential time from seeing ACTIVE (or a failed hold) to
            the hold.
        pay_time_s: mean of the exponential time from the hold to paying (or walking away).
        pay_p: share of users who pay for their hold; the others walk away.
        funded_p: share of users whose wallet holds ``balance_won`` at the start; the others
            start with an empty wallet and fail to pay unless they top up.
        balance_won: the starting balance of funded users (won).
        topup_p: share of users who, after a payment fails for lack of balance, charge the
            shortfall and pay again (once).
        topup_time_s: mean of the exponential time from the failed payment to the top-up.
    """

    poll_interval_s: float | None = None
    patience_s: float = 600.0
    tidy_p: float = 0.5
    seats_weights: tuple[float, ...] = (0.35, 0.4, 0.1, 0.15)
    best_available_p: float = 0.5
    switch_grade_p: float = 0.5
    hold_attempts: int = 3
    choose_time_s: float = 20.0
    pay_time_s: float = 30.0
    pay_p: float = 0.9
    funded_p: float = 0.9
    balance_won: int = 1_000_000
    topup_p: float = 0.7
    topup_time_s: float = 30.0

    def __post_init__(self) -> None:
        if self.poll_interval_s is not None:
            _positive("poll_interval_s", self.poll_interval_s)
        if not self.patience_s > 0:
            raise ValueError(f"patience_s must be positive (or math.inf), got {self.patience_s}")
        for name in (
            "tidy_p",
            "best_available_p",
            "switch_grade_p",
            "pay_p",
            "funded_p",
            "topup_p",
        ):
            _probability(name, getattr(self, name))
        if not self.seats_weights or min(self.seats_weights) < 0 or sum(self.seats_weights) <= 0:
            raise ValueError("seats_weights must be non-negative with a positive sum")
        if self.hold_attempts < 1:
            raise ValueError("hold_attempts must be at least 1")
        for name in ("choose_time_s", "pay_time_s", "topup_time_s"):
            _non_negative(name, getattr(self, name))
        if self.balance_won < 0:
            raise ValueError("balance_won must not be negative")


@dataclass(frozen=True)
class SimConfig:
    """One simulated drop: the crowd, the venue, the sale and the clock.

    Attributes:
        users: number of users (each arrives once).
        seed: seeds every random draw and the engine (pre-queue shuffle).
        venue, sale, behaviour, arrivals: the models above.
        opens_at: the opening in virtual epoch seconds (the engine's clock).
        tick_s: virtual-time step: every user action happens at a multiple of it after the
            opening (arrivals and durations are rounded up to the next tick, at least one).
        sample_every_s: step of the time series (rounded to whole ticks).
        horizon_s: the simulation stops this long after the opening at the latest.
        stop_at_sell_out: stop as soon as every seat is SOLD (the users still waiting then
            are reported as ``waiting``).
    """

    users: int = 100_000
    seed: int = 1
    venue: Venue = field(default_factory=Venue)
    sale: Sale = field(default_factory=Sale)
    behaviour: Behaviour = field(default_factory=Behaviour)
    arrivals: ArrivalModel = field(default_factory=BurstArrivals)
    opens_at: float = 1_800_000_000.0
    tick_s: float = 1.0
    sample_every_s: float = 10.0
    horizon_s: float = 7_200.0
    stop_at_sell_out: bool = True

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError(f"users must be at least 1, got {self.users}")
        if not 0 <= self.seed < 2**63:
            raise ValueError("seed must be in 0 .. 2**63 - 1")
        _positive("tick_s", self.tick_s)
        if self.tick_s < 1e-3:
            raise ValueError("tick_s must be at least 0.001 s")
        _positive("sample_every_s", self.sample_every_s)
        _positive("horizon_s", self.horizon_s)
        if not 0 < self.opens_at < 9e10:
            raise ValueError("opens_at must be in (0, 9e10) epoch seconds")

    @property
    def poll_interval_s(self) -> float:
        """The users' poll interval in seconds (behaviour's, else the sale's)."""
        return self.behaviour.poll_interval_s or self.sale.poll_interval_s

    def ticks(self, seconds: float) -> int:
        """A duration in whole ticks, rounded up, at least one."""
        return max(1, math.ceil(seconds / self.tick_s - 1e-9))


# ---------------------------------------------------------------------------------------------
# The crowd, drawn.


@dataclass(frozen=True)
class Population:
    """Every user's draws, index ``i`` = user ``i + 1`` = the ``i``-th arrival (all shape
    ``(users,)``; durations already in whole ticks)."""

    arrival_s: FloatArray
    arrival_tick: IntArray
    give_up_tick: IntArray
    tidy: BoolArray
    seats_wanted: IntArray
    grade: IntArray
    switches_grade: BoolArray
    choose_ticks: IntArray
    pay_ticks: IntArray
    pays: BoolArray
    balance_won: IntArray
    tops_up: BoolArray
    topup_ticks: IntArray


def _ticks(config: SimConfig, seconds: FloatArray) -> IntArray:
    ticks = np.ceil(seconds / config.tick_s - 1e-9)
    return np.maximum(ticks, 1).astype(np.int64)


def draw_population(config: SimConfig, rng: np.random.Generator) -> Population:
    """Draws every user's arrival and behaviour, in a fixed order, from ``rng``.

    Raises:
        ValueError: from the arrival model (e.g. a CSV with too few rows).
    """
    n = config.users
    b = config.behaviour
    arrival_s = np.asarray(config.arrivals.sample(n, rng), dtype=np.float64)
    if arrival_s.shape != (n,) or not np.isfinite(arrival_s).all():
        raise ValueError(f"the arrival model must return {n} finite times")
    # Users are numbered in arrival order: user i + 1 is the i-th arrival.
    arrival_s = np.sort(arrival_s, kind="stable")
    # A user joins at the first tick at or after their arrival (ceil), so nobody joins early.
    arrival_tick = np.ceil(arrival_s / config.tick_s - 1e-9).astype(np.int64)
    if math.isinf(b.patience_s):
        patience = np.full(n, np.inf)
        rng.random(n)  # keeps the later draws the same whatever the patience
    else:
        patience = rng.exponential(b.patience_s, n)
    horizon_ticks = config.ticks(config.horizon_s) + 1
    patience_ticks = np.minimum(np.ceil(patience / config.tick_s), horizon_ticks - arrival_tick)
    give_up_tick = arrival_tick + np.maximum(patience_ticks, 1).astype(np.int64)
    tidy = rng.random(n) < b.tidy_p
    weights = np.asarray(b.seats_weights, dtype=np.float64)
    wanted = 1 + rng.choice(len(weights), size=n, p=weights / weights.sum())
    seats_wanted = np.minimum(wanted, config.sale.max_seats_per_reservation).astype(np.int64)
    per_grade = np.asarray(config.venue.seats_per_grade(), dtype=np.float64)
    picks = 1 + rng.choice(len(per_grade), size=n, p=per_grade / per_grade.sum())
    best = rng.random(n) < b.best_available_p
    grade = np.where(best, 0, picks).astype(np.int64)  # 0 = any grade, k = the k-th grade
    switches_grade = rng.random(n) < b.switch_grade_p
    choose_ticks = _ticks(config, rng.exponential(1.0, n) * b.choose_time_s)
    pay_ticks = _ticks(config, rng.exponential(1.0, n) * b.pay_time_s)
    pays = rng.random(n) < b.pay_p
    funded = rng.random(n) < b.funded_p
    balance_won = np.where(funded, b.balance_won, 0).astype(np.int64)
    tops_up = rng.random(n) < b.topup_p
    topup_ticks = _ticks(config, rng.exponential(1.0, n) * b.topup_time_s)
    return Population(
        arrival_s=arrival_s,
        arrival_tick=arrival_tick,
        give_up_tick=give_up_tick,
        tidy=tidy,
        seats_wanted=seats_wanted,
        grade=grade,
        switches_grade=switches_grade,
        choose_ticks=choose_ticks,
        pay_ticks=pay_ticks,
        pays=pays,
        balance_won=balance_won,
        tops_up=tops_up,
        topup_ticks=topup_ticks,
    )
