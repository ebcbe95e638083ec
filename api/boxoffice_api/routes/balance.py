"""The wallet: balance, history, charges."""

from __future__ import annotations

from fastapi import APIRouter, status

from ..deps import CurrentUser, ServiceDep
from ..schemas import BalanceOut, ChargeIn, ChargeOut, HistoryEntryOut, Page, utc
from .reservations import IdempotencyKey
from .responses import problems

router = APIRouter(prefix="/v1/me/balance", tags=["balance"])


@router.get("", responses=problems(401), summary="My balance", operation_id="get_balance")
async def balance(user_id: CurrentUser, service: ServiceDep) -> BalanceOut:
    """The wallet balance in won."""
    balance = await service.engine_api.balance(user_id, now=service.now())
    return BalanceOut(user_id=user_id, balance=balance)


@router.get(
    "/history",
    responses=problems(401),
    summary="My balance history",
    operation_id="get_balance_history",
)
async def history(user_id: CurrentUser, service: ServiceDep) -> Page[HistoryEntryOut]:
    """CHARGE, PAYMENT and REFUND entries, oldest first, each with ``balance_after``."""
    entries = await service.engine_api.history(user_id, now=service.now())
    return Page(items=[HistoryEntryOut.of(e) for e in entries])


@router.post(
    "/charges",
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 409, 413),
    summary="Charge my wallet",
    operation_id="charge_balance",
)
async def charge(
    body: ChargeIn,
    user_id: CurrentUser,
    service: ServiceDep,
    idempotency_key: IdempotencyKey = "",
) -> ChargeOut:
    """Adds ``amount`` won to the wallet.

    Errors: 422 ``INVALID_AMOUNT`` (below 1 or above the per-charge limit),
    ``IDEMPOTENCY_KEY_REUSED``; 409 ``BALANCE_LIMIT_EXCEEDED``.
    """
    result = await service.engine_api.charge(
        user_id, body.amount, idempotency_key=idempotency_key, now=service.now()
    )
    return ChargeOut(
        id=result.entry_id, amount=result.amount, balance=result.balance, charged_at=utc(result.at)
    )
