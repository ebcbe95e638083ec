"""Sign-up and the current user."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, status

from ..accounts import EmailTaken
from ..deps import CurrentUser, ServiceDep
from ..errors import ApiError
from ..schemas import SignUp, UserOut, utc
from .responses import problems

router = APIRouter(prefix="/v1", tags=["users"])


def normalize_email(email: str) -> str:
    """The form accounts are stored and looked up by: trimmed, lower case."""
    return email.strip().lower()


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    responses=problems(409, 413, 429),
    summary="Sign up",
    operation_id="sign_up",
)
async def sign_up(body: SignUp, service: ServiceDep, request: Request) -> UserOut:
    """Creates an account: the password is stored only as an argon2id hash.

    Errors: 409 ``EMAIL_TAKEN``; 422 ``INVALID_ARGUMENT`` for a malformed email or a password
    outside 8..256 characters, 422 ``WEAK_PASSWORD`` for a password too easy to guess (a
    common one, a word, a pattern, the email; zxcvbn's advice in the detail); 429
    ``TOO_MANY_PASSWORD_CHECKS`` or 503 ``OVERLOADED`` (with Retry-After) while too many
    sign-ups and log-ins are being hashed.
    """
    email = normalize_email(body.email)
    taken = ApiError(409, "EMAIL_TAKEN", "an account with this email exists")
    if email in service.signups_in_flight:
        raise taken
    service.signups_in_flight.add(email)  # before any await: no second sign-up slips in
    try:
        if await asyncio.to_thread(service.accounts.find, email) is not None:
            raise taken
        with service.password_hashing.admit(client_address(request)) as slot:
            password_hash = await slot.run(service.passwords.hash_new, body.password, email)
        user_id = await service.engine_api.create_user(now=service.now())
        try:
            account = await asyncio.to_thread(service.accounts.add, user_id, email, password_hash)
        except EmailTaken as exc:  # written by another process sharing the accounts
            raise taken from exc
    finally:
        service.signups_in_flight.discard(email)
    return UserOut(id=account.user_id, email=account.email, created_at=utc(account.created_at))


def client_address(request: Request) -> str:
    """The client's address (the proxy's, unless its forwarded address is trusted)."""
    return request.client.host if request.client else ""


@router.get("/me", responses=problems(401), summary="The current user", operation_id="get_me")
async def me(user_id: CurrentUser, service: ServiceDep) -> UserOut:
    """The account of the access token. Errors: 401 ``UNAUTHENTICATED``."""
    account = await asyncio.to_thread(service.accounts.by_user, user_id)
    if account is None:
        raise ApiError(401, "UNAUTHENTICATED", "the access token names no account")
    return UserOut(id=account.user_id, email=account.email, created_at=utc(account.created_at))
