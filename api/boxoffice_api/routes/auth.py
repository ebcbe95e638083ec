"""Log in (flow 1): email and password for an access JWT."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from ..deps import ServiceDep
from ..errors import ApiError
from ..schemas import AccessToken, Credentials
from .responses import problems
from .users import normalize_email

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/token", responses=problems(401, 413, 429), summary="Log in")
async def log_in(body: Credentials, service: ServiceDep) -> AccessToken:
    """Exchanges email and password for an access JWT (HS256, ``exp``/``iss``/``aud``).

    A failed login is 401 ``INVALID_CREDENTIALS`` whether the email is unknown or the
    password wrong (the same work is done for both). After
    ``BOXOFFICE_LOGIN_ATTEMPTS_PER_MINUTE`` failures for one email, 429 ``LOGIN_THROTTLED``.
    """
    email = normalize_email(body.email)
    service.login_throttle.check(email, service.now())
    account = await asyncio.to_thread(service.accounts.find, email)
    stored = None if account is None else account.password_hash
    ok = await asyncio.to_thread(service.passwords.verify, stored, body.password)
    if not ok or account is None:
        service.login_throttle.failed(email, service.now())
        raise ApiError(401, "INVALID_CREDENTIALS", "unknown email or wrong password")
    service.login_throttle.succeeded(email)
    if service.passwords.needs_rehash(account.password_hash):
        new_hash = await asyncio.to_thread(service.passwords.hash, body.password)
        await asyncio.to_thread(service.accounts.set_password_hash, account.user_id, new_hash)
    return AccessToken(
        access_token=service.tokens.access_token(account.user_id),
        expires_in=service.tokens.access_ttl_s,
    )
