"""Shared fixtures of the Python tests: an engine, a concert factory, admitted users.

Time in these tests is virtual: ``T0`` is an arbitrary instant (small, so that
``T0 + 299.999999`` is exact to the microsecond as a float) and every test moves
forward from it, because the engine clock never goes back.
"""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

import boxoffice as bo

T0 = 1_000.0
"""The instant every test starts at (float seconds)."""

US = 1e-6
"""One microsecond, in seconds."""

DEFAULT_SECTIONS = (
    bo.SectionSpec("A", 2, 5, "VIP", 165_000),
    bo.SectionSpec("B", 1, 4, "R", 99_000),
)


@dataclass
class Drop:
    """One concert on sale in one engine, with helpers to act as its users."""

    engine: bo.Engine
    concert: bo.Concert

    @property
    def concert_id(self) -> int:
        return self.concert.id

    @property
    def schedule_id(self) -> int:
        """The first schedule's id."""
        return self.concert.schedules[0].id

    def seat_ids(self, schedule_index: int = 0, *, now: float) -> list[int]:
        """Every seat id of a schedule, in seat-map order."""
        schedule = self.concert.schedules[schedule_index].id
        return [s.id for s in self.engine.seats(schedule, now=now)]

    def seat_status(self, *, now: float, schedule_index: int = 0) -> dict[int, str]:
        schedule = self.concert.schedules[schedule_index].id
        return {s.id: s.status for s in self.engine.seats(schedule, now=now)}

    def user(self, *, now: float) -> int:
        return self.engine.create_user(now=now)

    def admitted(self, *, now: float) -> tuple[int, int]:
        """A new user with an ACTIVE queue token for this concert: (user, token)."""
        user = self.engine.create_user(now=now)
        token = self.engine.join_queue(user, self.concert.id, now=now)
        assert token.status == "ACTIVE", "the queue should have room for this test's user"
        return user, token.id

    def funded(self, amount: int, *, now: float) -> tuple[int, int]:
        """An admitted user whose wallet holds ``amount`` won: (user, token)."""
        user, token = self.admitted(now=now)
        if amount:
            self.engine.charge(user, amount, now=now)
        return user, token


MakeDrop = Callable[..., Drop]


def make_concert(
    engine: bo.Engine,
    *,
    sections: Sequence[bo.SectionSpec] = DEFAULT_SECTIONS,
    schedules: int = 1,
    now: float = T0,
    title: str = "IU 2027 World Tour",
    artist: str = "IU",
    **sale: Any,
) -> bo.Concert:
    """Creates a concert with ``schedules`` identical schedules of ``sections``."""
    specs = [bo.ScheduleSpec(1.8e9 + 86_400.0 * i, list(sections)) for i in range(schedules)]
    return engine.create_concert(
        title=title,
        artist=artist,
        venue="KSPO Dome",
        schedules=specs,
        sale=bo.SaleSettings(**sale),
        now=now,
    )


@pytest.fixture
def make_engine() -> Iterator[Callable[..., bo.Engine]]:
    """``make_engine(seed=0, **limits)``: engines whose invariants must hold at teardown."""
    engines: list[bo.Engine] = []

    def make(*, seed: int = 0, **limits: Any) -> bo.Engine:
        eng = bo.Engine(seed=seed, limits=bo.Limits(**limits) if limits else None)
        engines.append(eng)
        return eng

    yield make
    for eng in engines:
        eng.check_invariants()


@pytest.fixture
def engine(make_engine: Callable[..., bo.Engine]) -> bo.Engine:
    """A fresh engine with the default limits."""
    return make_engine()


@pytest.fixture
def make_drop(engine: bo.Engine) -> MakeDrop:
    """``make_drop(on=engine, sections=..., schedules=1, now=T0, **sale)`` -> :class:`Drop`.

    ``on`` defaults to the ``engine`` fixture; the other keywords go to ``SaleSettings``.
    """

    def make(*, on: bo.Engine | None = None, **kwargs: Any) -> Drop:
        eng = engine if on is None else on
        return Drop(eng, make_concert(eng, **kwargs))

    return make


@pytest.fixture
def drop(make_drop: MakeDrop) -> Drop:
    """A concert with the default seat map (A: 2x5 VIP 165,000; B: 1x4 R 99,000)."""
    return make_drop()
