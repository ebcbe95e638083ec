"""The command log's metrics as a worker's ``/metrics`` exports them, on real nats-servers: the
append-latency and commands-per-message histograms grow with appends and keep sane buckets, and
a replica's consumer re-creations (its server SIGKILLed) show as its failover counter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

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


def test_append_and_batch_histograms_grow_with_appends(nats_cluster: NatsCluster, shard: str):
    create_shard(nats_cluster.urls, shard)
    commands = [encode_command("STATUS", now=1.0, user=1, token=i + 1) for i in range(300)]

    async def run() -> None:
        backend = await ClusterBackend.connect(nats_cluster.urls, shard)
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
        await wait_applied(nats_cluster.urls, shard, ["r1"], 0)
        backend = await ClusterBackend.connect(nats_cluster.urls, shard)
        try:
            assert await failovers_exported(backend, "r1", 0) == 0
            # The server holding the replica's consumer dies: its heartbeats stop and the
            # replica re-creates the consumer on a live server.
            infos = await backend.log.js.consumers_info(stream)
            hosts = {info.cluster.leader for info in infos if info.cluster is not None}
            assert hosts, infos
            for host in hosts:
                await asyncio.to_thread(nats_cluster.kill, host)
            assert await failovers_exported(backend, "r1", 1) >= 1
            families = scrape(backend)
            assert value(families["boxoffice_cluster_replica_failovers"],
                         "boxoffice_cluster_replica_failovers_total",
                         replica="r1", shard=shard) >= 1  # fmt: skip
        finally:
            await backend.close()
            for server in nats_cluster.servers:
                if not nats_cluster.alive(server.name):
                    await asyncio.to_thread(nats_cluster.restart, server.name)

    replicas.start("r1", "--tick-s", "0")
    try:
        asyncio.run(run())
    finally:
        replicas.stop_all()
    assert not pid_alive(replicas.started["r1"]["pid"])
