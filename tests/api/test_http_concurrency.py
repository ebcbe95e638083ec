"""Concurrency over HTTP against a real ``boxoffice serve`` process.

Every burst is sent at once: one keep-alive connection per request is opened first, then all
requests are released together (asyncio + httpx.AsyncClient), so the server really sees them
interleaved. What is checked is what users see: one seat held by one reservation, one payment
debited once, charges that add up, a queue that never admits more than its capacity.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx

Call = tuple[str, str, dict[str, Any]]
PASSWORD = "lantern-velvet-4817"  # passes the sign-up strength rule


# One SSL context for all clients: building one per client is the slow part of httpx.Client().
_SSL = ssl.create_default_context()


async def _at_once(base_url: str, calls: Sequence[Call]) -> list[httpx.Response]:
    # One client (one connection) per request: a single pooled AsyncClient with hundreds of
    # connections is slow on the client side and would serialize the burst.
    clients = [httpx.AsyncClient(base_url=base_url, timeout=60, verify=_SSL) for _ in calls]
    try:
        # Open the connections first, so the burst itself is all requests in flight at once.
        warm = await asyncio.gather(*(c.get("/healthz") for c in clients))
        assert all(r.status_code == 200 for r in warm)
        go = asyncio.Event()

        async def one(client: httpx.AsyncClient, call: Call) -> httpx.Response:
            method, url, kwargs = call
            await go.wait()
            return await client.request(method, url, **kwargs)

        tasks = [asyncio.create_task(one(c, call)) for c, call in zip(clients, calls, strict=True)]
        await asyncio.sleep(0)  # every task is parked at the gate
        go.set()
        return list(await asyncio.gather(*tasks))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def at_once(server: Any, calls: Sequence[Call]) -> list[httpx.Response]:
    """Sends ``calls`` (method, path, httpx kwargs) concurrently; answers in call order."""
    return asyncio.run(_at_once(server.base_url, calls))


def new_users(server: Any, n: int) -> list[dict[str, str]]:
    """Signs up and logs in ``n`` users concurrently; their Authorization headers."""
    emails = [f"burst-{uuid.uuid4().hex}@example.com" for _ in range(n)]
    creds = [{"json": {"email": e, "password": PASSWORD}} for e in emails]
    signed = at_once(server, [("POST", "/v1/users", c) for c in creds])
    assert all(r.status_code == 201 for r in signed), [r.text for r in signed][:3]
    logged = at_once(server, [("POST", "/v1/auth/token", c) for c in creds])
    assert all(r.status_code == 200 for r in logged), [r.text for r in logged][:3]
    return [{"Authorization": f"Bearer {r.json()['access_token']}"} for r in logged]


def active_fans(server: Any, concert_id: int, n: int) -> list[dict[str, str]]:
    """``n`` new users, each with an ACTIVE queue token (the capacity must allow it)."""
    users = new_users(server, n)
    joined = at_once(
        server, [("POST", f"/v1/concerts/{concert_id}/queue", {"headers": u}) for u in users]
    )
    assert all(r.status_code == 201 and r.json()["status"] == "ACTIVE" for r in joined), [
        r.text for r in joined if r.json().get("status") != "ACTIVE"
    ][:3]
    return [
        u | {"X-Queue-Token": r.json()["queue_token"]} for u, r in zip(users, joined, strict=True)
    ]


def seat_list(api: Any, fan: dict[str, str], schedule_id: int) -> dict[int, str]:
    r = api.http.get(f"/v1/schedules/{schedule_id}/seats", headers=fan)
    assert r.status_code == 200, r.text
    return {s["id"]: s["status"] for s in r.json()["items"]}


def stats(api: Any, concert_id: int) -> dict[str, int]:
    r = api.http.get(f"/v1/admin/concerts/{concert_id}/stats", headers=api.admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


def codes(responses: Sequence[httpx.Response]) -> Counter[tuple[int, str | None]]:
    return Counter(
        (r.status_code, r.json().get("code") if r.status_code >= 400 else None) for r in responses
    )


# --- (1) 200 fans, one seat ----------------------------------------------------------------


def test_200_fans_holding_the_same_seat_at_once_exactly_one_gets_it(server, api):
    concert = api.concert(queue_capacity=250)
    schedule_id = concert["schedules"][0]["id"]
    fans = active_fans(server, concert["id"], 200)
    seat = min(seat_list(api, fans[0], schedule_id))

    body = {"schedule_id": schedule_id, "seat_ids": [seat]}
    results = at_once(
        server, [("POST", "/v1/reservations", {"json": body, "headers": f}) for f in fans]
    )

    assert codes(results) == {(201, None): 1, (409, "SEAT_UNAVAILABLE"): 199}
    winner = next(i for i, r in enumerate(results) if r.status_code == 201)
    held = results[winner].json()
    assert held["status"] == "PENDING" and held["seats"] == [seat]
    # Any fan looking at the seat map sees it HELD, and every other seat still free.
    loser = fans[(winner + 1) % len(fans)]
    seats = seat_list(api, loser, schedule_id)
    assert seats[seat] == "HELD"
    assert all(status == "AVAILABLE" for sid, status in seats.items() if sid != seat)
    # It is held by the winner's reservation and by nobody else's.
    mine = api.http.get(f"/v1/reservations/{held['id']}", headers=fans[winner]).json()
    assert mine["status"] == "PENDING" and mine["seats"] == [seat]
    lists = at_once(server, [("GET", "/v1/me/reservations", {"headers": f}) for f in fans])
    assert sum(len(r.json()["items"]) for r in lists) == 1
    s = stats(api, concert["id"])
    assert (s["seats_held"], s["seats_available"], s["reservations_pending"]) == (1, 9, 1)


def test_200_fans_holding_overlapping_pairs_never_share_a_seat(server, api):
    concert = api.concert(queue_capacity=250)
    schedule_id = concert["schedules"][0]["id"]
    fans = active_fans(server, concert["id"], 200)
    seat_ids = sorted(seat_list(api, fans[0], schedule_id))
    rng = random.Random(7)
    pairs = [rng.sample(seat_ids, 2) for _ in fans]

    results = at_once(
        server,
        [
            (
                "POST",
                "/v1/reservations",
                {"json": {"schedule_id": schedule_id, "seat_ids": p}, "headers": f},
            )
            for p, f in zip(pairs, fans, strict=True)
        ],
    )

    won = [r.json() for r in results if r.status_code == 201]
    assert won, "nobody got a hold"
    assert set(codes(results)) <= {(201, None), (409, "SEAT_UNAVAILABLE")}
    held_seats = [seat for r in won for seat in r["seats"]]
    assert len(held_seats) == len(set(held_seats)), "a seat is held by two reservations"
    seats = seat_list(api, fans[0], schedule_id)
    assert {sid for sid, st in seats.items() if st == "HELD"} == set(held_seats)
    # No free seat pair was left unheld while its requester was refused (all or nothing):
    # every refused pair overlaps some winner's seats.
    for pair, r in zip(pairs, results, strict=True):
        if r.status_code == 409:
            assert set(pair) & set(held_seats), (pair, r.text)
    s = stats(api, concert["id"])
    assert s["seats_held"] == len(held_seats) and s["reservations_pending"] == len(won)


# --- (2) one reservation, many payments ------------------------------------------------------


def _payment_race(
    server, api, keys: list[str | None]
) -> tuple[list[httpx.Response], dict[str, Any]]:
    concert = api.concert()
    schedule_id = concert["schedules"][0]["id"]
    (fan,) = active_fans(server, concert["id"], 1)
    held = api.http.post(
        "/v1/reservations", json={"schedule_id": schedule_id, "quantity": 2}, headers=fan
    )
    assert held.status_code == 201, held.text
    reservation = held.json()
    assert api.charge(fan, 1_000_000).status_code == 201
    calls = [
        (
            "POST",
            "/v1/payments",
            {
                "json": {"reservation_id": reservation["id"]},
                "headers": fan | ({"Idempotency-Key": key} if key else {}),
            },
        )
        for key in keys
    ]
    results = at_once(server, calls)
    paid = [r for r in results if r.status_code == 201]
    assert paid, [r.text for r in results][:3]
    payment = paid[0].json()
    assert payment["reservation_id"] == reservation["id"] and payment["amount"] == 200_000

    # Debited once, recorded once, sold once.
    balance = api.http.get("/v1/me/balance", headers=fan).json()["balance"]
    assert balance == 800_000 == payment["balance"]
    history = api.http.get("/v1/me/balance/history", headers=fan).json()["items"]
    assert [(e["kind"], e["amount"]) for e in history] == [
        ("CHARGE", 1_000_000),
        ("PAYMENT", 200_000),
    ]
    after = api.http.get(f"/v1/reservations/{reservation['id']}", headers=fan).json()
    assert after["status"] == "CONFIRMED" and after["payment_id"] == payment["id"]
    s = stats(api, concert["id"])
    assert (s["payments"], s["revenue"], s["seats_sold"], s["reservations_confirmed"]) == (
        1,
        200_000,
        2,
        1,
    )
    return results, payment


# After the payment the queue token is EXPIRED (COMPLETED), so a later payment attempt with it
# may be refused by the gate (403 QUEUE_TOKEN_EXPIRED: "an EXPIRED token never passes the
# gate") or by the reservation (409 RESERVATION_NOT_PENDING); both tell the user "already
# done" and neither pays again.
ALREADY_PAID = {(409, "RESERVATION_NOT_PENDING"), (403, "QUEUE_TOKEN_EXPIRED")}


def test_50_concurrent_payments_without_a_key_pay_once(server, api):
    results, _ = _payment_race(server, api, [None] * 50)
    seen = codes(results)
    assert seen[(201, None)] == 1, seen
    assert set(seen) - {(201, None)} <= ALREADY_PAID, seen


def test_50_concurrent_payments_with_distinct_keys_pay_once(server, api):
    results, _ = _payment_race(server, api, [f"pay-{i}" for i in range(50)])
    seen = codes(results)
    assert seen[(201, None)] == 1, seen
    assert set(seen) - {(201, None)} <= ALREADY_PAID, seen


def test_50_concurrent_payments_with_one_key_all_get_the_first_result(server, api):
    results, payment = _payment_race(server, api, ["one-key"] * 50)
    assert [r.status_code for r in results] == [201] * 50, codes(results)
    assert all(r.json() == payment for r in results)


# --- (3) charges -----------------------------------------------------------------------------


def test_concurrent_charges_from_many_clients_sum_exactly(server, api):
    users = new_users(server, 40)
    rng = random.Random(3)
    plan = [(u, rng.randint(1, 500_000)) for u in users for _ in range(5)]
    rng.shuffle(plan)
    results = at_once(
        server,
        [
            ("POST", "/v1/me/balance/charges", {"json": {"amount": a}, "headers": u})
            for u, a in plan
        ],
    )
    assert [r.status_code for r in results] == [201] * len(plan), codes(results)

    for user in users:
        amounts = [a for u, a in plan if u is user]
        balance = api.http.get("/v1/me/balance", headers=user).json()["balance"]
        assert balance == sum(amounts)
        history = api.http.get("/v1/me/balance/history", headers=user).json()["items"]
        assert sorted(e["amount"] for e in history) == sorted(amounts)
        assert all(e["kind"] == "CHARGE" for e in history)
        # balance_after runs through the entries in order, ending at the balance.
        running = 0
        for e in history:
            running += e["amount"]
            assert e["balance_after"] == running, history
        assert running == balance


def test_100_concurrent_charges_of_one_user_sum_exactly(server, api):
    (user,) = new_users(server, 1)
    amounts = [1_000 * (i + 1) for i in range(100)]
    results = at_once(
        server,
        [
            ("POST", "/v1/me/balance/charges", {"json": {"amount": a}, "headers": user})
            for a in amounts
        ],
    )
    assert [r.status_code for r in results] == [201] * 100, codes(results)
    total = sum(amounts)
    assert api.http.get("/v1/me/balance", headers=user).json()["balance"] == total
    # Each answer's new balance is a distinct step of the running sum of the history.
    history = api.http.get("/v1/me/balance/history", headers=user).json()["items"]
    assert len(history) == 100
    by_id = {e["id"]: e for e in history}
    for r in results:
        entry = by_id[r.json()["id"]]
        assert (entry["amount"], entry["balance_after"]) == (
            r.json()["amount"],
            r.json()["balance"],
        )
    assert len({r.json()["balance"] for r in results}) == 100
    assert max(r.json()["balance"] for r in results) == total


def test_concurrent_charges_with_one_idempotency_key_charge_once(server, api):
    (user,) = new_users(server, 1)
    headers = user | {"Idempotency-Key": "charge-once"}
    results = at_once(
        server,
        [("POST", "/v1/me/balance/charges", {"json": {"amount": 70_000}, "headers": headers})] * 30,
    )
    assert [r.status_code for r in results] == [201] * 30, codes(results)
    assert len({r.text for r in results}) == 1
    assert api.http.get("/v1/me/balance", headers=user).json()["balance"] == 70_000
    assert len(api.http.get("/v1/me/balance/history", headers=user).json()["items"]) == 1


def test_concurrent_charges_stop_exactly_at_the_balance_limit(server, api):
    (user,) = new_users(server, 1)
    big = 10_000_000  # the per-charge limit
    results = at_once(
        server,
        [("POST", "/v1/me/balance/charges", {"json": {"amount": big}, "headers": user})] * 15,
    )
    seen = codes(results)
    ok = seen[(201, None)]
    assert ok >= 1 and set(seen) <= {(201, None), (409, "BALANCE_LIMIT_EXCEEDED")}, seen
    balance = api.http.get("/v1/me/balance", headers=user).json()["balance"]
    assert balance == ok * big
    assert sorted(r.json()["balance"] for r in results if r.status_code == 201) == [
        big * (i + 1) for i in range(ok)
    ]
    if ok < 15:  # refusals only because the wallet was full: one more still does not fit
        again = api.charge(user, big)
        assert again.status_code == 409 and again.json()["code"] == "BALANCE_LIMIT_EXCEEDED"


# --- (4) the admission queue under a burst ---------------------------------------------------


def test_a_join_burst_beyond_capacity_admits_capacity_and_queues_the_rest_in_order(server, api):
    capacity, n = 20, 120
    concert = api.concert(queue_capacity=capacity)
    cid = concert["id"]
    users = new_users(server, n)
    stats_call = ("GET", f"/v1/admin/concerts/{cid}/stats", {"headers": api.admin})
    calls: list[Call] = [("POST", f"/v1/concerts/{cid}/queue", {"headers": u}) for u in users]
    # Operator reads interleaved with the joins: none may ever see more than capacity ACTIVE.
    mixed = [c for pair in zip(calls, [stats_call] * n, strict=True) for c in pair]
    results = at_once(server, mixed)
    joins, samples = results[0::2], results[1::2]
    assert all(r.status_code == 201 for r in joins), codes(joins)
    assert all(r.status_code == 200 for r in samples)
    assert max(r.json()["queue_active"] for r in samples) <= capacity

    joined = [r.json() for r in joins]
    active = [j for j in joined if j["status"] == "ACTIVE"]
    waiting = [j for j in joined if j["status"] == "WAITING"]
    assert len(active) == capacity and len(waiting) == n - capacity
    assert sorted(j["position"] for j in waiting) == list(range(n - capacity))
    assert len({j["token_id"] for j in joined}) == n
    s = stats(api, cid)
    assert (s["queue_active"], s["queue_waiting"], s["queue_joined_total"]) == (
        capacity,
        n - capacity,
        n,
    )

    # Five ACTIVE fans leave at once: the first five WAITING fans (positions 0..4) are admitted
    # and everybody else moves up five places.
    tokens = [u | {"X-Queue-Token": j["queue_token"]} for u, j in zip(users, joined, strict=True)]
    leavers = [t for t, j in zip(tokens, joined, strict=True) if j["status"] == "ACTIVE"][:5]
    left = at_once(
        server, [("DELETE", f"/v1/concerts/{cid}/queue", {"headers": t}) for t in leavers]
    )
    assert all(r.status_code == 200 and r.json()["status"] == "EXPIRED" for r in left)
    polls = at_once(server, [("GET", f"/v1/concerts/{cid}/queue", {"headers": t}) for t in tokens])
    now = {r.json()["token_id"]: r.json() for r in polls}
    assert sum(1 for p in now.values() if p["status"] == "ACTIVE") == capacity
    for j in waiting:
        after = now[j["token_id"]]
        if j["position"] < 5:
            assert after["status"] == "ACTIVE", (j, after)
        else:
            assert (after["status"], after["position"]) == ("WAITING", j["position"] - 5)
    s = stats(api, cid)
    assert (s["queue_active"], s["queue_waiting"]) == (capacity, n - capacity - 5)


def test_one_user_joining_20_times_at_once_gets_one_place(server, api):
    concert = api.concert(queue_capacity=1)
    cid = concert["id"]
    first, user = new_users(server, 2)
    assert api.join(first, cid)["status"] == "ACTIVE"
    results = at_once(server, [("POST", f"/v1/concerts/{cid}/queue", {"headers": user})] * 20)
    assert sorted(r.status_code for r in results) == [200] * 19 + [201], codes(results)
    assert len({r.json()["token_id"] for r in results}) == 1
    assert {(r.json()["status"], r.json()["position"]) for r in results} == {("WAITING", 0)}
    s = stats(api, cid)
    assert (s["queue_joined_total"], s["queue_waiting"], s["queue_active"]) == (2, 1, 1)


def test_leaves_polls_and_new_joins_at_once_keep_capacity_and_join_order(server, api):
    capacity = 10
    cid = api.concert(queue_capacity=capacity)["id"]
    users = new_users(server, 50)
    old, late = users[:40], users[40:]
    joined = [api.join(u, cid) for u in old]  # one by one: positions follow this order
    tokens = [u | {"X-Queue-Token": j["queue_token"]} for u, j in zip(old, joined, strict=True)]
    assert [j["status"] for j in joined] == ["ACTIVE"] * capacity + ["WAITING"] * 30

    # At once: every ACTIVE fan leaves, every WAITING fan polls, ten late fans join, and the
    # operator looks at the stats.
    stats_call: Call = ("GET", f"/v1/admin/concerts/{cid}/stats", {"headers": api.admin})
    calls: list[Call] = [
        ("DELETE", f"/v1/concerts/{cid}/queue", {"headers": t}) for t in tokens[:10]
    ]
    calls += [("GET", f"/v1/concerts/{cid}/queue", {"headers": t}) for t in tokens[10:]]
    calls += [("POST", f"/v1/concerts/{cid}/queue", {"headers": u}) for u in late]
    calls += [stats_call] * 20
    results = at_once(server, calls)
    assert all(r.status_code in (200, 201) for r in results), codes(results)
    samples = results[50:]
    assert max(r.json()["queue_active"] for r in samples) <= capacity
    # The late fans came after thirty waiting fans: none of them may skip the line.
    assert all(r.json()["status"] == "WAITING" for r in results[40:50])

    tokens += [
        u | {"X-Queue-Token": r.json()["queue_token"]}
        for u, r in zip(late, results[40:50], strict=True)
    ]
    polls = at_once(server, [("GET", f"/v1/concerts/{cid}/queue", {"headers": t}) for t in tokens])
    status = [p.json()["status"] for p in polls]
    assert status == ["EXPIRED"] * 10 + ["ACTIVE"] * 10 + ["WAITING"] * 30
    # The old waiters keep their order at the head of the line, the late fans queue behind.
    assert [p.json()["position"] for p in polls[20:40]] == list(range(20))
    assert sorted(p.json()["position"] for p in polls[40:]) == list(range(20, 30))
    s = stats(api, cid)
    assert (s["queue_active"], s["queue_waiting"]) == (capacity, 30)
