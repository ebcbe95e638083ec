"""``boxoffice drop`` against a real ``boxoffice serve`` process.

A few hundred virtual users buy 100 seats: the drop sells out, most users are turned away,
and the consistency check read back from the server (stats, events, the seat map, the users'
own reads) must pass. Also: the command line (``add_parser``, ``--json``, exit statuses).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from dataclasses import replace
from typing import Any, cast

import pytest

from boxoffice_api import drop
from boxoffice_api.drop import Check, DropConfig, DropResult, run_drop

USERS = 300
SEATS = 100
ROUTES = {
    "POST /v1/users",
    "POST /v1/auth/token",
    "POST /v1/me/balance/charges",
    "POST /v1/concerts/{concert_id}/queue",
    "GET /v1/concerts/{concert_id}/queue",
    "GET /v1/concerts/{concert_id}/schedules",
    "GET /v1/schedules/{schedule_id}/seats",
    "POST /v1/reservations",
    "POST /v1/payments",
    "DELETE /v1/concerts/{concert_id}/queue",
    "GET /v1/me/reservations",
    "GET /v1/me/balance",
}


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="boxoffice")
    drop.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["drop", *argv])
    status: int = args.run(args)
    return status


def test_drop_sells_out_and_the_server_agrees(start_server: Any) -> None:
    server = start_server()
    config = DropConfig(
        url=server.base_url,
        users=USERS,
        seats=SEATS,
        queue_capacity=50,
        concurrency=64,
        admin_key=server.env["BOXOFFICE_ADMIN_KEY"],
        poll_scale=0.1,  # poll every 0.5 s instead of 5 s
        seed=7,
    )
    result = asyncio.run(run_drop(config))
    report = result.format()

    # The consistency check, every rule of it.
    assert result.ok, report
    names = {c.name for c in result.consistency.checks}
    assert {
        "no seat sold twice",
        "seat map SOLD = seats of CONFIRMED reservations",
        "revenue = sum of successful payments",
        "balances = charges - payments",
    } <= names
    assert all(c.ok for c in result.consistency.checks), report

    # Sold out: every seat sold, most users refused, nobody failed or gave up.
    stats = result.consistency.stats
    assert result.concert_created
    assert stats["seats_total"] == SEATS
    assert stats["seats_sold"] == result.seats_bought == SEATS, report
    assert stats["seats_available"] == stats["seats_held"] == 0
    assert stats["reservations_pending"] == 0
    assert 0 < result.purchases <= SEATS
    assert stats["reservations_confirmed"] == stats["payments"] == result.purchases
    assert stats["revenue"] == result.revenue > 0
    assert result.outcomes["PURCHASED"] == result.purchases
    assert result.outcomes["SOLD_OUT"] == USERS - result.purchases > 0
    assert result.outcomes["GAVE_UP"] == result.outcomes["FAILED"] == 0, result.failures
    assert result.failures == []
    assert stats["queue_active"] == stats["queue_waiting"] == 0  # everybody paid or left
    assert stats["queue_joined_total"] == USERS + 1  # and the auditor

    # Only the refusals a sell-out gives; never a 5xx, never a lost answer.
    assert set(result.errors) <= {"SEAT_UNAVAILABLE"}, result.errors
    assert result.server_errors == 0
    assert set(result.statuses) <= {"200", "201", "409"}, result.statuses
    assert result.statuses.get("409", 0) == result.errors.get("SEAT_UNAVAILABLE", 0)

    # The figures add up.
    by_route = {e.route: e for e in result.endpoints}
    assert set(by_route) == ROUTES
    assert sum(e.requests for e in result.endpoints) == result.requests
    assert sum(e.errors for e in result.endpoints) == sum(result.errors.values())
    for route in ("POST /v1/users", "POST /v1/auth/token", "POST /v1/me/balance/charges"):
        assert by_route[route].requests == USERS
    assert by_route["POST /v1/payments"].errors == 0
    assert by_route["POST /v1/reservations"].requests >= result.purchases
    for e in result.endpoints:
        assert 0 < e.p50_ms <= e.p90_ms <= e.p99_ms <= e.max_ms, e
    assert result.requests_per_s == pytest.approx(result.requests / result.duration_s, rel=0.01)
    assert result.purchases_per_s == pytest.approx(result.purchases / result.duration_s, rel=0.01)
    assert result.last_purchase_s is not None and result.last_purchase_s <= result.duration_s
    assert 0 <= result.queue_wait_s["p50"] <= result.queue_wait_s["max"] <= result.duration_s
    assert "consistency check: PASS" in report
    assert "passwords    cheapest: one sign-up" in report
    assert "POST /v1/reservations" in report


def test_drop_command_prints_one_json_object(
    server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    status = _cli(
        [
            "--url",
            server.base_url,
            "--admin-key",
            server.env["BOXOFFICE_ADMIN_KEY"],
            "--users",
            "40",
            "--seats",
            "30",
            "--queue-capacity",
            "10",
            "--concurrency",
            "16",
            "--poll-scale",
            "0.05",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert status == 0, out
    assert out["ok"] is True and out["consistency"]["ok"] is True
    assert out["users"] == 40
    assert out["seats_bought"] == out["consistency"]["stats"]["seats_sold"] == 30
    assert out["revenue"] == out["consistency"]["stats"]["revenue"]
    assert {"p50_ms", "p90_ms", "p99_ms", "max_ms"} <= set(out["endpoints"][0])
    assert out["server_errors"] == 0
    # Said up front on stderr: the server's password-hash profile and a sign-up's cost; then
    # the progress bar with users done, purchases and errors.
    assert out["password_hash_profile"] == "cheapest" and out["sign_up_s"] > 0
    assert "PASSWORD_HASH_PROFILE=cheapest: one sign-up took" in captured.err
    assert "users done" in captured.err and "40/40" in captured.err
    assert f"purchases={out['purchases']}" in captured.err and "errors=" in captured.err


def test_the_notice_says_what_real_password_hashing_costs() -> None:
    notice = drop._hashing_notice("rfc9106_low_memory", 0.5, 0.25)
    assert "PASSWORD_HASH_PROFILE=rfc9106_low_memory: one sign-up took 0.50 s" in notice
    assert "one log-in 0.25 s" in notice
    assert "BOXOFFICE_PASSWORD_HASH_PROFILE=cheapest measures the drop" in notice
    assert "measures the drop" not in drop._hashing_notice("cheapest", 0.01, 0.01)


def test_drop_into_an_existing_concert_checks_the_difference(server: Any) -> None:
    key = server.env["BOXOFFICE_ADMIN_KEY"]
    first = asyncio.run(
        run_drop(DropConfig(url=server.base_url, admin_key=key, users=5, seats=40, poll_scale=0.05))
    )
    assert first.ok, first.format()
    second = asyncio.run(
        run_drop(
            DropConfig(
                url=server.base_url,
                admin_key=key,
                users=30,
                concert_id=first.concert_id,
                poll_scale=0.05,
                seed=1,
            )
        )
    )
    assert second.ok, second.format()
    assert not second.concert_created
    stats = second.consistency.stats
    assert stats["seats_sold"] == first.seats_bought + second.seats_bought == 40
    assert stats["revenue"] == first.revenue + second.revenue


def test_drop_exit_statuses(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = ["--url", server.base_url, "--users", "2"]
    assert _cli([*url, "--admin-key", "not-the-key"]) == 2  # 403 ADMIN_KEY_INVALID at setup
    monkeypatch.delenv("BOXOFFICE_ADMIN_KEY", raising=False)
    assert _cli(url) == 2  # no admin key at all
    assert _cli([*url, "--admin-key", "k", "--users", "0"]) == 2  # invalid settings

    real = run_drop

    async def failing(config: DropConfig) -> DropResult:
        result = await real(config)
        broken = [*result.consistency.checks, Check("planted", False, "a failed check")]
        return replace(result, consistency=replace(result.consistency, ok=False, checks=broken))

    monkeypatch.setattr(drop, "run_drop", failing)
    key = server.env["BOXOFFICE_ADMIN_KEY"]
    assert _cli([*url, "--admin-key", key, "--poll-scale", "0.05"]) == 1


def test_the_check_catches_a_seat_sold_twice_and_missing_money() -> None:
    """The checker itself, on planted readings: it must be able to fail."""

    def user(i: int, reservation_id: int, seats: list[int], amount: int) -> Any:
        u = drop._User(i, cast(Any, None), 1, DropConfig(url=""), f"u{i}@x", random.Random(i))
        u.logged_in = True
        u.payment = drop._Payment(reservation_id, reservation_id, amount)
        u.charged, u.paid, u.balance = amount, amount, 0
        u.reservations = [
            {
                "id": reservation_id,
                "status": "CONFIRMED",
                "seats": seats,
                "payment_id": reservation_id,
            }
        ]
        return u

    users = [user(1, 1, [10, 11], 200), user(2, 2, [11], 100)]  # seat 11 twice
    zero = dict.fromkeys(
        ["seats_sold", "reservations_confirmed", "payments", "revenue", "seats_available"], 0
    ) | {"seats_held": 0, "seats_total": 3}
    after = zero | {"seats_sold": 2, "reservations_confirmed": 2, "payments": 2, "revenue": 250}
    events = [
        {
            "seq": 1,
            "type": "PaymentSucceeded",
            "concert_id": 1,
            "reservation_id": r,
            "amount": a,
            "value": r,
        }
        for r, a in ((1, 200), (2, 100))
    ]
    checks = drop._consistency(
        users, True, zero, after | {"seats_available": 1}, events, True, {1: {10, 11}}, 1
    )
    failed = {c.name for c in checks if not c.ok}
    assert "no seat sold twice" in failed
    assert "revenue = sum of successful payments" in failed  # 250 in stats, 300 paid
    assert "stats seats_sold = seat map SOLD" not in failed
