"""Dependencies of the routes, as ``Annotated`` aliases: the service, the current user, the
queue token, the admin key.

Authentication happens here and nowhere else. The access JWT is a Bearer token; the queue
token is the ``X-Queue-Token`` header, and its claims must name the same user as the access
token (a token lent to someone else is refused). Whether it may pass the gate is the engine's
call (``check_gate``), made by the routes that need it.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError
from .security import QueueClaims
from .service import Service

# Every dependency is `async def`: a plain `def` would run in FastAPI's thread pool, three
# thread hand-offs per request (about 0.5 ms, bench/http_bench.py) for microseconds of work.


async def get_service(request: Request) -> Service:
    """The process's :class:`Service` (opened by the app's lifespan)."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]

_bearer = HTTPBearer(auto_error=False, description="The access JWT from POST /v1/auth/token.")
_queue_header = APIKeyHeader(
    name="X-Queue-Token",
    auto_error=False,
    scheme_name="QueueToken",  # the OpenAPI security scheme: a contract name, kept
    description="The queue token from POST /v1/concerts/{concert_id}/queue.",
)
_admin_header = APIKeyHeader(
    name="X-Admin-Key",
    auto_error=False,
    scheme_name="AdminKey",
    description="BOXOFFICE_ADMIN_KEY (printed by the server when generated).",
)


def bearer_credentials(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <token>`` header's value, read as
    :class:`fastapi.security.HTTPBearer` reads them (the scheme before the first space, the
    stripped rest); None when missing, empty or of another scheme."""
    scheme, _, credentials = (authorization or "").partition(" ")
    credentials = credentials.strip()
    if not scheme or not credentials or scheme.lower() != "bearer":
        return None
    return credentials


def user_of_access_token(service: Service, token: str | None) -> int:
    """The user id of an access JWT (None: none was sent). One plain call, used by the fast
    path (:mod:`.fast_path`) and by the ``CurrentUser`` dependency.

    Raises:
        ApiError: 401 ``UNAUTHENTICATED`` (missing, malformed, forged) or ``TOKEN_EXPIRED``.
    """
    if token is None:
        raise ApiError(401, "UNAUTHENTICATED", "an access token is required (Bearer)")
    user_id = service.tokens.user_of(token)
    if not service.user_may_exist(user_id):
        raise ApiError(401, "UNAUTHENTICATED", "the access token names no user")
    return user_id


async def current_user(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> int:
    """The user id of the request's access JWT (:func:`user_of_access_token`).

    Raises:
        ApiError: 401 ``UNAUTHENTICATED`` (missing, malformed, forged) or ``TOKEN_EXPIRED``.
    """
    # HTTPBearer answers None for a missing header and for another scheme alike.
    return user_of_access_token(service, None if credentials is None else credentials.credentials)


CurrentUser = Annotated[int, Depends(current_user)]


def queue_claims_of(service: Service, user_id: int, token: str | None) -> QueueClaims:
    """The claims of an ``X-Queue-Token`` header's value, issued to ``user_id``. One plain
    call, used by the fast path and by the ``QueueTokenDep`` dependency.

    Raises:
        ApiError: 403 ``QUEUE_TOKEN_INVALID`` (missing, forged, another user's) or
            ``QUEUE_TOKEN_EXPIRED``.
    """
    if not token:
        raise ApiError(403, "QUEUE_TOKEN_INVALID", "the X-Queue-Token header is required")
    claims = service.tokens.queue_claims(token)
    if claims.user_id != user_id:
        raise ApiError(403, "QUEUE_TOKEN_INVALID", "the queue token was issued to another user")
    return claims


async def queue_claims(
    service: ServiceDep,
    user_id: CurrentUser,
    token: Annotated[str | None, Depends(_queue_header)],
) -> QueueClaims:
    """The claims of the request's queue token, issued to the current user
    (:func:`queue_claims_of`).

    Raises:
        ApiError: 403 ``QUEUE_TOKEN_INVALID`` (missing, forged, another user's) or
            ``QUEUE_TOKEN_EXPIRED``.
    """
    return queue_claims_of(service, user_id, token)


# The verified claims of the request's X-Queue-Token; the token's status (WAITING, ACTIVE,
# EXPIRED) is boxoffice.QueueToken, and whether it passes the gate is the engine's answer.
QueueTokenDep = Annotated[QueueClaims, Depends(queue_claims)]


async def require_admin(
    service: ServiceDep, key: Annotated[str | None, Depends(_admin_header)]
) -> None:
    """Admits the request when ``X-Admin-Key`` matches (constant-time comparison).

    Raises:
        ApiError: 403 ``ADMIN_KEY_INVALID``.
    """
    expected = service.admin_key.encode()
    # Starlette decodes header bytes as latin-1; re-encoding gives back the bytes sent.
    if key is None or not hmac.compare_digest(key.encode("latin-1"), expected):
        raise ApiError(403, "ADMIN_KEY_INVALID", "a valid X-Admin-Key header is required")


Admin = Depends(require_admin)


async def require_metrics_access(
    request: Request,
    service: ServiceDep,
    key: Annotated[str | None, Depends(_admin_header)],
) -> None:
    """Admits a scrape of ``/metrics`` (held seats, revenue) with the admin key, sent as
    ``X-Admin-Key`` or as ``Authorization: Bearer <admin key>`` (what a Prometheus scrape
    config's ``authorization`` sends); anyone when ``BOXOFFICE_METRICS_PUBLIC`` is set.

    Raises:
        ApiError: 403 ``ADMIN_KEY_INVALID``.
    """
    if service.settings.metrics_public:
        return
    if key is None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            key = credentials.strip()
    await require_admin(service, key)  # the same constant-time comparison


MetricsAccess = Depends(require_metrics_access)
