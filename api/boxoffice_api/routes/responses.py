"""The error responses each route documents in OpenAPI (all RFC 9457 problem+json)."""

from __future__ import annotations

from typing import Any

from ..errors import PROBLEM_MEDIA_TYPE

_DESCRIPTIONS = {
    401: "Missing, invalid or expired access token (UNAUTHENTICATED, TOKEN_EXPIRED).",
    403: "Queue token not ACTIVE (QUEUE_NOT_ACTIVE with position, eta_s, Retry-After), "
    "expired (QUEUE_TOKEN_EXPIRED) or invalid (QUEUE_TOKEN_INVALID); or ADMIN_KEY_INVALID.",
    404: "Unknown id, or another user's resource.",
    409: "The current state forbids it (SEAT_UNAVAILABLE, HOLD_EXPIRED, "
    "INSUFFICIENT_BALANCE, ...).",
    413: "Request body too large (REQUEST_TOO_LARGE).",
    422: "Invalid input (INVALID_ARGUMENT with field errors, INVALID_AMOUNT, TOO_MANY_SEATS, "
    "LIMIT_EXCEEDED, IDEMPOTENCY_KEY_REUSED).",
    429: "Rate limited (QUEUE_FULL, LOGIN_THROTTLED), with Retry-After.",
    503: "The store is unavailable (STORE_*), with Retry-After.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for ``statuses`` (422 and 503 are always added), each an
    ``application/problem+json`` body of the ``Problem`` schema (added to the components by
    ``app.create_app``)."""
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in sorted({*statuses, 422, 503})
    }
