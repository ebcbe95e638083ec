"""Pay: the user's own PENDING reservation, from their wallet, all or nothing."""

from __future__ import annotations

from fastapi import APIRouter, status

from ..deps import CurrentUser, QueueTokenDep, ServiceDep
from ..schemas import PaymentIn, PaymentOut
from .reservations import IdempotencyKey
from .responses import problems

router = APIRouter(prefix="/v1/payments", tags=["payments"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, 404, 409, 413),
    summary="Pay a reservation (ACTIVE queue token)",
    operation_id="pay",
)
async def pay(
    body: PaymentIn,
    user_id: CurrentUser,
    token: QueueTokenDep,
    service: ServiceDep,
    idempotency_key: IdempotencyKey = "",
) -> PaymentOut:
    """Debits the wallet, records the payment, sells the seats, confirms the reservation and
    ends the queue token (freeing a slot for the next waiting user).

    Errors: 403 (the gate); 404 ``RESERVATION_NOT_FOUND`` (also another user's); 409
    ``HOLD_EXPIRED``, ``RESERVATION_NOT_PENDING``, ``INSUFFICIENT_BALANCE`` (the reservation
    stays PENDING to charge and retry, unless the concert sets
    ``release_on_payment_failure``); 422 ``IDEMPOTENCY_KEY_REUSED``.
    """
    payment = await service.engine_api.pay(
        user_id,
        token.token_id,
        body.reservation_id,
        idempotency_key=idempotency_key,
        now=service.now(),
    )
    return PaymentOut.of(payment)
