"""The HTTP layer answers engine codes with the status of the C++ code table
(``boxoffice._core.ERROR_CODES``), also where it raises them itself: a request that does not
validate, the accounts tables failing, an unexpected exception, too little free disk space."""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from boxoffice import _core, errors
from boxoffice_api import errors as api_errors
from boxoffice_api.errors import ApiError, install
from boxoffice_api.store_files import check_free_space


def table_status(code: str) -> int:
    return _core.ERROR_CODES[code][1]


class SilentLogger:
    def error(self, *args: object, **kwargs: object) -> None:
        pass


class Body(BaseModel):
    amount: int


def make_app() -> FastAPI:
    app = FastAPI()
    install(app)

    @app.post("/validated")
    def validated(body: Body) -> int:
        return body.amount

    @app.get("/accounts")
    def accounts() -> None:
        raise sqlite3.OperationalError("database is locked")

    @app.get("/bug")
    def bug() -> None:
        raise RuntimeError("a bug")

    @app.get("/engine")
    def engine() -> None:
        raise errors.HoldExpired("the hold expired")

    return app


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("POST", "/validated", {"amount": "many"}, "INVALID_ARGUMENT"),
        ("POST", "/validated", b"{not json", "INVALID_ARGUMENT"),
        ("GET", "/accounts", None, "STORE_UNAVAILABLE"),
        ("GET", "/bug", None, "INTERNAL"),
        ("GET", "/engine", None, "HOLD_EXPIRED"),
    ],
)
def test_engine_codes_get_the_tables_status(monkeypatch, method, path, body, code):
    # The log lines (a traceback for the bug) are not what this test is about.
    monkeypatch.setattr(api_errors, "get_logger", lambda: SilentLogger())

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            if isinstance(body, bytes):
                headers = {"content-type": "application/json"}
                return await client.request(method, path, content=body, headers=headers)
            return await client.request(method, path, json=body)

    r = asyncio.run(send())
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (r.status_code, r.json()["code"]) == (table_status(code), code)
    assert r.json()["status"] == table_status(code)


def test_too_little_free_space_is_the_engines_store_unavailable(tmp_path):
    with pytest.raises(ApiError) as info:
        check_free_space(tmp_path / "store.db", 2**62)
    assert (info.value.status, info.value.code) == (
        table_status("STORE_UNAVAILABLE"),
        "STORE_UNAVAILABLE",
    )
    assert info.value.retry_after_s is not None
