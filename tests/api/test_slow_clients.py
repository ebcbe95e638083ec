"""Slow and idle clients at the edge: slow bodies, descriptor exhaustion, bad framing.

What an outside attack did, scaled down and bounded, against real servers on loopback:

- **Slow bodies**: connections that send ``POST /v1/users`` with ``Content-Length: 100`` and
  one byte of body, reconnecting when dropped. They used to hold the processing slots
  (``BOXOFFICE_MAX_CONCURRENT_REQUESTS``) for the whole body timeout, and uvicorn's connection
  limit refused everyone else with a plain-text 503; now a legitimate client's requests,
  each on a new connection, are all answered 200 while the attack runs, below and at twice
  the connection limit.
- **Idle partial heads** are closed after ``BOXOFFICE_HEADER_TIMEOUT_S`` (408 problem).
- **Descriptor exhaustion**: a server under a low ``RLIMIT_NOFILE`` attacked with more idle
  connections than it has descriptors used to log "socket.accept() out of system resource"
  in a loop (megabytes a second); now its log stays small and it keeps answering.
- **Bad framing** gets a problem document, not uvicorn's text/plain 400.

The edge protocol itself (server.py) is also driven in-process, for both of uvicorn's HTTP
implementations, with an app that holds requests until told: eviction order, the 503 problem
when every connection is busy, the header timeout.

``python tests/api/test_slow_clients.py [--seconds 45]`` measures the slow-body attack with
the real defaults at 1,100 connections and at twice the default connection limit, and prints
what a legitimate client saw (statuses, latency p50/p99).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import resource
import socket
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

SLOW_BODY = (
    b"POST /v1/users HTTP/1.1\r\nHost: attack\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"email'
)
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: attack\r\nX-Slow: "
BAD_FRAMING = {
    "negative Content-Length": b"POST /v1/users HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
    "garbage request line": b"\x16\x03\x01 nonsense \xff\r\n\r\n",
    "head over 64 KiB": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: "
    + b"a" * 100_000
    + b"\r\n\r\n",
}
LOG_BYTES_MAX = 64 * 1024
FD_LIMIT = 256


# The attack: a program of its own (a child process), bounded in connections and time.


async def _attacker(
    port: int, payload: bytes, deadline: float, hold_s: float, seen: Counter[str], on_sent: Any
) -> None:
    """One attacking connection at a time, reconnecting when dropped or after ``hold_s``
    without an answer, until ``deadline``."""
    loop = asyncio.get_running_loop()
    while (left := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(left):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except (OSError, TimeoutError) as exc:
            seen[f"connect failed ({type(exc).__name__})"] += 1
            await asyncio.sleep(0.05)
            continue
        seen["connections"] += 1
        answer = b""
        try:
            writer.write(payload)
            await writer.drain()
            on_sent()
            async with asyncio.timeout(min(deadline - loop.time(), hold_s)):
                while chunk := await reader.read(65536):
                    answer += chunk
            status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else ""
            seen[f"answered {status}" if status else "closed"] += 1
        except TimeoutError:
            seen["held to the end" if loop.time() >= deadline else "gave up, again"] += 1
        except OSError:
            seen["reset"] += 1
        finally:
            writer.close()


async def _attack(
    port: int, connections: int, seconds: float, payload: bytes, hold_s: float, ready: Any
) -> Counter[str]:
    seen: Counter[str] = Counter()
    deadline = asyncio.get_running_loop().time() + seconds

    def on_sent() -> None:
        seen["sent"] += 1
        if seen["sent"] == connections:
            ready.set()

    await asyncio.gather(
        *(_attacker(port, payload, deadline, hold_s, seen, on_sent) for _ in range(connections))
    )
    return seen


def attack(
    port: int,
    connections: int,
    seconds: float,
    payload: bytes,
    hold_s: float,
    ready: Any,
    results: Any,
) -> None:
    """``connections`` connections sending ``payload`` and holding, each reconnecting when
    the server drops it (or after ``hold_s`` without an answer), for ``seconds``. Sets
    ``ready`` once every connection sent its payload; puts what they saw in ``results``."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results.put(dict(asyncio.run(_attack(port, connections, seconds, payload, hold_s, ready))))


@contextlib.contextmanager
def attacking(
    port: int,
    connections: int,
    seconds: float,
    payload: bytes = SLOW_BODY,
    hold_s: float = 3600.0,
    wait_for_all: bool = True,
) -> Iterator[dict[str, int]]:
    """Runs :func:`attack` in a child process, and waits until its connections are all open
    (the child alone takes a second or two to start), or only until it started if not
    ``wait_for_all``; on exit waits for the child (killed by its pid if late) and fills the
    dict with what the attackers saw."""
    seen: dict[str, int] = {}
    spawn = multiprocessing.get_context("spawn")
    ready, results = spawn.Event(), spawn.Queue()
    child = spawn.Process(
        target=attack, args=(port, connections, seconds, payload, hold_s, ready, results)
    )
    child.start()
    try:
        if wait_for_all:
            assert ready.wait(60), "the attack did not start"
            time.sleep(0.5)  # for the server to take in the last ones
        else:
            time.sleep(3)
        yield seen
        seen.update(results.get(timeout=seconds + 60))
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join(10)


Req = tuple[str, str, dict[str, Any] | None]  # method, path, JSON body


def legitimate(
    base_url: str, requests: list[Req], headers: dict[str, str]
) -> list[tuple[int, str, float]]:
    """Sends each (method, path, json body), each on a new connection; returns (status or 0
    for a transport error, problem code or error name, seconds) per request."""
    answers = []
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=base_url, timeout=30, limits=no_reuse, headers=headers) as http:
        for method, path, body in requests:
            start = time.perf_counter()
            try:
                r = http.request(method, path, json=body)
            except httpx.TransportError as exc:
                answers.append((0, type(exc).__name__, time.perf_counter() - start))
                continue
            code = r.json().get("code", "") if r.headers["content-type"].endswith("json") else ""
            answers.append((r.status_code, str(code), time.perf_counter() - start))
            time.sleep(0.02)
    return answers


def raw(port: int, data: bytes, timeout_s: float = 30.0) -> bytes:
    """Sends ``data`` on a new connection and reads until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        return answer


def read_answer(s: socket.socket) -> bytes:
    """Reads one small answer of the in-process app (``ok``) or a problem, whole."""
    answer = b""
    while not answer.endswith((b"ok", b"}")) and (chunk := s.recv(4096)):
        answer += chunk
    return answer


def problem_of(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


# Against real `boxoffice serve` processes.


def legitimate_under_attack(
    srv: Any, api: Any, attackers: int, requests: int
) -> tuple[list[tuple[int, str, float]], dict[str, int]]:
    """``requests`` reads of a concert's stats (admin key), each on a new connection, while
    ``attackers`` slow bodies run; returns the answers and what the attackers saw."""
    stats: Req = ("GET", f"/v1/admin/concerts/{api.concert()['id']}/stats", None)
    with attacking(srv.port, attackers, seconds=8) as seen:
        answers = legitimate(srv.base_url, [stats] * requests, api.admin)
    print("legitimate:", Counter(a[:2] for a in answers), "attackers:", seen)
    return answers, seen


def test_slow_bodies_hold_no_processing_slot(start_server, api_for):
    """Three times as many slow bodies as processing slots, under the connection limit and with
    a long body timeout: a legitimate client is answered 200 every time, at once."""
    srv = start_server(max_concurrent_requests="4", request_body_timeout_s="120")
    answers, seen = legitimate_under_attack(srv, api_for(srv.base_url), 12, 20)
    assert [a[:2] for a in answers] == [(200, "")] * 20
    assert seen["held to the end"] >= 12  # the slow bodies were still there at the end


def test_slow_connections_beyond_the_connection_limit_keep_nobody_out(start_server, api_for):
    """Two and a half times the connection limit in slow bodies, reconnecting when closed: the
    connection waiting longest makes room (503 OVERLOADED problem), and a legitimate client,
    each request on a new connection, is answered 200 every time."""
    srv = start_server(
        max_connections="16", max_concurrent_requests="4", request_body_timeout_s="120"
    )
    api = api_for(srv.base_url)
    answers, seen = legitimate_under_attack(srv, api, 40, 30)
    assert [a[:2] for a in answers] == [(200, "")] * 30
    assert seen["answered 503"] > 0  # room was made, with a problem document
    assert api.http.get("/healthz").status_code == 200


def test_an_idle_partial_head_is_closed_after_the_header_timeout(start_server):
    srv = start_server(header_timeout_s="1")
    start = time.monotonic()
    status, headers, body = problem_of(raw(srv.port, PARTIAL_HEAD))
    print(f"closed after {time.monotonic() - start:.2f} s")
    assert status == 408
    assert headers["content-type"] == "application/problem+json"
    assert b'"code":"REQUEST_TIMEOUT"' in body
    assert raw(srv.port, b"") == b""  # a connection that says nothing is closed silently


@pytest.mark.parametrize("framing", list(BAD_FRAMING))
def test_bad_framing_gets_a_problem_document(server, framing):
    status, headers, body = problem_of(raw(server.port, BAD_FRAMING[framing]))
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert b'"code":"BAD_REQUEST"' in body


def test_descriptor_exhaustion_neither_floods_the_log_nor_stops_the_server(start_server):
    """A server limited to 256 descriptors, attacked by 400 connections sending partial heads
    and reconnecting: its log stays under 64 KiB, and it answers throughout and after."""
    srv = start_server(log_level="info")
    srv.stop()

    def limit_fds() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

    srv.preexec = limit_fds
    srv.start()
    before = srv.log.stat().st_size
    with attacking(srv.port, connections=400, seconds=6, payload=PARTIAL_HEAD) as seen:
        during = legitimate(srv.base_url, [("GET", "/healthz", None)] * 10, {})
        time.sleep(2)
        logged = srv.log.stat().st_size - before
    print("during:", Counter(a[:2] for a in during), "attackers:", seen, "logged:", logged)
    after = legitimate(srv.base_url, [("GET", "/healthz", None)] * 3, {})
    assert logged < LOG_BYTES_MAX, srv.log.read_text()[-4000:]
    assert [a[0] for a in after] == [200] * 3
    assert [a[0] for a in during] == [200] * 10
    assert seen["connections"] > 400  # connections were closed to make room, and came back


def test_a_line_repeated_in_a_loop_is_logged_a_few_times_per_interval():
    import logging

    from boxoffice_api.logs import RepeatFilter

    now = [0.0]
    log_filter = RepeatFilter(burst=5, interval_s=60, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, None)

    loop_line = "socket.accept() out of system resource\nsocket: <fd=7>"
    passed = [log_filter.filter(record(loop_line)) for _ in range(1000)]
    assert passed.count(True) == 5
    assert log_filter.filter(record("another message"))  # counted apart
    now[0] = 61.0
    later = record(loop_line)
    assert log_filter.filter(later)
    assert later.getMessage().endswith("(995 like it suppressed)")


# The edge protocol in-process, with an app that holds /hold requests until released.


class Held:
    """An ASGI app: ``/hold`` waits until :meth:`release`; ``/early`` answers without reading
    the request body (as a 413 on Content-Length does); everything else reads the body and
    answers at once."""

    def __init__(self) -> None:
        self.holding = 0
        self.released = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        while scope["path"] != "/early" and (await receive()).get("more_body"):
            pass
        if scope["path"] == "/hold":
            self.holding += 1
            while not self.released.is_set():
                await asyncio.sleep(0.01)
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    def release(self) -> None:
        self.released.set()


@contextlib.contextmanager
def edge_server(http: str, **limits: Any) -> Iterator[tuple[int, Any, Held]]:
    """A uvicorn server in a thread with the edge protocol over ``http``, serving :class:`Held`
    on a free port; yields (port, its ConnectionTable, the app)."""
    # Imported here, not by the attack's child process, which needs none of the server.
    from boxoffice_api.server import ConnectionTable, EdgeLimits, edge_protocol_class

    importlib.import_module(http)  # both parsers are dev dependencies: missing is a failure
    table = ConnectionTable(EdgeLimits(**({"backlog": 16, "header_timeout_s": 30} | limits)))
    app = Held()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, http=edge_protocol_class(http, table), lifespan="off", log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.01)
            yield port, table, app
        finally:
            app.release()
            server.should_exit = True
            thread.join(10)


def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


HOLD = b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n"
QUICK = b"GET /quick HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
HTTP_IMPLEMENTATIONS = ["h11", "httptools"]


@pytest.mark.parametrize("http", HTTP_IMPLEMENTATIONS)
def test_the_rest_of_a_body_answered_early_is_not_read_as_the_next_head(http):
    # The app answered before the body came (a 413 on Content-Length); the body still comes,
    # and over 16 KiB of it, then the next request on the same connection. That body is
    # skipped, not counted as a head too large (which answered the next request with a 400).
    body = b"x" * 70_000
    head = b"POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
    with (
        edge_server(http, max_connections=8) as (port, _, _),
        socket.create_connection(("127.0.0.1", port)) as s,
    ):
        s.settimeout(30)
        s.sendall(head)
        assert read_answer(s).startswith(b"HTTP/1.1 200")
        for start in range(0, len(body), 10_000):  # in several reads, like a real upload
            s.sendall(body[start : start + 10_000])
            time.sleep(0.01)
        s.sendall(b"GET /quick HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = read_answer(s)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok"), answer


@pytest.mark.parametrize("http", HTTP_IMPLEMENTATIONS)
def test_the_connection_waiting_longest_makes_room(http):
    with edge_server(http, max_connections=3) as (port, table, app):
        silent = socket.create_connection(("127.0.0.1", port))
        partial = socket.create_connection(("127.0.0.1", port))
        partial.sendall(PARTIAL_HEAD)
        busy = socket.create_connection(("127.0.0.1", port))
        busy.sendall(HOLD)
        wait_until(lambda: app.holding == 1 and len(table.waiting) == 2)
        assert raw(port, QUICK).endswith(b"ok")  # the silent one, waiting longest, made room
        assert silent.recv(100) == b""
        later = socket.create_connection(("127.0.0.1", port))
        wait_until(lambda: len(table.waiting) == 2)
        assert raw(port, QUICK).endswith(b"ok")  # then the partial head, with a problem
        status, _, body = problem_of(read_answer(partial))
        assert (status, b'"code":"OVERLOADED"' in body) == (503, True)
        assert list(table.waiting) and later.fileno() != -1  # the later one is still open
        app.release()
        assert read_answer(busy).endswith(b"ok")  # a busy connection is never closed for room
        assert table.evicted == 2
        for s in (silent, partial, busy, later):
            s.close()


@pytest.mark.parametrize("http", HTTP_IMPLEMENTATIONS)
def test_when_every_connection_is_busy_a_newcomer_gets_a_503_problem(http):
    with edge_server(http, max_connections=2) as (port, table, app):
        busy = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        for s in busy:
            s.sendall(HOLD)
        wait_until(lambda: app.holding == 2)
        status, headers, body = problem_of(raw(port, b""))
        assert status == 503
        assert headers["content-type"] == "application/problem+json"
        assert headers["retry-after"] == "1"
        assert b'"code":"OVERLOADED"' in body
        app.release()
        assert all(read_answer(s).endswith(b"ok") for s in busy)
        assert table.refused == 1
        for s in busy:
            s.close()


@pytest.mark.parametrize("http", HTTP_IMPLEMENTATIONS)
def test_the_header_timeout_covers_fresh_and_kept_alive_connections(http):
    with edge_server(http, max_connections=10, header_timeout_s=0.5) as (port, table, _):
        assert raw(port, b"") == b""
        assert problem_of(raw(port, PARTIAL_HEAD))[0] == 408
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"GET /quick HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_answer(s).endswith(b"ok")
            s.sendall(PARTIAL_HEAD)  # a second request's head that never ends
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        assert problem_of(answer)[0] == 408
        assert table.header_timeouts == 3
        assert table.open == 0


@pytest.mark.parametrize("http", HTTP_IMPLEMENTATIONS)
@pytest.mark.parametrize("framing", list(BAD_FRAMING))
def test_bad_framing_is_a_problem_with_either_parser(http, framing):
    with edge_server(http, max_connections=10) as (port, _, _):
        status, headers, body = problem_of(raw(port, BAD_FRAMING[framing]))
        assert (status, headers["content-type"]) == (400, "application/problem+json")
        assert b'"code":"BAD_REQUEST"' in body


# The measurement (not a test): the attack with the real defaults.


def _percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if values else 0.0


def measure(seconds: float) -> None:
    import tempfile
    from pathlib import Path

    from conftest import Api, Server, server_env

    with tempfile.TemporaryDirectory() as tmp:
        env = server_env(log_level="warning")
        env.pop("BOXOFFICE_PASSWORD_HASH_PROFILE")  # the real argon2id profile
        srv = Server(db=Path(tmp) / "store.db", log=Path(tmp) / "server.log", env=env).start()
        try:
            api = Api(srv.base_url)
            stats: Req = ("GET", f"/v1/admin/concerts/{api.concert()['id']}/stats", None)
            api.close()
            for attackers in (0, 1100, 2 * 4096):

                def signup() -> Req:
                    email = f"fan-{uuid.uuid4().hex[:12]}@example.com"
                    return ("POST", "/v1/users", {"email": email, "password": uuid.uuid4().hex})

                answers: list[tuple[int, str, float]] = []
                kinds: list[str] = []
                attack: contextlib.AbstractContextManager[dict[str, int]] = (
                    # Attackers that hear nothing for 12 s (the server's timeouts are 10 s)
                    # reconnect; the legitimate client starts with the flood.
                    attacking(srv.port, attackers, seconds, hold_s=12, wait_for_all=False)
                    if attackers
                    else contextlib.nullcontext({})
                )
                with attack as seen:
                    end = time.monotonic() + seconds * 0.6
                    while time.monotonic() < end:  # a sign-up, then three reads, and again
                        batch = [signup() if i % 4 == 0 else stats for i in range(20)]
                        answers += legitimate(srv.base_url, batch, api.admin)
                        kinds += ["sign-up" if r[0] == "POST" else "read" for r in batch]
                for kind in ("read", "sign-up"):
                    mine = [a for a, k in zip(answers, kinds, strict=True) if k == kind]
                    ms = sorted(a[2] * 1000 for a in mine)
                    statuses = Counter(f"{a[0]} {a[1]}".strip() for a in mine)
                    print(
                        f"attackers {attackers:>5}, {kind:>7}s: {len(mine)}, {dict(statuses)}, "
                        f"p50 {_percentile(ms, 50):.1f} ms, p99 {_percentile(ms, 99):.1f} ms, "
                        f"max {ms[-1]:.1f} ms",
                        flush=True,
                    )
                print(f"attackers {attackers:>5}: the attack saw {seen}", flush=True)
        finally:
            srv.stop()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0)
    measure(parser.parse_args().seconds)
