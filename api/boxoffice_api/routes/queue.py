"""The admission queue: join, poll, leave.

Joining answers a signed queue token (JWT naming user, concert, token id and join sequence) to
send as ``X-Queue-Token``. Joining again returns the same live token — never a second place.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from ..deps import CurrentUser, QueueTokenDep, ServiceDep
from ..errors import ApiError
from ..schemas import QueueJoined, QueueStatus
from .responses import problems

router = APIRouter(prefix="/v1/concerts/{concert_id}/queue", tags=["queue"])
ConcertId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 404, 413, 429)
    | {200: {"description": "The user's live token (already in the queue)."}},
    summary="Join the queue",
    operation_id="join_queue",
)
async def join(
    concert_id: ConcertId, user_id: CurrentUser, service: ServiceDep, response: Response
) -> QueueJoined:
    """Joins the concert's admission queue: ACTIVE at once while fewer than
    ``queue_capacity`` tokens are ACTIVE, else WAITING with ``position``, ``eta_s`` and
    ``poll_after_s``. 201 for a new token, 200 for the live one.

    Errors: 404 ``CONCERT_NOT_FOUND``; 429 ``QUEUE_FULL`` (Retry-After).
    """
    token = await service.engine_api.join_queue(user_id, concert_id, now=service.now())
    if not token.created:
        response.status_code = status.HTTP_200_OK
    return QueueJoined(
        queue_token=service.tokens.queue_token(
            user_id, concert_id, token.id, token.join_seq, token.joined_at
        ),
        **QueueStatus.of(token).model_dump(),
    )


def _same_concert(token_concert_id: int, concert_id: int) -> None:
    if token_concert_id != concert_id:
        raise ApiError(403, "QUEUE_TOKEN_INVALID", "the queue token is for another concert")


@router.get(
    "", responses=problems(401, 403, 404), summary="Poll the queue token", operation_id="poll_queue"
)
async def poll(
    concert_id: ConcertId, user_id: CurrentUser, token: QueueTokenDep, service: ServiceDep
) -> QueueStatus:
    """The token's state, exact position and ETA (a poll keeps a WAITING token's place)."""
    _same_concert(token.concert_id, concert_id)
    state = await service.engine_api.queue_status(
        user_id,
        token.token_id,
        now=service.now(),
        concert_id=token.concert_id,
        claims=token,
    )
    return QueueStatus.of(state)


@router.delete(
    "", responses=problems(401, 403, 404), summary="Leave the queue", operation_id="leave_queue"
)
async def leave(
    concert_id: ConcertId, user_id: CurrentUser, token: QueueTokenDep, service: ServiceDep
) -> QueueStatus:
    """Leaves the queue: the token becomes EXPIRED (LEFT) and the next waiting user is
    admitted."""
    _same_concert(token.concert_id, concert_id)
    state = await service.engine_api.leave_queue(user_id, token.token_id, now=service.now())
    return QueueStatus.of(state)
