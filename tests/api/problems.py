"""Assertions on RFC 9457 problem answers, shared by the HTTP tests (a helper module, not a
test module: test modules import it, never each other)."""

from __future__ import annotations

from typing import Any

import httpx


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Asserts an RFC 9457 problem answer with ``status`` and ``code`` (in the status line and
    in the body, as ``application/problem+json``); returns its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = dict(r.json())
    assert (body["code"], body["status"]) == (code, status), body
    return body
