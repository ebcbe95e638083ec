"""Prometheus metrics: HTTP request counts and latencies, and the engine's live numbers.

Request metrics are labelled by route template (``/v1/reservations/{reservation_id}``), never
by raw path, so ids cannot blow up the label space. Engine gauges (queue lengths, holds,
sales, revenue) are read from ``Engine.stats`` at scrape time by a custom collector; in
cluster mode the ``/metrics`` route first reads them from the replicas, with the command log's
head and each replica's lag (``ClusterBackend.refresh_metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import get_logger

if TYPE_CHECKING:
    from .cluster.worker import ClusterBackend
    from .security import PasswordHashing
    from .service import Service


class _Incrementer(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Observer(Protocol):
    def observe(self, amount: float) -> None: ...


CONCERTS_EXPORTED_MAX = 1000  # the most recent concerts get per-concert gauges
# Label values come from this set only: a made-up method must not create new series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class EngineCollector(Collector):
    """Per-concert gauges from ``Engine.stats``, read when Prometheus scrapes."""

    def __init__(self, get_service: object) -> None:
        self._get_service = get_service

    def collect(self) -> Iterator[Metric]:
        service: Service | None = self._get_service()  # type: ignore[operator]
        if service is None:
            return
        if service.cluster is not None:  # read by the /metrics route (refresh_metrics) first
            backend = service.cluster
            if backend.concert_stats is not None:
                yield from _engine_metrics(
                    backend.concert_stats, backend.users, backend.last_event_seq
                )
            yield from _cluster_metrics(backend)
            yield from _digest_metrics(backend, service.now())
            yield from _password_hashing_metrics(service.password_hashing)
            return
        engine = service.engine
        now = service.now()
        last = engine.concert_count
        stats = [
            (concert_id, engine.stats(concert_id, now=now))
            for concert_id in range(max(1, last - CONCERTS_EXPORTED_MAX + 1), last + 1)
        ]
        yield from _engine_metrics(stats, engine.user_count, engine.last_event_seq)
        yield from _password_hashing_metrics(service.password_hashing)


def _engine_metrics(
    concert_stats: list[tuple[int, Any]], users_count: int, last_event_seq: int
) -> Iterator[Metric]:
    """Per-concert gauges from ``(concert id, ConcertStats)``, the user count and the last
    event sequence (from the engine, or in cluster mode from the replicas)."""
    gauges = {
        name: GaugeMetricFamily(f"boxoffice_{name}", help_, labels=["concert_id"])
        for name, help_ in [
            ("queue_waiting", "WAITING queue tokens"),
            ("queue_active", "ACTIVE queue tokens"),
            ("seats_available", "AVAILABLE seats"),
            ("seats_held", "HELD seats"),
            ("seats_sold", "SOLD seats"),
            ("reservations_pending", "PENDING reservations"),
        ]
    }
    # A gauge: refunds lower it.
    revenue = GaugeMetricFamily(
        "boxoffice_revenue_won", "Revenue of confirmed payments, won", labels=["concert_id"]
    )
    admitted = CounterMetricFamily(
        "boxoffice_queue_admitted", "Queue tokens admitted", labels=["concert_id"]
    )
    for concert_id, stats in concert_stats:
        label = [str(concert_id)]
        for name, gauge in gauges.items():
            gauge.add_metric(label, getattr(stats, name))
        revenue.add_metric(label, stats.revenue)
        admitted.add_metric(label, stats.queue_admitted_total)
    yield from gauges.values()
    yield revenue
    yield admitted
    users = GaugeMetricFamily("boxoffice_users", "Users in the engine")
    users.add_metric([], users_count)
    yield users
    seq = GaugeMetricFamily("boxoffice_journal_last_event_seq", "Last domain event sequence")
    seq.add_metric([], last_event_seq)
    yield seq


def _digest_metrics(backend: ClusterBackend, now: float) -> Iterator[Metric]:
    """How this worker answered polls (from a queue digest, a replica read, the log), its
    touches that failed, and the age of each concert's digest it holds."""
    shard = backend.log.route.shard
    engine_api = backend.engine_api
    polls = CounterMetricFamily(
        "boxoffice_cluster_polls",
        "Queue polls this worker answered, by source (digest: no log write, no round trip)",
        labels=["shard", "answered_from"],
    )
    for source, count in engine_api.polls.items():
        polls.add_metric([shard, source], count)
    yield polls
    touches = CounterMetricFamily(
        "boxoffice_cluster_touch_failures",
        "Background touches (a digest-answered poll's STATUS) the log did not take",
        labels=["shard"],
    )
    touches.add_metric([shard], engine_api.touch_failures)
    yield touches
    age = GaugeMetricFamily(
        "boxoffice_cluster_queue_digest_age_seconds",
        "Now minus the engine clock of the concert's newest queue digest (grows while the log "
        "stands still)",
        labels=["shard", "concert_id"],
    )
    for concert_id, age_s in engine_api.digests.ages(now):
        age.add_metric([shard, str(concert_id)], age_s)
    yield age


def _cluster_metrics(backend: ClusterBackend) -> Iterator[Metric]:
    """The command log's head; each replica's applied sequence, lag, report age and consumer
    re-creations (failovers); this worker's appends, retries and failed appends, its append
    latency and commands per message (histograms)."""
    observation = backend.observation
    shard = backend.log.route.shard
    if observation is not None:
        head = GaugeMetricFamily(
            "boxoffice_cluster_log_last_seq", "The command log's last sequence", labels=["shard"]
        )
        head.add_metric([shard], observation.log_last_seq)
        yield head
        labels = ["shard", "replica"]
        applied = GaugeMetricFamily(
            "boxoffice_cluster_replica_applied_seq", "The last log sequence applied", labels=labels
        )
        lag = GaugeMetricFamily(
            "boxoffice_cluster_replica_lag_messages", "Log messages not applied yet", labels=labels
        )
        age = GaugeMetricFamily(
            "boxoffice_cluster_replica_report_age_seconds",
            "Seconds since the replica's last report (every second while it runs)",
            labels=labels,
        )
        # The replica's own count since it started (a restarted replica starts again at 0,
        # which Prometheus reads as a counter reset).
        failovers = CounterMetricFamily(
            "boxoffice_cluster_replica_failovers",
            "Times the replica re-created its log consumer after an error (an election, a lost "
            "server or connection)",
            labels=labels,
        )
        for replica in observation.replicas:
            applied.add_metric([shard, replica.name], replica.applied_seq)
            lag.add_metric([shard, replica.name], replica.lag)
            age.add_metric([shard, replica.name], replica.age_s)
            failovers.add_metric([shard, replica.name], replica.failovers)
        yield from (applied, lag, age, failovers)
    for name, help_, value in [
        ("appends", "Log messages this worker appended (acknowledged)", backend.log.appends),
        ("append_retries", "Log appends sent again (an election)", backend.log.retries),
        ("append_failures", "Log appends that gave up (503)", backend.log.failures),
    ]:
        counter = CounterMetricFamily(f"boxoffice_cluster_{name}", help_, labels=["shard"])
        counter.add_metric([shard], value)
        yield counter
    yield from backend.log.append_seconds.collect()
    yield from backend.batcher.batch_commands.collect()


def _password_hashing_metrics(pool: PasswordHashing) -> Iterator[Metric]:
    """The password-hashing pool's gauges (hashes running and waiting) and refusals."""
    for name, help_, value in [
        ("running", "Password hashes (argon2id, zxcvbn) running on the pool", pool.running),
        ("waiting", "Sign-ups and log-ins waiting for a password-hash thread", pool.waiting),
        ("threads", "Threads of the password-hash pool", pool.threads),
    ]:
        gauge = GaugeMetricFamily(f"boxoffice_password_hashes_{name}", help_)
        gauge.add_metric([], value)
        yield gauge
    refused = CounterMetricFamily(
        "boxoffice_password_hashes_refused",
        "Sign-ups and log-ins refused before hashing: busy (503 OVERLOADED) or client "
        "(429 TOO_MANY_PASSWORD_CHECKS)",
        labels=["reason"],
    )
    refused.add_metric(["busy"], pool.refused_busy)
    refused.add_metric(["client"], pool.refused_client)
    yield refused


class Metrics:
    """The registry of one app (one per app, so tests can build many apps)."""

    def __init__(self, get_service: object) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "boxoffice_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "boxoffice_http_request_duration_seconds",
            "HTTP request latency by route template, seconds",
            ["method", "route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        # Its value is read from LoadShedMiddleware's count at scrape time (set_function).
        self.in_flight = Gauge(
            "boxoffice_http_requests_in_flight",
            "HTTP requests being processed (not counting /healthz and /metrics)",
            registry=self.registry,
        )
        self.shed = Counter(
            "boxoffice_http_requests_shed",
            "HTTP requests refused with 503 OVERLOADED (BOXOFFICE_MAX_CONCURRENT_REQUESTS)",
            registry=self.registry,
        )
        self.registry.register(EngineCollector(get_service))


class MetricsMiddleware:
    """Counts and times every request, and writes its access-log line when ``access_log``
    (method, route template, status, milliseconds, client address). Pure ASGI: no body
    buffering."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log = get_logger() if access_log else None
        # The label children of each (method, route, status), bound once: prometheus_client
        # checks and joins the label values on every `labels` call. Bounded like the label
        # space itself (known methods, route templates, statuses the app answers).
        self._children: dict[tuple[str, str, int], tuple[_Incrementer, _Observer]] = {}

    def _record(self, method: str, route: str, status: int, elapsed_s: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.metrics.requests.labels(method, route, str(status)),
                self.metrics.latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed_s = time.perf_counter() - start
            template = getattr(scope.get("route"), "path", None)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self._record(method, template or "unmatched", status, elapsed_s)
            if self.log is not None:
                client = scope.get("client")
                self.log.info(
                    "request",
                    method=method,
                    route=template or scope["path"][:200],
                    status=status,
                    ms=round(elapsed_s * 1000, 3),
                    client=client[0] if client else None,
                )
