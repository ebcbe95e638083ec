"""Liveness (open to anyone) and Prometheus metrics (the admin key, unless
``BOXOFFICE_METRICS_PUBLIC``: they show held seats and revenue)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import store_files
from ..deps import MetricsAccess, ServiceDep
from ..errors import ApiError
from ..logs import get_logger
from ..metrics import CONCERTS_EXPORTED_MAX
from ..schemas import ClusterHealth, Health, ReplicaHealth
from ..service import Service
from .responses import problems

router = APIRouter(tags=["operations"])
log = get_logger()


# A production server's answer has no test_clock field (None is left out).
@router.get(
    "/healthz",
    summary="Liveness",
    responses=problems(503),
    response_model_exclude_none=True,
    operation_id="get_health",
)
async def healthz(service: ServiceDep) -> Health:
    """``ok`` while the engine answers and its store accepts commands, with the last event
    sequence, the counts and the password-hash profile (what a sign-up costs); 503
    ``STORE_UNAVAILABLE`` once the journal writer has failed, or
    while the store's filesystem has less free space than ``BOXOFFICE_STORE_FREE_BYTES_MIN``
    (the next writes could fail). ``test_clock``: true, on a server in test mode only."""
    if service.cluster is not None:
        return await _cluster_health(service)
    engine = service.engine
    engine.check_store()
    store_files.check_free_space(service.settings.db, service.settings.store_free_bytes_min)
    return Health(
        status="ok",
        last_event_seq=engine.last_event_seq,
        concerts=engine.concert_count,
        users=engine.user_count,
        password_hash_profile=service.settings.password_hash_profile,
        test_clock=True if service.test_clock is not None else None,
    )


async def _cluster_health(service: Service) -> Health:
    """In cluster mode: ``ok`` when the log answers and a replica has applied its head
    (counts from that replica), with the log's head and each replica's lag; 503
    ``STORE_UNAVAILABLE`` when neither does in time."""
    engine_api = service.engine_api
    assert service.cluster is not None
    try:
        observation = await service.cluster.observe()
        return Health(
            status="ok",
            last_event_seq=await engine_api.last_event_seq(),
            concerts=await engine_api.concert_count(),
            users=await engine_api.user_count(),
            password_hash_profile=service.settings.password_hash_profile,
            cluster=ClusterHealth(
                shard=observation.shard,
                log_last_seq=observation.log_last_seq,
                replicas=[ReplicaHealth(**vars(r)) for r in observation.replicas],
            ),
        )
    except Exception as exc:  # no quorum, no replica: the cluster cannot serve writes now
        raise ApiError(
            503,
            "STORE_UNAVAILABLE",
            f"the cluster does not answer: {type(exc).__name__}",
            retry_after_s=2.0,
        ) from exc


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[MetricsAccess],
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
        **problems(403),
    },
    operation_id="get_metrics",
)
async def metrics(request: Request, service: ServiceDep) -> Response:
    """Request counts and latencies by route; queue lengths, holds, sales, revenue.

    Needs the admin key, as ``X-Admin-Key`` or as ``Authorization: Bearer <admin key>``
    (Prometheus: ``authorization: {credentials: <admin key>}`` in the scrape config), unless
    the server runs with ``BOXOFFICE_METRICS_PUBLIC=true``. Errors: 403
    ``ADMIN_KEY_INVALID``."""
    if service.cluster is not None:  # the collector cannot wait for the replicas itself
        try:
            await service.cluster.refresh_metrics(service.now(), CONCERTS_EXPORTED_MAX)
        except Exception as exc:  # the request and worker metrics are still worth a scrape
            log.warning("cluster metrics not refreshed", error=f"{type(exc).__name__}: {exc}")
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
