"""Liveness and Prometheus metrics (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..deps import ServiceDep
from ..schemas import Health
from .responses import problems

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness", responses=problems(503))
async def healthz(service: ServiceDep) -> Health:
    """``ok`` while the engine answers and its store accepts commands, with the last event
    sequence and the counts; 503 ``STORE_UNAVAILABLE`` once the journal writer has failed."""
    engine = service.engine
    engine.check_store()
    return Health(
        status="ok",
        last_event_seq=engine.last_event_seq,
        concerts=engine.concert_count,
        users=engine.user_count,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Request counts and latencies by route; queue lengths, holds, sales, revenue."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
