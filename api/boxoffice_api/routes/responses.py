"""The error responses each route documents in OpenAPI (all RFC 9457 problem+json)."""

from __future__ import annotations

import copy
from typing import Any

from ..errors import PROBLEM_MEDIA_TYPE

_DESCRIPTIONS = {
    401: "Missing, invalid or expired access token (UNAUTHENTICATED, TOKEN_EXPIRED).",
    403: "Queue token not ACTIVE (QUEUE_NOT_ACTIVE with position, eta_s, Retry-After), "
    "expired (QUEUE_TOKEN_EXPIRED) or invalid (QUEUE_TOKEN_INVALID); or ADMIN_KEY_INVALID.",
    404: "Unknown id, or another user's resource.",
    409: "The current state forbids it (SEAT_UNAVAILABLE, HOLD_EXPIRED, "
    "INSUFFICIENT_BALANCE, ...).",
    408: "The request body did not arrive in time (REQUEST_TIMEOUT).",
    413: "Request body too large (REQUEST_TOO_LARGE).",
    422: "Invalid input (INVALID_ARGUMENT with field errors, INVALID_AMOUNT, TOO_MANY_SEATS, "
    "LIMIT_EXCEEDED, IDEMPOTENCY_KEY_REUSED, WEAK_PASSWORD).",
    429: "Rate limited (QUEUE_FULL, LOGIN_THROTTLED, TOO_MANY_PASSWORD_CHECKS, "
    "HOLD_RATE_LIMITED), with Retry-After.",
    503: "The server is overloaded (OVERLOADED) or the store unavailable (STORE_*), with "
    "Retry-After.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
# Copied into each response (FastAPI rewrites the dicts it is given as it builds the document).
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The scheme to authenticate with: Bearer.",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for ``statuses`` (422 and 503 are always added, 408 with
    413: a request with a body may be refused for its size or its slowness), each an
    ``application/problem+json`` body of the ``Problem`` schema (added to the components by
    ``app.create_app``), with the headers the answer always has (``Retry-After`` on 429 and
    503, ``WWW-Authenticate`` on 401)."""
    wanted = {*statuses, 422, 503} | ({408} if 413 in statuses else set())
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        | ({"headers": copy.deepcopy(_HEADERS[status])} if status in _HEADERS else {})
        for status in sorted(wanted)
    }
