"""Log in: email and password for an access JWT."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from ..deps import ServiceDep
from ..errors import ApiError
from ..schemas import AccessToken, Credentials
from ..service import Service
from .responses import problems
from .users import client_address, normalize_email

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/token", responses=problems(401, 413, 429), summary="Log in", operation_id="log_in")
async def log_in(body: Credentials, service: ServiceDep, request: Request) -> AccessToken:
    """Exchanges email and password for an access JWT (HS256, ``exp``/``iss``/``aud``).

    A failed login is 401 ``INVALID_CREDENTIALS`` whether the email is unknown or the
    password wrong, whatever its length (the same work is done for both). 429
    ``LOGIN_THROTTLED`` with Retry-After, before any password is checked: after
    ``BOXOFFICE_LOGIN_ATTEMPTS_PER_MINUTE`` failures for one email from one client address,
    and, from any address, after ``BOXOFFICE_LOGIN_ACCOUNT_FAILURES_FREE`` failures of one
    email in a row, for a lock-out that doubles with each further failure up to
    ``BOXOFFICE_LOGIN_ACCOUNT_LOCKOUT_MAX_S`` (a success resets it). 429
    ``TOO_MANY_PASSWORD_CHECKS`` or 503 ``OVERLOADED`` (with Retry-After) while too many
    sign-ups and log-ins are being hashed; nothing is counted then.
    """
    email = normalize_email(body.email)
    client = client_address(request)
    throttle = service.login_throttle
    throttle.check(email, client, service.now())
    with service.password_hashing.admit(client) as slot:
        # Counted as a failure before the (slow) check, so a burst of concurrent guesses
        # cannot all pass the throttle; a success clears the count.
        throttle.failed(email, client, service.now())
        account = await asyncio.to_thread(service.accounts.find, email)
        stored = None if account is None else account.password_hash
        ok = await slot.run(service.passwords.verify, stored, body.password)
    if not ok or account is None:
        raise ApiError(401, "INVALID_CREDENTIALS", "unknown email or wrong password")
    throttle.succeeded(email, client)
    if service.passwords.needs_rehash(account.password_hash):
        await _rehash(service, client, account.user_id, body.password)
    return AccessToken(
        access_token=service.tokens.access_token(account.user_id),
        expires_in=service.tokens.access_ttl_s,
    )


async def _rehash(service: Service, client: str, user_id: int, password: str) -> None:
    """Stores the password's hash with the current profile. Best effort: skipped while the
    hashing pool is full (the next log-in tries again), never failing the log-in."""
    try:
        slot = service.password_hashing.admit(client)
    except ApiError:
        return
    with slot:
        new_hash = await slot.run(service.passwords.hash, password)
    await asyncio.to_thread(service.accounts.set_password_hash, user_id, new_hash)
