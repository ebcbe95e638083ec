"""Browse and available dates: concerts, one concert, its schedules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from ..deps import CurrentUser, QueueTokenDep, ServiceDep
from ..errors import ApiError
from ..schemas import ConcertOut, Page, ScheduleOut, Timestamp, seconds_of
from .responses import problems

router = APIRouter(prefix="/v1/concerts", tags=["concerts"])
ConcertId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("", responses=problems(401), summary="Search concerts", operation_id="search_concerts")
async def search(
    user_id: CurrentUser,
    service: ServiceDep,
    q: Annotated[str, Query(max_length=256, description="Part of the title or artist.")] = "",
    starts_from: Annotated[
        Timestamp | None,
        Query(alias="from", description="Only concerts with a schedule starting at or after."),
    ] = None,
    starts_to: Annotated[
        Timestamp | None,
        Query(alias="to", description="Only concerts with a schedule starting at or before."),
    ] = None,
) -> Page[ConcertOut]:
    """Concerts whose title or artist contains ``q`` (case-insensitive) with a schedule in
    [``from``, ``to``] (RFC 3339; either may be omitted)."""
    concerts = await service.engine_api.concerts(
        q,
        starts_from=seconds_of(starts_from),
        starts_to=seconds_of(starts_to),
        now=service.now(),
    )
    return Page(items=[ConcertOut.of(c) for c in concerts])


@router.get(
    "/{concert_id}", responses=problems(401, 404), summary="One concert", operation_id="get_concert"
)
async def get_concert(
    concert_id: ConcertId, user_id: CurrentUser, service: ServiceDep
) -> ConcertOut:
    """The concert with its schedules (seat counts) and sale settings.

    Errors: 404 ``CONCERT_NOT_FOUND``."""
    concert = await service.engine_api.concert(concert_id, now=service.now())
    return ConcertOut.of(concert)


@router.get(
    "/{concert_id}/schedules",
    responses=problems(401, 403, 404),
    summary="Available dates (ACTIVE queue token)",
    operation_id="list_schedules",
)
async def schedules(
    concert_id: ConcertId, user_id: CurrentUser, token: QueueTokenDep, service: ServiceDep
) -> Page[ScheduleOut]:
    """The concert's schedules with ``seats_available``; needs an ACTIVE queue token for it.

    Errors: 403 ``QUEUE_NOT_ACTIVE`` (position, eta_s, Retry-After), ``QUEUE_TOKEN_EXPIRED``,
    ``QUEUE_TOKEN_INVALID`` (a token for another concert); 404 ``CONCERT_NOT_FOUND``.
    """
    if token.concert_id != concert_id:
        await service.engine_api.concert(concert_id, now=service.now())  # 404 if unknown
        raise ApiError(403, "QUEUE_TOKEN_INVALID", "the queue token is for another concert")
    await service.engine_api.check_gate(user_id, token.token_id, concert_id, now=service.now())
    found = await service.engine_api.schedules(concert_id, now=service.now())
    return Page(items=[ScheduleOut.of(s) for s in found])
