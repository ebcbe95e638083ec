"""API fuzzing: schemathesis generates requests for every operation of the OpenAPI document a
real server serves, and checks each answer against that document.

The document is loaded from ``api/openapi.json`` when the module is collected (schemathesis
builds one test per operation from it, and no server runs at collection time); the fixture
then checks that the started server serves exactly that document, so the requests are
generated from, and the answers checked against, what the server publishes.

Checks: no 5xx (``not_a_server_error``); the status code, content type, headers and body are
the documented ones; schema-violating input is refused (a 4xx, 413 included); the ``Allow``
header of a 405 names the path's methods; an operation that needs credentials refuses a request
without them. Not checked: ``positive_data_acceptance``, because domain rules (a charge of 0
won, more seats than a concert allows) are the engine's, answered 422 with the engine's code,
and not repeated as schema constraints (``boxoffice_api.schemas``).

Every request carries real credentials: a user's access JWT, an ACTIVE queue token for the
first concert (ids start at 1, and 1 is a value schemathesis tries for every id) and the admin
key — each only where the operation's security asks for it.

Bounded and reproducible: ``BOXOFFICE_SCHEMATHESIS_EXAMPLES`` examples at most per operation
and generation phase (default 50), derandomized with a fixed seed
(``BOXOFFICE_SCHEMATHESIS_SEED``). The total number of examples is printed at the end.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import checks

from boxoffice_api import testing

DOCUMENT = Path(__file__).resolve().parents[2] / "api" / "openapi.json"
EXAMPLES = int(os.environ.get("BOXOFFICE_SCHEMATHESIS_EXAMPLES", "50"))
SEED = int(os.environ.get("BOXOFFICE_SCHEMATHESIS_SEED", "20270301"))

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        # Generation speed depends on the machine's load, not on the API: not a failure.
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        "generation": {
            "max-examples": EXAMPLES,
            "deterministic": True,
            # The credentials are real ones, set per operation by the test (a request without
            # them is `ignored_auth`'s probe): schemathesis does not make its own up.
            "with-security-parameters": False,
            # Unknown query parameters are ignored, as HTTP APIs do (a cache buster must not
            # break a request); unknown body fields are refused (422).
            "allow-extra-parameters": False,
        },
        # An oversized body is refused with 413 before it is parsed: a rejection too.
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "422"]
            }
        },
    }
)
schema = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.allow_header_conformance,
    checks.unsupported_method,
    checks.missing_required_header,
    checks.ignored_auth,
]


@dataclass
class Fuzz:
    """The server under test and the credentials every generated request gets."""

    http: httpx.Client
    admin_key: str
    concert_id: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    examples: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    succeeded: set[str] = field(default_factory=set)  # operations answered 2xx at least once

    def sign_up(self) -> dict[str, str]:
        # The document's example credentials: its example log-in then succeeds.
        credentials = {"email": "fan@example.com", "password": "correct horse"}
        assert self.http.post("/v1/users", json=credentials).status_code == 201
        token = self.http.post("/v1/auth/token", json=credentials).json()["access_token"]
        return {"Authorization": f"Bearer {token}"}

    def join(self) -> None:
        """(Re)joins the queue of the first concert: an ACTIVE queue token for the requests."""
        auth = {"Authorization": self.headers["Authorization"]}
        joined = self.http.post(f"/v1/concerts/{self.concert_id}/queue", headers=auth)
        assert joined.status_code in (200, 201), joined.text
        assert joined.json()["status"] == "ACTIVE", joined.text
        self.headers["X-Queue-Token"] = joined.json()["queue_token"]

    def credentials_for(self, case: schemathesis.Case[Any]) -> dict[str, str]:
        """The headers the operation's security asks for (bearer, queue token, admin key)."""
        wanted = {
            name
            for requirement in case.operation.definition.raw.get("security", [])
            for name in requirement
        }
        names = {
            "HTTPBearer": "Authorization",
            "QueueToken": "X-Queue-Token",
            "AdminKey": "X-Admin-Key",
        }
        return {names[s]: self.headers[names[s]] for s in wanted}


def concert_body() -> dict[str, Any]:
    return testing.concert_body(
        title="Fuzzed Concert",
        artist="Schemathesis",
        venue="Loopback Hall",
        sections=[testing.section("A", 4, 10, "VIP", 1000)],
        queue_capacity=1000,
        max_seats_per_reservation=4,
    )


@pytest.fixture(scope="module")
def fuzz(server) -> Iterator[Fuzz]:
    http = httpx.Client(base_url=server.base_url, timeout=30)
    served = http.get("/openapi.json").json()
    assert served == json.loads(DOCUMENT.read_text()), "the server serves another document"
    state = Fuzz(http=http, admin_key=server.env["BOXOFFICE_ADMIN_KEY"])
    state.headers = state.sign_up() | {"X-Admin-Key": state.admin_key}
    created = http.post("/v1/admin/concerts", json=concert_body(), headers=state.headers)
    assert created.status_code == 201, created.text
    state.concert_id = created.json()["id"]
    state.join()
    # Something to find behind the ids schemathesis tries: money, a PENDING reservation.
    charged = http.post("/v1/me/balance/charges", json={"amount": 50_000}, headers=state.headers)
    assert charged.status_code == 201, charged.text
    held = http.post(
        "/v1/reservations",
        json={"schedule_id": created.json()["schedules"][0]["id"], "quantity": 2},
        headers=state.headers,
    )
    assert held.status_code == 201, held.text
    yield state
    http.close()


@schema.parametrize()
def test_every_answer_conforms_to_the_document(case, fuzz, server):
    response = case.call_and_validate(
        base_url=server.base_url, headers=fuzz.credentials_for(case), checks=CHECKS
    )
    fuzz.examples[case.operation.label] += 1
    fuzz.statuses[response.status_code] += 1
    if 200 <= response.status_code < 300:
        fuzz.succeeded.add(case.operation.label)
    # Leaving the queue or paying ends the queue token: get a live one for what follows.
    ended = (case.method == "DELETE" and case.path.endswith("/queue")) or (
        case.method == "POST" and case.path == "/v1/payments"
    )
    if ended and response.status_code in (200, 201):
        fuzz.join()


def test_the_run_covered_every_operation(fuzz, capsys):
    """After the fuzzing: every operation was exercised; prints the totals (the examples)."""
    operations = {
        f"{method.upper()} {path}"
        for path, methods in json.loads(DOCUMENT.read_text())["paths"].items()
        for method in methods
    }
    assert set(fuzz.examples) == operations
    with capsys.disabled():
        print(
            f"\nschemathesis: {sum(fuzz.examples.values())} examples over {len(operations)} "
            f"operations (at most {EXAMPLES} per operation and phase, seed {SEED}); "
            f"statuses {dict(sorted(fuzz.statuses.items()))}; 2xx for "
            f"{len(fuzz.succeeded)} operations, not for {sorted(operations - fuzz.succeeded)}"
        )


# --- what the fuzzing found, kept as plain regression tests -------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/v1/concerts/1/queue", "DELETE, GET, POST"),
        ("PATCH", "/v1/reservations/1", "DELETE, GET"),
        ("PUT", "/v1/users", "POST"),
    ],
)
def test_a_405_names_every_method_of_the_path(server, method, path, allow):
    r = httpx.request(method, f"{server.base_url}{path}", timeout=30)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow


@pytest.mark.parametrize("value", ["0.5", "1700000000", "2030-01-01", "2030-01-01T19:00:00"])
def test_a_time_that_is_not_rfc_3339_with_an_offset_is_422(fuzz, value):
    r = fuzz.http.get("/v1/concerts", params={"from": value}, headers=fuzz.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "from"], r.text
    section = {"name": "A", "rows": 1, "seats_per_row": 1, "grade": "R", "price": 1}
    for starts_at in (value, 1700000000):
        body = {"title": "Times", "schedules": [{"starts_at": starts_at, "sections": [section]}]}
        r = fuzz.http.post("/v1/admin/concerts", json=body, headers=fuzz.headers)
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["loc"] == ["body", "schedules", 0, "starts_at"], r.text
