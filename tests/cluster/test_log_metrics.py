"""The command log's metrics as a worker's ``/metrics`` exports them, on real nats-servers: the
append-latency and commands-per-message histograms grow with appends and keep sane buckets, a
replica's consumer re-creations (its consumer deleted under it) show as its failover counter, and a
whole cluster's worker serves them over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import nats.errors
from nats_helpers import create_shard
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from replica_helpers import Replicas, wait_applied

from boxoffice.commands import encode_command
from boxoffice_api.cluster import log as command_log
from boxoffice_api.cluster.nats import NatsCluster
from boxoffice_api.cluster.processes import pid_alive
from boxoffice_api.cluster.worker import ClusterBackend
from boxoffice_api.metrics import _cluster_metrics
from boxoffice_api.testing.harness import ClusterHarness


class ClusterCollector(Collector):
    """What a cluster worker's ``/metrics`` adds for its backend."""

    def __init__(self, backend: ClusterBackend) -> None:
        self.backend = backend

    def collect(self) -> Iterator[object]:  # type: ignore[override]
        yield from _cluster_metrics(self.backend)


def scrape(backend: ClusterBackend) -> dict[str, list[Sample]]:
    """The exposition text parsed back: samples by metric family name."""
    registry = CollectorRegistry()
    registry.register(ClusterCollector(backend))
    text = generate_latest(registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def buckets(samples: list[Sample], name: str, shard: str) -> list[tuple[float, float]]:
    """``(le, cumulative count)`` of a histogram's buckets, in ``le`` order."""
    pairs = [
        (float(s.labels["le"]), s.value)
        for s in samples
        if s.name == f"{name}_bucket" and s.labels["shard"] == shard
    ]
    return sorted(pairs)


def assert_sane_histogram(samples: list[Sample], name: str, shard: str) -> float:
    """Cumulative buckets that never decrease and end (``+Inf``) at the count; returns it."""
    pairs = buckets(samples, name, shard)
    counts = [count for _, count in pairs]
    assert counts == sorted(counts), pairs
    assert pairs[-1][0] == float("inf")
    count = value(samples, f"{name}_count", shard=shard)
    assert pairs[-1][1] == count
    return count


async def connect_backend(urls: list[str], shard: str) -> ClusterBackend:
    """A worker's backend for ``shard``; asked again while a just-created bucket or stream has
    no leader yet (a busy machine: up to 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return await ClusterBackend.connect(urls, shard)
        except nats.errors.TimeoutError:
            assert time.monotonic() < deadline, "the cluster did not answer in 30 s"


def test_append_and_batch_histograms_grow_with_appends(nats_cluster: NatsCluster, shard: str):
    create_shard(nats_cluster.urls, shard)
    commands = [encode_command("STATUS", now=1.0, user=1, token=i + 1) for i in range(300)]

    async def run() -> None:
        backend = await connect_backend(nats_cluster.urls, shard)
        try:
            before = scrape(backend)
            assert value(before["boxoffice_cluster_append_seconds"],
                         "boxoffice_cluster_append_seconds_count", shard=shard) == 0  # fmt: skip
            submitted = 0
            for group in (1, 40, 300):  # one alone, then groups the Batcher shares out
                await asyncio.gather(*(backend.batcher.submit(c) for c in commands[:group]))
                submitted += group
                families = scrape(backend)
                latency = families["boxoffice_cluster_append_seconds"]
                sizes = families["boxoffice_cluster_batch_commands"]
                # One latency per acknowledged message, the commands of each message counted.
                appends = assert_sane_histogram(latency, "boxoffice_cluster_append_seconds", shard)
                assert appends == backend.log.appends == backend.batcher.messages
                assert value(families["boxoffice_cluster_appends"],
                             "boxoffice_cluster_appends_total", shard=shard) == appends  # fmt: skip
                assert assert_sane_histogram(sizes, "boxoffice_cluster_batch_commands", shard) == (
                    appends
                )
                assert value(sizes, "boxoffice_cluster_batch_commands_sum", shard=shard) == (
                    submitted
                )
                # Every append was acknowledged within its deadline (10 s), none took no time.
                within = dict(buckets(latency, "boxoffice_cluster_append_seconds", shard))
                assert within[command_log.APPEND_TIMEOUT_S] == appends
                assert value(latency, "boxoffice_cluster_append_seconds_sum", shard=shard) > 0
            # A group of 300 fits one message (1,024 commands at most): one message for it.
            assert dict(buckets(sizes, "boxoffice_cluster_batch_commands", shard))[256.0] < appends
        finally:
            await backend.close()

    asyncio.run(run())


async def failovers_exported(backend: ClusterBackend, replica: str, at_least: int) -> float:
    """The replica's exported failover count once it reaches ``at_least`` (reports come each
    second; the log's head is asked again through an election)."""
    deadline = time.monotonic() + 45
    while True:
        try:
            backend.observation = await backend.observe(max_age_s=0.0)
        except Exception:  # the head is unknown during an election
            backend.observation = None
        if backend.observation is not None:
            samples = scrape(backend)["boxoffice_cluster_replica_failovers"]
            count = [s.value for s in samples if s.labels["replica"] == replica]
            if count and count[0] >= at_least:
                return count[0]
        assert time.monotonic() < deadline, f"{replica}: failovers not >= {at_least}"
        await asyncio.sleep(0.2)


def test_a_replicas_consumer_re_creation_is_its_failover_counter(
    nats_cluster: NatsCluster, shard: str, tmp_path: Path
):
    stream = create_shard(nats_cluster.urls, shard).stream
    replicas = Replicas(tmp_path, nats_cluster.urls, shard)

    async def run() -> None:
        backend = await connect_backend(nats_cluster.urls, shard)
        try:
            # The replica's consumer works (it applied a message); it may have failed before,
            # while the stream just created had no leader: that count is the baseline.
            seq, _ = await backend.batcher.submit(
                encode_command("STATUS", now=1.0, user=1, token=1)
            )
            reports = await wait_applied(nats_cluster.urls, shard, ["r1"], seq)
            first = reports["r1"]["failovers"]
            assert await failovers_exported(backend, "r1", first) == first
            # Its consumer is deleted under it (as an operator or a lost server would): the
            # replica's next fetch fails and it re-creates the consumer.
            infos = await backend.log.js.consumers_info(stream)
            assert infos
            for info in infos:
                await backend.log.js.delete_consumer(stream, info.name)
            assert await failovers_exported(backend, "r1", int(first) + 1) > first
            families = scrape(backend)
            assert value(families["boxoffice_cluster_replica_failovers"],
                         "boxoffice_cluster_replica_failovers_total",
                         replica="r1", shard=shard) > first  # fmt: skip
        finally:
            await backend.close()

    replicas.start("r1", "--tick-s", "0")
    try:
        asyncio.run(run())
    finally:
        replicas.stop_all()
    assert not pid_alive(replicas.started["r1"]["pid"])


def test_a_cluster_workers_metrics_grow_with_its_writes(boxoffice_cluster: ClusterHarness):
    cluster = boxoffice_cluster
    user = cluster.user()

    def scrape_http() -> dict[str, list[Sample]]:
        answer = cluster.http.get("/metrics", headers=cluster.admin_headers)
        assert answer.status_code == 200, answer.text
        return {f.name: f.samples for f in text_string_to_metric_families(answer.text)}

    # The harness's one keep-alive connection: the same worker answers the scrapes and does
    # the charges (each an append of its own, answered before the next is sent).
    before = scrape_http()
    for _ in range(3):
        cluster.charge(user, 1000)
    after = scrape_http()
    counts = []
    for families in (before, after):
        appends = value(families["boxoffice_cluster_appends"],
                        "boxoffice_cluster_appends_total", shard="main")  # fmt: skip
        latency = families["boxoffice_cluster_append_seconds"]
        sizes = families["boxoffice_cluster_batch_commands"]
        assert assert_sane_histogram(latency, "boxoffice_cluster_append_seconds", "main") == (
            appends
        )
        assert assert_sane_histogram(sizes, "boxoffice_cluster_batch_commands", "main") == appends
        counts.append(appends)
        failovers = families["boxoffice_cluster_replica_failovers"]
        for replica in cluster.record["replicas"]:
            labels = {"replica": replica["name"], "shard": "main"}
            assert value(failovers, "boxoffice_cluster_replica_failovers_total", **labels) >= 0
    assert counts[1] >= counts[0] + 3
