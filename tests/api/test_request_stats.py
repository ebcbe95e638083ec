"""The request metrics (RequestStats, api/boxoffice_api/metrics.py) are exported sample for
sample as prometheus_client's own Counter and Histogram export the same requests."""

from __future__ import annotations

import random
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from boxoffice_api.metrics import RequestStats


def test_the_request_metrics_read_as_prometheus_clients_counter_and_histogram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.25)  # the series' creation times
    library = CollectorRegistry()
    requests = Counter(
        "boxoffice_http_requests",
        "HTTP requests by route template and status",
        ["method", "route", "status"],
        registry=library,
    )
    latency = Histogram(
        "boxoffice_http_request_duration_seconds",
        "HTTP request latency by route template, seconds",
        ["method", "route"],
        buckets=RequestStats.BUCKETS_S,
        registry=library,
    )
    ours = CollectorRegistry()
    stats = RequestStats()
    ours.register(stats)
    assert generate_latest(ours) == generate_latest(library)  # nothing yet
    rng = random.Random(7)
    bounds = [0.0, 0.0005, 0.001, 0.00100001, 2.5, 2.6, 60.0]
    for _ in range(3000):
        method = rng.choice(["GET", "POST", "OTHER"])
        route = rng.choice(["/v1/reservations", "/v1/concerts/{concert_id}/queue", "unmatched"])
        status = rng.choice([200, 201, 404, 409, 500])
        elapsed_s = rng.choice(bounds) if rng.random() < 0.3 else rng.expovariate(200)
        requests.labels(method, route, str(status)).inc()
        latency.labels(method, route).observe(elapsed_s)
        stats.record(method, route, status, elapsed_s)
    assert generate_latest(ours) == generate_latest(library)
    assert generate_openmetrics(ours) == generate_openmetrics(library)
