"""The checked-in OpenAPI document matches the app, and documents every error response."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from boxoffice_api.openapi import document

CHECKED_IN = Path(__file__).resolve().parents[2] / "api" / "openapi.json"


def test_checked_in_document_matches_the_app():
    # On failure: `make openapi` regenerates api/openapi.json; review and commit the diff.
    assert json.loads(CHECKED_IN.read_text()) == document()


def test_the_served_document_is_the_checked_in_one(server):
    served = httpx.get(f"{server.base_url}/openapi.json").json()
    assert served == json.loads(CHECKED_IN.read_text())
    assert httpx.get(f"{server.base_url}/docs").status_code == 200


def test_every_operation_documents_its_problems_and_security():
    doc = document()
    assert "Problem" in doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            if path in ("/healthz", "/metrics"):
                continue
            responses = op["responses"]
            assert {"422", "503"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    content = response["content"]
                    assert list(content) == ["application/problem+json"], (method, path, status)
            public = path in ("/v1/users", "/v1/auth/token")
            if not public:
                assert op.get("security"), (method, path)  # access JWT or admin key
                assert ("401" in responses) or ("403" in responses), (method, path)
