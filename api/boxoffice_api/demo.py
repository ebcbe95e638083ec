"""The demo concert ``boxoffice serve --demo`` loads into an empty store."""

from __future__ import annotations

import time
from typing import Any

import boxoffice as bo

from .engine_api import EngineApi
from .schemas import Sale


def demo_concert(now: float) -> dict[str, Any]:
    """The demo concert's ``create_concert`` arguments (3 schedules x 2,400 seats, 3 grades,
    at most 4 seats per reservation and 8 per user), its first show a month after ``now``."""
    day = 86_400.0
    hall = [
        bo.SectionSpec("A", 10, 40, "VIP", 165_000),
        bo.SectionSpec("B", 20, 40, "R", 132_000),
        bo.SectionSpec("C", 30, 40, "S", 99_000),
    ]
    first = (int(now // day) + 30) * day + 19 * 3600  # 19:00 UTC, a month from now
    return {
        "title": "IU 2027 World Tour",
        "artist": "IU",
        "venue": "KSPO Dome",
        "schedules": [bo.ScheduleSpec(first + i * day, hall) for i in range(3)],
        # The sale an HTTP-created concert gets with these settings, so the demo has the
        # same per-user cap (max_seats_per_user 8) as a concert created over HTTP.
        "sale": Sale(queue_capacity=200, hold_ttl_s=300.0, session_ttl_s=600.0).to_engine(),
        "now": now,
    }


def load(engine: bo.Engine) -> bo.Concert | None:
    """Creates the demo concert (:func:`demo_concert`) unless the store has concerts
    already; returns it, or None when nothing was created."""
    if engine.concert_count > 0:
        return None
    concert = engine.create_concert(**demo_concert(time.time()))
    engine.wait_durable()
    return concert


async def load_into(engine_api: EngineApi) -> Any:
    """:func:`load` through an :class:`~.engine_api.EngineApi` (a cluster): the demo concert
    unless there are concerts already; None when nothing was created."""
    if await engine_api.concert_count() > 0:
        return None
    return await engine_api.create_concert(**demo_concert(time.time()))
