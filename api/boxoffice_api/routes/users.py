"""Sign-up (flow 1, seeds 000 and 004) and the current user."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, status

from ..accounts import EmailTaken
from ..deps import CurrentUser, ServiceDep
from ..errors import ApiError
from ..schemas import Credentials, UserOut, utc
from .responses import problems

router = APIRouter(prefix="/v1", tags=["users"])


def normalize_email(email: str) -> str:
    """The form accounts are stored and looked up by: trimmed, lower case."""
    return email.strip().lower()


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    responses=problems(409, 413),
    summary="Sign up",
)
async def sign_up(body: Credentials, service: ServiceDep) -> UserOut:
    """Creates an account: the password is stored only as an argon2id hash.

    Errors: 409 ``EMAIL_TAKEN``; 422 for a malformed email or a password shorter than 8.
    """
    email = normalize_email(body.email)
    taken = ApiError(409, "EMAIL_TAKEN", "an account with this email exists")
    if email in service.signups_in_flight:
        raise taken
    service.signups_in_flight.add(email)  # before any await: no second sign-up slips in
    try:
        if await asyncio.to_thread(service.accounts.find, email) is not None:
            raise taken
        password_hash = await asyncio.to_thread(service.passwords.hash, body.password)
        async with service.command():
            user_id = service.engine.create_user(now=service.now())
        try:
            account = await asyncio.to_thread(service.accounts.add, user_id, email, password_hash)
        except EmailTaken as exc:  # written by another process sharing the accounts
            raise taken from exc
    finally:
        service.signups_in_flight.discard(email)
    return UserOut(id=account.user_id, email=account.email, created_at=utc(account.created_at))


@router.get("/me", responses=problems(401), summary="The current user")
async def me(user_id: CurrentUser, service: ServiceDep) -> UserOut:
    """The account of the access token. Errors: 401 ``UNAUTHENTICATED``."""
    account = await asyncio.to_thread(service.accounts.by_user, user_id)
    if account is None:
        raise ApiError(401, "UNAUTHENTICATED", "the access token names no account")
    return UserOut(id=account.user_id, email=account.email, created_at=utc(account.created_at))
