"""The HTTP layer decides nothing: a hold's shape, join's 200 or 201, the seats page and the
text and key limits are the engine's answers (docs/engine-rules.md), over a real server."""

from __future__ import annotations

from typing import Any

import pytest
from problems import problem

import boxoffice as bo
from boxoffice_api.openapi import document

LIMITS = bo.Limits()


def _hold(api: Any, headers: dict[str, str], body: dict[str, Any]) -> Any:
    return api.http.post("/v1/reservations", json=body, headers=headers)


def _held(api: Any, concert_id: int) -> int:
    stats = api.http.get(f"/v1/admin/concerts/{concert_id}/stats", headers=api.admin)
    assert stats.status_code == 200, stats.text
    return int(stats.json()["seats_held"])


@pytest.mark.parametrize(
    ("shape", "detail"),
    [
        ({}, "give either seat_ids or a positive quantity"),
        ({"seat_ids": []}, "give either seat_ids or a positive quantity"),
        ({"quantity": 0}, "give either seat_ids or a positive quantity"),
        ({"quantity": -1}, "give either seat_ids or a positive quantity"),
        ({"seat_ids": [1], "quantity": 1}, "give either seat_ids or a positive quantity"),
        ({"seat_ids": [1], "grade": "VIP"}, "grade goes with quantity only"),
    ],
)
def test_a_malformed_hold_is_the_engines_422(api, shape, detail):
    concert = api.concert()
    fan = api.active(api.user(), concert["id"])
    body = {"schedule_id": concert["schedules"][0]["id"]} | shape
    answer = problem(_hold(api, fan, body), 422, "INVALID_ARGUMENT")
    assert answer["detail"] == detail
    assert _held(api, concert["id"]) == 0


def test_an_empty_seat_list_with_a_quantity_is_a_best_available_hold(api):
    # The engine's rule: explicit seats are a non-empty list, so [] says "no explicit seats".
    concert = api.concert()
    fan = api.active(api.user(), concert["id"])
    body = {"schedule_id": concert["schedules"][0]["id"], "seat_ids": [], "quantity": 2}
    r = _hold(api, fan, body)
    assert r.status_code == 201, r.text
    assert len(r.json()["seats"]) == 2


def test_join_is_201_for_a_new_token_and_200_for_the_live_one(api):
    concert = api.concert(queue_capacity=1)
    first, second = api.user(), api.user()
    url = f"/v1/concerts/{concert['id']}/queue"
    made = api.http.post(url, headers=first)
    assert made.status_code == 201, made.text
    again = api.http.post(url, headers=first)
    assert again.status_code == 200, again.text
    assert again.json()["token_id"] == made.json()["token_id"]
    waiting = api.http.post(url, headers=second)
    assert (waiting.status_code, waiting.json()["status"]) == (201, "WAITING")
    assert api.http.post(url, headers=second).status_code == 200
    left = api.http.delete(url, headers=first | {"X-Queue-Token": made.json()["queue_token"]})
    assert left.status_code == 200, left.text
    rejoined = api.http.post(url, headers=first)
    assert rejoined.status_code == 201, rejoined.text
    assert rejoined.json()["token_id"] != made.json()["token_id"]


def test_the_seats_page_answers_the_gate_before_the_schedule(api):
    concert = api.concert(queue_capacity=1)
    other = api.concert()
    sid = concert["schedules"][0]["id"]
    fan = api.active(api.user(), concert["id"])
    waiting_auth = api.user()
    joined = api.join(waiting_auth, concert["id"])
    assert joined["status"] == "WAITING"
    waiting = waiting_auth | {"X-Queue-Token": joined["queue_token"]}

    page = api.http.get(f"/v1/schedules/{sid}/seats", params={"limit": 3}, headers=fan)
    assert page.status_code == 200, page.text
    assert [s["label"] for s in page.json()["items"]] == ["A-1-1", "A-1-2", "A-1-3"]
    for schedule_id in (sid, 999_999_999):
        body = problem(
            api.http.get(f"/v1/schedules/{schedule_id}/seats", headers=waiting),
            403,
            "QUEUE_NOT_ACTIVE",
        )
        assert body["position"] == 0
    problem(api.http.get("/v1/schedules/999999999/seats", headers=fan), 404, "SCHEDULE_NOT_FOUND")
    other_sid = other["schedules"][0]["id"]
    problem(
        api.http.get(f"/v1/schedules/{other_sid}/seats", headers=fan), 403, "QUEUE_TOKEN_INVALID"
    )


# --- one source for the limits ------------------------------------------------------------


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(doc["components"]["schemas"][name]["properties"])


def test_the_http_text_and_key_limits_are_the_engines():
    doc = document()
    text = {
        ("ConcertIn", "title"): _schema(doc, "ConcertIn")["title"],
        ("ConcertIn", "artist"): _schema(doc, "ConcertIn")["artist"],
        ("ConcertIn", "venue"): _schema(doc, "ConcertIn")["venue"],
        ("SectionIn", "name"): _schema(doc, "SectionIn")["name"],
        ("SectionIn", "grade"): _schema(doc, "SectionIn")["grade"],
        ("HoldIn", "grade"): _schema(doc, "HoldIn")["grade"],
    }
    for where, schema in text.items():
        assert schema["maxLength"] == LIMITS.text_length_max, where
    schedules = _schema(doc, "ConcertIn")["schedules"]
    assert schedules["maxItems"] == LIMITS.schedules_per_concert_max
    sections = _schema(doc, "ScheduleIn")["sections"]
    assert sections["maxItems"] == LIMITS.sections_per_schedule_max
    keys = [
        parameter["schema"]
        for operations in doc["paths"].values()
        for op in operations.values()
        for parameter in op.get("parameters", [])
        if parameter["name"] == "Idempotency-Key"
    ]
    assert len(keys) == 3  # hold, pay, charge
    for schema in keys:
        assert schema["maxLength"] == LIMITS.idempotency_key_length_max


def _concert_body(title: str) -> dict[str, Any]:
    section = {"name": "A", "rows": 1, "seats_per_row": 2, "grade": "VIP", "price": 1}
    return {
        "title": title,
        "schedules": [{"starts_at": "2030-01-01T19:00:00Z", "sections": [section]}],
    }


@pytest.mark.parametrize(
    ("title", "status"),
    [
        ("x" * LIMITS.text_length_max, 201),
        ("x" * (LIMITS.text_length_max + 1), 422),  # the schema: too many characters
        ("공" * 256, 422),  # the schema, whatever the bytes
        ("공" * (LIMITS.text_length_max // 3), 201),  # 3 bytes each: within the bytes
        ("공" * (LIMITS.text_length_max // 3 + 1), 422),  # the engine: too many bytes
    ],
)
def test_a_title_beyond_the_engines_limit_is_a_clear_422(api, title, status):
    r = api.http.post("/v1/admin/concerts", json=_concert_body(title), headers=api.admin)
    if status == 201:
        assert r.status_code == 201, r.text
        assert r.json()["title"] == title
    else:
        problem(r, 422, "INVALID_ARGUMENT")


@pytest.mark.parametrize(
    ("key", "status"),
    [
        (b"k" * LIMITS.idempotency_key_length_max, 201),
        (b"k" * (LIMITS.idempotency_key_length_max + 1), 422),
        # Header bytes are Latin-1 characters; as UTF-8 each of these takes two bytes.
        (b"\xe9" * LIMITS.idempotency_key_length_max, 422),
    ],
)
def test_an_idempotency_key_beyond_the_engines_limit_is_a_clear_422(api, key, status):
    fan = api.user()
    r = api.http.post(
        "/v1/me/balance/charges", json={"amount": 1_000}, headers=fan | {"Idempotency-Key": key}
    )
    if status == 201:
        assert r.status_code == 201, r.text
    else:
        problem(r, 422, "INVALID_ARGUMENT")
