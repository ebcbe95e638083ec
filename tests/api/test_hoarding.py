"""Per-user limits against hoarding (docs/reliability.md), over HTTP against real servers.

On the demo concert one account used to hold a whole 2,400-seat schedule in 0.9 s, hold after
hold of ``max_seats_per_reservation`` seats. Now a concert created without saying otherwise
caps each user's held + sold seats at 2 x ``max_seats_per_reservation`` (409
``SEAT_LIMIT_PER_USER``, nothing held), and each server counts hold attempts per user per
concert (429 ``HOLD_RATE_LIMITED`` with Retry-After past ``BOXOFFICE_HOLDS_PER_MINUTE``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from problems import problem

from boxoffice_api.errors import ApiError
from boxoffice_api.rate_limits import HoldRateLimiter

Api = Any  # conftest's client: type(api) of the ``api`` fixture


@pytest.fixture
def client_for(api: Api) -> Iterator[Callable[[Any], Api]]:
    """``client_for(server)``: the conftest's client for a server the test started."""
    made: list[Api] = []

    def make(server: Any) -> Api:
        made.append(type(api)(server.base_url))
        return made[-1]

    yield make
    for client in made:
        client.close()


def hold(api: Api, fan: dict[str, str], schedule_id: int, **what: Any) -> httpx.Response:
    r: httpx.Response = api.http.post(
        "/v1/reservations", json={"schedule_id": schedule_id} | what, headers=fan
    )
    return r


def seat_ids(api: Api, fan: dict[str, str], schedule_id: int, status: str) -> list[int]:
    r = api.http.get(f"/v1/schedules/{schedule_id}/seats", params={"status": status}, headers=fan)
    assert r.status_code == 200, r.text
    return [int(s["id"]) for s in r.json()["items"]]


def held_seats(api: Api, fan: dict[str, str]) -> int:
    """Seats of the user's PENDING and CONFIRMED reservations."""
    r = api.http.get("/v1/me/reservations", headers=fan)
    assert r.status_code == 200, r.text
    return sum(
        len(x["seats"]) for x in r.json()["items"] if x["status"] in ("PENDING", "CONFIRMED")
    )


def test_a_concert_created_without_a_cap_gets_two_reservations_worth(api):
    assert api.concert()["sale"]["max_seats_per_user"] == 8  # 2 x the default 4
    assert api.concert(max_seats_per_reservation=6)["sale"]["max_seats_per_user"] == 12
    assert api.concert(max_seats_per_user=3)["sale"]["max_seats_per_user"] == 3
    assert api.concert(max_seats_per_user=None)["sale"]["max_seats_per_user"] is None


def test_one_account_holding_again_and_again_stops_at_the_cap_with_nothing_held(api):
    concert = api.concert()  # 10 seats, at most 4 per reservation: the defaults otherwise
    schedule_id = concert["schedules"][0]["id"]
    fan = api.active(api.user(), concert["id"])
    answers = [hold(api, fan, schedule_id, quantity=4) for _ in range(3)]
    assert [r.status_code for r in answers[:2]] == [201, 201]
    refused = problem(answers[2], 409, "SEAT_LIMIT_PER_USER")
    assert "at most 8 seats per user" in refused["detail"]
    # All or nothing: 2 seats are still free, and a hold of them is refused whole.
    free = seat_ids(api, fan, schedule_id, "AVAILABLE")
    assert len(free) == 2
    problem(hold(api, fan, schedule_id, seat_ids=free), 409, "SEAT_LIMIT_PER_USER")
    problem(hold(api, fan, schedule_id, seat_ids=free[:1]), 409, "SEAT_LIMIT_PER_USER")
    assert seat_ids(api, fan, schedule_id, "AVAILABLE") == free
    assert held_seats(api, fan) == 8
    stats = api.http.get(f"/v1/admin/concerts/{concert['id']}/stats", headers=api.admin).json()
    assert stats["seats_held"] == 8, stats
    # Another fan takes what is left.
    other = api.active(api.user(), concert["id"])
    assert hold(api, other, schedule_id, seat_ids=free).status_code == 201


def test_the_cap_counts_sold_seats_and_a_cancel_gives_room_back(api):
    concert = api.concert()
    schedule_id = concert["schedules"][0]["id"]
    fan = api.active(api.user(), concert["id"])
    first = hold(api, fan, schedule_id, quantity=4)
    assert first.status_code == 201, first.text
    assert api.charge(fan, 1_000_000).status_code == 201
    paid = api.http.post("/v1/payments", json={"reservation_id": first.json()["id"]}, headers=fan)
    assert paid.status_code == 201, paid.text
    # Paying ended the session: a new one, with 4 SOLD seats counted against the cap.
    fan = api.active({"Authorization": fan["Authorization"]}, concert["id"])
    second = hold(api, fan, schedule_id, quantity=4)
    assert second.status_code == 201, second.text
    problem(hold(api, fan, schedule_id, quantity=1), 409, "SEAT_LIMIT_PER_USER")
    assert held_seats(api, fan) == 8
    r = api.http.delete(f"/v1/reservations/{second.json()['id']}", headers=fan)
    assert r.status_code == 200, r.text
    assert hold(api, fan, schedule_id, quantity=4).status_code == 201


def test_an_explicit_null_cap_allows_what_the_default_refuses(api):
    auth = api.user()
    for sale, last in (({}, 409), ({"max_seats_per_user": None}, 201)):
        concert = api.concert(**sale)
        schedule_id = concert["schedules"][0]["id"]
        fan = api.active(auth, concert["id"])
        assert [hold(api, fan, schedule_id, quantity=4).status_code for _ in "ab"] == [201, 201]
        rest = seat_ids(api, fan, schedule_id, "AVAILABLE")  # one in each row: not adjacent
        assert hold(api, fan, schedule_id, seat_ids=rest).status_code == last, sale


def test_the_hold_rate_limit_answers_429_with_retry_after_and_spares_others(
    start_server, client_for
):
    api = client_for(start_server(holds_per_minute="3"))
    concert, elsewhere = api.concert(), api.concert()
    schedule_id = concert["schedules"][0]["id"]
    auth = api.user()
    fan = api.active(auth, concert["id"])
    # Three attempts, refused or not, use the minute up.
    taken = hold(api, fan, schedule_id, quantity=1)
    assert taken.status_code == 201, taken.text
    seat = taken.json()["seats"][0]
    problem(hold(api, fan, schedule_id, seat_ids=[seat]), 409, "SEAT_UNAVAILABLE")
    problem(hold(api, fan, schedule_id, seat_ids=[10**12]), 404, "SEAT_NOT_FOUND")
    free = seat_ids(api, fan, schedule_id, "AVAILABLE")
    refused = hold(api, fan, schedule_id, seat_ids=free[:1])
    body = problem(refused, 429, "HOLD_RATE_LIMITED")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60, refused.headers
    assert 0 < body["retry_after_s"] <= 60, body
    assert seat_ids(api, fan, schedule_id, "AVAILABLE") == free  # nothing was held
    problem(hold(api, fan, schedule_id, quantity=1), 429, "HOLD_RATE_LIMITED")
    # Another user on the same concert, and the same user on another concert, still hold.
    other = api.active(api.user(), concert["id"])
    assert hold(api, other, schedule_id, seat_ids=free[:1]).status_code == 201
    there = api.active(auth, elsewhere["id"])
    assert hold(api, there, elsewhere["schedules"][0]["id"], quantity=1).status_code == 201


def test_the_demo_attack_now_gets_eight_seats(start_server, client_for):
    """The hoarding attack, scaled down: one account of the demo concert holds 4 seats again
    and again. It gets 8, then SEAT_LIMIT_PER_USER, then (past 20 attempts a minute) 429."""
    api = client_for(start_server(demo="1"))
    auth = api.user()
    concert = api.http.get("/v1/concerts", headers=auth).json()["items"][0]
    assert concert["sale"]["max_seats_per_user"] == 8, concert["sale"]
    schedule_id = concert["schedules"][0]["id"]
    fan = api.active(auth, concert["id"])
    codes = []
    for _ in range(22):
        r = hold(api, fan, schedule_id, quantity=4)
        codes.append("OK" if r.status_code == 201 else r.json()["code"])
    assert codes == ["OK"] * 2 + ["SEAT_LIMIT_PER_USER"] * 18 + ["HOLD_RATE_LIMITED"] * 2
    assert held_seats(api, fan) == 8
    stats = api.http.get(f"/v1/admin/concerts/{concert['id']}/stats", headers=api.admin).json()
    assert stats["seats_held"] == 8, stats


# --- the limiter itself, on a clock the test moves ----------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_the_hold_limiter_is_a_moving_window_that_does_not_count_refusals():
    clock = Clock()
    limiter = HoldRateLimiter(3, clock=clock)
    for step_s in (0.0, 10.0, 10.0):
        clock.now_s += step_s
        limiter.hit(1, 1)
    clock.now_s += 30.0  # 50 s after the first attempt
    for _ in range(5):  # refused, and not counted
        with pytest.raises(ApiError) as refused:
            limiter.hit(1, 1)
        assert (refused.value.status, refused.value.code) == (429, "HOLD_RATE_LIMITED")
        assert refused.value.retry_after_s == pytest.approx(10.0)
    limiter.hit(1, 2)  # another concert
    limiter.hit(2, 1)  # another user
    clock.now_s += 10.0  # the first attempt left the window: one more
    limiter.hit(1, 1)
    with pytest.raises(ApiError):
        limiter.hit(1, 1)
    for limit in (0, None):
        off = HoldRateLimiter(limit, clock=clock)
        for _ in range(100):
            off.hit(1, 1)


def test_the_hold_limiter_keeps_bounded_memory():
    clock = Clock()
    limiter = HoldRateLimiter(20, keys_max=100, clock=clock)
    for user_id in range(1000):
        limiter.hit(user_id, 1)
    assert len(limiter.storage) == 100  # the least recently hit were dropped
    clock.now_s += 61.0
    for user_id in range(5000, 5050):  # each new key drops up to two whose window ended
        limiter.hit(user_id, 1)
    assert len(limiter.storage) == 50
    for _ in range(19):
        limiter.hit(5000, 1)
    with pytest.raises(ApiError):
        limiter.hit(5000, 1)
    clock.now_s += 61.0
    limiter.hit(5000, 1)
