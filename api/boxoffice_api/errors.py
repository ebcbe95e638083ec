"""RFC 9457 problem responses: the one place where an error becomes an HTTP answer.

Engine errors (:class:`boxoffice.errors.BoxOfficeError`) carry their stable ``code`` and HTTP
status from the C++ table (``cpp/include/boxoffice/errors.h``), and this module writes no engine
code's status of its own; errors of the HTTP layer itself (credentials, admin key, sign-up, rate
limits, overload) are :class:`ApiError` with their codes and statuses where they are raised.
Request validation failures become the engine's ``INVALID_ARGUMENT`` problems, listing each
field error without echoing its input (a password must never come back in a body or a log).
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from boxoffice.errors import BoxOfficeError, InternalError, InvalidArgument, StoreUnavailable

from .logs import get_logger

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ApiError(Exception):
    """An error of the HTTP layer with a stable ``code``.

    Args:
        status: the HTTP status (401, 403, 409, 413, 429, ...).
        code: the stable code, e.g. ``"UNAUTHENTICATED"``.
        detail: a human-readable explanation (never a secret).
        retry_after_s: seconds for the ``Retry-After`` header, if any.
    """

    def __init__(
        self, status: int, code: str, detail: str, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after_s = retry_after_s


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where the error is: body, query, path, header.")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem detail with boxoffice's stable ``code``."""

    type: str = Field(description="A URI naming the problem type (urn:boxoffice:problem:CODE).")
    title: str = Field(description="A short summary of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong in this occurrence.")
    instance: str = Field(description="The request path.")
    code: str = Field(description="Stable machine-readable code, e.g. SEAT_UNAVAILABLE.")
    position: int | None = Field(None, description="QUEUE_NOT_ACTIVE: WAITING tokens ahead.")
    eta_s: float | None = Field(None, description="QUEUE_NOT_ACTIVE: estimated wait, seconds.")
    retry_after_s: float | None = Field(None, description="Seconds before a retry may succeed.")
    seat_id: int | None = Field(None, description="Seat errors: the seat concerned.")
    errors: list[FieldError] | None = Field(None, description="INVALID_ARGUMENT: field errors.")


_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}
_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def problem(
    request: Request,
    status: int,
    code: str,
    detail: str,
    *,
    retry_after_s: float | None = None,
    **extra: Any,
) -> JSONResponse:
    """The problem+json response for ``code`` (with ``Retry-After`` when given)."""
    body = Problem(
        type=f"urn:boxoffice:problem:{code}",
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=request.url.path,
        code=code,
        retry_after_s=retry_after_s,
        **extra,
    ).model_dump(exclude_none=True)
    if code == "QUEUE_NOT_ACTIVE":  # position is part of this answer, null in the pre-queue
        body.setdefault("position", None)
    headers = {}
    if retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


async def _engine_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BoxOfficeError)
    status = exc.http_status
    detail = exc.message or exc.code
    if status >= 500:
        # The message names files and system errors: logged for operators, not sent.
        get_logger().error(
            "engine error", code=exc.code, path=request.url.path, message=exc.message
        )
        detail = "the store cannot be used right now; retry later"
    retry_after = exc.retry_after_s
    if exc.code == "QUEUE_NOT_ACTIVE" and retry_after is None:
        retry_after = exc.eta_s
    if status in (429, 503) and retry_after is None:  # the document promises Retry-After
        retry_after = 5.0
    return problem(
        request,
        status,
        exc.code,
        detail,
        retry_after_s=retry_after,
        position=exc.position,
        eta_s=exc.eta_s,
        seat_id=exc.seat_id,
    )


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return problem(request, exc.status, exc.code, exc.detail, retry_after_s=exc.retry_after_s)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(
            loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            msg=str(e.get("msg", "")),
            type=str(e.get("type", "")),
        )
        for e in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors[:5])
    return problem(
        request,
        InvalidArgument.http_status,
        InvalidArgument.code,
        summary or "invalid request",
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's "error parsing the body" (not UTF-8, nested too deep, a number too long):
        # invalid input, which the contract answers with INVALID_ARGUMENT like any other.
        detail = "the request body is not valid JSON"
        error = FieldError(loc=["body"], msg=detail, type="json_invalid")
        return problem(
            request, InvalidArgument.http_status, InvalidArgument.code, detail, errors=[error]
        )
    code = _HTTP_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str) else code
    response = problem(request, exc.status_code, code, detail)
    if exc.status_code == 405:
        response.headers["Allow"] = _allowed_methods(request)
    for name, value in (exc.headers or {}).items():
        response.headers.setdefault(name, value)
    return response


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method of the path (RFC 9110 section 10.2.1), not only those of the first route
    that matched it: FastAPI makes one route per operation, and Starlette's 405 names only the
    methods of the first. Asks the router which methods would fully match (public
    ``BaseRoute.matches``; included routers are opaque otherwise)."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


async def _sqlite_error(request: Request, exc: Exception) -> JSONResponse:
    # The accounts tables (sign-up, login) share the store's file: a full disk or a lock held
    # too long is the store being unavailable (the engine's STORE_UNAVAILABLE), not a bug.
    get_logger().error("accounts store error", path=request.url.path, message=str(exc))
    return problem(
        request,
        StoreUnavailable.http_status,
        StoreUnavailable.code,
        "the store cannot be used right now; retry later",
        retry_after_s=5.0,
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # A bug: logged with its traceback, answered without one.
    get_logger().error(
        "unexpected error", method=request.method, path=request.url.path, exc_info=exc
    )
    return problem(
        request,
        InternalError.http_status,
        InternalError.code,
        "an unexpected error occurred; it was logged",
    )


def install(app: FastAPI) -> None:
    """Registers the handlers: every error the app can raise becomes a problem response."""
    app.add_exception_handler(BoxOfficeError, _engine_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sqlite3.Error, _sqlite_error)
    app.add_exception_handler(Exception, _unexpected_error)
