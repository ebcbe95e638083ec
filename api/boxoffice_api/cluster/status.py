"""What ``boxoffice cluster status`` and health checks read: the stream and the replicas."""

from __future__ import annotations

import json
from typing import Any

from .processes import pid_alive
from .replica import REPLICAS_BUCKET


async def replica_statuses(urls: list[str], shard: str, js: Any = None) -> dict[str, Any]:
    """Each replica's last report (name -> {applied_seq, state_hash, pid, at, ...}); empty
    when none reported yet or the servers are unreachable."""
    import nats
    from nats.js.errors import BucketNotFoundError, NoKeysError

    nc = None
    try:
        if js is None:
            nc = await nats.connect(servers=urls, connect_timeout=2, max_reconnect_attempts=1)
            js = nc.jetstream()
        try:
            kv = await js.key_value(REPLICAS_BUCKET)
            keys = await kv.keys()
        except (BucketNotFoundError, NoKeysError):
            return {}
        statuses: dict[str, Any] = {}
        prefix = f"{shard}."
        for key in keys:
            if key.startswith(prefix):
                entry = await kv.get(key)
                if entry.value:
                    statuses[key[len(prefix) :]] = json.loads(entry.value)
        return statuses
    except Exception:
        return {}
    finally:
        if nc is not None:
            await nc.close()


async def cluster_status(record: dict[str, Any]) -> dict[str, Any]:
    """The status of the cluster ``record`` (``cluster.json``) describes: every nats-server
    (alive), the shard's stream (last sequence, leader), every replica (alive, applied
    sequence, lag in messages) and ``healthy`` (everything up, the stream has a leader)."""
    import nats

    from .log import route

    shard = record["shard"]
    status: dict[str, Any] = {"shard": shard, "stream": None, "last_seq": None, "leader": None}
    status["nats"] = [
        {"name": s["name"], "pid": s["pid"], "alive": pid_alive(int(s["pid"]))}
        for s in record["nats"]["servers"]
    ]
    statuses: dict[str, Any] = {}
    try:
        nc = await nats.connect(servers=record["urls"], connect_timeout=2, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            shard_route = await route(js, shard)
            info = await js.stream_info(shard_route.stream)
            status["stream"] = shard_route.stream
            status["last_seq"] = info.state.last_seq
            status["leader"] = info.cluster.leader if info.cluster else None
            statuses = await replica_statuses(record["urls"], shard, js)
        finally:
            await nc.close()
    except Exception as exc:
        status["error"] = f"{type(exc).__name__}: {exc}"
    replicas = []
    for r in record["replicas"]:
        reported = statuses.get(r["name"], {})
        applied = reported.get("applied_seq")
        last = status["last_seq"]
        replicas.append(
            {
                "name": r["name"],
                "pid": r["pid"],
                "alive": pid_alive(int(r["pid"])),
                "applied_seq": applied,
                "lag": None if applied is None or last is None else max(0, last - applied),
                "state_hash": reported.get("state_hash"),
            }
        )
    status["replicas"] = replicas
    status["healthy"] = (
        all(s["alive"] for s in status["nats"])
        and all(r["alive"] for r in replicas)
        and status["leader"] is not None
    )
    return status
