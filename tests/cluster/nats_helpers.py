"""Helpers of the cluster tests (a module, not a test): heal a cluster, create a shard, read
a stream back."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.js.errors

from boxoffice_api.cluster import log as command_log
from boxoffice_api.cluster.nats import NatsCluster


def heal(cluster: NatsCluster) -> None:
    """Restarts every server of ``cluster`` that is not running; returns once all are ready
    and every stream's copies are current (the next failure meets a whole cluster)."""
    for server in cluster.servers:
        if not cluster.alive(server.name):
            cluster.restart(server.name, wait=False)
    cluster.wait_ready()
    cluster.wait_streams_current()


def create_shard(urls: list[str], shard: str, replicas: int = 3) -> command_log.ShardRoute:
    """Creates ``shard``'s stream and routing entry (blocking; for tests outside a loop)."""

    async def run() -> command_log.ShardRoute:
        nc = await command_log.connect(urls)
        try:
            return await command_log.ensure_shard(nc.jetstream(), shard, replicas)
        finally:
            await nc.close()

    return asyncio.run(run())


async def stream_messages(urls: list[str], stream: str) -> list[Any]:
    """Every message of ``stream`` in sequence order (``nats.js.api.RawStreamMsg``)."""
    nc = await command_log.connect(urls)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        messages = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                messages.append(await js.get_msg(stream, seq))
            except nats.js.errors.NotFoundError:
                continue  # deleted (none are in these tests; the caller compares counts)
        return messages
    finally:
        await nc.close()
