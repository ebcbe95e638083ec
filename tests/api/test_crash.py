"""Crash recovery over HTTP: SIGKILL a real ``boxoffice serve`` and restart it on the same
SQLite file. Every acknowledged (2xx-answered) change must be there after the restart, and
nothing else; a clean SIGTERM stop must keep everything too.

The random rounds print their seed (``BOXOFFICE_HTTP_CRASH_SEED`` replays one); set
``BOXOFFICE_HTTP_CRASH_KILLS`` for more rounds than the default 5.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from boxoffice_api import testing

PASSWORD = "lantern-velvet-4817"  # passes the sign-up strength rule
PRICE = 50_000


class Client:
    """A small HTTP client for one server (which keeps its port across restarts)."""

    def __init__(self, server: Any) -> None:
        self.http = httpx.Client(base_url=server.base_url, timeout=30)
        self.admin = {"X-Admin-Key": server.env["BOXOFFICE_ADMIN_KEY"]}

    def close(self) -> None:
        self.http.close()

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        r = self.http.request(method, path, **kwargs)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        return r.json()

    def concert(self, rows: int = 2, seats_per_row: int = 5, **sale: Any) -> dict[str, Any]:
        body = testing.concert_body(
            title="Crash Concert",
            sections=[testing.section("A", rows, seats_per_row, "R", PRICE)],
            **({"queue_capacity": 100} | sale),
        )
        return dict(self.ok("POST", "/v1/admin/concerts", 201, json=body, headers=self.admin))

    def sign_up(self) -> str:
        email = f"crash-{uuid.uuid4().hex}@example.com"
        self.ok("POST", "/v1/users", 201, json={"email": email, "password": PASSWORD})
        return email

    def log_in(self, email: str, password: str = PASSWORD) -> dict[str, str]:
        token = self.ok("POST", "/v1/auth/token", json={"email": email, "password": password})
        return {"Authorization": f"Bearer {token['access_token']}"}

    def active(self, auth: dict[str, str], concert_id: int) -> dict[str, str]:
        r = self.http.post(f"/v1/concerts/{concert_id}/queue", headers=auth)
        assert r.status_code in (200, 201) and r.json()["status"] == "ACTIVE", r.text
        return auth | {"X-Queue-Token": r.json()["queue_token"]}

    def seats(self, fan: dict[str, str], schedule_id: int) -> dict[int, str]:
        page = self.ok("GET", f"/v1/schedules/{schedule_id}/seats", headers=fan)
        return {s["id"]: s["status"] for s in page["items"]}

    def stats(self, concert_id: int) -> dict[str, int]:
        return dict(self.ok("GET", f"/v1/admin/concerts/{concert_id}/stats", headers=self.admin))

    def events(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.ok(
                "GET",
                "/v1/admin/events",
                params={"after": after, "limit": 1000},
                headers=self.admin,
            )
            found += page["items"]
            if not page["next_cursor"]:
                return found
            after = int(page["next_cursor"])


# --- one acknowledged payment, then SIGKILL --------------------------------------------------


def test_an_acknowledged_payment_survives_sigkill(start_server):
    server = start_server()
    c = Client(server)
    concert = c.concert()
    cid, schedule_id = concert["id"], concert["schedules"][0]["id"]
    email = c.sign_up()
    auth = c.log_in(email)
    fan = c.active(auth, cid)
    held = c.ok(
        "POST",
        "/v1/reservations",
        201,
        json={"schedule_id": schedule_id, "quantity": 2},
        headers=fan,
    )
    c.ok("POST", "/v1/me/balance/charges", 201, json={"amount": 500_000}, headers=fan)
    pay = {"json": {"reservation_id": held["id"]}, "headers": fan | {"Idempotency-Key": "pay-1"}}
    payment = c.ok("POST", "/v1/payments", 201, **pay)
    server.kill()  # the 201 is in hand: the payment was acknowledged

    server.start()
    # The account survived: the password still logs in, a wrong one still does not, and the
    # access token issued before the crash is still accepted.
    assert c.http.post("/v1/auth/token", json={"email": email, "password": "wrong-pass"}).is_error
    auth_again = c.log_in(email)
    assert c.ok("GET", "/v1/me/balance", headers=auth)["balance"] == 500_000 - 2 * PRICE
    assert c.ok("GET", "/v1/me/balance", headers=auth_again)["balance"] == 500_000 - 2 * PRICE
    history = c.ok("GET", "/v1/me/balance/history", headers=auth_again)["items"]
    assert [(e["kind"], e["amount"], e["balance_after"], e["reservation_id"]) for e in history] == [
        ("CHARGE", 500_000, 500_000, None),
        ("PAYMENT", 2 * PRICE, 500_000 - 2 * PRICE, held["id"]),
    ]
    reservation = c.ok("GET", f"/v1/reservations/{held['id']}", headers=auth_again)
    assert reservation["status"] == "CONFIRMED" and reservation["payment_id"] == payment["id"]
    assert reservation["seats"] == held["seats"]
    # A retry of the acknowledged payment with its key answers the first result, once.
    assert c.ok("POST", "/v1/payments", 201, **pay) == payment
    assert c.ok("GET", "/v1/me/balance", headers=auth_again)["balance"] == 500_000 - 2 * PRICE

    viewer = c.active(c.log_in(c.sign_up()), cid)
    seats = c.seats(viewer, schedule_id)
    assert {s for s, st in seats.items() if st == "SOLD"} == set(held["seats"])
    assert sum(st == "AVAILABLE" for st in seats.values()) == len(seats) - 2
    # The paid session stayed ended (COMPLETED): its token does not pass the gate again.
    gate = c.http.get(f"/v1/schedules/{schedule_id}/seats", headers=fan)
    assert gate.status_code == 403 and gate.json()["code"] == "QUEUE_TOKEN_EXPIRED", gate.text
    s = c.stats(cid)
    assert (s["seats_sold"], s["reservations_confirmed"], s["payments"], s["revenue"]) == (
        2,
        1,
        1,
        2 * PRICE,
    )
    assert [e["type"] for e in c.events()].count("PaymentSucceeded") == 1
    c.close()


# --- a clean stop ------------------------------------------------------------------------------


def snapshot(
    c: Client, auths: list[dict[str, str]], viewer: dict[str, str], concert: dict[str, Any]
) -> Any:
    """Everything users and operators can read about the concert and the users."""
    schedule_id = concert["schedules"][0]["id"]
    return {
        "balances": [c.ok("GET", "/v1/me/balance", headers=a) for a in auths],
        "histories": [c.ok("GET", "/v1/me/balance/history", headers=a) for a in auths],
        "reservations": [c.ok("GET", "/v1/me/reservations", headers=a) for a in auths],
        "seats": c.ok("GET", f"/v1/schedules/{schedule_id}/seats", headers=viewer),
        "stats": c.stats(concert["id"]),
        "events": c.events(),
        "health": c.ok("GET", "/healthz"),
    }


def test_a_sigterm_stop_and_a_later_sigkill_keep_everything(start_server):
    server = start_server()
    c = Client(server)
    concert = c.concert()
    cid, schedule_id = concert["id"], concert["schedules"][0]["id"]
    emails = [c.sign_up() for _ in range(3)]
    auths = [c.log_in(e) for e in emails]
    fans = [c.active(a, cid) for a in auths]
    viewer = c.active(c.log_in(c.sign_up()), cid)

    def hold(fan: dict[str, str], n: int) -> dict[str, Any]:
        body = {"schedule_id": schedule_id, "quantity": n}
        return dict(c.ok("POST", "/v1/reservations", 201, json=body, headers=fan))

    for fan, amount in zip(fans, [150_000, 30_000, 60_000], strict=True):
        c.ok("POST", "/v1/me/balance/charges", 201, json={"amount": amount}, headers=fan)
    paid = hold(fans[0], 2)
    c.ok("POST", "/v1/payments", 201, json={"reservation_id": paid["id"]}, headers=fans[0])
    pending = hold(fans[1], 1)
    canceled = hold(fans[2], 1)
    c.ok("DELETE", f"/v1/reservations/{canceled['id']}", headers=fans[2])
    short = c.http.post("/v1/payments", json={"reservation_id": pending["id"]}, headers=fans[1])
    assert short.status_code == 409 and short.json()["code"] == "INSUFFICIENT_BALANCE"
    before = snapshot(c, auths, viewer, concert)
    assert before["stats"]["seats_sold"] == 2 and before["stats"]["seats_held"] == 1

    server.stop()  # SIGTERM: a clean shutdown
    server.start()
    assert snapshot(c, auths, viewer, concert) == before
    assert [c.log_in(e) for e in emails]  # every account still logs in

    # More changes on top of the clean stop's snapshot, then a SIGKILL: still all there.
    c.ok("POST", "/v1/me/balance/charges", 201, json={"amount": 20_000}, headers=fans[1])
    c.ok("POST", "/v1/payments", 201, json={"reservation_id": pending["id"]}, headers=fans[1])
    after = snapshot(c, auths, viewer, concert)
    assert after["stats"]["seats_sold"] == 3 and after["stats"]["revenue"] == 3 * PRICE
    server.kill()
    server.start()
    assert snapshot(c, auths, viewer, concert) == after
    c.close()


# --- random SIGKILLs under a stream of mixed requests -----------------------------------------


@dataclass
class Fan:
    """One user driven by one thread, and what the server acknowledged to it."""

    email: str
    auth: dict[str, str]
    rng: random.Random
    fan: dict[str, str] | None = None  # auth + an ACTIVE queue token
    pending: list[dict[str, Any]] = field(default_factory=list)
    charges: dict[int, int] = field(default_factory=dict)  # acknowledged: entry id -> amount
    payments: dict[int, tuple[int, int]] = field(default_factory=dict)  # reservation -> (id, won)
    holds: set[int] = field(default_factory=set)  # acknowledged reservation ids
    known: dict[int, dict[str, Any]] = field(default_factory=dict)  # history seen after restarts
    in_flight: tuple[str, int, int | None] | None = None  # (kind, amount, reservation) unanswered
    unexpected: list[str] = field(default_factory=list)


def drive(http: httpx.Client, f: Fan, cid: int, schedule_id: int, hot: list[int]) -> None:
    """Mixed requests until the server goes away (a TransportError); closes ``http``."""
    try:
        while True:
            if f.fan is None:
                r = http.post(f"/v1/concerts/{cid}/queue", headers=f.auth)
                if r.status_code in (200, 201) and r.json()["status"] == "ACTIVE":
                    f.fan = f.auth | {"X-Queue-Token": r.json()["queue_token"]}
                elif r.status_code >= 500:
                    f.unexpected.append(r.text)
                continue
            op = f.rng.choices(["charge", "hold", "pay", "cancel"], weights=[3, 3, 3, 1])[0]
            if op == "charge":
                amount = f.rng.randint(1, 12) * 10_000
                f.in_flight = ("CHARGE", amount, None)
                r = http.post("/v1/me/balance/charges", json={"amount": amount}, headers=f.auth)
                if r.status_code == 201:
                    f.charges[r.json()["id"]] = amount
            elif op == "hold":
                if f.rng.random() < 0.5:  # a few hot seats everybody wants
                    body = {"schedule_id": schedule_id, "seat_ids": f.rng.sample(hot, 2)}
                else:
                    body = {"schedule_id": schedule_id, "quantity": f.rng.randint(1, 2)}
                f.in_flight = ("HOLD", 0, None)
                r = http.post("/v1/reservations", json=body, headers=f.fan)
                if r.status_code == 201:
                    f.holds.add(r.json()["id"])
                    f.pending.append(r.json())
            elif op == "pay" and f.pending:
                res = f.pending.pop(0)
                f.in_flight = ("PAYMENT", res["amount"], res["id"])
                body = {"reservation_id": res["id"]}
                r = http.post("/v1/payments", json=body, headers=f.fan)
                if r.status_code == 201:
                    f.payments[res["id"]] = (r.json()["id"], r.json()["amount"])
                    f.fan = None  # the payment ended the queue session
                elif r.status_code == 409 and r.json()["code"] == "INSUFFICIENT_BALANCE":
                    f.pending.append(res)  # still PENDING: charge and retry
            elif op == "cancel" and f.pending:
                res = f.pending.pop(f.rng.randrange(len(f.pending)))
                f.in_flight = ("CANCEL", 0, res["id"])
                r = http.delete(f"/v1/reservations/{res['id']}", headers=f.auth)
            else:
                continue
            f.in_flight = None
            if r.status_code >= 500:
                f.unexpected.append(r.text)
            elif r.status_code == 403:
                f.fan = None  # join again
    except httpx.TransportError:
        pass  # the server was killed; f.in_flight is the request without an answer
    finally:
        http.close()


def check_fan(c: Client, f: Fan) -> tuple[int, int]:
    """The user's wallet after a restart holds every acknowledged change and at most the one
    unanswered request besides; returns (balance, paid won)."""
    f.auth = c.log_in(f.email)  # the account survived
    balance = c.ok("GET", "/v1/me/balance", headers=f.auth)["balance"]
    history = c.ok("GET", "/v1/me/balance/history", headers=f.auth)["items"]
    by_id = {e["id"]: e for e in history}
    for entry_id, entry in f.known.items():
        assert by_id.get(entry_id) == entry, ("lost or changed after a restart", entry)
    for entry_id, amount in f.charges.items():
        assert entry_id in by_id, ("acknowledged charge lost", entry_id, amount)
        assert (by_id[entry_id]["kind"], by_id[entry_id]["amount"]) == ("CHARGE", amount)
    paid = {e["reservation_id"]: e for e in history if e["kind"] == "PAYMENT"}
    assert len(paid) == sum(e["kind"] == "PAYMENT" for e in history), "a reservation paid twice"
    for reservation_id, (_, amount) in f.payments.items():
        assert reservation_id in paid, ("acknowledged payment lost", reservation_id)
        assert paid[reservation_id]["amount"] == amount
    acknowledged = set(f.known) | set(f.charges)
    acknowledged |= {paid[r]["id"] for r in f.payments}
    extra = [e for e in history if e["id"] not in acknowledged]
    assert len(extra) <= 1, ("changes nobody asked for", extra, f.in_flight)
    if extra:  # only the request the kill left unanswered may have landed
        (e,) = extra
        assert f.in_flight is not None, ("unacknowledged change without a request", e)
        assert (e["kind"], e["amount"], e["reservation_id"]) == f.in_flight, (e, f.in_flight)
    # The balance is the sum of the entries (charges - payments), never negative.
    running = 0
    for e in history:
        running += e["amount"] if e["kind"] in ("CHARGE", "REFUND") else -e["amount"]
        assert e["balance_after"] == running >= 0, history
    assert balance == running >= 0
    # Every acknowledged payment's reservation is CONFIRMED by that payment.
    mine = {r["id"]: r for r in c.ok("GET", "/v1/me/reservations", headers=f.auth)["items"]}
    assert f.holds <= set(mine), ("acknowledged hold lost", f.holds - set(mine))
    for reservation_id, (payment_id, _) in f.payments.items():
        assert mine[reservation_id]["status"] == "CONFIRMED"
        assert mine[reservation_id]["payment_id"] == payment_id
    confirmed = {r for r, res in mine.items() if res["status"] == "CONFIRMED"}
    assert confirmed == set(paid), "CONFIRMED reservations and PAYMENT entries disagree"
    # Start the next round from what the server now says.
    f.known = by_id
    f.charges.clear()
    f.payments.clear()
    f.in_flight = None
    f.fan = None
    f.pending = [r for r in mine.values() if r["status"] == "PENDING"]
    return balance, sum(e["amount"] for e in paid.values())


def check_concert(c: Client, fans: list[Fan], viewer_email: str, concert: dict[str, Any]) -> None:
    """No seat sold or held twice; the seat map and the stats agree with the reservations."""
    cid, schedule_id = concert["id"], concert["schedules"][0]["id"]
    reservations = [
        r for f in fans for r in c.ok("GET", "/v1/me/reservations", headers=f.auth)["items"]
    ]
    sold = [s for r in reservations if r["status"] == "CONFIRMED" for s in r["seats"]]
    held = [s for r in reservations if r["status"] == "PENDING" for s in r["seats"]]
    assert len(sold) == len(set(sold)), "a seat is SOLD by two reservations"
    assert len(held + sold) == len(set(held + sold)), "a seat is held twice or held and sold"
    viewer = c.active(c.log_in(viewer_email), cid)
    seats = c.seats(viewer, schedule_id)
    assert {s for s, st in seats.items() if st == "SOLD"} == set(sold)
    assert {s for s, st in seats.items() if st == "HELD"} == set(held)
    stats = c.stats(cid)
    confirmed = [r for r in reservations if r["status"] == "CONFIRMED"]
    assert stats["seats_sold"] == len(sold)
    assert stats["seats_held"] == len(held)
    assert stats["seats_available"] == len(seats) - len(sold) - len(held)
    assert stats["reservations_confirmed"] == len(confirmed) == stats["payments"]
    assert stats["revenue"] == sum(r["amount"] for r in confirmed)


def test_random_sigkills_under_mixed_traffic_lose_no_acknowledged_change(start_server):
    kills = int(os.environ.get("BOXOFFICE_HTTP_CRASH_KILLS", "5"))
    seed = int(os.environ.get("BOXOFFICE_HTTP_CRASH_SEED", str(random.randrange(2**32))))
    print(f"BOXOFFICE_HTTP_CRASH_SEED={seed} kills={kills}")
    rng = random.Random(seed)
    # The per-user limits off: four fans drive every kind of request for the whole test.
    server = start_server(holds_per_minute="0")
    c = Client(server)
    concert = c.concert(
        rows=20, seats_per_row=25, max_seats_per_reservation=4, max_seats_per_user=None
    )
    cid, schedule_id = concert["id"], concert["schedules"][0]["id"]
    fans = []
    for i in range(4):
        email = c.sign_up()
        fans.append(Fan(email, c.log_in(email), random.Random(seed * 31 + i)))
    viewer_email = c.sign_up()
    hot = sorted(c.seats(c.active(c.log_in(viewer_email), cid), schedule_id))[:6]
    totals = {"charged": 0, "paid": 0}

    for round_ in range(kills):
        # The clients are made before the clock starts: making one (its TLS context) takes
        # most of a second on a busy machine, longer than the time to the kill.
        clients = [httpx.Client(base_url=server.base_url, timeout=30) for _ in fans]
        threads = [
            threading.Thread(target=drive, args=(http, f, cid, schedule_id, hot))
            for http, f in zip(clients, fans, strict=True)
        ]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.1, 0.6))
        server.kill()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        for f in fans:
            assert not f.unexpected, (round_, f.unexpected)
        totals["charged"] += sum(len(f.charges) for f in fans)
        totals["paid"] += sum(len(f.payments) for f in fans)
        server.start()
        wallets = [check_fan(c, f) for f in fans]
        check_concert(c, fans, viewer_email, concert)
        # Money is conserved: what the users paid is the concert's revenue.
        assert sum(paid for _, paid in wallets) == c.stats(cid)["revenue"], (round_, seed)

    # The stream really ran (a test that acknowledged nothing would prove nothing).
    assert totals["charged"] > 0 and totals["paid"] > 0, totals
    # And a clean stop after all that keeps everything.
    before = [c.ok("GET", "/v1/me/balance/history", headers=f.auth) for f in fans]
    stats = c.stats(cid)
    server.stop()
    server.start()
    assert [c.ok("GET", "/v1/me/balance/history", headers=f.auth) for f in fans] == before
    assert c.stats(cid) == stats
    check_concert(c, fans, viewer_email, concert)
    c.close()
