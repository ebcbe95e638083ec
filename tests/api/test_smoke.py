"""The shortest drop over HTTP against a real server: sign up, queue, hold, charge, pay."""

from __future__ import annotations


def test_a_fan_buys_two_seats(api):
    concert = api.concert()
    schedule_id = concert["schedules"][0]["id"]
    fan = api.active(api.user(), concert["id"])
    held = api.http.post(
        "/v1/reservations", json={"schedule_id": schedule_id, "quantity": 2}, headers=fan
    )
    assert held.status_code == 201, held.text
    assert held.json()["status"] == "PENDING" and held.json()["amount"] == 200_000
    assert api.charge(fan, 250_000).json()["balance"] == 250_000
    paid = api.http.post("/v1/payments", json={"reservation_id": held.json()["id"]}, headers=fan)
    assert paid.status_code == 201, paid.text
    assert paid.json()["balance"] == 50_000
    seats = api.http.get(f"/v1/schedules/{schedule_id}/seats", headers=fan)
    # The payment ended the queue session: the gate now refuses the token.
    assert seats.status_code == 403 and seats.json()["code"] == "QUEUE_TOKEN_EXPIRED"
    mine = api.http.get(f"/v1/reservations/{held.json()['id']}", headers=fan).json()
    assert mine["status"] == "CONFIRMED"
