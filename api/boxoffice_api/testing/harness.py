"""Seeding helpers for tests against a boxoffice server, over plain HTTP (httpx).

:class:`Harness` wraps an ``httpx.Client`` whose base URL is the server and the server's admin
key; it creates what a test needs in one call each (a concert, a funded user, an ACTIVE queue
token) and moves the server's test clock. The pytest plugin's ``boxoffice_server`` (a real
process) and ``boxoffice_app`` (the app in this process) are harnesses::

    def test_a_hold(boxoffice_server):
        concert = boxoffice_server.concert(hold_ttl_s=300)
        user = boxoffice_server.funded_user()
        token = boxoffice_server.active_token(user, concert["id"])
        ...
        boxoffice_server.advance(301)  # the hold has expired

:meth:`Harness.fan` and :meth:`Harness.client` give typed :mod:`boxoffice.client` clients on the
same server instead of raw requests.

Everything here speaks the HTTP contract (docs/http-api.md) and nothing else, so a harness can
be pointed at any server, a cluster's workers included (:meth:`advance` needs a server in test
mode). An answer other than the expected status raises :class:`UnexpectedResponse`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import ServerProcess, concert_body

if TYPE_CHECKING:  # httpx is imported where a client is made: the plugin loads this module
    import httpx
    from fastapi import FastAPI

    from boxoffice.client import Client

__all__ = [
    "PASSWORD",
    "ActiveToken",
    "AppHarness",
    "ClusterHarness",
    "Harness",
    "ServerHarness",
    "UnexpectedResponse",
    "User",
]

PASSWORD = "lantern-velvet-4817"
"""The password of the harness's users: strong enough for the sign-up rule (zxcvbn)."""

FUNDS_DEFAULT = 1_000_000
"""What :meth:`Harness.funded_user` charges by default, won (a few seats at any price)."""

TEST_CLOCK_PATH = "/v1/admin/test-clock"
_emails = itertools.count(1)


class UnexpectedResponse(AssertionError):
    """The server answered another status than the step expects.

    Attributes:
        response: the ``httpx.Response`` (its problem document in ``response.json()``).
    """

    def __init__(self, step: str, expected: Sequence[int], response: httpx.Response) -> None:
        super().__init__(
            f"{step}: expected HTTP {'/'.join(map(str, expected))}, got "
            f"{response.status_code}: {response.text[:2000]}"
        )
        self.response = response


def expect(response: httpx.Response, step: str, *statuses: int) -> Any:
    """The JSON body of ``response`` when its status is one of ``statuses``.

    Raises:
        UnexpectedResponse: any other status.
    """
    if response.status_code not in statuses:
        raise UnexpectedResponse(step, statuses, response)
    return response.json()


@dataclass(frozen=True)
class User:
    """A signed-up, logged-in user: ``id``, ``email``, ``password`` and the access JWT."""

    id: int
    email: str
    password: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization: Bearer <access token>``."""
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass(frozen=True)
class ActiveToken:
    """An ACTIVE queue token of ``user`` for ``concert_id``, and the join's answer."""

    user: User
    concert_id: int
    queue_token: str
    joined: Mapping[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        """The user's ``Authorization`` and this ``X-Queue-Token``: what the gated requests
        (seats, holds, payments) need."""
        return self.user.headers | {"X-Queue-Token": self.queue_token}


class Harness:
    """Seeding helpers for the server behind ``http``.

    Args:
        http: a client whose base URL is the server (closed by :meth:`close`).
        admin_key: the server's ``X-Admin-Key``.
    """

    def __init__(self, http: httpx.Client, admin_key: str) -> None:
        self.http = http
        self.admin_key = admin_key

    @property
    def admin_headers(self) -> dict[str, str]:
        """``X-Admin-Key: <admin key>``."""
        return {"X-Admin-Key": self.admin_key}

    def close(self) -> None:
        """Closes the HTTP client."""
        self.http.close()

    def concert(
        self, *, sections: Sequence[Mapping[str, Any]] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Creates a concert; returns its JSON (``id``, ``schedules`` with their ``id``, ...).

        Args:
            sections: the seat map of each schedule (default one section A of 2 x 5 VIP seats
                at 100,000 won: :func:`boxoffice_api.testing.section`).
            fields: ``title``, ``artist``, ``venue``, ``starts_at`` (RFC 3339 strings, one
                schedule each), and the rest as sale settings, e.g. ``hold_ttl_s=300,
                queue_capacity=10`` (see :func:`boxoffice_api.testing.concert_body`).
        """
        body = concert_body(sections=sections, **fields)
        r = self.http.post("/v1/admin/concerts", json=body, headers=self.admin_headers)
        created: dict[str, Any] = expect(r, "create a concert", 201)
        return created

    def user(self, email: str | None = None, password: str = PASSWORD) -> User:
        """Signs a new user up (a unique email unless given) and logs in."""
        email = email or f"fan{next(_emails)}-{os.getpid()}-{uuid.uuid4().hex[:8]}@example.com"
        credentials = {"email": email, "password": password}
        signed_up = expect(self.http.post("/v1/users", json=credentials), "sign up", 201)
        token = expect(self.http.post("/v1/auth/token", json=credentials), "log in", 200)
        return User(signed_up["id"], email, password, token["access_token"])

    def funded_user(self, amount: int = FUNDS_DEFAULT) -> User:
        """:meth:`user` with ``amount`` won charged to the wallet (if positive)."""
        user = self.user()
        if amount > 0:
            self.charge(user, amount)
        return user

    def client(self, *, operator: bool = False) -> Client:
        """A typed :class:`boxoffice.client.Client` on this server, over the harness's own
        HTTP connection (so it reaches an in-process app too); with ``operator`` it carries the
        admin key. It keeps its own tokens; closing it leaves the harness's connection open.
        Needs the client extra (``pip install 'boxoffice[client]'``)."""
        from boxoffice.client import Client

        return Client(admin_key=self.admin_key if operator else None, http=self.http)

    def fan(self, amount: int = FUNDS_DEFAULT) -> Client:
        """:meth:`client` of a new user, signed up and logged in (a unique email), with
        ``amount`` won charged to the wallet (if positive)."""
        client = self.client()
        email = f"fan{next(_emails)}-{os.getpid()}-{uuid.uuid4().hex[:8]}@example.com"
        client.sign_up(email, PASSWORD)
        client.log_in(email, PASSWORD)
        if amount > 0:
            client.charge_balance(amount)
        return client

    def charge(self, user: User, amount: int) -> int:
        """Charges ``amount`` won to ``user``'s wallet; returns the new balance."""
        r = self.http.post("/v1/me/balance/charges", json={"amount": amount}, headers=user.headers)
        balance: int = expect(r, "charge", 201)["balance"]
        return balance

    def active_token(self, user: User, concert_id: int) -> ActiveToken:
        """Joins ``concert_id``'s queue as ``user``; the token must be ACTIVE at once (the
        queue has room and the sale is open).

        Raises:
            UnexpectedResponse: the join failed, or the token is WAITING.
        """
        r = self.http.post(f"/v1/concerts/{concert_id}/queue", headers=user.headers)
        joined = expect(r, "join the queue", 200, 201)
        if joined["status"] != "ACTIVE":
            raise UnexpectedResponse("join the queue (status ACTIVE)", (r.status_code,), r)
        return ActiveToken(user, concert_id, joined["queue_token"], joined)

    def seats(
        self, token: ActiveToken, schedule_id: int, status: str | None = "AVAILABLE"
    ) -> list[dict[str, Any]]:
        """The seats of ``schedule_id`` (those with ``status``; None: all)."""
        params = {} if status is None else {"status": status}
        r = self.http.get(
            f"/v1/schedules/{schedule_id}/seats", params=params, headers=token.headers
        )
        items: list[dict[str, Any]] = expect(r, "list seats", 200)["items"]
        return items

    def clock(self) -> dict[str, Any]:
        """The server's test clock: ``now`` (RFC 3339) and ``offset_s`` ahead of the wall
        clock. Needs a server in test mode."""
        r = self.http.get(TEST_CLOCK_PATH, headers=self.admin_headers)
        clock: dict[str, Any] = expect(r, "read the test clock", 200)
        return clock

    def advance(self, seconds: float) -> dict[str, Any]:
        """Moves the server's test clock ``seconds`` forward; every deadline up to the new
        time has fired when this returns (a hold past its ``expires_at`` is EXPIRED). Returns
        the clock as :meth:`clock` does.

        Raises:
            UnexpectedResponse: 404 when the server is not in test mode; 422 for a negative
                step (the clock never goes back).
        """
        r = self.http.post(TEST_CLOCK_PATH, json={"seconds": seconds}, headers=self.admin_headers)
        clock: dict[str, Any] = expect(r, "advance the test clock", 200)
        return clock


class AppHarness(Harness):
    """A :class:`Harness` on the app in this process (the ``boxoffice_app`` fixture).

    Attributes:
        http: an ``httpx.Client`` on the app (see :func:`asgi_client`).
        app: the ASGI app.
    """

    def __init__(self, http: httpx.Client, admin_key: str, app: FastAPI) -> None:
        super().__init__(http, admin_key)
        self.app = app


@contextlib.contextmanager
def asgi_client(app: FastAPI, base_url: str = "http://boxoffice.test") -> Iterator[httpx.Client]:
    """A synchronous ``httpx.Client`` on ``app`` in this process, no socket: the app runs on
    an event loop in a thread of its own (anyio's blocking portal), with its lifespan (the
    store open) from entering to leaving, and each request goes through
    ``httpx.ASGITransport`` on that loop. The app's state lives on one loop, as in a server.
    """
    import anyio.from_thread
    import httpx

    asgi = httpx.ASGITransport(app=app)

    class PortalTransport(httpx.BaseTransport):
        def __init__(self, portal: anyio.from_thread.BlockingPortal) -> None:
            self._portal = portal

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            async def send() -> httpx.Response:
                response = await asgi.handle_async_request(request)
                content = await response.aread()
                return httpx.Response(
                    response.status_code, headers=response.headers, content=content, request=request
                )

            return self._portal.call(send)

    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
        httpx.Client(transport=PortalTransport(portal), base_url=base_url, timeout=30) as client,
    ):
        yield client


class ServerHarness(Harness):
    """A :class:`Harness` on a server process (the ``boxoffice_server`` fixture).

    Args:
        process: the started server.
        admin_key: its ``X-Admin-Key``.
    """

    def __init__(self, process: ServerProcess, admin_key: str) -> None:
        import httpx

        super().__init__(httpx.Client(base_url=process.url, timeout=30), admin_key)
        self.process = process

    @property
    def url(self) -> str:
        """The server's base URL, ``http://127.0.0.1:<port>``."""
        return self.process.url

    @property
    def pid(self) -> int | None:
        """The server's process id."""
        return self.process.pid

    @property
    def log_path(self) -> Path:
        """The file the server's output goes to."""
        return self.process.log

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the server's output."""
        return self.process.tail(lines)


class ClusterHarness(Harness):
    """A :class:`Harness` on a one-machine cluster started by ``boxoffice cluster up`` (the
    ``boxoffice_cluster`` fixture): its workers' shared URL and admin key. A cluster has no
    test clock (:meth:`advance` answers 404).

    Args:
        directory: the cluster's directory (``cluster.json``, the processes' logs).
        record: ``cluster.json``'s content.
    """

    def __init__(self, directory: Path, record: Mapping[str, Any]) -> None:
        import httpx

        super().__init__(httpx.Client(base_url=str(record["url"]), timeout=30), record["admin_key"])
        self.directory = directory
        self.record = record

    @property
    def url(self) -> str:
        """The workers' base URL, ``http://127.0.0.1:<port>``."""
        return str(self.record["url"])

    def pids(self) -> list[int]:
        """Every process of the cluster: nats-servers, replicas, workers."""
        record = self.record
        servers = [int(s["pid"]) for s in record["nats"]["servers"]]
        return servers + [int(c["pid"]) for c in [*record["replicas"], *record["workers"]]]
