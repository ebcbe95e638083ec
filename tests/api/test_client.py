"""``boxoffice.client`` against a real ``boxoffice serve`` process: a fan's and an operator's
whole flow (blocking and asyncio), errors raised as the ``boxoffice.errors`` class of their
code, idempotency keys kept across retries, and waiting in the queue as the server says."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from typing import Any

import httpx
import pytest

import boxoffice.errors as bo_errors
from boxoffice.client import (
    AdminKeyInvalid,
    AsyncClient,
    Client,
    EmailTaken,
    InvalidCredentials,
    Overloaded,
    Page,
    Reservation,
    Seat,
)
from boxoffice.client import operations as client_operations
from boxoffice_api import testing
from boxoffice_api.app import create_app
from boxoffice_api.openapi import document
from boxoffice_api.settings import Settings

PASSWORD = "quartz-meadow-5920"  # passes the sign-up strength rule
_emails = itertools.count(1)


def _email() -> str:
    return f"client{next(_emails)}-{os.getpid()}@example.com"


def _fan(url: str, **options: Any) -> Client:
    """A new user, signed up and logged in."""
    fan = Client(url, **options)
    email = _email()
    fan.sign_up(email, PASSWORD)
    fan.log_in(email, PASSWORD)
    return fan


def _concert(server: Any, **sale: Any) -> int:
    with Client(server.base_url, admin_key=server.env["BOXOFFICE_ADMIN_KEY"]) as operator:
        return operator.create_concert(testing.concert_body(**sale)).id


def test_a_fan_and_an_operator_over_the_whole_flow(server: Any) -> None:
    url = server.base_url
    admin_key = server.env["BOXOFFICE_ADMIN_KEY"]
    operator = Client(url, admin_key=admin_key)
    health = operator.get_health()
    assert health.status == "ok" and health.password_hash_profile == "cheapest"
    concert = operator.create_concert(
        testing.concert_body(title="Client Tour", queue_capacity=5, max_seats_per_reservation=4)
    )
    assert concert.title == "Client Tour" and concert.sale.queue_capacity == 5
    assert concert.schedules[0].seats_total == 10

    with _fan(url) as fan:
        assert fan.get_me().email.startswith("client")
        assert concert.id in {c.id for c in fan.search_concerts("Client Tour")}
        assert fan.get_concert(concert.id).schedules == concert.schedules
        charge = fan.charge_balance(300_000)
        assert charge.amount == charge.balance == 300_000

        active = fan.wait_until_active(concert.id)
        assert active.status == "ACTIVE" and active.queue_token
        (schedule,) = fan.list_schedules(concert.id)
        seats = fan.list_seats(schedule.id, status="AVAILABLE", limit=4)
        assert isinstance(seats, Page) and len(seats.items) == 4 and seats.next_cursor
        assert all(isinstance(s, Seat) and s.status == "AVAILABLE" for s in seats.items)

        # Select two seats, unselect one, cancel; then two best-available seats, paid.
        first = fan.hold_seats(schedule.id, [s.id for s in seats.items[:2]])
        assert first.status == "PENDING" and first.expires_at > first.created_at
        released = fan.release_seat(first.id, seats.items[1].id)
        assert released.seats == [seats.items[0].id]
        assert fan.cancel_reservation(first.id).status == "CANCELED"
        held = fan.hold_seats(schedule.id, quantity=2)
        assert len(held.seats) == 2 and held.amount == 200_000
        payment = fan.pay(held.id)
        assert payment.reservation_id == held.id and payment.balance == 100_000
        assert fan.get_reservation(held.id).status == "CONFIRMED"
        assert [r.id for r in fan.list_my_reservations()] == [first.id, held.id]
        assert fan.poll_queue(concert.id).ended_reason == "COMPLETED"

        refunded = fan.refund_reservation(held.id)
        assert refunded.status == "REFUNDED"
        assert fan.get_balance().balance == 300_000
        kinds = [e.kind for e in fan.get_balance_history()]
        assert kinds == ["CHARGE", "PAYMENT", "REFUND"]

    stats = operator.get_concert_stats(concert.id)
    assert stats.payments == 1 and stats.reservations_refunded == 1
    second = operator.create_concert(testing.concert_body(title="Second Night"))
    newest = operator.list_concerts(limit=2)
    assert [c.id for c in newest] == [second.id, concert.id]  # newest first
    assert newest[0].title == "Second Night"
    assert newest[1].sale.queue_capacity == concert.sale.queue_capacity
    assert stats.seats_available == 10
    events = operator.list_events(after=0, limit=1000)
    assert any(e.type == "PaymentSucceeded" and e.reservation_id == held.id for e in events.items)
    operator.close()


def test_the_async_client_buys_seats(server: Any) -> None:
    url = server.base_url
    concert_id = _concert(server)

    async def buy() -> tuple[Reservation, int]:
        async with AsyncClient(url) as fan:
            email = _email()
            await fan.sign_up(email, PASSWORD)
            await fan.log_in(email, PASSWORD)
            await fan.charge_balance(200_000)
            await fan.wait_until_active(concert_id)
            (schedule,) = await fan.list_schedules(concert_id)
            held = await fan.hold_seats(schedule.id, quantity=1)
            await fan.pay(held.id)
            return await fan.get_reservation(held.id), (await fan.get_balance()).balance

    reservation, balance = asyncio.run(buy())
    assert reservation.status == "CONFIRMED" and balance == 200_000 - reservation.amount


def test_problems_are_raised_as_the_boxoffice_error_of_their_code(server: Any) -> None:
    url = server.base_url
    concert_id = _concert(server, queue_capacity=1)
    with _fan(url) as first, _fan(url) as second:
        first.wait_until_active(concert_id)
        (schedule,) = first.list_schedules(concert_id)
        held = first.hold_seats(schedule.id, quantity=1)

        waiting = second.join_queue(concert_id)
        assert waiting.status == "WAITING" and waiting.position == 0
        with pytest.raises(bo_errors.QueueNotActive) as not_active:
            second.list_schedules(concert_id)
        assert not_active.value.code == "QUEUE_NOT_ACTIVE" and not_active.value.position == 0
        assert not_active.value.retry_after_s is not None

        first.leave_queue(concert_id)  # admits the second fan
        second.wait_until_active(concert_id)
        with pytest.raises(bo_errors.SeatUnavailable) as taken:
            second.hold_seats(schedule.id, held.seats)
        assert taken.value.code == "SEAT_UNAVAILABLE" and taken.value.http_status == 409
        assert taken.value.seat_id == held.seats[0]
        assert isinstance(taken.value, bo_errors.Conflict)

        with pytest.raises(bo_errors.ConcertNotFound) as unknown:
            second.get_concert(10**9)
        assert isinstance(unknown.value, LookupError) and unknown.value.code == "CONCERT_NOT_FOUND"
        with pytest.raises(bo_errors.InvalidAmount):
            second.charge_balance(0)
        with pytest.raises(EmailTaken) as taken_email:
            second.sign_up(second.get_me().email.upper(), PASSWORD)
        assert taken_email.value.code == "EMAIL_TAKEN"
        assert isinstance(taken_email.value, bo_errors.BoxOfficeError)

    with pytest.raises(InvalidCredentials) as wrong:
        Client(url).log_in(_email(), "not-the-password")
    assert wrong.value.code == "INVALID_CREDENTIALS" and wrong.value.http_status == 401
    with pytest.raises(AdminKeyInvalid):
        Client(url, admin_key=server.env["BOXOFFICE_ADMIN_KEY"] + "x").get_concert_stats(concert_id)


class _DropsAnswers(httpx.BaseTransport):
    """Sends every request to the server, but loses the answer of the first ``drops``
    requests to ``path`` (as if the connection broke after the server had acted)."""

    def __init__(self, path: str, drops: int = 1) -> None:
        self.inner = httpx.HTTPTransport()
        self.path, self.drops = path, drops
        self.seen: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path != self.path:
            return response
        self.seen.append(request)
        response.read()
        if len(self.seen) <= self.drops:
            raise httpx.RemoteProtocolError("connection closed", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_charge_retried_after_a_lost_answer_is_applied_once(server: Any) -> None:
    transport = _DropsAnswers("/v1/me/balance/charges")
    with _fan(server.base_url, transport=transport, sleep=lambda s: None) as fan:
        charge = fan.charge_balance(50_000)
        assert charge.balance == 50_000
        keys = {r.headers["Idempotency-Key"] for r in transport.seen}
        assert len(transport.seen) == 2 and len(keys) == 1  # one key for both tries
        assert fan.get_balance().balance == 50_000  # applied once
        assert [e.amount for e in fan.get_balance_history()] == [50_000]

        # The next logical charge has a key of its own.
        fan.charge_balance(1_000)
        assert fan.get_balance().balance == 51_000
        assert len({r.headers["Idempotency-Key"] for r in transport.seen}) == 2


def test_a_request_unsafe_to_repeat_is_not_retried(server: Any) -> None:
    transport = _DropsAnswers("/v1/users")
    with (
        Client(server.base_url, transport=transport, sleep=lambda s: None) as fan,
        pytest.raises(httpx.TransportError),
    ):
        fan.sign_up(_email(), PASSWORD)
    assert len(transport.seen) == 1  # a sign-up has no idempotency key: sent once


def test_an_overloaded_answer_is_retried_after_its_retry_after() -> None:
    answers = [
        httpx.Response(
            503,
            headers={"Retry-After": "1"},
            json={"code": "OVERLOADED", "detail": "busy", "retry_after_s": 1.0},
        ),
        httpx.Response(201, json={"id": 7, "email": "a@b.c", "created_at": "2027-01-01T00:00:00Z"}),
    ]
    slept: list[float] = []
    transport = httpx.MockTransport(lambda request: answers.pop(0))
    with Client("http://boxoffice.test", transport=transport, sleep=slept.append) as fan:
        assert fan.sign_up("a@b.c", PASSWORD).id == 7  # nothing was done: safe to send again
    assert len(slept) == 1 and 1.0 <= slept[0] <= 1.2  # Retry-After, with jitter

    always_busy = httpx.MockTransport(
        lambda request: httpx.Response(503, json={"code": "OVERLOADED", "detail": "busy"})
    )
    with (
        Client(
            "http://boxoffice.test", transport=always_busy, sleep=slept.append, attempts=2
        ) as fan,
        pytest.raises(Overloaded),
    ):
        fan.sign_up("a@b.c", PASSWORD)


def test_waiting_in_the_queue_polls_after_poll_after_s(server: Any) -> None:
    url = server.base_url
    concert_id = _concert(server, queue_capacity=1, poll_interval_s=2.5)
    with _fan(url) as first:
        first.wait_until_active(concert_id)
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            if len(slept) == 2:
                first.leave_queue(concert_id)  # a slot frees while the second fan waits

        polls: list[str] = []
        with _fan(
            url, sleep=sleep, observe=lambda route, s, status, code: polls.append(route)
        ) as second:
            polls.clear()
            active = second.wait_until_active(concert_id)
        assert active.status == "ACTIVE"
        assert slept == [2.5, 2.5]  # the server's poll_after_s, before each poll
        queue = "/v1/concerts/{concert_id}/queue"
        assert polls == [f"POST {queue}", f"GET {queue}", f"GET {queue}"]


def test_wait_until_active_gives_up_after_max_wait_s(server: Any) -> None:
    url = server.base_url
    concert_id = _concert(server, queue_capacity=1, poll_interval_s=5.0)
    with _fan(url) as first, _fan(url, sleep=lambda s: None) as second:
        first.wait_until_active(concert_id)
        with pytest.raises(TimeoutError):
            second.wait_until_active(concert_id, max_wait_s=1.0)  # the next poll is too late


def test_a_hold_expires_through_the_test_clock(start_server: Any) -> None:
    server = start_server(test_clock="true")
    url = server.base_url
    operator = Client(url, admin_key=server.env["BOXOFFICE_ADMIN_KEY"])
    assert operator.get_health().test_clock is True
    concert_id = _concert(server, hold_ttl_s=300)
    with _fan(url) as fan:
        fan.charge_balance(200_000)
        fan.wait_until_active(concert_id)
        (schedule,) = fan.list_schedules(concert_id)
        held = fan.hold_seats(schedule.id, quantity=1)
        before = operator.read_test_clock()
        after = operator.advance_test_clock(301)
        assert after.offset_s == before.offset_s + 301 and after.now > held.expires_at
        assert fan.get_reservation(held.id).status == "EXPIRED"
        with pytest.raises(bo_errors.HoldExpired):
            fan.pay(held.id)
    operator.close()


def test_the_operation_ids_are_the_client_methods() -> None:
    unique: set[str] = set()
    # The production document, and a test-mode server's (the test clock's routes).
    for doc in (document(), create_app(Settings(test_clock=True)).openapi()):
        ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
        assert len(ids) == len(set(ids))
        unique |= set(ids)
    assert {"hold_seats", "pay", "join_queue", "charge_balance", "sign_up"} <= unique
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", i) for i in unique), sorted(unique)
    methods = {op.__name__ for op in client_operations.OPERATIONS}
    # Every operation but the Prometheus text is a method; wait_until_active is a flow.
    assert unique - {"get_metrics"} == methods - {"wait_until_active"}
    for name in methods:
        assert callable(getattr(Client, name)) and callable(getattr(AsyncClient, name))
        assert getattr(Client, name).__doc__ == getattr(client_operations, name).__doc__


def test_every_code_of_the_docs_table_raises_a_class_with_its_status():
    """The client writes the HTTP layer's own codes as classes: each must carry the status the
    documented code table gives (the engine's come from the C++ table)."""
    import re
    from pathlib import Path

    from boxoffice.client.errors import problem_error

    docs = (Path(__file__).resolve().parents[2] / "docs" / "http-api.md").read_text()
    table = dict(re.findall(r"^\| `([A-Z_]+)` \| (\d{3}) \|", docs, re.M))
    assert {"EMAIL_TAKEN", "WEAK_PASSWORD", "SEAT_UNAVAILABLE", "OVERLOADED"} <= set(table)
    for code, status in table.items():
        error = problem_error(int(status), {"code": code, "detail": "x"}, {})
        assert (error.code, error.http_status) == (code, int(status)), code
