"""Every user flow, end to end over HTTP against a real server: sign up and log in,
browse, the admission queue and its gate, dates and seats, holds, the wallet, payments,
idempotency keys, the operator's view, health and metrics.

Each test makes its own concert and users (the server is shared by the module).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from problems import problem

from boxoffice_api import testing

PASSWORD = "lantern-velvet-4817"  # passes the sign-up strength rule
WRONG_SECRET = "a-secret-that-is-not-the-servers-0123456789"


# --- helpers ----------------------------------------------------------------------------


def unique_email() -> str:
    return f"flow-{uuid.uuid4().hex[:12]}@example.com"


def section(
    name: str = "A", rows: int = 2, seats: int = 5, grade: str = "VIP", price: int = 100_000
) -> dict[str, Any]:
    return testing.section(name, rows, seats, grade, price)


def create_concert(
    api: Any,
    title: str = "Flow Concert",
    artist: str = "Tester",
    starts: tuple[str, ...] = ("2030-01-01T19:00:00Z",),
    sections: list[dict[str, Any]] | None = None,
    **sale: Any,
) -> dict[str, Any]:
    body = testing.concert_body(
        title=title, artist=artist, starts_at=starts, sections=sections or None, **sale
    )
    r = api.http.post("/v1/admin/concerts", json=body, headers=api.admin)
    assert r.status_code == 201, r.text
    return dict(r.json())


def join(api: Any, auth: dict[str, str], concert_id: int) -> tuple[dict[str, str], dict[str, Any]]:
    """Joins the queue; returns (auth + X-Queue-Token, the join answer)."""
    joined = api.join(auth, concert_id)
    return auth | {"X-Queue-Token": joined["queue_token"]}, joined


def poll(api: Any, headers: dict[str, str], concert_id: int) -> dict[str, Any]:
    r = api.http.get(f"/v1/concerts/{concert_id}/queue", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def seats(
    api: Any, headers: dict[str, str], schedule_id: int, **params: Any
) -> list[dict[str, Any]]:
    r = api.http.get(f"/v1/schedules/{schedule_id}/seats", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def seat_status(api: Any, headers: dict[str, str], schedule_id: int) -> dict[int, str]:
    return {s["id"]: s["status"] for s in seats(api, headers, schedule_id)}


def hold(api: Any, headers: dict[str, str], **body: Any) -> httpx.Response:
    r: httpx.Response = api.http.post("/v1/reservations", json=body, headers=headers)
    return r


def pay(api: Any, headers: dict[str, str], reservation_id: int, **extra: str) -> httpx.Response:
    r: httpx.Response = api.http.post(
        "/v1/payments", json={"reservation_id": reservation_id}, headers=headers | extra
    )
    return r


def balance(api: Any, auth: dict[str, str]) -> int:
    r = api.http.get("/v1/me/balance", headers=auth)
    assert r.status_code == 200, r.text
    return int(r.json()["balance"])


def history(api: Any, auth: dict[str, str]) -> list[dict[str, Any]]:
    r = api.http.get("/v1/me/balance/history", headers=auth)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def reservation(api: Any, auth: dict[str, str], reservation_id: int) -> dict[str, Any]:
    r = api.http.get(f"/v1/reservations/{reservation_id}", headers=auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


def stats(api: Any, concert_id: int) -> dict[str, Any]:
    r = api.http.get(f"/v1/admin/concerts/{concert_id}/stats", headers=api.admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


def rfc3339(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- 1. sign up and log in --------------------------------------------------------------


def test_sign_up_then_log_in_gives_a_working_access_token(api):
    email = unique_email()
    r = api.http.post("/v1/users", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["email"] == email and user["id"] >= 1
    assert PASSWORD not in r.text and "hash" not in r.text  # never the password nor its hash

    r = api.http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["token_type"] == "bearer" and token["expires_in"] > 0
    me = api.http.get("/v1/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json()["id"] == user["id"] and me.json()["email"] == email

    # Emails are matched case-insensitively at log-in.
    r = api.http.post("/v1/auth/token", json={"email": email.upper(), "password": PASSWORD})
    assert r.status_code == 200, r.text


def test_a_failed_login_is_401_and_never_a_token(api):
    email = unique_email()
    assert api.http.post("/v1/users", json={"email": email, "password": PASSWORD}).is_success
    wrong = api.http.post("/v1/auth/token", json={"email": email, "password": "not-my-password"})
    body = problem(wrong, 401, "INVALID_CREDENTIALS")
    assert "access_token" not in body and "eyJ" not in wrong.text
    assert wrong.headers["www-authenticate"].lower().startswith("bearer")

    unknown = api.http.post("/v1/auth/token", json={"email": unique_email(), "password": PASSWORD})
    body = problem(unknown, 401, "INVALID_CREDENTIALS")
    assert "access_token" not in body
    # The same answer for both: the response does not reveal which emails have accounts.
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_a_duplicate_email_is_409_and_keeps_the_first_account(api):
    email = unique_email()
    first = api.http.post("/v1/users", json={"email": email, "password": PASSWORD})
    assert first.status_code == 201, first.text
    again = api.http.post("/v1/users", json={"email": email, "password": "other-password"})
    problem(again, 409, "EMAIL_TAKEN")
    upper = api.http.post("/v1/users", json={"email": email.upper(), "password": "other-pass"})
    problem(upper, 409, "EMAIL_TAKEN")
    # The refused sign-ups changed nothing: the first password still logs in, the other not.
    ok = api.http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert ok.status_code == 200, ok.text
    bad = api.http.post("/v1/auth/token", json={"email": email, "password": "other-password"})
    problem(bad, 401, "INVALID_CREDENTIALS")


# --- 2. browse --------------------------------------------------------------------------


def test_browse_concerts_by_title_and_date_range(api):
    tag = uuid.uuid4().hex[:10]
    spring = create_concert(api, title=f"Spring {tag} Live", starts=("2031-04-10T19:00:00Z",))
    summer = create_concert(
        api,
        title="Summer Night",
        artist=f"The {tag.upper()} Band",
        starts=("2031-07-01T19:00:00Z", "2031-08-15T19:00:00Z"),
    )
    fan = api.user()

    def search(**params: str) -> list[int]:
        r = api.http.get("/v1/concerts", params={"q": tag} | params, headers=fan)
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    # q matches title or artist, case-insensitively.
    assert search() == [spring["id"], summer["id"]]
    assert search(q=f"spring {tag.upper()}") == [spring["id"]]
    # from/to keep concerts with a schedule in the range (bounds inclusive).
    assert search(**{"from": "2031-06-01T00:00:00Z"}) == [summer["id"]]
    assert search(to="2031-05-01T00:00:00Z") == [spring["id"]]
    assert search(**{"from": "2031-08-01T00:00:00Z", "to": "2031-08-31T00:00:00Z"}) == [
        summer["id"]
    ]
    assert search(**{"from": "2031-04-10T19:00:00Z", "to": "2031-04-10T19:00:00Z"}) == [
        spring["id"]
    ]
    assert search(**{"from": "2031-05-01T00:00:00Z", "to": "2031-06-01T00:00:00Z"}) == []
    # An offset is honoured: 21:00+02:00 is 19:00Z.
    assert search(**{"from": "2031-04-10T21:00:00+02:00", "to": "2031-04-10T21:00:00+02:00"}) == [
        spring["id"]
    ]

    one = api.http.get(f"/v1/concerts/{summer['id']}", headers=fan)
    assert one.status_code == 200, one.text
    concert = one.json()
    assert concert["title"] == "Summer Night" and len(concert["schedules"]) == 2
    assert [s["seats_available"] for s in concert["schedules"]] == [10, 10]
    assert concert["sale"]["queue_capacity"] == 200  # the default queue capacity

    problem(api.http.get("/v1/concerts/999999999", headers=fan), 404, "CONCERT_NOT_FOUND")


# --- 3-4. the admission queue -----------------------------------------------------------


def test_joining_with_room_is_active_and_joining_again_returns_the_same_token(api):
    concert = create_concert(api)
    fan = api.user()
    first = api.http.post(f"/v1/concerts/{concert['id']}/queue", headers=fan)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "ACTIVE" and first.json()["position"] is None
    assert rfc3339(first.json()["expires_at"]) > datetime.now(UTC)

    again = api.http.post(f"/v1/concerts/{concert['id']}/queue", headers=fan)
    assert again.status_code == 200, again.text
    assert again.json()["token_id"] == first.json()["token_id"]
    assert again.json()["status"] == "ACTIVE"
    s = stats(api, concert["id"])
    assert s["queue_joined_total"] == 1 and s["queue_active"] == 1


def test_a_full_queue_makes_users_wait_in_order_and_never_gives_a_second_place(api):
    concert = create_concert(api, queue_capacity=1)
    cid = concert["id"]
    _, first = join(api, api.user(), cid)
    assert first["status"] == "ACTIVE"

    second_user = api.user()
    second_headers, second = join(api, second_user, cid)
    assert second["status"] == "WAITING"
    assert second["position"] == 0 and second["eta_s"] > 0 and second["poll_after_s"] > 0
    assert second["expires_at"] is None

    third_headers, third = join(api, api.user(), cid)
    assert third["status"] == "WAITING" and third["position"] == 1
    assert third["eta_s"] >= second["eta_s"]

    # Asking again: the same token, 200, still first in line (not behind the third user).
    again = api.http.post(f"/v1/concerts/{cid}/queue", headers=second_user)
    assert again.status_code == 200, again.text
    assert again.json()["token_id"] == second["token_id"]
    assert again.json()["status"] == "WAITING" and again.json()["position"] == 0

    polled = poll(api, second_headers, cid)
    assert polled["status"] == "WAITING" and polled["position"] == 0
    assert polled["token_id"] == second["token_id"]
    assert poll(api, third_headers, cid)["position"] == 1
    s = stats(api, cid)
    assert (s["queue_active"], s["queue_waiting"], s["queue_joined_total"]) == (1, 2, 3)


def test_leaving_admits_the_next_waiting_user_in_join_order(api):
    cid = create_concert(api, queue_capacity=1)["id"]
    first, _ = join(api, api.user(), cid)
    waiting = [join(api, api.user(), cid)[0] for _ in range(3)]
    assert [poll(api, h, cid)["position"] for h in waiting] == [0, 1, 2]

    left = api.http.delete(f"/v1/concerts/{cid}/queue", headers=first)
    assert left.status_code == 200, left.text
    assert left.json()["status"] == "EXPIRED" and left.json()["ended_reason"] == "LEFT"
    assert poll(api, waiting[0], cid)["status"] == "ACTIVE"
    assert [poll(api, h, cid)["position"] for h in waiting[1:]] == [0, 1]

    # A waiting user who leaves gives up the place; the one behind moves up.
    assert api.http.delete(f"/v1/concerts/{cid}/queue", headers=waiting[1]).status_code == 200
    assert poll(api, waiting[2], cid)["position"] == 0
    # The active one leaves: the last one (not the one who left) is admitted.
    assert api.http.delete(f"/v1/concerts/{cid}/queue", headers=waiting[0]).status_code == 200
    assert poll(api, waiting[2], cid)["status"] == "ACTIVE"
    assert poll(api, waiting[1], cid)["status"] == "EXPIRED"


# --- 5. the gate ------------------------------------------------------------------------


def test_a_waiting_token_is_refused_with_its_position_and_retry_after(api):
    concert = create_concert(api, queue_capacity=1)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    owner = api.user()
    owner_first, _ = join(api, owner, cid)
    held = hold(api, owner_first, schedule_id=sid, quantity=1)
    assert held.status_code == 201, held.text
    other, _ = join(api, api.user(), cid)  # WAITING, position 0
    # The owner leaves (the other user is admitted) and joins again: now WAITING behind.
    assert api.http.delete(f"/v1/concerts/{cid}/queue", headers=owner_first).status_code == 200
    assert poll(api, other, cid)["status"] == "ACTIVE"
    owner_waiting, joined = join(api, owner, cid)
    assert joined["status"] == "WAITING" and joined["position"] == 0
    api.charge(owner, 100_000)

    refused = {
        "schedules": api.http.get(f"/v1/concerts/{cid}/schedules", headers=owner_waiting),
        "seats": api.http.get(f"/v1/schedules/{sid}/seats", headers=owner_waiting),
        "hold": hold(api, owner_waiting, schedule_id=sid, quantity=1),
        "pay": pay(api, owner_waiting, held.json()["id"]),
    }
    for name, r in refused.items():
        body = problem(r, 403, "QUEUE_NOT_ACTIVE")
        assert body["position"] == 0, name
        assert body["eta_s"] > 0, name
        assert int(r.headers["retry-after"]) >= 1, name
    # Nothing happened: the seat is still the owner's, not sold; no money moved.
    assert reservation(api, owner, held.json()["id"])["status"] == "PENDING"
    assert balance(api, owner) == 100_000


def test_an_expired_token_is_refused(api):
    concert = create_concert(api)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    fan = api.user()
    active, _ = join(api, fan, cid)
    held = hold(api, active, schedule_id=sid, quantity=1)
    assert held.status_code == 201, held.text
    api.charge(fan, 100_000)
    assert api.http.delete(f"/v1/concerts/{cid}/queue", headers=active).status_code == 200

    for r in (
        api.http.get(f"/v1/concerts/{cid}/schedules", headers=active),
        api.http.get(f"/v1/schedules/{sid}/seats", headers=active),
        hold(api, active, schedule_id=sid, quantity=1),
        pay(api, active, held.json()["id"]),
    ):
        problem(r, 403, "QUEUE_TOKEN_EXPIRED")
    assert poll(api, active, cid)["status"] == "EXPIRED"
    assert reservation(api, fan, held.json()["id"])["status"] == "PENDING"
    assert balance(api, fan) == 100_000


def _forgeries(token: str) -> dict[str, str]:
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    tampered = jwt.encode(claims | {"tid": claims["tid"] + 1}, WRONG_SECRET, "HS256")
    return {
        "tampered payload, original signature": ".".join(
            [header, tampered.split(".")[1], signature]
        ),
        "truncated signature": f"{header}.{payload}.{signature[:-6]}",
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "wrong secret": jwt.encode(claims, WRONG_SECRET, "HS256"),
        "garbage": "not-a-token",
    }


@pytest.mark.parametrize(
    "forgery",
    [
        "tampered payload, original signature",
        "truncated signature",
        "alg none",
        "wrong secret",
        "garbage",
    ],
)
def test_a_forged_queue_token_is_refused(api, forgery):
    concert = create_concert(api, queue_capacity=1)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    api.active(api.user(), cid)  # takes the only slot
    fan = api.user()
    _, joined = join(api, fan, cid)
    assert joined["status"] == "WAITING"
    forged = fan | {"X-Queue-Token": _forgeries(joined["queue_token"])[forgery]}
    for r in (
        api.http.get(f"/v1/concerts/{cid}/schedules", headers=forged),
        api.http.get(f"/v1/schedules/{sid}/seats", headers=forged),
        hold(api, forged, schedule_id=sid, quantity=1),
        pay(api, forged, 1),
        api.http.get(f"/v1/concerts/{cid}/queue", headers=forged),
    ):
        problem(r, 403, "QUEUE_TOKEN_INVALID")
    assert stats(api, cid)["seats_held"] == 0


def test_a_token_for_another_concert_is_invalid(api):
    mine = create_concert(api)
    other = create_concert(api)
    fan = api.user()
    token, _ = join(api, fan, mine["id"])
    other_sid = other["schedules"][0]["id"]
    for r in (
        api.http.get(f"/v1/concerts/{other['id']}/schedules", headers=token),
        api.http.get(f"/v1/schedules/{other_sid}/seats", headers=token),
        hold(api, token, schedule_id=other_sid, quantity=1),
        api.http.get(f"/v1/concerts/{other['id']}/queue", headers=token),
        api.http.delete(f"/v1/concerts/{other['id']}/queue", headers=token),
    ):
        problem(r, 403, "QUEUE_TOKEN_INVALID")
    # Paying a reservation of the other concert with this concert's token is refused too.
    other_token, _ = join(api, fan, other["id"])
    held = hold(api, other_token, schedule_id=other_sid, quantity=1)
    assert held.status_code == 201, held.text
    api.charge(fan, 100_000)
    problem(pay(api, token, held.json()["id"]), 403, "QUEUE_TOKEN_INVALID")
    assert reservation(api, fan, held.json()["id"])["status"] == "PENDING"
    assert stats(api, other["id"])["seats_held"] == 1 and stats(api, mine["id"])["seats_held"] == 0


# --- 6. dates and seats -----------------------------------------------------------------


def test_schedules_and_seats_with_status_filter_and_paging(api):
    concert = create_concert(api, starts=("2030-01-01T19:00:00Z", "2030-01-02T19:00:00Z"))
    cid = concert["id"]
    first_sid, second_sid = (s["id"] for s in concert["schedules"])
    fan = api.active(api.user(), cid)

    listed = api.http.get(f"/v1/concerts/{cid}/schedules", headers=fan)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [s["id"] for s in items] == [first_sid, second_sid]
    assert [s["seats_available"] for s in items] == [10, 10]
    assert items[0]["starts_at"].startswith("2030-01-01T19:00:00")

    all_seats = seats(api, fan, first_sid)
    assert len(all_seats) == 10 and all(s["status"] == "AVAILABLE" for s in all_seats)
    assert all_seats[0]["label"] == "A-1-1" and all_seats[-1]["label"] == "A-2-5"
    assert {s["grade"] for s in all_seats} == {"VIP"} and {s["price"] for s in all_seats} == {
        100_000
    }

    taken = [all_seats[1]["id"], all_seats[2]["id"]]
    assert hold(api, fan, schedule_id=first_sid, seat_ids=taken).status_code == 201
    listed = api.http.get(f"/v1/concerts/{cid}/schedules", headers=fan).json()["items"]
    assert [s["seats_available"] for s in listed] == [8, 10]
    assert [s["id"] for s in seats(api, fan, first_sid, status="HELD")] == taken
    assert len(seats(api, fan, first_sid, status="AVAILABLE")) == 8
    assert seats(api, fan, first_sid, status="SOLD") == []
    assert len(seats(api, fan, second_sid, status="AVAILABLE")) == 10

    # Paging: limit + cursor, next_cursor until the last page; every seat exactly once.
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = api.http.get(f"/v1/schedules/{first_sid}/seats", params=params, headers=fan)
        assert page.status_code == 200, page.text
        pages += 1
        seen += [s["id"] for s in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == [s["id"] for s in all_seats]
    # Paging of a filtered list.
    page = api.http.get(
        f"/v1/schedules/{first_sid}/seats",
        params={"status": "AVAILABLE", "limit": 5},
        headers=fan,
    ).json()
    assert len(page["items"]) == 5 and page["next_cursor"] is not None
    rest = seats(api, fan, first_sid, status="AVAILABLE", cursor=page["next_cursor"])
    assert len(rest) == 3 and not {s["id"] for s in rest} & set(taken)

    problem(api.http.get("/v1/schedules/999999999/seats", headers=fan), 404, "SCHEDULE_NOT_FOUND")
    problem(
        api.http.get(f"/v1/schedules/{first_sid}/seats?status=LOST", headers=fan),
        422,
        "INVALID_ARGUMENT",
    )
    problem(hold(api, fan, schedule_id=999_999_999, quantity=1), 404, "SCHEDULE_NOT_FOUND")


# --- 7. holds ---------------------------------------------------------------------------


def test_hold_explicit_seats_and_best_available_by_grade(api):
    concert = create_concert(
        api,
        sections=[
            section("A", rows=1, seats=4, grade="VIP", price=150_000),
            section("B", rows=2, seats=5, grade="R", price=80_000),
        ],
    )
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    fan = api.active(api.user(), cid)
    by_label = {s["label"]: s for s in seats(api, fan, sid)}

    before = datetime.now(UTC)
    explicit = hold(api, fan, schedule_id=sid, seat_ids=[by_label["A-1-2"]["id"]])
    assert explicit.status_code == 201, explicit.text
    r = explicit.json()
    assert r["status"] == "PENDING" and r["seats"] == [by_label["A-1-2"]["id"]]
    assert r["amount"] == 150_000
    ttl = rfc3339(r["expires_at"]) - rfc3339(r["created_at"])
    assert ttl == timedelta(seconds=300)  # the default 5-minute hold
    assert before - timedelta(seconds=5) < rfc3339(r["created_at"]) < before + timedelta(seconds=30)

    # Best available: adjacent seats in one row of the grade, from the row's left end.
    best = hold(api, fan, schedule_id=sid, quantity=2, grade="R")
    assert best.status_code == 201, best.text
    assert best.json()["seats"] == [by_label["B-1-1"]["id"], by_label["B-1-2"]["id"]]
    assert best.json()["amount"] == 160_000
    # Two more of B: B-1-3..4 would leave B-1-5 alone, so the next row is used.
    nxt = hold(api, fan, schedule_id=sid, quantity=2, grade="R")
    assert nxt.status_code == 201, nxt.text
    assert nxt.json()["seats"] == [by_label["B-2-1"]["id"], by_label["B-2-2"]["id"]]

    status = seat_status(api, fan, sid)
    held_ids = {*r["seats"], *best.json()["seats"], *nxt.json()["seats"]}
    assert {i for i, s in status.items() if s == "HELD"} == held_ids
    mine = api.http.get("/v1/me/reservations", headers=fan).json()["items"]
    assert [x["id"] for x in mine] == [r["id"], best.json()["id"], nxt.json()["id"]]
    problem(hold(api, fan, schedule_id=sid, quantity=1, grade="NOPE"), 422, "INVALID_ARGUMENT")


def test_hold_errors_are_all_or_nothing(api):
    concert = create_concert(api)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    other = create_concert(api)
    first = api.active(api.user(), cid)
    second = api.active(api.user(), cid)
    ids = [s["id"] for s in seats(api, first, sid)]
    other_seat = seats(api, api.active(api.user(), other["id"]), other["schedules"][0]["id"])[0]

    assert hold(api, first, schedule_id=sid, seat_ids=ids[:2]).status_code == 201

    body = problem(hold(api, second, schedule_id=sid, seat_ids=[ids[1]]), 409, "SEAT_UNAVAILABLE")
    assert body["seat_id"] == ids[1]
    # All or nothing: a free seat listed with a taken one stays free.
    body = problem(
        hold(api, second, schedule_id=sid, seat_ids=[ids[5], ids[0]]), 409, "SEAT_UNAVAILABLE"
    )
    assert body["seat_id"] == ids[0]
    assert seat_status(api, second, sid)[ids[5]] == "AVAILABLE"

    # A seat of another schedule, or no seat at all, is not found.
    for seat_id in (other_seat["id"], 999_999_999):
        body = problem(
            hold(api, second, schedule_id=sid, seat_ids=[seat_id]), 404, "SEAT_NOT_FOUND"
        )
        assert body["seat_id"] == seat_id
    # More than max_seats_per_reservation (4).
    problem(hold(api, second, schedule_id=sid, seat_ids=ids[2:7]), 422, "TOO_MANY_SEATS")
    problem(hold(api, second, schedule_id=sid, quantity=5), 422, "TOO_MANY_SEATS")
    s = stats(api, cid)
    assert s["seats_held"] == 2 and s["reservations_pending"] == 1
    assert api.http.get("/v1/me/reservations", headers=second).json()["items"] == []


def test_release_one_seat_then_cancel_the_reservation(api):
    concert = create_concert(api)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    fan = api.active(api.user(), cid)
    ids = [s["id"] for s in seats(api, fan, sid)]
    held = hold(api, fan, schedule_id=sid, seat_ids=ids[:3]).json()
    rid = held["id"]

    released = api.http.delete(f"/v1/reservations/{rid}/seats/{ids[1]}", headers=fan)
    assert released.status_code == 200, released.text
    assert released.json()["seats"] == [ids[0], ids[2]]
    assert released.json()["amount"] == 200_000 and released.json()["status"] == "PENDING"
    assert seat_status(api, fan, sid)[ids[1]] == "AVAILABLE"
    assert reservation(api, fan, rid)["seats"] == [ids[0], ids[2]]

    for seat in (ids[1], ids[7]):
        problem(
            api.http.delete(f"/v1/reservations/{rid}/seats/{seat}", headers=fan),
            404,
            "SEAT_NOT_IN_RESERVATION",
        )

    canceled = api.http.delete(f"/v1/reservations/{rid}", headers=fan)
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "CANCELED" and canceled.json()["ended_at"]
    assert set(seat_status(api, fan, sid).values()) == {"AVAILABLE"}
    problem(api.http.delete(f"/v1/reservations/{rid}", headers=fan), 409, "RESERVATION_NOT_PENDING")
    problem(
        api.http.delete(f"/v1/reservations/{rid}/seats/{ids[0]}", headers=fan),
        409,
        "RESERVATION_NOT_PENDING",
    )
    problem(pay(api, fan, rid), 409, "RESERVATION_NOT_PENDING")
    # The freed seats can be held again.
    assert hold(api, fan, schedule_id=sid, seat_ids=ids[:3]).status_code == 201

    # Releasing the last seat of a reservation cancels it.
    single = hold(api, fan, schedule_id=sid, seat_ids=[ids[9]]).json()
    last = api.http.delete(f"/v1/reservations/{single['id']}/seats/{ids[9]}", headers=fan)
    assert last.status_code == 200 and last.json()["status"] == "CANCELED", last.text
    assert seat_status(api, fan, sid)[ids[9]] == "AVAILABLE"


# --- 9. balance -------------------------------------------------------------------------


def test_charge_balance_and_history(api):
    fan = api.user()
    assert balance(api, fan) == 0 and history(api, fan) == []
    first = api.charge(fan, 30_000)
    assert first.status_code == 201, first.text
    assert first.json()["amount"] == 30_000 and first.json()["balance"] == 30_000
    second = api.charge(fan, 20_000)
    assert second.json()["balance"] == 50_000
    assert balance(api, fan) == 50_000
    entries = history(api, fan)
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in entries] == [
        ("CHARGE", 30_000, 30_000),
        ("CHARGE", 20_000, 50_000),
    ]
    assert [e["id"] for e in entries] == [first.json()["id"], second.json()["id"]]


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (0, "INVALID_AMOUNT"),
        (-1, "INVALID_AMOUNT"),
        (-50_000, "INVALID_AMOUNT"),
        (10_000_001, "INVALID_AMOUNT"),  # above the per-charge limit
        (1.5, "INVALID_ARGUMENT"),
        ("ten thousand", "INVALID_ARGUMENT"),
        ("5000", "INVALID_ARGUMENT"),
        (True, "INVALID_ARGUMENT"),
        (None, "INVALID_ARGUMENT"),
        ([1000], "INVALID_ARGUMENT"),
        (10**30, "INVALID_ARGUMENT"),
    ],
)
def test_an_invalid_charge_is_422_and_changes_nothing(api, amount, code):
    fan = api.user()
    api.charge(fan, 1_000)
    problem(api.charge(fan, amount), 422, code)
    assert balance(api, fan) == 1_000 and len(history(api, fan)) == 1


def test_the_balance_has_a_maximum(api):
    fan = api.user()
    assert api.charge(fan, 10_000_000).status_code == 201  # the per-charge limit itself is fine
    for _ in range(9):
        assert api.charge(fan, 10_000_000).status_code == 201
    assert balance(api, fan) == 100_000_000
    problem(api.charge(fan, 1), 409, "BALANCE_LIMIT_EXCEEDED")
    assert balance(api, fan) == 100_000_000


# --- 10. pay ----------------------------------------------------------------------------


def test_paying_sells_the_seats_debits_the_wallet_and_admits_the_next_user(api):
    concert = create_concert(api, queue_capacity=1)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    fan = api.user()
    active, _ = join(api, fan, cid)
    next_fan, waiting = join(api, api.user(), cid)
    assert waiting["status"] == "WAITING"
    held = hold(api, active, schedule_id=sid, quantity=2).json()
    api.charge(fan, 250_000)

    paid = pay(api, active, held["id"])
    assert paid.status_code == 201, paid.text
    payment = paid.json()
    assert payment["reservation_id"] == held["id"] and payment["amount"] == 200_000
    assert payment["status"] == "SUCCEEDED" and payment["balance"] == 50_000

    assert balance(api, fan) == 50_000
    confirmed = reservation(api, fan, held["id"])
    assert confirmed["status"] == "CONFIRMED" and confirmed["payment_id"] == payment["id"]
    assert history(api, fan)[-1] | {"id": 0, "at": ""} == {
        "id": 0,
        "kind": "PAYMENT",
        "amount": 200_000,
        "balance_after": 50_000,
        "at": "",
        "reservation_id": held["id"],
    }
    # The payment ended the session and freed the slot for the waiting user.
    token = poll(api, active, cid)
    assert token["status"] == "EXPIRED" and token["ended_reason"] == "COMPLETED"
    assert poll(api, next_fan, cid)["status"] == "ACTIVE"
    sold = seats(api, next_fan, sid, status="SOLD")
    assert [s["id"] for s in sold] == held["seats"]
    # Nobody can hold a sold seat.
    problem(
        hold(api, next_fan, schedule_id=sid, seat_ids=held["seats"][:1]), 409, "SEAT_UNAVAILABLE"
    )


def test_too_little_balance_keeps_the_reservation_to_charge_and_retry(api):
    concert = create_concert(api)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    fan = api.user()
    active = api.active(fan, cid)
    held = hold(api, active, schedule_id=sid, quantity=2).json()
    api.charge(fan, 150_000)

    problem(pay(api, active, held["id"]), 409, "INSUFFICIENT_BALANCE")
    assert reservation(api, fan, held["id"])["status"] == "PENDING"
    assert balance(api, fan) == 150_000
    assert {s["status"] for s in seats(api, active, sid) if s["id"] in held["seats"]} == {"HELD"}
    assert poll(api, active, cid)["status"] == "ACTIVE"  # the session goes on

    api.charge(fan, 50_000)
    paid = pay(api, active, held["id"])
    assert paid.status_code == 201, paid.text
    assert balance(api, fan) == 0
    assert reservation(api, fan, held["id"])["status"] == "CONFIRMED"


def test_release_on_payment_failure_cancels_and_frees_the_seats(api):
    concert = create_concert(api, release_on_payment_failure=True)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    assert concert["sale"]["release_on_payment_failure"] is True
    fan = api.user()
    active = api.active(fan, cid)
    held = hold(api, active, schedule_id=sid, quantity=3).json()
    api.charge(fan, 100_000)

    problem(pay(api, active, held["id"]), 409, "INSUFFICIENT_BALANCE")
    assert reservation(api, fan, held["id"])["status"] == "CANCELED"
    assert set(seat_status(api, active, sid).values()) == {"AVAILABLE"}
    assert balance(api, fan) == 100_000
    # Charging now does not revive it.
    api.charge(fan, 300_000)
    problem(pay(api, active, held["id"]), 409, "RESERVATION_NOT_PENDING")
    assert balance(api, fan) == 400_000


def test_paying_twice_is_a_conflict_and_debits_once(api):
    concert = create_concert(api)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    fan = api.user()
    active = api.active(fan, cid)
    held = hold(api, active, schedule_id=sid, quantity=1).json()
    api.charge(fan, 300_000)
    assert pay(api, active, held["id"]).status_code == 201
    # The paying token is spent; with a fresh ACTIVE token, paying again is a conflict.
    problem(pay(api, active, held["id"]), 403, "QUEUE_TOKEN_EXPIRED")
    fresh = api.active(fan, cid)
    problem(pay(api, fresh, held["id"]), 409, "RESERVATION_NOT_PENDING")
    assert balance(api, fan) == 200_000
    assert [e["kind"] for e in history(api, fan)] == ["CHARGE", "PAYMENT"]


def test_refund_of_a_confirmed_reservation(api):
    concert = create_concert(api)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    fan = api.user()
    active = api.active(fan, cid)
    pending = hold(api, active, schedule_id=sid, quantity=1).json()
    problem(
        api.http.post(f"/v1/reservations/{pending['id']}/refund", headers=fan),
        409,
        "RESERVATION_NOT_CONFIRMED",
    )
    held = hold(api, active, schedule_id=sid, quantity=2).json()
    api.charge(fan, 200_000)
    assert pay(api, active, held["id"]).status_code == 201
    assert balance(api, fan) == 0

    refunded = api.http.post(f"/v1/reservations/{held['id']}/refund", headers=fan)
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "REFUNDED"
    assert balance(api, fan) == 200_000
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in history(api, fan)] == [
        ("CHARGE", 200_000, 200_000),
        ("PAYMENT", 200_000, 0),
        ("REFUND", 200_000, 200_000),
    ]
    other = api.active(api.user(), cid)
    status = seat_status(api, other, sid)
    assert {status[i] for i in held["seats"]} == {"AVAILABLE"}
    problem(
        api.http.post(f"/v1/reservations/{held['id']}/refund", headers=fan),
        409,
        "RESERVATION_NOT_CONFIRMED",
    )
    assert balance(api, fan) == 200_000
    s = stats(api, cid)
    assert s["revenue"] == 0 and s["reservations_refunded"] == 1 and s["seats_sold"] == 0


# --- 8 and 4, in real time: hold expiry, session expiry, abandoning, the pre-queue ------


def test_holds_sessions_and_waiting_places_expire_on_time(api):
    short_hold = create_concert(
        api, queue_capacity=1, hold_ttl_s=1.5, poll_interval_s=0.2, abandon_timeout_s=0.75
    )
    short_session = create_concert(api, queue_capacity=1, session_ttl_s=1.0)
    opens_at = datetime.now(UTC) + timedelta(seconds=1)
    later = create_concert(api, opens_at=opens_at.isoformat().replace("+00:00", "Z"))
    cid, sid = short_hold["id"], short_hold["schedules"][0]["id"]

    holder_user = api.user()
    holder = api.active(holder_user, cid)
    quitter, _ = join(api, api.user(), cid)  # WAITING, stops polling
    patient, joined = join(api, api.user(), cid)  # WAITING, keeps polling
    assert joined["position"] == 1
    held = hold(api, holder, schedule_id=sid, quantity=1).json()
    api.charge(holder_user, 100_000)

    session_user, session = join(api, api.user(), short_session["id"])
    assert session["status"] == "ACTIVE"
    next_in_line, _ = join(api, api.user(), short_session["id"])

    early, pre = join(api, api.user(), later["id"])
    assert pre["status"] == "WAITING" and pre["position"] is None  # the pre-queue
    assert 0 <= pre["eta_s"] <= 1.0

    ends = (rfc3339(held["expires_at"]), rfc3339(session["expires_at"]), opens_at)
    deadline = max(ends) + timedelta(seconds=0.15)
    while datetime.now(UTC) < deadline:
        poll(api, patient, cid)
        poll(api, next_in_line, short_session["id"])
        time.sleep(0.05)

    # The hold expired at exactly expires_at: seat free, reservation unpayable.
    expired = reservation(api, holder_user, held["id"])
    assert expired["status"] == "EXPIRED" and expired["ended_at"] == expired["expires_at"]
    assert seat_status(api, holder, sid)[held["seats"][0]] == "AVAILABLE"
    problem(pay(api, holder, held["id"]), 409, "HOLD_EXPIRED")
    problem(api.http.delete(f"/v1/reservations/{held['id']}", headers=holder), 409, "HOLD_EXPIRED")
    assert balance(api, holder_user) == 100_000
    # The one who stopped polling lost the place; the one who polled moved up.
    gone = poll(api, quitter, cid)
    assert gone["status"] == "EXPIRED" and gone["ended_reason"] == "ABANDONED"
    assert poll(api, patient, cid)["position"] == 0
    s = stats(api, cid)
    assert s["reservations_expired"] == 1 and s["queue_abandoned_total"] == 1

    # The session ended after its TTL; the next user got the slot.
    problem(
        api.http.get(f"/v1/concerts/{short_session['id']}/schedules", headers=session_user),
        403,
        "QUEUE_TOKEN_EXPIRED",
    )
    assert poll(api, session_user, short_session["id"])["ended_reason"] == "SESSION_EXPIRED"
    # Admitted: ACTIVE, or on a slow machine already past its own 1 s session (only an
    # admitted token's session can expire; a WAITING one would be ABANDONED).
    successor = poll(api, next_in_line, short_session["id"])
    assert successor["status"] == "ACTIVE" or successor["ended_reason"] == "SESSION_EXPIRED"
    # The sale opened: the pre-queue was admitted.
    assert poll(api, early, later["id"])["status"] == "ACTIVE"


# --- idempotency keys -------------------------------------------------------------------


def test_an_idempotent_retry_returns_the_first_answer_and_changes_nothing(api):
    concert = create_concert(api)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    fan = api.user()
    active = api.active(fan, cid)

    charge_key = {"Idempotency-Key": f"charge-{uuid.uuid4()}"}
    c1 = api.http.post("/v1/me/balance/charges", json={"amount": 120_000}, headers=fan | charge_key)
    c2 = api.http.post("/v1/me/balance/charges", json={"amount": 120_000}, headers=fan | charge_key)
    assert c1.status_code == c2.status_code == 201, c2.text
    assert c1.json() == c2.json()
    assert balance(api, fan) == 120_000 and len(history(api, fan)) == 1
    problem(
        api.http.post("/v1/me/balance/charges", json={"amount": 1}, headers=fan | charge_key),
        422,
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert balance(api, fan) == 120_000

    hold_key = {"Idempotency-Key": f"hold-{uuid.uuid4()}"}
    body = {"schedule_id": sid, "quantity": 1}
    h1 = api.http.post("/v1/reservations", json=body, headers=active | hold_key)
    h2 = api.http.post("/v1/reservations", json=body, headers=active | hold_key)
    assert h1.status_code == h2.status_code == 201, h2.text
    assert h1.json() == h2.json()
    assert len(api.http.get("/v1/me/reservations", headers=fan).json()["items"]) == 1
    assert stats(api, cid)["seats_held"] == 1
    problem(
        api.http.post("/v1/reservations", json=body | {"quantity": 2}, headers=active | hold_key),
        422,
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert stats(api, cid)["seats_held"] == 1

    pay_key = {"Idempotency-Key": f"pay-{uuid.uuid4()}"}
    p1 = pay(api, active, h1.json()["id"], **pay_key)
    p2 = pay(api, active, h1.json()["id"], **pay_key)  # the token is spent, the key answers
    assert p1.status_code == p2.status_code == 201, p2.text
    assert p1.json() == p2.json()
    assert balance(api, fan) == 20_000
    assert [e["kind"] for e in history(api, fan)] == ["CHARGE", "PAYMENT"]
    other = hold(api, api.active(fan, cid), schedule_id=sid, quantity=1).json()
    problem(pay(api, api.active(fan, cid), other["id"], **pay_key), 422, "IDEMPOTENCY_KEY_REUSED")
    assert balance(api, fan) == 20_000 and stats(api, cid)["payments"] == 1


def test_idempotency_keys_are_per_user_and_a_failure_does_not_use_the_key(api):
    concert = create_concert(api)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    first, second = api.user(), api.user()
    key = {"Idempotency-Key": f"same-{uuid.uuid4()}"}
    a = api.http.post("/v1/me/balance/charges", json={"amount": 5_000}, headers=first | key)
    b = api.http.post("/v1/me/balance/charges", json={"amount": 5_000}, headers=second | key)
    assert a.status_code == b.status_code == 201
    assert balance(api, first) == 5_000 and balance(api, second) == 5_000

    # A failed payment does not consume its key: after a charge, the same key succeeds.
    active = api.active(first, cid)
    held = hold(api, active, schedule_id=sid, quantity=1).json()
    pay_key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    problem(pay(api, active, held["id"], **pay_key), 409, "INSUFFICIENT_BALANCE")
    api.charge(first, 95_000)
    paid = pay(api, active, held["id"], **pay_key)
    assert paid.status_code == 201, paid.text
    assert balance(api, first) == 0


# --- operators --------------------------------------------------------------------------


def test_admin_endpoints_need_the_admin_key(api):
    body = {
        "title": "No key",
        "schedules": [{"starts_at": "2030-01-01T19:00:00Z", "sections": [section()]}],
    }
    key = api.admin["X-Admin-Key"]
    near_misses = [key[:-1], key + "x", key.upper() if key.upper() != key else key.lower()]
    for headers in (
        {},
        {"X-Admin-Key": "wrong-key"},
        {"X-Admin-Key": ""},
        *({"X-Admin-Key": k} for k in near_misses),
    ):
        problem(
            api.http.post("/v1/admin/concerts", json=body, headers=headers),
            403,
            "ADMIN_KEY_INVALID",
        )
        problem(api.http.get("/v1/admin/events", headers=headers), 403, "ADMIN_KEY_INVALID")
        problem(
            api.http.get("/v1/admin/concerts/1/stats", headers=headers), 403, "ADMIN_KEY_INVALID"
        )
    # A user's access token is not an admin key.
    problem(
        api.http.post("/v1/admin/concerts", json=body, headers=api.user()), 403, "ADMIN_KEY_INVALID"
    )
    fan = api.user()
    found = api.http.get("/v1/concerts", params={"q": "No key"}, headers=fan).json()["items"]
    assert found == []
    problem(
        api.http.get("/v1/admin/concerts/999999999/stats", headers=api.admin),
        404,
        "CONCERT_NOT_FOUND",
    )


def test_stats_and_events_tell_what_happened(api):
    concert = create_concert(api, queue_capacity=1)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    after = api.http.get("/healthz").json()["last_event_seq"]  # the last event before the flow

    buyer, browser = api.user(), api.user()
    buyer_token = api.active(buyer, cid)
    browser_token, _ = join(api, browser, cid)  # WAITING
    held = hold(api, buyer_token, schedule_id=sid, quantity=2).json()
    problem(pay(api, buyer_token, held["id"]), 409, "INSUFFICIENT_BALANCE")
    api.charge(buyer, 200_000)
    assert pay(api, buyer_token, held["id"]).status_code == 201
    assert poll(api, browser_token, cid)["status"] == "ACTIVE"
    dropped = hold(api, browser_token, schedule_id=sid, quantity=1).json()
    assert api.http.delete(f"/v1/reservations/{dropped['id']}", headers=browser).status_code == 200
    kept = hold(api, browser_token, schedule_id=sid, quantity=1).json()

    s = stats(api, cid)
    assert s | {"concert_id": 0} == {
        "concert_id": 0,
        "queue_waiting": 0,
        "queue_active": 1,
        "queue_joined_total": 2,
        "queue_admitted_total": 2,
        "queue_abandoned_total": 0,
        "seats_total": 10,
        "seats_available": 7,
        "seats_held": 1,
        "seats_sold": 2,
        "reservations_pending": 1,
        "reservations_confirmed": 1,
        "reservations_expired": 0,
        "reservations_canceled": 1,
        "reservations_refunded": 0,
        "payments": 1,
        "revenue": 200_000,
    }

    events: list[dict[str, Any]] = []
    cursor = after
    while True:  # small pages, to exercise `after`
        page = api.http.get(
            "/v1/admin/events", params={"after": cursor, "limit": 3}, headers=api.admin
        )
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert all(e["seq"] > cursor for e in items)
        events += items
        if page.json()["next_cursor"] is None:
            break
        cursor = int(page.json()["next_cursor"])
        assert cursor == items[-1]["seq"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)) and seqs[0] > after
    ours = [e for e in events if e["concert_id"] == cid]
    kinds = [e["type"] for e in ours]
    for kind in (
        "QueueJoined",
        "QueueAdmitted",
        "ReservationHeld",
        "PaymentFailed",
        "PaymentSucceeded",
        "QueueCompleted",
        "ReservationCanceled",
    ):
        assert kind in kinds, kinds
    assert kinds.count("ReservationHeld") == 3 and kinds.count("QueueAdmitted") == 2
    paid = next(e for e in ours if e["type"] == "PaymentSucceeded")
    assert paid["reservation_id"] == held["id"] and paid["amount"] == 200_000
    held_events = [e["reservation_id"] for e in ours if e["type"] == "ReservationHeld"]
    assert held_events == [held["id"], dropped["id"], kept["id"]]
    # Reading again from the middle returns exactly the tail.
    middle = len(seqs) // 2
    tail = api.http.get(
        "/v1/admin/events", params={"after": seqs[middle], "limit": 1000}, headers=api.admin
    ).json()["items"]
    assert [e["seq"] for e in tail if e["seq"] <= seqs[-1]] == seqs[middle + 1 :]


# --- health and metrics -----------------------------------------------------------------


def test_healthz_and_metrics(api):
    health = api.http.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    concert = create_concert(api)
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    fan = api.user()
    active = api.active(fan, cid)
    held = hold(api, active, schedule_id=sid, quantity=3).json()
    api.charge(fan, 300_000)
    assert pay(api, active, held["id"]).status_code == 201
    after = api.http.get("/healthz").json()
    assert after["concerts"] >= health.json()["concerts"] + 1
    assert after["last_event_seq"] > health.json()["last_event_seq"]

    metrics = api.http.get("/metrics", headers=api.admin)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    lines = metrics.text.splitlines()
    assert any(
        line.startswith("boxoffice_http_requests_total{")
        and 'route="/v1/payments"' in line
        and 'status="201"' in line
        for line in lines
    ), metrics.text[:2000]
    sold = [
        line for line in lines if line.startswith(f'boxoffice_seats_sold{{concert_id="{cid}"}}')
    ]
    assert len(sold) == 1 and float(sold[0].split()[-1]) == 3.0, sold
    # Routes are labelled by template, never by raw id.
    assert not any(f"/v1/reservations/{held['id']}" in line for line in lines)
