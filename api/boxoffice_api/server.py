"""Running the HTTP service: ``serve(overrides)`` builds the settings, the app and uvicorn, and
guards the edge where uvicorn leaves it open.

``boxoffice serve`` (:mod:`.cli`, registered on the engine's command line through the
``boxoffice.commands`` entry points) parses its flags and calls :func:`serve`; the engine
package never imports this one.

What the edge adds to uvicorn, in the spirit of nginx, HAProxy and Apache's mod_reqtimeout:

- **Descriptors.** The soft ``RLIMIT_NOFILE`` is raised to the hard limit at start-up (1,024 is
  the usual soft default, and 1,010 idle connections used to exhaust it), and the connection
  limit and the listen backlog are derived from it, leaving room for the store's own files: at
  most ``max_connections`` + 2 x ``backlog`` + :data:`FD_RESERVE` descriptors are needed.
- **A header timeout.** uvicorn closes an idle keep-alive connection, but a fresh connection,
  or one whose request head stopped half-way, was kept forever. :class:`EdgeProtocol` closes a
  connection whose request head has not fully arrived ``header_timeout_s`` after it was opened
  (or after the first byte of a later request on it): 408 ``REQUEST_TIMEOUT`` if part of a head
  came, silently if nothing did.
- **The connection limit by eviction, as nginx reuses connections.** Connections that keep the
  server waiting (nothing sent yet, a head or a body still arriving, idle between requests) are
  kept in the order they started waiting. When a new connection would pass ``max_connections``,
  the one that has kept the server waiting longest is closed to make room; a connection whose
  request is being processed or answered is never closed for this, nor a newcomer before the
  server has read what it sent. So a flood of slow or idle connections, however many, cannot
  keep out a client that sends its request promptly. Only when every other connection is busy
  is the newcomer refused: 503 ``OVERLOADED`` with ``Retry-After`` as a problem document
  (uvicorn's own answer was a plain-text 503).
- **Problem documents for bad framing.** Where uvicorn answered a request it could not parse
  (``Content-Length: -1``, a garbage request line, a head over h11's 16 KiB) with a plain-text
  400, the edge answers 400 ``BAD_REQUEST`` as ``application/problem+json``.
- **A log that cannot fill the disk.** Every log handler gets :class:`~.logs.RepeatFilter`, and
  the event loop's "socket.accept() out of system resource" (asyncio retries the accept in a
  loop, one log line with a traceback per try) also closes the longest-waiting connections.

The request body, once the head is in, is the app's business: ``app.BodyLimitMiddleware`` reads
it, within ``request_body_timeout_s``, before the request takes one of the processing slots of
``LoadShedMiddleware``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar, cast

import h11
import uvicorn
from pydantic import ValidationError
from starlette.requests import Request
from uvicorn.protocols.http.h11_impl import H11Protocol

from . import errors
from .app import create_app
from .logs import RepeatFilter, configure, get_logger
from .settings import Settings

# Descriptors the process needs besides its connections: the store (database, -wal, -shm, the
# journal reader and writer's handles), stdio, the event loop's selector and self-pipe, the
# thread pools' and Python's own. An idle server holds about 20.
FD_RESERVE = 64
# Without a setting, at most this many connections: with eviction the limit is a cache of
# connections rather than a refusal, and it bounds what idle connections cost (a few KiB each).
MAX_CONNECTIONS_DEFAULT = 4096
BACKLOG_MAX = 2048  # uvicorn's default
HEAD_BYTES_MAX = 16 * 1024  # h11's bound on an incomplete request head, applied to every head
BACKLOG_MIN = 16
OVERLOAD_RETRY_AFTER_S = 1
# After descriptors ran out, wait this long before closing more waiting connections: asyncio
# reports the exhaustion once per failed accept, up to a backlog's worth in one go.
FD_RELIEF_INTERVAL_S = 0.5
ACCEPT_EXHAUSTED = "socket.accept() out of system resource"
# Through the standard library, so the log filter bounds how often it repeats.
_log = logging.getLogger("boxoffice.edge")


@dataclass(frozen=True)
class EdgeLimits:
    """What the edge allows: ``max_connections`` open at once, ``backlog`` waiting to be
    accepted, ``header_timeout_s`` seconds for a request head."""

    max_connections: int
    backlog: int
    header_timeout_s: float


def raise_fd_limit() -> tuple[int, int]:
    """Raises the soft ``RLIMIT_NOFILE`` to the hard limit; returns ``(soft, hard)`` after.

    An unlimited hard limit is read as the kernel's ``fs.nr_open`` (1,048,576 if unreadable).
    A refusal (some sandboxes) keeps the soft limit as it was.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:
            with open("/proc/sys/fs/nr_open") as f:
                target = int(f.read())
        except (OSError, ValueError):
            target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass
    return soft, hard


def edge_limits(fd_limit: int, settings: Settings) -> EdgeLimits:
    """The connection limit and backlog that fit in ``fd_limit`` descriptors.

    ``settings.max_connections`` is used when it fits, lowered to what fits otherwise; unset,
    :data:`MAX_CONNECTIONS_DEFAULT` or what fits, whichever is smaller.
    """
    budget = max(2, fd_limit - FD_RESERVE)
    backlog = min(BACKLOG_MAX, max(BACKLOG_MIN, budget // 8))
    # A newcomer is counted against the limit two loop iterations after it was accepted
    # (EdgeProtocol.connection_made), and one iteration accepts up to a backlog's worth.
    fits = max(1, budget - 2 * backlog)
    wanted = settings.max_connections or MAX_CONNECTIONS_DEFAULT
    return EdgeLimits(
        max_connections=min(wanted, fits),
        backlog=min(backlog, fits),
        header_timeout_s=settings.header_timeout_s,
    )


def problem_bytes(
    status: int,
    code: str,
    detail: str,
    *,
    retry_after_s: float | None = None,
    default_headers: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    """A whole HTTP/1.1 problem+json response with ``Connection: close``, as bytes, for answers
    given below the app (no request was parsed, or the connection is being closed): the same
    document ``errors.problem`` gives, with ``instance`` "/"."""
    scope = {"type": "http", "path": "/", "query_string": b"", "headers": [], "root_path": ""}
    response = errors.problem(Request(scope), status, code, detail, retry_after_s=retry_after_s)
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
    for name, value in [*(default_headers or []), *response.raw_headers]:
        lines.append(name + b": " + value)
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + bytes(response.body)


@dataclass
class ConnectionTable:
    """The connections of one server: how many are open, and those that keep it waiting, in
    the order they started waiting (oldest first). Touched only on the event loop's thread."""

    limits: EdgeLimits
    open: int = 0
    waiting: OrderedDict[EdgeProtocol, None] = field(default_factory=OrderedDict)
    evicted: int = 0
    refused: int = 0
    header_timeouts: int = 0
    last_relief: float = float("-inf")

    def make_room(self, newcomer: EdgeProtocol) -> None:
        """Closes the connection that has kept the server waiting longest (``waiting`` must not
        be empty); the newcomer itself, refused with a 503 problem, when it is the only one
        waiting (every other connection busy)."""
        victim = next(iter(self.waiting))
        if victim is newcomer:
            self.refused += 1
            newcomer.edge_close(overloaded=True)
        else:
            self.evicted += 1
            victim.edge_close(overloaded=victim.edge_request_started)
        _log.warning(
            "connection limit reached: closed the connection waiting longest "
            "(max_connections=%d; %d closed, %d refused so far)",
            self.limits.max_connections,
            self.evicted,
            self.refused,
        )

    def relieve(self, now: float) -> int:
        """Descriptors ran out (not by our connections alone, or the backlog was full): closes
        a quarter of the waiting connections, oldest first, at most once per
        :data:`FD_RELIEF_INTERVAL_S`. Returns how many were closed."""
        if now - self.last_relief < FD_RELIEF_INTERVAL_S or not self.waiting:
            return 0
        self.last_relief = now
        victims = list(self.waiting)[: max(1, len(self.waiting) // 4)]
        for victim in victims:
            victim.edge_close(overloaded=victim.edge_request_started)
        self.evicted += len(victims)
        return len(victims)


class CoalescingTransport(asyncio.Transport):
    """A connection's transport whose writes of one event-loop iteration leave in one system
    call: uvicorn writes a response's head and body separately, and each write of uvloop's
    transport is a ``send`` at once (on loopback, a third of the loop's time in a poll run,
    docs/benchmarks.md). The bytes go out in order at the end of the iteration, before the
    connection closes; everything but writing and closing is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        """Writes what is pending, in one call (nothing once the transport is closing)."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()


class EdgeProtocol(asyncio.Protocol):
    """A mixin for uvicorn's HTTP protocol classes (h11 and httptools; both keep the current
    request in ``self.cycle`` with ``more_body`` and ``response_complete``): the header
    timeout, the connection limit by eviction, and problem documents for bad framing.
    Subclass it before the uvicorn class: ``class P(EdgeProtocol, H11Protocol)``; the
    subclass's ``table`` is set by :func:`edge_protocol_class`."""

    table: ClassVar[ConnectionTable]
    # Attributes of uvicorn's protocol classes used here.
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    server_state: Any

    edge_request_started = False  # bytes of the current request have arrived
    edge_closed = False
    _edge_head_bytes = 0  # bytes received of a head not yet complete (before the parser)
    _edge_in_body = False  # httptools: a request's head is parsed, its body not yet complete
    _edge_head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have asyncio.Transport's methods without subclassing it.
        coalescing = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(coalescing)
        self.table.open += 1
        self._edge_arm_head_timer()
        # The transport starts reading one loop iteration after this; a request already sent
        # is read one more iteration later. Only then may this connection be counted against
        # the others, so newcomers accepted in one burst cannot evict each other before they
        # have had a chance to speak.
        self.loop.call_soon(self.loop.call_soon, self._edge_settle)

    def _edge_settle(self) -> None:
        if self.edge_closed:
            return
        table = self.table
        if self._edge_is_waiting():
            table.waiting.setdefault(self)
        if table.open > table.limits.max_connections and table.waiting:
            table.make_room(self)

    def data_received(self, data: bytes) -> None:
        if self.edge_closed:
            return
        before = self.cycle
        answered = before is None or before.response_complete
        # The rest of a body the app answered before reading it (a 413 on Content-Length):
        # the parser skips it, and it is no part of the next request's head.
        body_tail = answered and self._edge_reading_body()
        if not body_tail:
            if not self.edge_request_started:
                self.edge_request_started = True
                if self._edge_head_timer is None:  # a later request on a kept-alive connection
                    self._edge_arm_head_timer()
            if answered:
                # Reading a head. h11 bounds only a head that is still incomplete after a
                # read, httptools none at all: the bound is checked before either parses it.
                end = data.find(b"\r\n\r\n")
                head_bytes = self._edge_head_bytes + (len(data) if end < 0 else end + 4)
                if head_bytes > HEAD_BYTES_MAX:
                    self.send_400_response("request head too large")
                    return
                self._edge_head_bytes = head_bytes if end < 0 else 0
        super().data_received(data)
        cycle = self.cycle
        # The body ended in this read, and a next head may have begun after it (its bytes
        # were not counted, so at most one read's worth): it gets the head timeout.
        ended = body_tail and cycle is before and not self._edge_reading_body()
        if ended and self._edge_head_timer is None:
            self._edge_arm_head_timer()
        if cycle is not before and self._edge_head_timer is not None:
            self._edge_head_timer.cancel()  # the head is in
            self._edge_head_timer = None
        if cycle is not None and not cycle.more_body and not cycle.response_complete:
            self.table.waiting.pop(self, None)  # the whole request is in: busy, not waiting

    def _edge_reading_body(self) -> bool:
        """The parser is inside a request's body (its head parsed, its end not yet seen)."""
        if isinstance(self, H11Protocol):
            return bool(self.conn.their_state is h11.SEND_BODY)
        return self._edge_in_body

    # httptools' parser callbacks (h11 has none): where a request's body starts and ends.
    def on_headers_complete(self) -> None:
        self._edge_in_body = True
        super().on_headers_complete()  # type: ignore[misc]

    def on_message_complete(self) -> None:
        self._edge_in_body = False
        super().on_message_complete()  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        # (A pipelined request may have started in there, and may be busy already.)
        if not self.edge_closed and not self.transport.is_closing() and self._edge_is_waiting():
            self.edge_request_started = False
            self.table.waiting[self] = None  # waits for the next request, from now
            self.table.waiting.move_to_end(self)

    def _edge_is_waiting(self) -> bool:
        """No request, or the current one answered, or its body still arriving."""
        cycle = self.cycle
        return cycle is None or bool(cycle.response_complete or cycle.more_body)

    def connection_lost(self, exc: Exception | None) -> None:
        self._edge_forget()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, as a problem document."""
        self._edge_forget()
        detail = "the request is not valid HTTP/1.1 (framing, request line or head size)"
        self.transport.write(
            problem_bytes(
                400, "BAD_REQUEST", detail, default_headers=self.server_state.default_headers
            )
        )
        self.transport.close()

    def edge_close(self, *, overloaded: bool) -> None:
        """Closes the connection to make room, with a 503 ``OVERLOADED`` problem first if
        ``overloaded`` (a request had started, or the connection is a refused newcomer)."""
        if overloaded and not self.transport.is_closing():
            self.transport.write(
                problem_bytes(
                    503,
                    "OVERLOADED",
                    "too many open connections; retry after the Retry-After delay",
                    retry_after_s=OVERLOAD_RETRY_AFTER_S,
                    default_headers=self.server_state.default_headers,
                )
            )
        self._edge_forget()
        self.transport.close()

    def _edge_forget(self) -> None:
        if self.edge_closed:
            return
        self.edge_closed = True
        self.table.open -= 1
        self.table.waiting.pop(self, None)
        if self._edge_head_timer is not None:
            self._edge_head_timer.cancel()
            self._edge_head_timer = None

    def _edge_arm_head_timer(self) -> None:
        timeout_s = self.table.limits.header_timeout_s
        self._edge_head_timer = self.loop.call_later(timeout_s, self._edge_head_timeout)

    def _edge_head_timeout(self) -> None:
        self._edge_head_timer = None
        if self.edge_closed or (self.cycle is not None and not self.cycle.response_complete):
            return
        self.table.header_timeouts += 1
        if self.edge_request_started:
            detail = (
                f"the request head did not arrive within {self.table.limits.header_timeout_s:g} s"
            )
            self.transport.write(
                problem_bytes(
                    408,
                    "REQUEST_TIMEOUT",
                    detail,
                    default_headers=self.server_state.default_headers,
                )
            )
        self._edge_forget()
        self.transport.close()


def edge_protocol_class(http: str, table: ConnectionTable) -> type[asyncio.Protocol]:
    """uvicorn's ``http`` ("h11" or "httptools") protocol class with :class:`EdgeProtocol`
    mixed in, bound to ``table``. Raises ImportError if httptools is asked for but missing."""
    base: type[asyncio.Protocol] = H11Protocol
    if http == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base = HttpToolsProtocol
    name = f"Edge{base.__name__}"
    return type(name, (EdgeProtocol, base), {"table": table})


def install_log_filter(log_filter: logging.Filter) -> None:
    """Adds ``log_filter`` to every handler of the root logger and of every named logger."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    for candidate in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(candidate, logging.Logger):
            loggers.append(candidate)
    for logger in loggers:
        for handler in logger.handlers:
            if log_filter not in handler.filters:
                handler.addFilter(log_filter)


def _loop_exception_handler(table: ConnectionTable) -> Any:
    """The event loop's exception handler: the default one, and when accept() ran out of
    descriptors, :meth:`ConnectionTable.relieve` first."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == ACCEPT_EXHAUSTED:
            table.relieve(time.monotonic())
        loop.default_exception_handler(context)

    return handle


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` with SO_REUSEPORT: several worker processes
    bind the same port and the kernel spreads new connections over them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve(overrides: dict[str, Any]) -> int:
    """Runs the HTTP service until SIGINT/SIGTERM; returns the exit status (2: bad settings).

    Args:
        overrides: settings given on the command line, over the ``BOXOFFICE_*`` variables.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:  # its text would echo the values, secrets included
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            print(f"boxoffice serve: BOXOFFICE_{name}: {error['msg']}", file=sys.stderr)
        return 2
    configure(settings.log_level, settings.log_json)
    log = get_logger()
    was_soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    fd_limit, fd_hard = raise_fd_limit()
    limits = edge_limits(fd_limit, settings)
    log.info(
        "edge limits",
        fd_limit=fd_limit,
        fd_limit_was=was_soft,
        fd_hard_limit=fd_hard,
        max_connections=limits.max_connections,
        backlog=limits.backlog,
        header_timeout_s=limits.header_timeout_s,
    )
    if settings.max_connections is not None and limits.max_connections < settings.max_connections:
        log.warning(
            "max_connections lowered to fit the descriptor limit",
            setting=settings.max_connections,
            max_connections=limits.max_connections,
            fd_limit=fd_limit,
        )
    table = ConnectionTable(limits)
    try:
        protocol = edge_protocol_class(settings.http_protocol, table)
    except ImportError:
        print(
            f"boxoffice serve: BOXOFFICE_HTTP_PROTOCOL: {settings.http_protocol} is not installed",
            file=sys.stderr,
        )
        return 2
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http=protocol,
        # uvloop (libuv) runs the event loop: a request costs the loop about a quarter
        # less CPU than on asyncio's own (docs/benchmarks.md).
        loop="uvloop",
        log_level=settings.log_level,
        log_config=None,  # uvicorn's loggers propagate to the root logger: JSON (logs.py)
        access_log=False,  # the app logs each request itself, as JSON
        lifespan="on",
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        backlog=limits.backlog,
        # The edge limits connections itself (uvicorn's limit_concurrency answers plain text,
        # counts requests still reading their body, and never closes anything).
        limit_concurrency=None,
    )
    install_log_filter(RepeatFilter())
    server = uvicorn.Server(config)

    sockets = [reuse_port_socket(settings.host, settings.port)] if settings.reuse_port else None

    async def run() -> None:
        asyncio.get_running_loop().set_exception_handler(_loop_exception_handler(table))
        await server.serve(sockets=sockets)

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(run())
    return 0 if server.started else 3  # 3: uvicorn's start-up failure (the port was taken)
