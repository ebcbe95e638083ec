"""Holds, reading, cancelling and releasing seats, refunds.

Reading, cancelling and releasing need only the access token: a reservation is the user's
own (another user's is 404, as if it did not exist). Holding needs an ACTIVE queue token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, status

from ..deps import CurrentUser, QueueTokenDep, ServiceDep
from ..schemas import ENGINE_LIMITS, HoldIn, Page, ReservationOut
from .responses import problems

router = APIRouter(prefix="/v1", tags=["reservations"])
ReservationId = Annotated[int, Path(ge=1, le=2**63 - 1)]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        max_length=ENGINE_LIMITS.idempotency_key_length_max,
        description="A retry with the same key and request returns the first result, once.",
    ),
]


@router.post(
    "/reservations",
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, 404, 409, 413, 429),
    summary="Hold seats (ACTIVE queue token)",
    operation_id="hold_seats",
)
async def hold(
    body: HoldIn,
    user_id: CurrentUser,
    token: QueueTokenDep,
    service: ServiceDep,
    idempotency_key: IdempotencyKey = "",
) -> ReservationOut:
    """Holds seats of one schedule, all or nothing, until ``expires_at`` (now + hold TTL):
    ``seat_ids``, or ``quantity`` best-available adjacent seats (optionally of ``grade``).

    Errors: 403 (the gate); 404 ``SCHEDULE_NOT_FOUND``, ``SEAT_NOT_FOUND``; 409
    ``SEAT_UNAVAILABLE`` (``seat_id``), ``SEAT_LIMIT_PER_USER`` (the concert's
    ``max_seats_per_user``, held + sold); 422 ``TOO_MANY_SEATS``, ``IDEMPOTENCY_KEY_REUSED``;
    429 ``HOLD_RATE_LIMITED`` with Retry-After (``BOXOFFICE_HOLDS_PER_MINUTE`` attempts per
    user per concert, successful or not).
    """
    service.hold_limiter.hit(user_id, token.concert_id)
    reservation = await service.engine_api.hold(
        user_id,
        token.token_id,
        body.schedule_id,
        body.seat_ids,
        quantity=body.quantity or 0,
        grade=body.grade,
        idempotency_key=idempotency_key,
        now=service.now(),
    )
    return ReservationOut.of(reservation)


@router.get(
    "/reservations/{reservation_id}",
    responses=problems(401, 404),
    summary="One reservation",
    operation_id="get_reservation",
)
async def get_reservation(
    reservation_id: ReservationId, user_id: CurrentUser, service: ServiceDep
) -> ReservationOut:
    """One of the user's reservations. Errors: 404 ``RESERVATION_NOT_FOUND``."""
    reservation = await service.engine_api.reservation(user_id, reservation_id, now=service.now())
    return ReservationOut.of(reservation)


@router.get(
    "/me/reservations",
    responses=problems(401),
    summary="My reservations",
    operation_id="list_my_reservations",
)
async def my_reservations(user_id: CurrentUser, service: ServiceDep) -> Page[ReservationOut]:
    """The user's reservations, oldest first."""
    items = await service.engine_api.reservations(user_id, now=service.now())
    return Page(items=[ReservationOut.of(r) for r in items])


@router.delete(
    "/reservations/{reservation_id}",
    responses=problems(401, 404, 409),
    summary="Cancel a pending reservation",
    operation_id="cancel_reservation",
)
async def cancel(
    reservation_id: ReservationId, user_id: CurrentUser, service: ServiceDep
) -> ReservationOut:
    """Cancels a PENDING reservation; its seats become AVAILABLE.

    Errors: 404 ``RESERVATION_NOT_FOUND``; 409 ``HOLD_EXPIRED``, ``RESERVATION_NOT_PENDING``.
    """
    reservation = await service.engine_api.cancel(user_id, reservation_id, now=service.now())
    return ReservationOut.of(reservation)


@router.delete(
    "/reservations/{reservation_id}/seats/{seat_id}",
    responses=problems(401, 404, 409),
    summary="Release one seat",
    operation_id="release_seat",
)
async def release_seat(
    reservation_id: ReservationId,
    seat_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    user_id: CurrentUser,
    service: ServiceDep,
) -> ReservationOut:
    """Releases one seat of a PENDING reservation (unselecting it on the seat map);
    releasing the last seat cancels the reservation.

    Errors: 404 ``RESERVATION_NOT_FOUND``, ``SEAT_NOT_IN_RESERVATION``; 409 ``HOLD_EXPIRED``,
    ``RESERVATION_NOT_PENDING``.
    """
    reservation = await service.engine_api.release_seat(
        user_id, reservation_id, seat_id, now=service.now()
    )
    return ReservationOut.of(reservation)


@router.post(
    "/reservations/{reservation_id}/refund",
    responses=problems(401, 404, 409, 413),
    summary="Refund a confirmed reservation",
    operation_id="refund_reservation",
)
async def refund(
    reservation_id: ReservationId, user_id: CurrentUser, service: ServiceDep
) -> ReservationOut:
    """Refunds a CONFIRMED reservation: the amount goes back to the wallet, the seats become
    AVAILABLE. Errors: 404 ``RESERVATION_NOT_FOUND``; 409 ``RESERVATION_NOT_CONFIRMED``."""
    reservation = await service.engine_api.refund(user_id, reservation_id, now=service.now())
    return ReservationOut.of(reservation)
