"""Operators (``X-Admin-Key``): create concerts, read per-concert stats and the event feed."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Query, status

import boxoffice as bo

from ..deps import Admin, ServiceDep
from ..schemas import ConcertIn, ConcertOut, EventOut, Page, StatsOut
from .responses import problems

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Admin])


@router.post(
    "/concerts",
    status_code=status.HTTP_201_CREATED,
    responses=problems(403, 413),
    summary="Create a concert",
    operation_id="create_concert",
)
async def create_concert(body: ConcertIn, service: ServiceDep) -> ConcertOut:
    """A concert with its schedules, seat maps (sections x rows x seats, grade, price in won)
    and sale settings.

    Errors: 422 ``INVALID_ARGUMENT`` (malformed), ``LIMIT_EXCEEDED`` (a named limit, e.g.
    seats per schedule).
    """
    schedules = [
        bo.ScheduleSpec(
            s.starts_at.timestamp(),
            [bo.SectionSpec(x.name, x.rows, x.seats_per_row, x.grade, x.price) for x in s.sections],
        )
        for s in body.schedules
    ]
    concert = await service.engine_api.create_concert(
        title=body.title,
        artist=body.artist,
        venue=body.venue,
        schedules=schedules,
        sale=body.sale.to_engine(),
        now=service.now(),
    )
    return ConcertOut.of(concert)


@router.get(
    "/concerts",
    responses=problems(403),
    summary="The newest concerts",
    operation_id="list_concerts",
)
async def list_concerts(
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many, newest first.")] = 100,
) -> list[ConcertOut]:
    """The ``limit`` newest concerts, newest first, each with its schedules and sale settings
    (``queue_capacity``, …): what a dashboard shows beside each concert's stats. Concert ids
    count up from 1, so the newest are the highest."""
    newest = await service.engine_api.concert_count()
    now = service.now()
    ids = range(newest, max(0, newest - limit), -1)
    # Concurrently: in cluster mode each is a replica read.
    concerts = await asyncio.gather(*(service.engine_api.concert(i, now=now) for i in ids))
    return [ConcertOut.of(c) for c in concerts]


@router.get(
    "/concerts/{concert_id}/stats",
    responses=problems(403, 404),
    summary="Concert stats",
    operation_id="get_concert_stats",
)
async def stats(
    concert_id: Annotated[int, Path(ge=1, le=2**63 - 1)], service: ServiceDep
) -> StatsOut:
    """Queue (waiting, active, admitted), seats (available, held, sold), reservations by
    status, payments and revenue (won). Errors: 404 ``CONCERT_NOT_FOUND``."""
    s = await service.engine_api.stats(concert_id, now=service.now())
    return StatsOut.of(s)


@router.get("/events", responses=problems(403), summary="Domain events", operation_id="list_events")
async def events(
    service: ServiceDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="Events with seq > after.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[EventOut]:
    """Domain events (ReservationHeld, PaymentSucceeded, QueueAdmitted, ...) with
    ``seq > after``, oldest first; ``next_cursor`` is the ``after`` of the next page (None on
    the last page: a consumer following the feed keeps the last ``seq`` it read)."""
    # One more than asked: is there a next page? (A read: never an event a crash could undo.)
    items = await service.engine_api.events(after, limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return Page(
        items=[EventOut.of(e) for e in items],
        next_cursor=str(items[-1].seq) if more else None,
    )
