"""Log in (flow 1): email and password for an access JWT."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from ..deps import ServiceDep
from ..errors import ApiError
from ..schemas import AccessToken, Credentials
from .responses import problems
from .users import normalize_email

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/token", responses=problems(401, 413, 429), summary="Log in")
async def log_in(body: Credentials, service: ServiceDep, request: Request) -> AccessToken:
    """Exchanges email and password for an access JWT (HS256, ``exp``/``iss``/``aud``).

    A failed login is 401 ``INVALID_CREDENTIALS`` whether the email is unknown or the
    password wrong (the same work is done for both). After
    ``BOXOFFICE_LOGIN_ATTEMPTS_PER_MINUTE`` failures for one email from one client address,
    429 ``LOGIN_THROTTLED`` (counted per address, so a stranger cannot lock the owner out).
    """
    email = normalize_email(body.email)
    client = request.client.host if request.client else ""
    throttle_key = f"{email} {client}"
    service.login_throttle.check(throttle_key, service.now())
    # Counted as a failure before the (slow) check, so a burst of concurrent guesses cannot
    # all pass the throttle; a success clears the count.
    service.login_throttle.failed(throttle_key, service.now())
    account = await asyncio.to_thread(service.accounts.find, email)
    stored = None if account is None else account.password_hash
    ok = await asyncio.to_thread(service.passwords.verify, stored, body.password)
    if not ok or account is None:
        raise ApiError(401, "INVALID_CREDENTIALS", "unknown email or wrong password")
    service.login_throttle.succeeded(throttle_key)
    if service.passwords.needs_rehash(account.password_hash):
        new_hash = await asyncio.to_thread(service.passwords.hash, body.password)
        await asyncio.to_thread(service.accounts.set_password_hash, account.user_id, new_hash)
    return AccessToken(
        access_token=service.tokens.access_token(account.user_id),
        expires_in=service.tokens.access_ttl_s,
    )
