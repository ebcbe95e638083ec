"""Security hardening: the items no other module covers, against real servers.

Where each hardening item is tested (``here`` is this module):

- JWT algorithm pinned, ``none`` and confusion refused: test_authorization
  test_a_forged_access_token_is_401, test_access_token_claims_are_checked; test_flows
  test_a_forged_queue_token_is_refused; here test_tokens_under_another_algorithm_are_refused.
- exp, aud, iss checked: test_authorization test_access_token_claims_are_checked; here
  test_queue_token_claims_are_checked.
- Queue tokens bound to user and concert: test_authorization
  test_another_users_queue_token_is_invalid_even_with_your_own_access_token; test_flows
  test_a_token_for_another_concert_is_invalid; here test_queue_token_claims_are_checked.
- Authorization on every resource: test_authorization (reservations, wallet, every user
  endpoint); test_flows test_admin_endpoints_need_the_admin_key; here
  test_every_protected_operation_refuses_a_request_without_its_credentials; test_schemathesis
  (the ``ignored_auth`` check on every operation).
- Admin key compared in constant time: here test_the_admin_key_is_compared_in_constant_time.
- Passwords hashed with argon2id, never logged: here
  test_passwords_are_stored_only_as_argon2id_hashes,
  test_no_secret_reaches_the_logs_or_an_error_body.
- Login throttled (429): test_http_errors
  test_repeated_failed_logins_are_throttled_with_retry_after.
- Request size limits: test_http_errors test_a_body_over_64_kib_is_413,
  test_a_streamed_body_over_64_kib_is_413; here test_a_body_that_arrives_too_slowly_is_408.
- All SQL parameterized: here test_every_sql_statement_of_the_api_is_a_constant,
  test_sql_injection_through_every_string_input_changes_nothing.
- Secrets never in logs or error bodies: here test_no_secret_reaches_the_logs_or_an_error_body;
  test_http_errors test_validation_errors_list_the_fields_and_never_echo_the_password.
- Overload answered with 429/503 and Retry-After: test_overload.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import json
import socket
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from problems import problem

from boxoffice_api import testing

API = Path(__file__).resolve().parents[2] / "api" / "boxoffice_api"
PASSWORD = "lantern-velvet-4817"  # passes the sign-up strength rule
SECRET = "security-tests-secret-101bfd392cb5d65686debe94ac26641d9d28d952e907e590"
PUBLIC = {"POST /v1/users", "POST /v1/auth/token", "GET /healthz"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], claims: dict[str, Any], key: str | None) -> str:
    """A JWT with any header, HMAC-SHA256-signed with ``key`` (no signature when None)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def sign_up(http: httpx.Client, email: str | None = None, password: str = PASSWORD) -> Any:
    """Signs up and logs in; returns (Authorization header, user id)."""
    email = email or f"sec-{uuid.uuid4().hex[:10]}@example.com"
    created = http.post("/v1/users", json={"email": email, "password": password})
    assert created.status_code == 201, created.text
    token = http.post("/v1/auth/token", json={"email": email, "password": password})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}, created.json()["id"]


def concert_body(title: str = "Security Concert", capacity: int = 10) -> dict[str, Any]:
    return testing.concert_body(
        title=title, sections=[testing.section(price=1000)], queue_capacity=capacity
    )


def create_concert(http: httpx.Client, admin: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    r = http.post("/v1/admin/concerts", json=concert_body(**kwargs), headers=admin)
    assert r.status_code == 201, r.text
    return dict(r.json())


def join(http: httpx.Client, auth: dict[str, str], concert_id: int) -> dict[str, Any]:
    r = http.post(f"/v1/concerts/{concert_id}/queue", headers=auth)
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


# --- signed tokens ----------------------------------------------------------------------


def test_tokens_under_another_algorithm_are_refused(start_server):
    """Algorithm confusion: a token whose header names RS256 (or none, or HS512) but which is
    signed with the server's own secret is refused; only HS256 passes, for both tokens."""
    srv = start_server(jwt_secret=SECRET)
    admin = {"X-Admin-Key": srv.env["BOXOFFICE_ADMIN_KEY"]}
    with httpx.Client(base_url=srv.base_url, timeout=30) as http:
        auth, _ = sign_up(http)
        cid = create_concert(http, admin)["id"]
        queue_token = join(http, auth, cid)["queue_token"]
        tokens = {
            "access": jwt.decode(auth["Authorization"][7:], options={"verify_signature": False}),
            "queue": jwt.decode(queue_token, options={"verify_signature": False}),
        }
        for kind, claims in tokens.items():
            control = hand_signed({"alg": "HS256", "typ": "JWT"}, claims, SECRET)
            forged = {
                "RS256 header, HMAC with the secret": hand_signed({"alg": "RS256"}, claims, SECRET),
                "ES256 header, HMAC with the secret": hand_signed({"alg": "ES256"}, claims, SECRET),
                "HS512 with the secret": jwt.encode(claims, SECRET, algorithm="HS512"),
                "HS384 with the secret": jwt.encode(claims, SECRET, algorithm="HS384"),
                "alg none": hand_signed({"alg": "none"}, claims, None),
                "alg NONE": hand_signed({"alg": "NONE"}, claims, None),
                "alg none, the secret's signature": hand_signed({"alg": "none"}, claims, SECRET),
                "kid elsewhere, empty key": hand_signed(
                    {"alg": "HS256", "kid": "/dev/null", "jku": "http://evil.example/keys"},
                    claims,
                    "",
                ),
            }
            if kind == "access":

                def call(token: str) -> httpx.Response:
                    return http.get("/v1/me/balance", headers={"Authorization": f"Bearer {token}"})

                assert call(control).status_code == 200, "the control token must work"
                for name, token in forged.items():
                    r = call(token)
                    assert r.status_code == 401, (name, r.text)
                    assert r.json()["code"] == "UNAUTHENTICATED", (name, r.text)
            else:

                def poll(token: str) -> httpx.Response:
                    return http.get(
                        f"/v1/concerts/{cid}/queue", headers=auth | {"X-Queue-Token": token}
                    )

                assert poll(control).status_code == 200, "the control token must work"
                for name, token in forged.items():
                    r = poll(token)
                    assert r.status_code == 403, (name, r.text)
                    assert r.json()["code"] == "QUEUE_TOKEN_INVALID", (name, r.text)


def test_queue_token_claims_are_checked(start_server):
    """Queue tokens signed with the right secret but one claim wrong: issuer, audience, expiry,
    type, user, concert, and an engine token id of someone else's place."""
    srv = start_server(jwt_secret=SECRET)
    admin = {"X-Admin-Key": srv.env["BOXOFFICE_ADMIN_KEY"]}
    with httpx.Client(base_url=srv.base_url, timeout=30) as http:
        me, my_id = sign_up(http)
        other, other_id = sign_up(http)
        cid = create_concert(http, admin, capacity=1)["id"]
        other_cid = create_concert(http, admin)["id"]
        theirs = join(http, other, cid)  # ACTIVE: the only slot
        mine = join(http, me, cid)  # WAITING behind it
        assert (theirs["status"], mine["status"]) == ("ACTIVE", "WAITING")
        issued = jwt.decode(mine["queue_token"], options={"verify_signature": False})
        assert (issued["sub"], issued["cid"], issued["tid"]) == (str(my_id), cid, mine["token_id"])
        # The join sequence and time, so any cluster worker can answer polls from a digest.
        assert isinstance(issued["jsq"], int) and issued["jsq"] >= 1  # 0 went to theirs
        assert abs(issued["jat"] - time.time()) < 600
        now = int(time.time())
        good = {
            "sub": str(my_id),
            "typ": "queue",
            "cid": cid,
            "tid": mine["token_id"],
            "iss": issued["iss"],
            "aud": issued["aud"],
            "iat": now,
            "exp": now + 600,
        }

        def with_claims(claims: dict[str, Any]) -> dict[str, str]:
            token = jwt.encode(claims, SECRET, algorithm="HS256")
            return {"Authorization": me["Authorization"], "X-Queue-Token": token}

        ok = http.get(f"/v1/concerts/{cid}/queue", headers=with_claims(good))
        assert ok.status_code == 200 and ok.json()["status"] == "WAITING", ok.text
        sequenced = good | {"jsq": issued["jsq"], "jat": issued["jat"]}  # as issued since
        ok = http.get(f"/v1/concerts/{cid}/queue", headers=with_claims(sequenced))
        assert ok.status_code == 200 and ok.json()["status"] == "WAITING", ok.text
        expired = http.get(
            f"/v1/concerts/{cid}/queue",
            headers=with_claims(good | {"iat": now - 7200, "exp": now - 3600}),
        )
        problem(expired, 403, "QUEUE_TOKEN_EXPIRED")
        broken = {
            "wrong aud": good | {"aud": "another-service"},
            "wrong iss": good | {"iss": "evil-issuer"},
            "typ access": good | {"typ": "access"},
            "no typ": {k: v for k, v in good.items() if k != "typ"},
            "no exp": {k: v for k, v in good.items() if k != "exp"},
            "another user": good | {"sub": str(other_id)},
            "another concert": good | {"cid": other_cid},
            "someone else's place": good | {"tid": theirs["token_id"]},
            "no such place": good | {"tid": 10**9},
            "tid not a number": good | {"tid": "1 OR 1=1"},
            "jsq without jat": good | {"jsq": issued["jsq"]},
            "jsq not a number": sequenced | {"jsq": "1"},
            "jsq negative": sequenced | {"jsq": -1},
            "jat not a number": sequenced | {"jat": "now"},
            "jat negative": sequenced | {"jat": -1.0},
            "jat NaN": sequenced | {"jat": float("nan")},
        }
        for name, claims in broken.items():
            headers = with_claims(claims)
            for r in (
                http.get(f"/v1/concerts/{cid}/queue", headers=headers),
                http.get(f"/v1/concerts/{cid}/schedules", headers=headers),
                http.post(
                    "/v1/reservations", json={"schedule_id": 1, "quantity": 1}, headers=headers
                ),
            ):
                assert r.status_code == 403, (name, r.text)
                # The claims are checked first; a place the engine knows is judged by its
                # own state (a token naming another concert but my WAITING place is
                # refused as WAITING when holding): never does a claim grant a place.
                refusals = {"QUEUE_TOKEN_INVALID"}
                if name == "another concert" and r.url.path == "/v1/reservations":
                    refusals.add("QUEUE_NOT_ACTIVE")
                assert r.json()["code"] in refusals, (name, r.text)
        # Someone else's ACTIVE place did not let me in, and it is still theirs.
        stats = http.get(f"/v1/admin/concerts/{cid}/stats", headers=admin).json()
        assert (stats["seats_held"], stats["queue_active"], stats["queue_waiting"]) == (0, 1, 1)
        leave = http.delete(
            f"/v1/concerts/{cid}/queue", headers=with_claims(good | {"tid": theirs["token_id"]})
        )
        problem(leave, 403, "QUEUE_TOKEN_INVALID")
        again = http.get(
            f"/v1/concerts/{cid}/queue", headers=other | {"X-Queue-Token": theirs["queue_token"]}
        )
        assert again.json()["status"] == "ACTIVE", again.text


# --- authorization on every operation ---------------------------------------------------


def test_every_protected_operation_refuses_a_request_without_its_credentials(server):
    """Read from the served document, so a new route cannot be forgotten: without the access
    JWT 401, without the queue token or the admin key 403 — never an answer with data."""
    admin = {"X-Admin-Key": server.env["BOXOFFICE_ADMIN_KEY"]}
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        document = http.get("/openapi.json").json()
        auth, _ = sign_up(http)
        cid = create_concert(http, admin)["id"]
        queue = {"X-Queue-Token": join(http, auth, cid)["queue_token"]}
        public = set()
        checked = 0
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                label = f"{method.upper()} {path}"
                requirements = operation.get("security", [])
                if not requirements:
                    public.add(label)
                    continue
                # One requirement naming every credential the operation needs (all of them).
                assert len(requirements) == 1, (label, requirements)
                needs = set(requirements[0])
                url = path.replace("{", "").replace("}", "")  # {concert_id} -> concert_id
                for name in ("concert_id", "schedule_id", "reservation_id", "seat_id"):
                    url = url.replace(name, str(cid if name == "concert_id" else 1))
                body: dict[str, Any] | None = {} if method in ("post", "put", "patch") else None
                full = {"Authorization": auth["Authorization"]} | queue | admin
                credentials = {
                    "HTTPBearer": "Authorization",
                    "QueueToken": "X-Queue-Token",
                    "AdminKey": "X-Admin-Key",
                }
                for scheme in needs:
                    missing = credentials[scheme]
                    headers = {k: v for k, v in full.items() if k != missing}
                    r = http.request(method.upper(), url, json=body, headers=headers)
                    expected = {
                        "HTTPBearer": (401, "UNAUTHENTICATED"),
                        "QueueToken": (403, "QUEUE_TOKEN_INVALID"),
                        "AdminKey": (403, "ADMIN_KEY_INVALID"),
                    }[scheme]
                    assert (r.status_code, r.json().get("code")) == expected, (
                        label,
                        scheme,
                        r.text,
                    )
                    checked += 1
        assert public == PUBLIC
        assert checked >= 25


def test_the_admin_key_is_compared_in_constant_time(server):
    """The comparison is ``hmac.compare_digest`` over the key's bytes, with no ``==`` on the
    key (a timing test would be flaky; the code is the evidence); a key that is not ASCII is
    refused like any other wrong key."""
    tree = ast.parse((API / "deps.py").read_text())
    (function,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "require_admin"
    ]
    calls = {ast.unparse(node.func) for node in ast.walk(function) if isinstance(node, ast.Call)}
    assert "hmac.compare_digest" in calls
    for node in ast.walk(function):
        if isinstance(node, ast.Compare):
            assert all(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops), ast.unparse(node)
    key = server.env["BOXOFFICE_ADMIN_KEY"]
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for guess in (key.encode() + b"\xff", "ключ".encode(), key.encode()[:-1] + b"\xe9"):
            r = http.get("/v1/admin/events", headers=[(b"X-Admin-Key", guess)])
            problem(r, 403, "ADMIN_KEY_INVALID")
        assert http.get("/v1/admin/events", headers={"X-Admin-Key": key}).status_code == 200


# --- passwords and secrets ----------------------------------------------------------------


def read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)


def store_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_passwords_are_stored_only_as_argon2id_hashes(server):
    password = f"a-distinctive-password-{uuid.uuid4().hex}"
    email = f"hash-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        sign_up(http, email, password)
    with read_only(server.db) as db:
        (stored,) = db.execute(
            "SELECT password_hash FROM api_accounts WHERE email = ?", (email,)
        ).fetchone()
    assert stored.startswith("$argon2id$v=19$"), stored
    assert password not in stored
    assert password.encode() not in store_bytes(server.db)  # nowhere in the store's files


def test_no_secret_reaches_the_logs_or_an_error_body(start_server):
    """A server logging everything (debug, JSON) sees sign-ups, logins right and wrong, a
    throttled login, charges, forged and misplaced tokens, wrong admin keys: no password,
    token, password hash, admin key or JWT secret appears in its output or in an error."""
    srv = start_server(jwt_secret=SECRET, log_level="debug", login_attempts_per_minute="3")
    admin_key = srv.env["BOXOFFICE_ADMIN_KEY"]
    admin = {"X-Admin-Key": admin_key}
    email = f"logs-{uuid.uuid4().hex[:10]}@example.com"
    passwords = [f"{word}-{uuid.uuid4().hex[:12]}" for word in ("right", "wrong", "taken", "bad")]
    right, wrong, taken, bad = passwords
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=srv.base_url, timeout=30) as http:

        def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
            r = http.request(method, url, **kwargs)
            assert r.status_code < 500, r.text
            answers.append(r)
            return r

        assert call("POST", "/v1/users", json={"email": email, "password": right}).is_success
        call("POST", "/v1/users", json={"email": email, "password": taken})  # 409
        call("POST", "/v1/users", json={"email": "not-an-email", "password": bad})  # 422
        call("POST", "/v1/users", json={"email": email, "password": bad[:5]})  # too short
        token = call("POST", "/v1/auth/token", json={"email": email, "password": right}).json()[
            "access_token"
        ]
        auth = {"Authorization": f"Bearer {token}"}
        statuses = [
            call("POST", "/v1/auth/token", json={"email": email, "password": wrong}).status_code
            for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        call("POST", "/v1/me/balance/charges", json={"amount": 5000}, headers=auth)
        call("POST", "/v1/me/balance/charges", json={"amount": -1}, headers=auth)
        call("POST", "/v1/me/balance/charges", json={"amount": "5000"}, headers=auth)
        cid = call("POST", "/v1/admin/concerts", json=concert_body(), headers=admin).json()["id"]
        queue_token = call("POST", f"/v1/concerts/{cid}/queue", headers=auth).json()["queue_token"]
        forged_access = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        forged_queue = jwt.encode({"sub": "1", "typ": "queue"}, "guess-" + SECRET, "HS256")
        near_miss = admin_key[:-1] + ("x" if not admin_key.endswith("x") else "y")
        call("GET", "/v1/me", headers={"Authorization": f"Bearer {forged_access}"})
        call("GET", "/v1/me", headers={"Authorization": f"Bearer {queue_token}"})
        call("GET", "/v1/me", headers={"Authorization": f"Basic {token}"})
        call("GET", f"/v1/concerts/{cid}/queue", headers=auth | {"X-Queue-Token": forged_queue})
        call("GET", f"/v1/concerts/{cid}/schedules", headers=auth | {"X-Queue-Token": token})
        call("GET", "/v1/admin/events", headers={"X-Admin-Key": near_miss})
        call("GET", "/v1/admin/events", headers={"X-Admin-Key": queue_token})
        call("POST", "/v1/admin/concerts", json={"title": right}, headers=admin)  # 422
        call("GET", "/v1/nowhere", headers=auth)
    srv.stop()  # flushes the logs
    with read_only(srv.db) as db:
        (password_hash,) = db.execute(
            "SELECT password_hash FROM api_accounts WHERE email = ?", (email,)
        ).fetchone()
    output = srv.log.read_text()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    # The logs were captured: one JSON line per request, the throttled login among them.
    requests = [line for line in lines if line.get("event") == "request"]
    assert len(requests) >= len(answers), (len(requests), len(answers))
    assert any(line["status"] == 429 for line in requests)
    secrets = {
        "a password": passwords,
        "the access token": [token, token.split(".")[2]],
        "the queue token": [queue_token, queue_token.split(".")[2]],
        "a forged token": [forged_access, forged_queue],
        "the admin key": [admin_key, near_miss],
        "the JWT secret": [SECRET],
        "the password hash": [password_hash, password_hash.rsplit("$", 1)[1]],
    }
    for what, values in secrets.items():
        for value in values:
            assert value not in output, f"{what} is in the server's output"
            for r in answers:
                if r.status_code >= 400:
                    assert value not in r.text, f"{what} is in an error body: {r.text}"


# --- SQL ----------------------------------------------------------------------------------


def _constant_sql(node: ast.expr, constants: dict[str, ast.expr]) -> bool:
    """A string literal, literals joined with +, or a module-level name bound to one."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _constant_sql(node.left, constants) and _constant_sql(node.right, constants)
    if isinstance(node, ast.Name) and node.id in constants:
        return _constant_sql(constants[node.id], constants)
    return False  # f-strings, % and .format(), variables: values would become SQL text


def test_every_sql_statement_of_the_api_is_a_constant():
    """Every ``execute``-family call in api/ gets its SQL as a constant, so values can only
    be parameters (``?``); the engine's SQL is C++ with prepared statements."""
    statements = 0
    for source in sorted(API.rglob("*.py")):
        tree = ast.parse(source.read_text(), filename=str(source))
        constants = {
            target.id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("execute", "executemany", "executescript")
            ):
                continue
            statements += 1
            where = f"{source.name}:{node.lineno}"
            assert node.args, f"{where}: SQL passed by keyword"
            assert _constant_sql(node.args[0], constants), f"{where}: {ast.unparse(node.args[0])}"
            if len(node.args) > 1:  # parameters are a tuple or list, never formatted text
                assert isinstance(node.args[1], (ast.Tuple, ast.List)), where
    assert statements >= 8  # the accounts store's statements were found


INJECTIONS = [
    "' OR '1'='1",
    "' OR 1=1 --",
    "'; DROP TABLE api_accounts; --",
    '" OR ""="',
    "1; SELECT value FROM api_meta",
    "' UNION SELECT user_id, email, password_hash, created_at FROM api_accounts --",
    "%",
    "_",
    "\\'; --",
]
# The same without spaces, for emails (an email has no space).
EMAIL_LOCAL_PARTS = [
    "x'OR'1'='1",
    "a';DROP/**/TABLE/**/api_accounts;--",
    '"OR""="',
    "'UNION/**/SELECT/**/value/**/FROM/**/api_meta--",
    "%",
]


def test_sql_injection_through_every_string_input_changes_nothing(server):
    """Emails, passwords, idempotency keys, the search text and concert text carrying SQL
    are data: stored and matched verbatim, answered with a normal 2xx or 4xx, and nothing
    else changes (the accounts, the server's secrets, another user's login and wallet)."""
    admin = {"X-Admin-Key": server.env["BOXOFFICE_ADMIN_KEY"]}
    statuses: list[int] = []
    with httpx.Client(base_url=server.base_url, timeout=30) as http:

        def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
            r = http.request(method, url, **kwargs)
            assert r.status_code < 500, r.text
            statuses.append(r.status_code)
            return r

        victim_email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
        victim, _ = sign_up(http, victim_email)
        with read_only(server.db) as db:
            accounts_before = db.execute("SELECT count(*) FROM api_accounts").fetchone()[0]
            meta_before = db.execute("SELECT key, value FROM api_meta ORDER BY key").fetchall()

        # Logging in as the victim with SQL in the password or the email gets no token.
        for attempt in INJECTIONS[:4]:
            r = call("POST", "/v1/auth/token", json={"email": victim_email, "password": attempt})
            assert r.status_code in (401, 422, 429) and "access_token" not in r.json(), r.text
        for local in EMAIL_LOCAL_PARTS:
            r = call(
                "POST",
                "/v1/auth/token",
                json={"email": f"{local}@example.com"} | {"password": PASSWORD},
            )
            assert r.status_code == 401, r.text
        r = call(
            "POST", "/v1/auth/token", json={"email": f"{victim_email}'--", "password": "x" * 8}
        )
        assert r.status_code == 401, r.text

        # Signing up with them stores them verbatim: the account logs in with exactly them.
        created = 0
        tag = uuid.uuid4().hex[:6]
        for local, password in zip(EMAIL_LOCAL_PARTS, INJECTIONS, strict=False):
            email = f"{local}{tag}@example.com"
            password = (password + " padding")[:256]
            r = call("POST", "/v1/users", json={"email": email, "password": password})
            assert r.status_code == 201, r.text
            created += 1
            assert r.json()["email"] == email.lower()
            token = call("POST", "/v1/auth/token", json={"email": email, "password": password})
            assert token.status_code == 200, token.text
            me = call(
                "GET", "/v1/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
            )
            assert me.json()["email"] == email.lower()
            wrong = call("POST", "/v1/auth/token", json={"email": email, "password": "' OR '1'='1"})
            assert wrong.status_code == 401
        r = call(
            "POST", "/v1/users", json={"email": "' OR 1=1 --@example.com", "password": PASSWORD}
        )
        assert r.status_code == 422  # a space: not an email

        # The search text is matched literally: no LIKE pattern, no SQL.
        title = f"Injected {tag} ' OR '1'='1 %_"
        concert = call(
            "POST", "/v1/admin/concerts", json=concert_body(title=title), headers=admin
        ).json()
        for q in INJECTIONS:
            found = call("GET", "/v1/concerts", params={"q": q}, headers=victim).json()["items"]
            assert all(q.lower() in c["title"].lower() + c["artist"].lower() for c in found), q
        found = call("GET", "/v1/concerts", params={"q": f"{tag} ' OR '1'='1 %_"}, headers=victim)
        assert [c["id"] for c in found.json()["items"]] == [concert["id"]]

        # Idempotency keys are opaque: the same key gives the same answer, once.
        user, _ = sign_up(http)
        created += 1
        for i, key in enumerate(INJECTIONS):
            first = call(
                "POST",
                "/v1/me/balance/charges",
                json={"amount": 1000},
                headers=user | {"Idempotency-Key": key},
            )
            assert first.status_code == 201, first.text
            again = call(
                "POST",
                "/v1/me/balance/charges",
                json={"amount": 1000},
                headers=user | {"Idempotency-Key": key},
            )
            assert again.json()["id"] == first.json()["id"], (key, i)
        balance = call("GET", "/v1/me/balance", headers=user).json()["balance"]
        assert balance == 1000 * len(INJECTIONS)
        gated = user | {"X-Queue-Token": join(http, user, concert["id"])["queue_token"]}
        held = call(
            "POST",
            "/v1/reservations",
            json={"schedule_id": concert["schedules"][0]["id"], "quantity": 1},
            headers=gated | {"Idempotency-Key": INJECTIONS[2]},
        )
        assert held.status_code == 201, held.text
        paid = call(
            "POST",
            "/v1/payments",
            json={"reservation_id": held.json()["id"]},
            headers=gated | {"Idempotency-Key": INJECTIONS[5]},
        )
        assert paid.status_code == 201, paid.text

        # Nothing else changed: the victim still logs in, with an untouched wallet.
        again = call("POST", "/v1/auth/token", json={"email": victim_email, "password": PASSWORD})
        assert again.status_code == 200, again.text
        assert call("GET", "/v1/me/balance", headers=victim).json()["balance"] == 0
    with read_only(server.db) as db:
        accounts_after = db.execute("SELECT count(*) FROM api_accounts").fetchone()[0]
        meta_after = db.execute("SELECT key, value FROM api_meta ORDER BY key").fetchall()
    assert accounts_after == accounts_before + created
    assert meta_after == meta_before
    assert all(status < 500 for status in statuses)


# --- slow clients -------------------------------------------------------------------------


def test_a_body_that_arrives_too_slowly_is_408(start_server):
    """A client that sends a request's head and then trickles (or withholds) its body holds no
    request slot past BOXOFFICE_REQUEST_BODY_TIMEOUT_S: 408 and the connection is closed,
    while other clients are served."""
    srv = start_server(request_body_timeout_s="1")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as slow:
        slow.sendall(
            b"POST /v1/users HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"email": '
        )
        started = time.monotonic()
        assert httpx.get(f"{srv.base_url}/healthz", timeout=30).status_code == 200
        received = b""
        while b"\r\n\r\n" not in received or not received.endswith(b"}"):
            chunk = slow.recv(4096)
            if not chunk:
                break
            received += chunk
        waited_s = time.monotonic() - started
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), received
        assert b"connection: close" in head.lower()
        assert json.loads(body)["code"] == "REQUEST_TIMEOUT"
        assert slow.recv(4096) == b""  # closed by the server
        assert waited_s < 20
    with httpx.Client(base_url=srv.base_url, timeout=30) as http:
        r = http.post(
            "/v1/users",
            json={"email": f"after-{uuid.uuid4().hex[:6]}@example.com"} | {"password": PASSWORD},
        )
        assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "value", ["", "Bearer", "bearer  x.y.z", "Bearer a.b", "Bearer ..", "Digest x"]
)
def test_a_malformed_authorization_header_is_401(server, value):
    r = httpx.get(f"{server.base_url}/v1/me", headers={"Authorization": value}, timeout=30)
    problem(r, 401, "UNAUTHENTICATED")


def test_a_remembered_token_still_expires(monkeypatch):
    """Verified tokens are remembered by their text (``Tokens._decode``), but a remembered
    token is refused once its ``exp`` has passed, and an altered one is verified afresh."""
    from boxoffice_api import security
    from boxoffice_api.errors import ApiError

    tokens = security.Tokens("k" * 32, "boxoffice", "boxoffice-api", 60, 60)
    token = tokens.access_token(7)
    queue = tokens.queue_token(7, 1, 3)
    assert tokens.queue_claims(queue).token_id == 3
    assert tokens.user_of(token) == 7
    assert token in tokens._verified
    assert tokens.user_of(token) == 7  # a hit
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(ApiError) as forged_error:
        tokens.user_of(forged)
    assert forged_error.value.code == "UNAUTHENTICATED"
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(ApiError) as expired:
        tokens.user_of(token)
    assert expired.value.code == "TOKEN_EXPIRED"
    assert token not in tokens._verified
    with pytest.raises(ApiError) as queue_expired:
        tokens.queue_claims(queue)
    assert queue_expired.value.code == "QUEUE_TOKEN_EXPIRED"
