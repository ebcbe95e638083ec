"""The baseline of the HTTP benchmark: a bare FastAPI app served like ``boxoffice serve``.

``bench/http_bench.py`` runs this next to the boxoffice server so that the ratio of the two
shows what the engine, authentication, journal and the API layer cost on top of FastAPI
itself. It is served the way ``boxoffice serve`` serves its app: one uvicorn process, the
same event loop and HTTP parser (uvloop and httptools), no access log, no middleware.

- ``GET /bare`` answers a small JSON object (FastAPI's JSON encoding of a dict);
- ``POST /bare`` parses a small pydantic body shaped like a hold
  (``{"schedule_id": 1, "seat_ids": [7201]}``, strict, no extra fields) and answers a pydantic
  model, like a route with a request and a response model.

    .venv/bin/python bench/bare_fastapi_app.py --port 8001
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, status
from pydantic import BaseModel, ConfigDict, Field


class BareIn(BaseModel):
    """A hold-shaped body: a schedule and up to 1024 seat ids."""

    model_config = ConfigDict(extra="forbid", strict=True)

    schedule_id: int = Field(ge=1)
    seat_ids: list[int] = Field(max_length=1024)


class BareOut(BaseModel):
    """A small answer echoing the body."""

    id: int
    status: str
    schedule_id: int
    seats: list[int]


app = FastAPI(title="bare")
_count = 0


@app.get("/bare")
async def bare_get() -> dict[str, object]:
    """A small JSON object."""
    return {"status": "ok", "n": 1}


@app.post("/bare", status_code=status.HTTP_201_CREATED)
async def bare_post(body: BareIn) -> BareOut:
    """Parses a pydantic body and answers a pydantic model."""
    global _count
    _count += 1
    return BareOut(id=_count, status="PENDING", schedule_id=body.schedule_id, seats=body.seat_ids)


def main() -> None:
    """Serves the app (one process) on ``--host``/``--port``."""
    parser = argparse.ArgumentParser(description="bare FastAPI app (HTTP benchmark baseline)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        loop="uvloop",  # the stack `boxoffice serve` runs on (api/boxoffice_api/server.py)
        http="httptools",
    )


if __name__ == "__main__":
    main()
