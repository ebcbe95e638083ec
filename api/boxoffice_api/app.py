"""The FastAPI application: ``create_app(settings)``.

The app is a thin layer: routes call the engine through :class:`~.service.Service`, one set of
exception handlers (``errors.install``) turns every error into problem+json, and three pure ASGI
middlewares record metrics and access logs, shed load beyond a number of requests in flight,
and bound request bodies in size and time. They run before FastAPI's own layers
(:class:`BoxOfficeApp`), and innermost of them the fast path (``fast_path.py``) serves the hot
endpoints of a drop by their own handlers without FastAPI's routing and dependency solving.
The engine is opened by the lifespan, so building the app (for the OpenAPI document, say)
touches no file.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boxoffice.errors import BoxOfficeError

from . import __version__, errors, store_files, web
from .fast_path import FastPathMiddleware, replay
from .logs import get_logger
from .metrics import Metrics, MetricsMiddleware
from .routes import (
    admin,
    auth,
    balance,
    concerts,
    docs,
    health,
    payments,
    queue,
    reservations,
    schedules,
    test_clock,
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


OVERLOAD_RETRY_AFTER_S = 1
# Most of a drop's requests, in the order they are most frequent (polls first).
HOT_ENDPOINTS = (
    queue.poll,
    queue.join,
    reservations.hold,
    payments.pay,
    balance.charge,
    schedules.seats,
)
# Operators' endpoints answer whatever the load: an orchestrator must not restart a server
# that is only busy, and the metrics are how an operator sees the overload.
UNSHED_PATHS = frozenset({"/healthz", "/metrics"})


class LoadShedMiddleware:
    """At most ``limit`` requests processed at once; a request beyond is answered at once with
    503 ``OVERLOADED`` and ``Retry-After`` (so it costs next to nothing). ``/healthz`` and
    ``/metrics`` are never shed. It runs inside :class:`BodyLimitMiddleware`: a request takes
    a slot only once its body is in, so clients trickling their bodies hold no slot.

    The count is exact: it is changed only on the event loop's thread.
    """

    def __init__(self, app: ASGIApp, limit: int, metrics: Metrics) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics
        self.in_flight = 0
        # The gauge reads the count when scraped: nothing to update per request.
        metrics.in_flight.set_function(lambda: self.in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNSHED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.metrics.shed.inc()
            response = errors.problem(
                Request(scope),
                503,
                "OVERLOADED",
                "the server is busy; retry after the Retry-After delay",
                retry_after_s=OVERLOAD_RETRY_AFTER_S,
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class BodyDeadlines:
    """The deadlines of the request bodies being read, each ``timeout_s`` after its reading
    began. They come in the order they were set, so one timer, at the earliest, serves them
    all: an ``asyncio.timeout`` per request (a timer armed and cancelled) cost more than
    reading a small body. A task whose deadline passes is cancelled, as ``asyncio.timeout``
    does, and :meth:`stop` says so.

    Only the event loop's thread uses it; a later loop (an app served again, in tests) takes
    the timer over."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._reading: dict[asyncio.Task[Any], float] = {}  # deadline by task, earliest first
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the timer's

    def start(self, task: asyncio.Task[Any]) -> None:
        """Times ``task``'s reading of a body from now."""
        loop = task.get_loop()
        deadline = loop.time() + self.timeout_s
        self._reading[task] = deadline
        if self._timer is None or self._loop is not loop:
            self._loop = loop
            self._timer = loop.call_at(deadline, self._expire, loop)

    def stop(self, task: asyncio.Task[Any]) -> bool:
        """Stops timing ``task``; True if its deadline passed (it was cancelled for that)."""
        self._reading.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return  # a timer of an earlier loop
        self._timer = None
        now = loop.time()
        reading = self._reading
        while reading:
            task = next(iter(reading))
            deadline = reading[task]
            if task.get_loop() is loop and deadline > now:
                self._timer = loop.call_at(deadline, self._expire, loop)
                return
            del reading[task]
            if task.get_loop() is loop and not task.done():
                self._expired.add(task)
                task.cancel()


class BodyLimitMiddleware:
    """Refuses request bodies above ``limit`` bytes with 413 ``REQUEST_TOO_LARGE``, whether
    announced by Content-Length or streamed: the body is read, up to the limit, before the
    app sees it. A body that has not fully arrived ``timeout_s`` seconds after the request's
    head is refused with 408 ``REQUEST_TIMEOUT`` (and the connection closed). It runs outside
    :class:`LoadShedMiddleware`, so a request waiting for its body holds no processing slot;
    a client that disconnects before its body is in gets no answer and costs nothing more."""

    def __init__(self, app: ASGIApp, limit: int, timeout_s: float = 30.0) -> None:
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s
        self.deadlines = BodyDeadlines(timeout_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def too_large() -> None:
            detail = f"request bodies are limited to {self.limit} bytes"
            response = errors.problem(Request(scope), 413, "REQUEST_TOO_LARGE", detail)
            await response(scope, receive, send)

        length = chunked = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value  # the last, if repeated (a parser refuses two that differ)
            elif name == b"transfer-encoding":
                chunked = value
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await too_large()
            return
        if chunked is None and (length is None or int(length) == 0):
            # No body by HTTP/1.1 framing (RFC 9112 section 6.3): the parser has the whole
            # request, so its one message is there at once; no timer is needed.
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # gone: nobody to answer
            await self.app(scope, replay([message], receive), send)
            return
        # Count what actually arrives, whatever the headers claim (Content-Length together
        # with chunked framing is framed by the chunks): buffer up to the limit, then replay.
        messages: list[Message] = []
        seen = 0
        task = asyncio.current_task()
        assert task is not None
        self.deadlines.start(task)
        try:
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break
                seen += len(message.get("body", b""))
                if seen > self.limit or not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            # Answered here if the deadline cancelled it, and nothing else did too.
            if not self.deadlines.stop(task) or task.uncancel() > 0:
                raise
            detail = f"the request body did not arrive within {self.timeout_s:g} s"
            response = errors.problem(Request(scope), 408, "REQUEST_TIMEOUT", detail)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        finally:
            self.deadlines.stop(task)
        if seen > self.limit:
            await too_large()
            return
        if messages[-1]["type"] == "http.disconnect":
            return  # gone (or closed by the server to make room): nobody to answer

        await self.app(scope, replay(messages, receive), send)


def welcome(settings: Settings, admin_key: str) -> str:
    """What ``--demo`` prints at start: where to look, the admin key, a first curl."""
    base = f"http://{settings.host}:{settings.port}"
    return (
        f"boxoffice serving {base}  (store {settings.db})\n"
        f"  in a browser: {base}/  (the fan's pages; the dashboard: {base}/admin)\n"
        f"  API docs:    {base}/docs\n"
        f"  admin key:   {admin_key}\n"
        f"  first step:  curl -s -X POST {base}/v1/users -H 'Content-Type: application/json' "
        '-d \'{"email": "fan@example.com", "password": "correct horse"}\'\n'
        "  walkthrough: README.md (a whole drop with curl), docs/http-api.md"
    )


_BOUND_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_I64_MAX = 2**63 - 1


def _exact_bounds(node: object) -> None:
    """Writes numeric bounds as the integers they are. FastAPI's OpenAPI models hold them as
    floats, so ``le=2**63 - 1`` came out as ``9.223372036854776e+18`` (2**63: a value the
    server refuses) and ``ge=1`` as ``1.0``. No bound of ours is fractional, and none is above
    the engine's 64-bit range, so a float bound of 2**63 can only be a rounded 2**63 - 1."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _BOUND_KEYWORDS and isinstance(value, float) and value.is_integer():
                node[key] = min(int(value), _I64_MAX)
            else:
                _exact_bounds(value)
    elif isinstance(node, list):
        for item in node:
            _exact_bounds(item)


def _document_problems(app: FastAPI) -> None:
    """Completes the OpenAPI document: the ``Problem`` schema in the components (routes refer
    to it by $ref), operations needing both the access JWT and the queue token say they need
    both, and bounds are exact integers."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            problem = errors.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            defs = problem.pop("$defs", {})
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(defs)
            schemas["Problem"] = problem
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    # FastAPI lists one requirement per security dependency, which OpenAPI
                    # reads as "any one of them"; every one of ours is required.
                    requirements = operation.get("security")
                    if requirements and len(requirements) > 1:
                        operation["security"] = [{k: v for r in requirements for k, v in r.items()}]
            _exact_bounds(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _log_store_opened(service: Service, settings: Settings) -> None:
    log = get_logger()
    recovery = service.engine.recovery
    log.info(
        "store opened",
        db=str(settings.db),
        durability=settings.durability,
        **{k: v for k, v in recovery.items() if isinstance(v, int)},
    )
    kept = service.engine.limits.queue_length_max
    if settings.queue_length_max is not None and kept != settings.queue_length_max:
        log.warning(
            "the store keeps the queue_length_max it was created with",
            queue_length_max=kept,
            setting=settings.queue_length_max,
        )


class BoxOfficeApp(FastAPI):
    """The FastAPI app with boxoffice's own middlewares outside FastAPI's stack: an HTTP
    request goes through ``edge`` (metrics, body limit, load shedding, the fast path) and
    only then, unless the fast path answered it, through FastAPI's own layers (server error
    handler, exception handlers, routing). A hot request so pays for none of them."""

    edge: ASGIApp | None = None  # set by create_app; until then, FastAPI alone
    # Why the store could not be opened, in one line (set by the lifespan): the server says
    # that, not the traceback Starlette would hand the ASGI server.
    startup_refusal: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.edge is not None:
            scope["app"] = self  # as Starlette sets it, for Request.app
            await self.edge(scope, receive, send)
        elif scope["type"] == "lifespan":
            await super().__call__(scope, receive, self._refusal_in_one_line(send))
        else:
            await super().__call__(scope, receive, send)

    def _refusal_in_one_line(self, send: Send) -> Send:
        async def send_lifespan(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and self.startup_refusal:
                message = {**message, "message": self.startup_refusal}
            await send(message)

        return send_lifespan

    async def core(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own stack (what ``edge`` hands a request on to)."""
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The HTTP API v1 app. Opening the store happens in the lifespan (server start).

    Args:
        settings: server settings; by default read from ``BOXOFFICE_*`` variables.
    """
    settings = settings or Settings()
    log = get_logger()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            service = Service(settings)
        except (BoxOfficeError, store_files.TestClockRefused) as exc:
            # An operator's problem with a message that says what to do (another server has
            # the store, a test server on a real store, a damaged store): one line, no trace.
            assert isinstance(app, BoxOfficeApp)
            app.startup_refusal = f"cannot open the store: {exc}"
            raise
        await service.start()
        app.state.service = service
        if service.cluster is not None:
            log.info("cluster connected", urls=settings.cluster_urls, shard=settings.shard)
        else:
            _log_store_opened(service, settings)
        if settings.demo and service.cluster is not None:
            log.warning("--demo loads a concert into an embedded store only; ignored")
        elif settings.demo:
            from .demo import load

            concert = load(service.engine)
            if concert is not None:
                log.info("demo concert loaded", concert_id=concert.id)
            shown = "(BOXOFFICE_ADMIN_KEY)" if settings.admin_key else service.admin_key
            print(welcome(settings, shown), flush=True)
        # Everything loaded so far (modules, the app, the demo) lives as long as the process:
        # moved out of the collector's reach, a full collection no longer walks it (60-260 ms
        # pauses measured under load, bench/http_bench.py). Not in test mode: there the app may
        # be one of many a test process builds (the boxoffice_app fixture), and what is frozen
        # is never collected.
        if not settings.test_clock:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            await service.aclose()
            app.state.service = None
            if service.cluster is None:
                log.info("store closed", db=str(settings.db))
            else:
                log.info("cluster disconnected")

    app = BoxOfficeApp(
        title="boxoffice",
        version=__version__,  # the package's: one version for the wheel, the CLI and the API
        summary="Ticket drops: admission queue, expiring seat holds, payment ledger.",
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's OpenTelemetry hooks look for configured providers on every request; the
        # service's metrics are Prometheus (metrics.py), and no tracer is configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # The documentation pages and the document are routes of their own (routes/docs.py):
        # their assets come from this server, not a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
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
    app.include_router(docs.router)
    app.include_router(web.router)  # the fan's pages and the dashboard (web/), not in OpenAPI
    if settings.test_clock:  # the test clock's routes exist in test mode only
        app.include_router(test_clock.router)
    # Outermost first: metrics and the access log see every answer, 413s and shed requests
    # included. The body is read before a processing slot is taken: a client trickling its
    # body waits outside the slots (bounded by the body timeout, and by the edge's connection
    # limit, server.py), never holding one that others need. Innermost, the hot endpoints of
    # a drop, served by their own handlers without FastAPI's routing and dependency solving
    # (fast_path.py); every other request goes on to FastAPI's own stack.
    fast = FastPathMiddleware(app.core, api=app, endpoints=HOT_ENDPOINTS)
    shed = LoadShedMiddleware(fast, limit=settings.max_concurrent_requests, metrics=metrics)
    body = BodyLimitMiddleware(
        shed, limit=settings.request_body_max_bytes, timeout_s=settings.request_body_timeout_s
    )
    app.edge = MetricsMiddleware(body, metrics=metrics, access_log=settings.access_log)
    return app
