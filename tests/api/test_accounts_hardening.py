"""Accounts under attack: log-in floods, weak passwords, guessing from many addresses.

Each test starts its own ``boxoffice serve`` on 127.0.0.1 with the settings it needs; requests
come from several loopback source addresses (127.0.0.2, 127.0.0.3, ...: Linux routes all of
127.0.0.0/8 to the loopback interface) to play different clients. Bounded in requests and
time; every server is stopped by its pid (the ``start_server`` fixture).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from problems import problem

from boxoffice_api.errors import ApiError
from boxoffice_api.security import PasswordHashing
from boxoffice_api.service import LoginThrottle

PASSWORD = "lantern-velvet-4817"


def client(srv: Any, address: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=srv.base_url, timeout=60, transport=transport)


def sign_up(srv: Any, password: str = PASSWORD) -> str:
    email = f"acct-{uuid.uuid4().hex[:10]}@example.com"
    with client(srv) as http:
        r = http.post("/v1/users", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    return email


def log_in(srv: Any, email: str, password: str, address: str = "127.0.0.1") -> httpx.Response:
    with client(srv, address) as http:
        return http.post("/v1/auth/token", json={"email": email, "password": password})


async def _flood(base_url: str, bodies: list[dict[str, str]], address: str) -> list[int]:
    """Posts every body to /v1/auth/token at once, one connection each, from ``address``."""
    clients = [
        httpx.AsyncClient(
            base_url=base_url,
            timeout=120,
            transport=httpx.AsyncHTTPTransport(local_address=address),
        )
        for _ in bodies
    ]
    try:
        await asyncio.gather(*(c.get("/healthz") for c in clients))  # connections open first
        answers = await asyncio.gather(
            *(c.post("/v1/auth/token", json=b) for c, b in zip(clients, bodies, strict=True))
        )
        for r in answers:
            if r.status_code in (429, 503):
                assert int(r.headers["retry-after"]) >= 1, r.headers
                assert r.headers["content-type"].startswith("application/problem+json")
        return [r.status_code for r in answers]
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def random_logins(n: int) -> list[dict[str, str]]:
    return [
        {"email": f"{uuid.uuid4().hex}@example.com", "password": uuid.uuid4().hex} for _ in range(n)
    ]


def vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def gauges(srv: Any) -> dict[str, float]:
    admin = {"X-Admin-Key": srv.env["BOXOFFICE_ADMIN_KEY"]}  # in case /metrics asks for it
    text = httpx.get(f"{srv.base_url}/metrics", headers=admin, timeout=30).text
    out = {}
    for line in text.splitlines():
        if line.startswith("boxoffice_password_hashes_"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


# --- password hashing has its own bounded pool ---------------------------------


def hashing_server(start_server: Any, queue_max: int, per_client_max: int) -> Any:
    """A server with the real hash profile (64 MiB, tens to hundreds of ms a hash) on one
    hashing thread."""
    return start_server(
        password_hash_profile="rfc9106_low_memory",
        password_hash_threads="1",
        password_hash_queue_max=str(queue_max),
        password_hash_per_client_max=str(per_client_max),
    )


def test_a_login_flood_is_bounded_by_the_hashing_pool_and_refused_with_retry_after(
    start_server,
):
    """With the real hash profile (64 MiB, tens to hundreds of ms a hash), 16 log-ins at once
    get at most 1 thread + 2 waiting: the rest are 503 OVERLOADED at once, with Retry-After,
    memory grows by at most one hash's 64 MiB, and the gauges show the bound."""
    srv = hashing_server(start_server, queue_max=2, per_client_max=100)
    before = gauges(srv)
    assert before["boxoffice_password_hashes_threads"] == 1
    assert before["boxoffice_password_hashes_running"] == 0
    peak_before_kib = vm_kib(srv.proc.pid, "VmHWM")

    statuses = asyncio.run(_flood(srv.base_url, random_logins(16), "127.0.0.1"))
    counts = Counter(statuses)
    assert set(counts) <= {401, 503}, counts
    assert counts[503] >= 1, counts  # more than threads + queue_max arrived at once
    assert counts[401] >= 3, counts  # those admitted were checked (and are wrong)

    # Each argon2id hash of this profile takes 64 MiB: one thread, one at a time. (Before,
    # the default thread pool ran min(32, cpus + 4) of them at once.)
    grown_mib = (vm_kib(srv.proc.pid, "VmHWM") - peak_before_kib) / 1024
    assert grown_mib < 64 + 32, f"peak RSS grew {grown_mib:.0f} MiB"

    after = gauges(srv)
    assert after["boxoffice_password_hashes_running"] == 0
    assert after["boxoffice_password_hashes_waiting"] == 0
    assert after['boxoffice_password_hashes_refused_total{reason="busy"}'] == counts[503]


def test_one_address_flooding_cannot_take_the_pool_from_another(start_server):
    """A client address has at most ``password_hash_per_client_max`` log-ins admitted; beyond,
    429 TOO_MANY_PASSWORD_CHECKS. The owner, from another address, logs in meanwhile."""
    srv = hashing_server(start_server, queue_max=50, per_client_max=2)
    email = sign_up(srv)

    async def both() -> tuple[list[int], httpx.Response]:
        flood = asyncio.create_task(_flood(srv.base_url, random_logins(12), "127.0.0.2"))
        await asyncio.sleep(0.2)  # the flood is in
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.3")
        async with httpx.AsyncClient(
            base_url=srv.base_url, timeout=120, transport=transport
        ) as owner:
            r = await owner.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        return await flood, r

    statuses, owner = asyncio.run(both())
    counts = Counter(statuses)
    assert set(counts) <= {401, 429}, counts
    assert counts[429] >= 1, counts
    assert owner.status_code == 200 and owner.json()["access_token"], owner.text
    assert gauges(srv)['boxoffice_password_hashes_refused_total{reason="client"}'] == counts[429]


def test_waiting_work_is_served_by_client_address_in_turn():
    """One thread; address A queues 6 hashes, then B one: B's runs second or third (after A's
    running one and at most one more), not after all of A's."""
    pool = PasswordHashing(threads=1, queue_max=100, per_client_max=100)
    order: list[str] = []

    def work(label: str) -> str:
        time.sleep(0.02)
        order.append(label)
        return label

    async def run(client: str, label: str) -> str:
        with pool.admit(client) as slot:
            return await slot.run(work, label)

    async def main() -> list[str]:
        calls = [run("10.0.0.1", f"A{n}") for n in range(6)] + [run("10.0.0.2", "B")]
        return await asyncio.gather(*calls)

    try:
        assert asyncio.run(main()) == [f"A{n}" for n in range(6)] + ["B"]
    finally:
        pool.close()
    assert order.index("B") <= 2, order
    assert pool.running == 0 and pool.waiting == 0


# --- weak passwords at sign-up, any password at log-in ---------------------------


@pytest.mark.parametrize(
    "password",
    ["12345678", " " * 8, "password1", "qwertyuiop", "iloveyou1", "aaaaaaaaaaaa", "{local}2024"],
    ids=repr,
)
def test_a_weak_password_is_refused_at_sign_up_with_advice(server, password):
    local = f"weakling{uuid.uuid4().hex[:4]}"
    email = f"{local}@example.com"
    password = password.format(local=local)
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        r = http.post("/v1/users", json={"email": email, "password": password})
        body = problem(r, 422, "WEAK_PASSWORD")
        assert "too easy to guess" in body["detail"]
        assert password not in body["detail"]  # advice, never the password itself
        # Nothing was created: the same email signs up with a strong password.
        strong = http.post("/v1/users", json={"email": email, "password": PASSWORD})
        assert strong.status_code == 201, strong.text


def test_the_weak_password_advice_is_zxcvbns(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        r = http.post(
            "/v1/users", json={"email": f"{uuid.uuid4().hex}@example.com", "password": "12345678"}
        )
    assert "This is a top-10 common password." in problem(r, 422, "WEAK_PASSWORD")["detail"]


@pytest.mark.parametrize(
    "password", ["", "x", "short7!", "12345678", " " * 8, "y" * 300, "z" * 60_000], ids=len
)
def test_a_wrong_password_of_any_length_is_401_at_log_in(server, password):
    """Log-in never applies the sign-up rules: a wrong password is INVALID_CREDENTIALS
    whatever its length or strength, never 422 (which would say it cannot be the password)."""
    email = sign_up(server)
    r = log_in(server, email, password, address="127.0.0.4")
    problem(r, 401, "INVALID_CREDENTIALS")
    unknown = log_in(server, f"nobody-{uuid.uuid4().hex}@example.com", password, "127.0.0.4")
    problem(unknown, 401, "INVALID_CREDENTIALS")


# --- a per-account limit with exponential back-off --------------------------------


def test_guesses_from_many_addresses_lock_the_account_out_with_doubling_lockouts(start_server):
    """After ``login_account_failures_free`` failures of one email from any addresses, each
    further failure doubles its lock-out (1 s, 2 s, then the 2 s cap here); while locked,
    every attempt is 429 LOGIN_THROTTLED with Retry-After, the right password too, and does
    not lengthen the lock-out; a success resets it all."""
    srv = start_server(
        login_attempts_per_minute="100",  # the per-address limit stays out of the way
        login_account_failures_free="2",
        login_account_lockout_base_s="1",
        login_account_lockout_max_s="2",
    )
    email = sign_up(srv)
    addresses = iter(f"127.0.0.{n}" for n in range(2, 60))

    def guess(expect: int) -> httpx.Response:
        r = log_in(srv, email, f"guess-{uuid.uuid4().hex}", next(addresses))
        assert r.status_code == expect, r.text
        return r

    guess(401)
    guess(401)  # the free failures
    guess(401)  # the first failure beyond them: locked out for 1 s
    for lockout_s in (1, 2, 2):  # the lock-out the last failure started
        locked = problem(guess(429), 429, "LOGIN_THROTTLED")
        assert lockout_s / 2 < locked["retry_after_s"] <= lockout_s, (lockout_s, locked)
        owner = log_in(srv, email, PASSWORD, next(addresses))
        problem(owner, 429, "LOGIN_THROTTLED")  # the right password is not even tested
        assert 1 <= int(owner.headers["retry-after"]) <= lockout_s
        time.sleep(locked["retry_after_s"] + 0.1)
        guess(401)  # the lock-out is over: one more guess, which starts the next one

    time.sleep(2.1)
    assert log_in(srv, email, PASSWORD, next(addresses)).status_code == 200
    guess(401)  # reset by the success: free failures again
    guess(401)


def test_the_account_limit_keeps_bounded_memory_and_the_cap():
    throttle = LoginThrottle(
        1000, account_failures_free=3, account_lockout_max_s=900.0, keys_max=100
    )
    now = 1_000_000.0
    for n in range(5_000):  # made-up emails: only the 100 latest failures are kept
        throttle.failed(f"{n}@example.com", "10.0.0.1", now)
    assert len(throttle._accounts) <= 100 and len(throttle._failures) <= 100
    for n in range(200):  # however many failures, the lock-out never exceeds the cap
        throttle.failed("victim@example.com", f"10.0.{n}.2", now + n)
    with pytest.raises(ApiError) as locked:
        throttle.check("victim@example.com", "10.9.9.9", now + 200)
    assert locked.value.code == "LOGIN_THROTTLED"
    assert locked.value.retry_after_s is not None and locked.value.retry_after_s <= 900
    throttle.check("victim@example.com", "10.9.9.9", now + 199 + 900)  # over after the cap
