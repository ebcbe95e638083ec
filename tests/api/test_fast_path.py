"""The fast path (api/boxoffice_api/fast_path.py) answers exactly as FastAPI does.

Two apps on two stores receive the same requests in lockstep, with the clock and the token ids
fixed: one serves the hot endpoints by the fast path, the other through FastAPI's routing and
dependencies (a dependency override sends every request there). Status, headers and body bytes
must be identical for every request: successes, engine errors, authentication errors,
validation errors, bodies that are not JSON.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from boxoffice_api import testing
from boxoffice_api.app import HOT_ENDPOINTS, create_app
from boxoffice_api.deps import get_service
from boxoffice_api.schemas import QueueStatus
from boxoffice_api.settings import Settings

ADMIN_KEY = "fast-path-admin-key-3b7e91c0d4a85f26e1b9c07d3a64f58e"
PASSWORD = "lantern-velvet-4817"  # passes the sign-up strength rule
JWT_SECRET = "fast-path-test-secret-6c0e4b1f9a7d2e83b5c4a0f1d9e8b7a6"


@asynccontextmanager
async def client(settings: Settings, fast: bool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    if not fast:
        app.dependency_overrides[get_service] = get_service  # the same service, via FastAPI
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        http = httpx.AsyncClient(transport=transport, base_url="http://t")
        yield await stack.enter_async_context(http)


def settings(tmp_path: Path, name: str) -> Settings:
    """A test app's settings, its store ``name`` in ``tmp_path``."""
    return Settings(
        db=tmp_path / f"{name}.db",
        admin_key=ADMIN_KEY,
        jwt_secret=JWT_SECRET,
        password_hash_profile="cheapest",
        log_level="warning",
        access_log=False,
    )


class Lockstep:
    """Sends each request to both apps and asserts identical answers."""

    def __init__(self, fast: httpx.AsyncClient, slow: httpx.AsyncClient) -> None:
        self.fast, self.slow = fast, slow
        self.compared = 0

    async def __call__(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        a = await self.fast.request(method, url, **kwargs)
        b = await self.slow.request(method, url, **kwargs)
        assert (a.status_code, a.headers.raw, a.content) == (
            b.status_code,
            b.headers.raw,
            b.content,
        ), (method, url, kwargs)
        self.compared += 1
        return a


@pytest.fixture
def fixed_clock_and_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wall clock stands still (PyJWT checks `iat` against the real one: the present) and
    token ids count up: both apps see the same."""
    now = float(int(time.time()))
    monkeypatch.setattr(time, "time", lambda: now)  # a Service made after this reads it as now
    counter = itertools.count(0)  # each request goes to both apps, one after the other
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(counter) // 2))


@pytest.fixture
def handled_by_fastapi(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests FastAPI's routing handed to a route (APIRoute.handle)."""
    paths: list[str] = []
    handle = APIRoute.handle

    async def counted(self: APIRoute, scope: Any, receive: Any, send: Any) -> None:
        paths.append(scope["path"])
        await handle(self, scope, receive, send)

    monkeypatch.setattr(APIRoute, "handle", counted)
    return paths


def test_the_hot_endpoints_answer_byte_for_byte_as_fastapi_does(
    tmp_path: Path,
    fixed_clock_and_ids: None,
    handled_by_fastapi: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def run() -> tuple[int, int]:
        async with (
            client(settings(tmp_path, "fast"), True) as fast,
            client(settings(tmp_path, "slow"), False) as slow,
        ):
            send = Lockstep(fast, slow)
            gated = await drive(send)
            # A bug in a handler: the same 500 problem from both (then raised to the server).
            with monkeypatch.context() as m:
                m.setattr(QueueStatus, "of", _broken)
                answer = await send("GET", gated.pop("queue"), headers=gated)
            assert answer.status_code == 500
            return send.compared, len(handled_by_fastapi)

    compared, by_fastapi = asyncio.run(run())
    assert {e.__name__ for e in HOT_ENDPOINTS} == {"poll", "join", "hold", "pay", "charge", "seats"}
    # Every request to the slow app went through FastAPI's routing; of the fast app's, only
    # the set-up (admin, sign-up, log-in: 5) and what the fast path handed over (invalid
    # parameters or bodies, another media type: 13).
    handed_over = by_fastapi - compared
    assert compared > 50 and handed_over == 5 + 13, (compared, by_fastapi)


def _broken(*_: object) -> None:
    raise RuntimeError("a bug")


async def drive(send: Lockstep) -> dict[str, str]:
    """Sends every kind of request; returns an ACTIVE user's headers and queue path."""
    admin = {"X-Admin-Key": ADMIN_KEY}
    body = testing.concert_body(
        sections=[testing.section(price=1000)], queue_capacity=1, max_seats_per_reservation=2
    )
    concert = (await send("POST", "/v1/admin/concerts", json=body, headers=admin)).json()
    cid, schedule = concert["id"], concert["schedules"][0]["id"]
    users = []
    for n in range(2):
        credentials = {"email": f"fan{n}@example.com", "password": PASSWORD}
        await send("POST", "/v1/users", json=credentials)
        token = (await send("POST", "/v1/auth/token", json=credentials)).json()["access_token"]
        users.append({"Authorization": f"Bearer {token}"})
    first, second = users
    queue = f"/v1/concerts/{cid}/queue"
    # Join: 201, then 200 (the live token), a WAITING one; errors.
    joined = [(await send("POST", queue, headers=u)).json() for u in users]
    assert all("queue_token" in j for j in joined), joined
    tokens = [j["queue_token"] for j in joined]
    await send("POST", queue, headers=first)
    await send("POST", queue)
    await send("POST", queue, headers={"Authorization": "Bearer forged"})
    await send("POST", queue, headers={"Authorization": "Basic abc"})
    await send("POST", "/v1/concerts/999/queue", headers=first)
    await send("POST", "/v1/concerts/0/queue", headers=first)
    await send("POST", "/v1/concerts/x/queue", headers=first)
    gated = first | {"X-Queue-Token": tokens[0]}
    waiting = second | {"X-Queue-Token": tokens[1]}
    # Poll: ACTIVE, WAITING; missing, another user's, another concert's queue token.
    for headers in (gated, waiting, first, first | {"X-Queue-Token": tokens[1]}):
        await send("GET", queue, headers=headers)
    await send("GET", "/v1/concerts/999/queue", headers=gated)
    await send("GET", queue + "?extra=1", headers=gated)
    # Seats: pages, filters, bad query values; the gate refuses the WAITING token.
    seats = f"/v1/schedules/{schedule}/seats"
    for query in ("", "?limit=3", "?limit=3&cursor=3", "?status=AVAILABLE", "?limit=0"):
        await send("GET", seats + query, headers=gated)
    await send("GET", seats + "?status=GONE", headers=gated)
    await send("GET", seats, headers=waiting)
    await send("GET", "/v1/schedules/999/seats", headers=gated)
    # Charge: ok, idempotent retry, reused key, invalid amount, bad bodies.
    charges = "/v1/me/balance/charges"
    keyed = first | {"Idempotency-Key": "charge-1"}
    await send("POST", charges, json={"amount": 500}, headers=keyed)
    await send("POST", charges, json={"amount": 500}, headers=keyed)
    await send("POST", charges, json={"amount": 700}, headers=keyed)
    await send("POST", charges, json={"amount": 0}, headers=first)
    await send("POST", charges, json={"amount": "5"}, headers=first)
    await send("POST", charges, json={"amount": 5, "extra": 1}, headers=first)
    await send("POST", charges, content=b"{not json", headers=first)
    await send("POST", charges, content=b"", headers=first)
    await send("POST", charges, json={"amount": 5}, headers=first | {"Idempotency-Key": "k" * 999})
    await send(
        "POST", charges, content=b'{"amount": 5}', headers=first | {"Content-Type": "text/plain"}
    )
    await send("POST", charges, json={"amount": 5})
    # Hold: ok; taken seat; too many; unknown seat; the gate; quantity.
    holds = "/v1/reservations"
    held = await send("POST", holds, json={"schedule_id": schedule, "seat_ids": [1]}, headers=gated)
    await send("POST", holds, json={"schedule_id": schedule, "seat_ids": [1]}, headers=gated)
    await send("POST", holds, json={"schedule_id": schedule, "seat_ids": [2, 3, 4]}, headers=gated)
    await send("POST", holds, json={"schedule_id": schedule, "seat_ids": [99_999]}, headers=gated)
    await send("POST", holds, json={"schedule_id": schedule, "seat_ids": [5]}, headers=waiting)
    await send("POST", holds, json={"schedule_id": schedule, "quantity": 1}, headers=gated)
    await send("POST", holds, json={"schedule_id": schedule}, headers=gated)
    await send("POST", holds, json=[1, 2], headers=gated)
    # Pay: too little balance, then enough; another user's reservation; a retry.
    payments = "/v1/payments"
    reservation = held.json()["id"]
    await send("POST", payments, json={"reservation_id": reservation}, headers=gated)
    await send("POST", charges, json={"amount": 5000}, headers=first)
    paid = gated | {"Idempotency-Key": "pay-1"}
    await send("POST", payments, json={"reservation_id": reservation}, headers=paid)
    await send("POST", payments, json={"reservation_id": reservation}, headers=paid)
    await send("POST", payments, json={"reservation_id": reservation}, headers=waiting)
    await send("POST", payments, json={"reservation_id": -1}, headers=gated)
    # The token ended with the payment: the gate now refuses it; the next user is admitted.
    await send("GET", queue, headers=gated)
    await send("GET", queue, headers=waiting)
    # The metrics label the fast path's answers by route template, like FastAPI's.
    metrics = (await send.fast.get("/metrics", headers=admin)).text
    for line in (
        'method="POST",route="/v1/reservations",status="201"',
        'method="GET",route="/v1/concerts/{concert_id}/queue",status="200"',
        'method="POST",route="/v1/payments",status="409"',
    ):
        assert line in metrics, line
    return waiting | {"queue": queue}


# Request bodies where Python's json.loads (FastAPI's parser) and pydantic's JSON parser (the
# fast path's) could read differently, with the fast path's expected share of them: the ones
# its parser refuses are FastAPI's to serve, the rest it must read exactly as FastAPI does.
CHARGE_BODIES: list[tuple[bytes, str]] = [
    (b'{"amount": 5}', "fast"),
    (b'{"amount": 1, "amount": 7}', "fast"),  # a repeated key: the last one counts
    (b'{"amount": 5}  \n', "fast"),
    (b'\xef\xbb\xbf{"amount": 5}', "fastapi"),  # a UTF-8 byte order mark: json.loads skips it
    ('{"amount": 5}'.encode("utf-16"), "fastapi"),  # json.loads detects UTF-16
    (b'{"amount": 5.0}', "fastapi"),
    (b'{"amount": NaN}', "fastapi"),
    (b'{"amount": true}', "fastapi"),
    (b'{"amount": 99999999999999999999999}', "fastapi"),
    (b'{"amount": 5} x', "fastapi"),
]
HOLD_BODIES: list[tuple[bytes, str]] = [
    (b'"grade": "\\u0041"', "fast"),
    (b'"grade": "\\ud83d\\ude00"', "fast"),  # a surrogate pair: one character
    (b'"grade": "\\ud800"', "fastapi"),  # a lone surrogate
    (b'"grade": "\xed\xa0\x80"', "fastapi"),  # the same, as bytes that are not UTF-8
    (b'"seat_ids": null, "quantity": 1', "fast"),
]


def test_bodies_json_parsers_read_differently_are_answered_as_fastapi_does(
    tmp_path: Path, fixed_clock_and_ids: None, handled_by_fastapi: list[str]
) -> None:
    json_type = {"Content-Type": "application/json"}

    async def run() -> None:
        async with (
            client(settings(tmp_path, "fast"), True) as fast,
            client(settings(tmp_path, "slow"), False) as slow,
        ):
            send = Lockstep(fast, slow)
            admin = {"X-Admin-Key": ADMIN_KEY}
            body = testing.concert_body(sections=[testing.section(price=1000)])
            concert = (await send("POST", "/v1/admin/concerts", json=body, headers=admin)).json()
            credentials = {"email": "fan@example.com", "password": PASSWORD}
            await send("POST", "/v1/users", json=credentials)
            token = (await send("POST", "/v1/auth/token", json=credentials)).json()["access_token"]
            user = {"Authorization": f"Bearer {token}"} | json_type
            joined = await send("POST", f"/v1/concerts/{concert['id']}/queue", headers=user)
            gated = user | {"X-Queue-Token": joined.json()["queue_token"]}
            requests: list[tuple[str, dict[str, str], bytes, str]] = [
                ("/v1/me/balance/charges", user, content, who) for content, who in CHARGE_BODIES
            ]
            schedule = concert["schedules"][0]["id"]
            for seat, (field, who) in enumerate(HOLD_BODIES, start=1):
                content = b'{"schedule_id": %d, "seat_ids": [%d], %s}' % (schedule, seat, field)
                requests.append(("/v1/reservations", gated, content, who))
            for path, headers, content, who in requests:
                before = len(handled_by_fastapi)
                await send("POST", path, content=content, headers=headers)
                # The slow app's request always goes through FastAPI's routing; the fast
                # app's only when handed over.
                assert len(handled_by_fastapi) - before == (2 if who == "fastapi" else 1), content

    asyncio.run(run())
