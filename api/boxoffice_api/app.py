"""The FastAPI application: ``create_app(settings)``.

The app is a thin layer: routes call the engine through :class:`~.service.Service`, one set of
exception handlers (``errors.install``) turns every error into problem+json, and two pure ASGI
middlewares bound request bodies and record metrics and access logs. The engine is opened by
the lifespan, so building the app (for the OpenAPI document, say) touches no file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import errors
from .logs import get_logger
from .metrics import Metrics, MetricsMiddleware
from .routes import (
    admin,
    auth,
    balance,
    concerts,
    health,
    payments,
    queue,
    reservations,
    schedules,
    users,
)
from .service import Service
from .settings import Settings

DESCRIPTION = """\
The HTTP service of **boxoffice**, the engine behind a ticket drop: an admission queue,
seats held for a few minutes and released exactly on expiry, and a payment ledger.

1. `POST /v1/users` then `POST /v1/auth/token` for an access JWT (send it as
   `Authorization: Bearer …`).
2. `POST /v1/concerts/{id}/queue` for a queue token; poll `GET …/queue` with
   `X-Queue-Token` until `status` is `ACTIVE`.
3. With the ACTIVE queue token: `GET …/schedules`, `GET /v1/schedules/{id}/seats`,
   `POST /v1/reservations`, `POST /v1/payments` (charge the wallet first with
   `POST /v1/me/balance/charges`).

Errors are RFC 9457 `application/problem+json` with a stable `code`. Mutating requests are
answered only after their journal group is durable. See `docs/http-api.md`.
"""


class BodyLimitMiddleware:
    """Refuses request bodies above ``limit`` bytes with 413 ``REQUEST_TOO_LARGE``, whether
    announced by Content-Length or streamed: the body is read, up to the limit, before the
    app sees it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def too_large() -> None:
            detail = f"request bodies are limited to {self.limit} bytes"
            response = errors.problem(Request(scope), 413, "REQUEST_TOO_LARGE", detail)
            await response(scope, receive, send)

        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await too_large()
            return
        # Count what actually arrives, whatever the headers claim (Content-Length together
        # with chunked framing is framed by the chunks): buffer up to the limit, then replay.
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await too_large()
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def welcome(settings: Settings, admin_key: str) -> str:
    """What ``--demo`` prints at start: where to look, the admin key, a first curl."""
    base = f"http://{settings.host}:{settings.port}"
    return (
        f"boxoffice serving {base}  (store {settings.db})\n"
        f"  API docs:    {base}/docs\n"
        f"  admin key:   {admin_key}\n"
        f"  first step:  curl -s -X POST {base}/v1/users -H 'Content-Type: application/json' "
        '-d \'{"email": "fan@example.com", "password": "correct horse"}\'\n'
        "  walkthrough: README.md (a whole drop with curl), docs/http-api.md"
    )


def _document_problems(app: FastAPI) -> None:
    """Adds the ``Problem`` schema to the OpenAPI components (routes refer to it by $ref)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            problem = errors.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            defs = problem.pop("$defs", {})
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(defs)
            schemas["Problem"] = problem
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The HTTP API v1 app. Opening the store happens in the lifespan (server start).

    Args:
        settings: server settings; by default read from ``BOXOFFICE_*`` variables.
    """
    settings = settings or Settings()
    log = get_logger()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = Service(settings)
        app.state.service = service
        recovery = service.engine.recovery
        log.info(
            "store opened",
            db=str(settings.db),
            durability=settings.durability,
            **{k: v for k, v in recovery.items() if isinstance(v, int)},
        )
        if settings.demo:
            from .demo import load

            concert = load(service.engine)
            if concert is not None:
                log.info("demo concert loaded", concert_id=concert.id)
            shown = "(BOXOFFICE_ADMIN_KEY)" if settings.admin_key else service.admin_key
            print(welcome(settings, shown), flush=True)
        try:
            yield
        finally:
            service.close()
            app.state.service = None
            log.info("store closed", db=str(settings.db))

    app = FastAPI(
        title="boxoffice",
        version="1.0.0",
        summary="Ticket drops: admission queue, expiring seat holds, payment ledger.",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    _document_problems(app)
    app.state.settings = settings
    app.state.service = None
    metrics = Metrics(lambda: app.state.service)
    app.state.metrics = metrics
    errors.install(app)
    for module in (health, users, auth, concerts, queue, schedules, reservations, payments):
        app.include_router(module.router)
    app.include_router(balance.router)
    app.include_router(admin.router)
    # Added last is outermost: metrics and the access log see every answer, 413s included.
    app.add_middleware(BodyLimitMiddleware, limit=settings.request_body_max_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics, access_log=settings.access_log)
    return app
