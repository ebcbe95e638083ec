"""Problem answers of the HTTP API as :mod:`boxoffice.errors` exceptions.

An engine code (``SEAT_UNAVAILABLE``, ``HOLD_EXPIRED``, ``QUEUE_NOT_ACTIVE``, ...) is raised as
the very class the engine raises in process (:func:`boxoffice.errors.error_class`), so code
written against the embedded engine catches the same errors over HTTP. The codes of the HTTP
layer itself (credentials, the admin key, sign-up, rate limits, overload) have the classes
below, in the family that fits what the caller does next; a code this client does not know
gets a class of its own named after it (a subclass of :class:`HttpError`), so ``exc.code`` is
always the problem's ``code``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import (
    BoxOfficeError,
    Conflict,
    InternalError,
    InvalidArgument,
    LimitExceeded,
    PermissionDenied,
    error_class,
)

__all__ = [
    "AdminKeyInvalid",
    "EmailTaken",
    "HoldRateLimited",
    "HttpError",
    "InvalidCredentials",
    "LoginThrottled",
    "Overloaded",
    "RateLimited",
    "RequestTooLarge",
    "TokenExpired",
    "TooManyPasswordChecks",
    "Unauthenticated",
    "WeakPassword",
    "problem_error",
]


class HttpError(BoxOfficeError):
    """A code of the HTTP layer (not of the engine); ``http_status`` is the answer's."""

    code = "HTTP_ERROR"  # a family, not a code of the table
    http_status = 500


class Unauthenticated(HttpError):
    """401: no, a malformed or a forged access token; log in."""

    code = "UNAUTHENTICATED"
    http_status = 401


class TokenExpired(Unauthenticated):
    """401: the access token expired; log in again."""

    code = "TOKEN_EXPIRED"


class InvalidCredentials(Unauthenticated):
    """401: unknown email or wrong password."""

    code = "INVALID_CREDENTIALS"


class AdminKeyInvalid(PermissionDenied):
    """403: a missing or wrong ``X-Admin-Key``."""

    code = "ADMIN_KEY_INVALID"


class EmailTaken(Conflict):
    """409: an account with this email exists."""

    code = "EMAIL_TAKEN"


class WeakPassword(InvalidArgument):
    """422: the password is too easy to guess (zxcvbn's advice in the message)."""

    code = "WEAK_PASSWORD"
    http_status = 422


class RequestTooLarge(InvalidArgument):
    """413: the request body is above the server's limit."""

    code = "REQUEST_TOO_LARGE"
    http_status = 413


class RateLimited(LimitExceeded):
    """429: too many requests of a kind; ``retry_after_s`` says when to come back."""

    code = "RATE_LIMITED"  # a family, not a code of the table
    http_status = 429


class LoginThrottled(RateLimited):
    code = "LOGIN_THROTTLED"


class TooManyPasswordChecks(RateLimited):
    """Too many sign-ups and log-ins of this client address being hashed; nothing was done."""

    code = "TOO_MANY_PASSWORD_CHECKS"


class HoldRateLimited(RateLimited):
    code = "HOLD_RATE_LIMITED"


class Overloaded(HttpError):
    """503: the server is busy and did nothing; any request may be retried after
    ``retry_after_s``."""

    code = "OVERLOADED"
    http_status = 503


_HTTP_CLASSES: dict[str, type[BoxOfficeError]] = {
    c.code: c
    for c in (
        Unauthenticated,
        TokenExpired,
        InvalidCredentials,
        AdminKeyInvalid,
        EmailTaken,
        WeakPassword,
        RequestTooLarge,
        LoginThrottled,
        TooManyPasswordChecks,
        HoldRateLimited,
        Overloaded,
    )
}


def _class_for(code: str, status: int) -> type[BoxOfficeError]:
    cls = error_class(code)
    if cls is not InternalError or code == InternalError.code:
        return cls
    if code not in _HTTP_CLASSES:  # a code of a newer server: a class that names it
        name = "".join(part.title() for part in code.split("_")) or "HttpError"
        _HTTP_CLASSES[code] = type(name, (HttpError,), {"code": code, "http_status": status})
    return _HTTP_CLASSES[code]


def problem_error(status: int, body: Any, headers: Mapping[str, str]) -> BoxOfficeError:
    """The exception for a non-2xx answer: ``status``, its decoded JSON ``body`` (an RFC 9457
    problem, or anything else from a proxy) and its ``headers`` (``Retry-After``)."""
    problem = body if isinstance(body, dict) else {}
    code = str(problem.get("code") or f"HTTP_{status}")
    retry_after_s = _number(problem.get("retry_after_s"))
    if retry_after_s is None:
        retry_after_s = _number(headers.get("retry-after"))
    return _class_for(code, status)(
        str(problem.get("detail") or f"HTTP {status}"),
        position=problem.get("position"),
        eta_s=_number(problem.get("eta_s")),
        seat_id=problem.get("seat_id"),
        retry_after_s=retry_after_s,
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
