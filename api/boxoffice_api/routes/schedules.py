"""Seats of a schedule, behind the gate."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from ..deps import CurrentUser, QueueTokenDep, ServiceDep
from ..schemas import Page, SeatOut
from .responses import problems

router = APIRouter(prefix="/v1/schedules", tags=["seats"])


@router.get(
    "/{schedule_id}/seats",
    responses=problems(401, 403, 404),
    summary="Seats of a schedule (ACTIVE queue token)",
    operation_id="list_seats",
)
async def seats(
    schedule_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    user_id: CurrentUser,
    token: QueueTokenDep,
    service: ServiceDep,
    status: Annotated[Literal["AVAILABLE", "HELD", "SOLD"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    cursor: Annotated[int, Query(ge=0, le=2**63 - 1, description="next_cursor of a page.")] = 0,
) -> Page[SeatOut]:
    """The schedule's seats in seat-map order, optionally only those with ``status``; paged
    by seat id (``cursor``). Needs an ACTIVE queue token for the schedule's concert.

    Errors: 403 (the gate; ``QUEUE_TOKEN_INVALID`` for another concert's schedule); 404
    ``SCHEDULE_NOT_FOUND``.
    """
    page = await service.engine_api.gated_seats(
        user_id,
        token.token_id,
        token.concert_id,
        schedule_id,
        status,
        after=cursor,
        limit=limit + 1,
        now=service.now(),
    )
    more = len(page) > limit
    page = page[:limit]
    return Page(
        items=[SeatOut.of(s) for s in page],
        next_cursor=str(page[-1].id) if more else None,
    )
