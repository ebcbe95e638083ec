"""Hold expiry and session expiry over HTTP, with 1-second TTLs on a real server.

The tests sleep until the server's ``expires_at`` has passed (server and tests share the
machine's clock); they never assert how long anything took.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any


def seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def sleep_past(rfc3339: str, margin_s: float = 0.05) -> None:
    """Sleeps until the wall clock is past ``rfc3339`` (plus a margin)."""
    delay = seconds(rfc3339) + margin_s - time.time()
    if delay > 0:
        time.sleep(delay)


def seat_status(api: Any, fan: dict[str, str], schedule_id: int) -> dict[int, str]:
    r = api.http.get(f"/v1/schedules/{schedule_id}/seats", headers=fan)
    assert r.status_code == 200, r.text
    return {s["id"]: s["status"] for s in r.json()["items"]}


def events_of(api: Any, reservation_id: int) -> list[str]:
    """Types of the domain events about one reservation, oldest first."""
    found: list[str] = []
    after = 0
    while True:
        r = api.http.get(
            "/v1/admin/events", params={"after": after, "limit": 1000}, headers=api.admin
        )
        assert r.status_code == 200, r.text
        page = r.json()
        found += [e["type"] for e in page["items"] if e["reservation_id"] == reservation_id]
        if not page["next_cursor"]:
            return found
        after = int(page["next_cursor"])


def test_an_unpaid_hold_expires_frees_its_seat_and_cannot_be_paid(api):
    concert = api.concert(hold_ttl_s=1)
    schedule_id = concert["schedules"][0]["id"]
    fan = api.active(api.user(), concert["id"])
    assert api.charge(fan, 300_000).status_code == 201
    held = api.http.post(
        "/v1/reservations", json={"schedule_id": schedule_id, "quantity": 1}, headers=fan
    )
    assert held.status_code == 201, held.text
    reservation = held.json()
    (seat,) = reservation["seats"]
    expires_at = seconds(reservation["expires_at"])
    assert seconds(reservation["created_at"]) < expires_at

    # Exact expiry: a read answered before expires_at shows the seat HELD; a read sent after
    # it never does (whatever the server's own timers are doing).
    while True:
        sent = time.time()
        status = seat_status(api, fan, schedule_id)[seat]
        answered = time.time()
        if answered < expires_at:
            assert status == "HELD"
        if sent > expires_at:
            assert status == "AVAILABLE"
            break
        time.sleep(0.05)

    after = api.http.get(f"/v1/reservations/{reservation['id']}", headers=fan).json()
    assert after["status"] == "EXPIRED" and after["payment_id"] is None
    paid = api.http.post("/v1/payments", json={"reservation_id": reservation["id"]}, headers=fan)
    assert paid.status_code == 409 and paid.json()["code"] == "HOLD_EXPIRED", paid.text
    assert api.http.get("/v1/me/balance", headers=fan).json()["balance"] == 300_000
    history = api.http.get("/v1/me/balance/history", headers=fan).json()["items"]
    assert [e["kind"] for e in history] == ["CHARGE"]

    # Somebody else can now hold that very seat (and the first fan still cannot pay).
    other = api.active(api.user(), concert["id"])
    again = api.http.post(
        "/v1/reservations", json={"schedule_id": schedule_id, "seat_ids": [seat]}, headers=other
    )
    assert again.status_code == 201, again.text
    assert again.json()["seats"] == [seat]
    assert seat_status(api, fan, schedule_id)[seat] == "HELD"
    paid = api.http.post("/v1/payments", json={"reservation_id": reservation["id"]}, headers=fan)
    assert paid.status_code == 409 and paid.json()["code"] == "HOLD_EXPIRED", paid.text
    assert api.http.get("/v1/me/balance", headers=fan).json()["balance"] == 300_000

    # It ended exactly once.
    assert events_of(api, reservation["id"]).count("ReservationExpired") == 1
    stats = api.http.get(f"/v1/admin/concerts/{concert['id']}/stats", headers=api.admin).json()
    assert (stats["reservations_expired"], stats["seats_held"], stats["payments"]) == (1, 1, 0)


def test_an_expired_hold_cannot_be_cancelled_or_released(api):
    concert = api.concert(hold_ttl_s=1)
    schedule_id = concert["schedules"][0]["id"]
    fan = api.active(api.user(), concert["id"])
    held = api.http.post(
        "/v1/reservations", json={"schedule_id": schedule_id, "quantity": 2}, headers=fan
    ).json()
    sleep_past(held["expires_at"])
    cancel = api.http.delete(f"/v1/reservations/{held['id']}", headers=fan)
    assert cancel.status_code == 409 and cancel.json()["code"] == "HOLD_EXPIRED", cancel.text
    release = api.http.delete(
        f"/v1/reservations/{held['id']}/seats/{held['seats'][0]}", headers=fan
    )
    assert release.status_code == 409 and release.json()["code"] == "HOLD_EXPIRED", release.text
    after = api.http.get(f"/v1/reservations/{held['id']}", headers=fan).json()
    assert after["status"] == "EXPIRED"
    assert events_of(api, held["id"]).count("ReservationExpired") == 1
    assert "ReservationCanceled" not in events_of(api, held["id"])


def test_an_expired_session_is_refused_at_the_gate_and_the_next_fan_is_admitted(api):
    concert = api.concert(session_ttl_s=1, queue_capacity=1)
    cid = concert["id"]
    schedule_id = concert["schedules"][0]["id"]
    first_auth, second_auth = api.user(), api.user()
    first = api.join(first_auth, cid)
    assert first["status"] == "ACTIVE" and first["expires_at"] is not None
    second = api.join(second_auth, cid)
    assert (second["status"], second["position"]) == ("WAITING", 0)
    first_fan = first_auth | {"X-Queue-Token": first["queue_token"]}
    second_fan = second_auth | {"X-Queue-Token": second["queue_token"]}

    # While the first session lives, the waiting fan is refused with its place in line.
    refused = api.http.get(f"/v1/concerts/{cid}/schedules", headers=second_fan)
    if time.time() < seconds(first["expires_at"]):
        assert refused.status_code == 403, refused.text
        assert (refused.json()["code"], refused.json()["position"]) == ("QUEUE_NOT_ACTIVE", 0)
        assert "Retry-After" in refused.headers

    sleep_past(first["expires_at"])

    polled = api.http.get(f"/v1/concerts/{cid}/queue", headers=first_fan)
    assert polled.status_code == 200, polled.text
    assert (polled.json()["status"], polled.json()["ended_reason"]) == (
        "EXPIRED",
        "SESSION_EXPIRED",
    )
    for method, path, body in [
        ("GET", f"/v1/concerts/{cid}/schedules", None),
        ("GET", f"/v1/schedules/{schedule_id}/seats", None),
        ("POST", "/v1/reservations", {"schedule_id": schedule_id, "quantity": 1}),
    ]:
        r = api.http.request(method, path, json=body, headers=first_fan)
        assert r.status_code == 403 and r.json()["code"] == "QUEUE_TOKEN_EXPIRED", (path, r.text)

    # The waiting fan was admitted into the freed slot.
    admitted = api.http.get(f"/v1/concerts/{cid}/queue", headers=second_fan).json()
    answered = time.time()
    assert admitted["status"] in ("ACTIVE", "EXPIRED"), admitted
    if admitted["status"] == "EXPIRED":  # admitted, then its own 1-second session ran out
        assert admitted["ended_reason"] == "SESSION_EXPIRED"
        assert answered > seconds(first["expires_at"]) + 1
    else:
        seats = api.http.get(f"/v1/schedules/{schedule_id}/seats", headers=second_fan)
        if time.time() < seconds(admitted["expires_at"]):
            assert seats.status_code == 200, seats.text
    stats = api.http.get(f"/v1/admin/concerts/{cid}/stats", headers=api.admin).json()
    assert stats["queue_admitted_total"] == 2 and stats["queue_waiting"] == 0
