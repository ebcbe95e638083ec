"""Helpers of the cluster tests that run replicas (a module, not a test): replica processes,
their reports, the cluster's seed."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import nats.errors

from boxoffice_api.cluster import log as command_log
from boxoffice_api.cluster.processes import start_replica, stop_pid
from boxoffice_api.cluster.status import replica_statuses


class Replicas:
    """``boxoffice replica`` processes of one shard, stopped by pid at the end."""

    def __init__(self, directory: Path, urls: list[str], shard: str) -> None:
        self.directory, self.urls, self.shard = directory, urls, shard
        self.started: dict[str, dict[str, Any]] = {}

    def start(self, name: str, *flags: str) -> None:
        self.started[name] = start_replica(self.directory, self.urls, self.shard, name, *flags)

    def kill(self, name: str) -> None:
        stop_pid(self.started[name]["pid"], grace_s=0.0, sig=signal.SIGKILL)

    def stop_all(self) -> None:
        for replica in self.started.values():
            stop_pid(replica["pid"])


async def wait_applied(urls: list[str], shard: str, names: list[str], seq: int) -> dict[str, Any]:
    """Each replica's report once all have applied message ``seq`` (reports come each second)."""
    deadline = time.monotonic() + 60
    while True:
        statuses = await replica_statuses(urls, shard)
        if all(n in statuses and statuses[n]["applied_seq"] >= seq for n in names):
            return statuses
        assert time.monotonic() < deadline, f"replicas did not reach {seq}: {statuses}"
        await asyncio.sleep(0.2)


async def cluster_seed(urls: list[str]) -> int:
    """The cluster's engine seed (asked again through an election: up to 30 s)."""
    nc = await command_log.connect(urls)
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                return await command_log.ensure_meta(nc.jetstream(), 0)
            except nats.errors.TimeoutError:
                assert time.monotonic() < deadline, "no answer from the meta bucket in 30 s"
    finally:
        await nc.close()
