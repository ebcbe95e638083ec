"""Who may do what: a user's reservations, wallet and queue token are theirs alone, and every
request but sign-up, log-in, health and metrics needs a valid access JWT."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from problems import problem

PASSWORD = "lantern-velvet-4817"  # passes the sign-up strength rule
SERVER_SECRET = "authorization-tests-secret-ef3ee279e923d6eb3085481afe5b88c9f212ef75"
WRONG_SECRET = "not-the-server-secret-" + "fedcba9876543210" * 3


def hold(api: Any, headers: dict[str, str], schedule_id: int, quantity: int) -> dict[str, Any]:
    r = api.http.post(
        "/v1/reservations",
        json={"schedule_id": schedule_id, "quantity": quantity},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def get_reservation(api: Any, auth: dict[str, str], reservation_id: int) -> dict[str, Any]:
    r = api.http.get(f"/v1/reservations/{reservation_id}", headers=auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


# --- another user's reservation ---------------------------------------------------------


def test_another_users_reservation_cannot_be_read_cancelled_released_or_paid(api):
    concert = api.concert()
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    owner, intruder = api.user(), api.user()
    owner_token = api.active(owner, cid)
    intruder_token = api.active(intruder, cid)
    held = hold(api, owner_token, sid, 2)
    rid = held["id"]
    api.charge(intruder, 500_000)

    problem(api.http.get(f"/v1/reservations/{rid}", headers=intruder), 404, "RESERVATION_NOT_FOUND")
    problem(
        api.http.delete(f"/v1/reservations/{rid}", headers=intruder), 404, "RESERVATION_NOT_FOUND"
    )
    problem(
        api.http.delete(f"/v1/reservations/{rid}/seats/{held['seats'][0]}", headers=intruder),
        404,
        "RESERVATION_NOT_FOUND",
    )
    problem(
        api.http.post("/v1/payments", json={"reservation_id": rid}, headers=intruder_token),
        404,
        "RESERVATION_NOT_FOUND",
    )
    problem(
        api.http.post(f"/v1/reservations/{rid}/refund", headers=intruder),
        404,
        "RESERVATION_NOT_FOUND",
    )
    # 404 looks exactly like a reservation that does not exist.
    missing = api.http.get("/v1/reservations/999999999", headers=intruder)
    assert missing.status_code == 404 and missing.json()["code"] == "RESERVATION_NOT_FOUND"

    # Nothing changed for either of them.
    mine = get_reservation(api, owner, rid)
    assert mine["status"] == "PENDING" and mine["seats"] == held["seats"]
    assert api.http.get("/v1/me/balance", headers=intruder).json()["balance"] == 500_000
    assert api.http.get("/v1/me/reservations", headers=intruder).json()["items"] == []

    # Once paid, the intruder cannot refund it either (the money would be the owner's).
    api.charge(owner, 200_000)
    paid = api.http.post("/v1/payments", json={"reservation_id": rid}, headers=owner_token)
    assert paid.status_code == 201, paid.text
    problem(
        api.http.post(f"/v1/reservations/{rid}/refund", headers=intruder),
        404,
        "RESERVATION_NOT_FOUND",
    )
    assert get_reservation(api, owner, rid)["status"] == "CONFIRMED"
    assert api.http.get("/v1/me/balance", headers=owner).json()["balance"] == 0
    assert api.http.get("/v1/me/balance", headers=intruder).json()["balance"] == 500_000


def test_me_endpoints_show_only_the_callers_own(api):
    concert = api.concert()
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    first, second = api.user(), api.user()
    first_held = hold(api, api.active(first, cid), sid, 1)
    second_held = [hold(api, api.active(second, cid), sid, 1) for _ in range(2)]
    api.charge(first, 11_000)
    api.charge(second, 22_000)
    api.charge(second, 33_000)

    def me(auth: dict[str, str], path: str) -> Any:
        r = api.http.get(path, headers=auth)
        assert r.status_code == 200, r.text
        return r.json()

    assert [r["id"] for r in me(first, "/v1/me/reservations")["items"]] == [first_held["id"]]
    assert [r["id"] for r in me(second, "/v1/me/reservations")["items"]] == [
        r["id"] for r in second_held
    ]
    assert me(first, "/v1/me/balance")["balance"] == 11_000
    assert me(second, "/v1/me/balance")["balance"] == 55_000
    assert [e["amount"] for e in me(first, "/v1/me/balance/history")["items"]] == [11_000]
    assert [e["amount"] for e in me(second, "/v1/me/balance/history")["items"]] == [
        22_000,
        33_000,
    ]
    first_id = me(first, "/v1/me")["id"]
    assert me(first, "/v1/me/balance")["user_id"] == first_id
    assert me(second, "/v1/me/balance")["user_id"] != first_id


# --- another user's queue token ---------------------------------------------------------


def test_another_users_queue_token_is_invalid_even_with_your_own_access_token(api):
    concert = api.concert()
    cid, sid = concert["id"], concert["schedules"][0]["id"]
    victim, thief = api.user(), api.user()
    victim_token = api.active(victim, cid)
    held = hold(api, victim_token, sid, 1)
    api.charge(thief, 500_000)
    stolen = thief | {"X-Queue-Token": victim_token["X-Queue-Token"]}

    for r in (
        api.http.get(f"/v1/concerts/{cid}/schedules", headers=stolen),
        api.http.get(f"/v1/schedules/{sid}/seats", headers=stolen),
        api.http.post("/v1/reservations", json={"schedule_id": sid, "quantity": 1}, headers=stolen),
        api.http.post("/v1/payments", json={"reservation_id": held["id"]}, headers=stolen),
        api.http.get(f"/v1/concerts/{cid}/queue", headers=stolen),
        api.http.delete(f"/v1/concerts/{cid}/queue", headers=stolen),
    ):
        problem(r, 403, "QUEUE_TOKEN_INVALID")

    # The victim's session is untouched (the thief could not make it leave).
    poll = api.http.get(f"/v1/concerts/{cid}/queue", headers=victim_token)
    assert poll.status_code == 200 and poll.json()["status"] == "ACTIVE", poll.text
    assert api.http.get("/v1/me/reservations", headers=thief).json()["items"] == []
    assert api.http.get("/v1/me/balance", headers=thief).json()["balance"] == 500_000


def test_a_queue_token_header_alone_is_not_enough(api):
    concert = api.concert()
    fan = api.active(api.user(), concert["id"])
    r = api.http.get(
        f"/v1/concerts/{concert['id']}/schedules",
        headers={"X-Queue-Token": fan["X-Queue-Token"]},
    )
    problem(r, 401, "UNAUTHENTICATED")
    # ...and an access token without a queue token does not pass the gate.
    r = api.http.get(
        f"/v1/concerts/{concert['id']}/schedules",
        headers={"Authorization": fan["Authorization"]},
    )
    problem(r, 403, "QUEUE_TOKEN_INVALID")


# --- the access JWT ---------------------------------------------------------------------

PROTECTED = [
    ("GET", "/v1/me", None),
    ("GET", "/v1/concerts", None),
    ("GET", "/v1/concerts/1", None),
    ("POST", "/v1/concerts/1/queue", None),
    ("GET", "/v1/concerts/1/queue", None),
    ("DELETE", "/v1/concerts/1/queue", None),
    ("GET", "/v1/concerts/1/schedules", None),
    ("GET", "/v1/schedules/1/seats", None),
    ("POST", "/v1/reservations", {"schedule_id": 1, "quantity": 1}),
    ("GET", "/v1/reservations/1", None),
    ("DELETE", "/v1/reservations/1", None),
    ("DELETE", "/v1/reservations/1/seats/1", None),
    ("POST", "/v1/reservations/1/refund", None),
    ("GET", "/v1/me/reservations", None),
    ("POST", "/v1/payments", {"reservation_id": 1}),
    ("GET", "/v1/me/balance", None),
    ("GET", "/v1/me/balance/history", None),
    ("POST", "/v1/me/balance/charges", {"amount": 1000}),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_every_user_endpoint_needs_an_access_token(api, method, path, body):
    r = api.http.request(method, path, json=body)
    problem(r, 401, "UNAUTHENTICATED")
    assert r.headers["www-authenticate"].lower().startswith("bearer")


def _forged_access_tokens(valid: str, queue_token: str) -> dict[str, str]:
    header, payload, signature = valid.split(".")
    claims = jwt.decode(valid, options={"verify_signature": False})
    other_user = jwt.encode(
        claims | {"sub": str(int(claims["sub"]) + 1)}, WRONG_SECRET, "HS256"
    ).split(".")[1]
    return {
        "garbage": "garbage",
        "three garbage parts": "a.b.c",
        "bad signature": f"{header}.{payload}.{signature[::-1]}",
        "another sub, original signature": f"{header}.{other_user}.{signature}",
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "alg none, no signature dot": ".".join(jwt.encode(claims, None, "none").split(".")[:2]),
        "HS256 with the wrong secret": jwt.encode(claims, WRONG_SECRET, "HS256"),
        "a queue token": queue_token,
    }


FORGERIES = [
    "garbage",
    "three garbage parts",
    "bad signature",
    "another sub, original signature",
    "alg none",
    "alg none, no signature dot",
    "HS256 with the wrong secret",
    "a queue token",
]


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_access_token_is_401(api, forgery):
    fan = api.user()
    api.charge(fan, 7_000)
    queue_token = api.join(fan, api.concert()["id"])["queue_token"]
    token = _forged_access_tokens(fan["Authorization"].removeprefix("Bearer "), queue_token)[
        forgery
    ]
    for path in ("/v1/me/balance", "/v1/me", "/v1/me/reservations"):
        r = api.http.get(path, headers={"Authorization": f"Bearer {token}"})
        problem(r, 401, "UNAUTHENTICATED")
        assert r.headers["www-authenticate"].lower().startswith("bearer")
        assert "balance" not in r.json()
    charge = api.http.post(
        "/v1/me/balance/charges",
        json={"amount": 1_000},
        headers={"Authorization": f"Bearer {token}"},
    )
    problem(charge, 401, "UNAUTHENTICATED")
    assert api.http.get("/v1/me/balance", headers=fan).json()["balance"] == 7_000


@pytest.mark.parametrize("scheme", ["Basic", "Token", ""])
def test_an_access_token_in_another_scheme_is_401(api, scheme):
    fan = api.user()
    token = fan["Authorization"].removeprefix("Bearer ")
    r = api.http.get("/v1/me/balance", headers={"Authorization": f"{scheme} {token}".strip()})
    problem(r, 401, "UNAUTHENTICATED")


def test_access_token_claims_are_checked(start_server):
    """A server with a known secret, so tokens can be signed correctly with one claim wrong."""
    srv = start_server(jwt_secret=SERVER_SECRET)
    with httpx.Client(base_url=srv.base_url, timeout=30) as http:
        email = f"claims-{uuid.uuid4().hex[:8]}@example.com"
        user = http.post("/v1/users", json={"email": email, "password": PASSWORD})
        assert user.status_code == 201, user.text
        issued = http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        claims = jwt.decode(issued.json()["access_token"], options={"verify_signature": False})
        assert claims["sub"] == str(user.json()["id"])
        now = int(time.time())
        good = {
            "sub": claims["sub"],
            "typ": "access",
            "iss": claims["iss"],
            "aud": claims["aud"],
            "iat": now,
            "exp": now + 600,
        }

        def balance_with(token: str) -> httpx.Response:
            return http.get("/v1/me/balance", headers={"Authorization": f"Bearer {token}"})

        # The control: a token we sign with the server's secret works, so every refusal
        # below is about the one claim we broke.
        ok = balance_with(jwt.encode(good, SERVER_SECRET, "HS256"))
        assert ok.status_code == 200, ok.text

        expired = balance_with(
            jwt.encode(good | {"iat": now - 7200, "exp": now - 3600}, SERVER_SECRET, "HS256")
        )
        problem(expired, 401, "TOKEN_EXPIRED")
        assert expired.headers["www-authenticate"].lower().startswith("bearer")

        broken = {
            "wrong aud": good | {"aud": "someone-else"},
            "wrong iss": good | {"iss": "evil-issuer"},
            "typ queue": good | {"typ": "queue", "cid": 1, "tid": 1},
            "no typ": {k: v for k, v in good.items() if k != "typ"},
            "no exp": {k: v for k, v in good.items() if k != "exp"},
            "sub not a number": good | {"sub": "admin"},
            "sub of no user": good | {"sub": "987654321"},
        }
        for name, bad in broken.items():
            r = balance_with(jwt.encode(bad, SERVER_SECRET, "HS256"))
            assert r.status_code == 401, (name, r.text)
            assert r.json()["code"] == "UNAUTHENTICATED", (name, r.text)
        for name, token in {
            "HS256, wrong secret": jwt.encode(good, WRONG_SECRET, "HS256"),
            "HS512, right secret": jwt.encode(good, SERVER_SECRET, "HS512"),
            "alg none": jwt.encode(good, None, algorithm="none"),
        }.items():
            r = balance_with(token)
            assert r.status_code == 401, (name, r.text)
            assert r.json()["code"] == "UNAUTHENTICATED", (name, r.text)
