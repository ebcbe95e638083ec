"""nats-server processes on loopback: configuration, SIGKILL and restart with the same ports
and store, and stopping by pid from a record (as ``boxoffice cluster down`` does)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from nats_helpers import create_shard, stream_messages

from boxoffice_api.cluster import frames
from boxoffice_api.cluster import log as command_log
from boxoffice_api.cluster.nats import NatsCluster


def test_config_of_each_server(nats_cluster: NatsCluster):
    servers = nats_cluster.servers
    assert [s.name for s in servers] == ["n1", "n2", "n3"]
    assert nats_cluster.urls == [f"nats://127.0.0.1:{s.client_port}" for s in servers]
    for server in servers:
        config = Path(server.config).read_text()
        assert f"server_name: {server.name}" in config
        assert "sync_interval: always" in config
        assert json.dumps(server.store_dir) in config
        routes = {f"nats-route://127.0.0.1:{o.cluster_port}" for o in servers if o is not server}
        assert all(route in config for route in routes)
        assert f"127.0.0.1:{server.cluster_port}" in config
        assert nats_cluster.alive(server.name)


def test_single_server_sigkill_keeps_acknowledged_appends_then_stop_by_record(
    tmp_path: Path, shard: str
):
    cluster = NatsCluster(tmp_path / "nats", size=1)
    cluster.start()
    try:
        assert "cluster {" not in Path(cluster.servers[0].config).read_text()
        route = create_shard(cluster.urls, shard, replicas=1)
        payloads = [frames.encode_batch([f"c{n}".encode()]) for n in range(20)]

        async def append_all() -> list[int]:
            log = await command_log.CommandLog.connect(cluster.urls, shard)
            try:
                return [await log.append(p, f"id-{n}") for n, p in enumerate(payloads)]
            finally:
                await log.close()

        seqs = asyncio.run(append_all())
        urls = cluster.urls
        cluster.kill("n1")
        assert not cluster.alive("n1")
        cluster.restart("n1")
        assert cluster.urls == urls  # same ports: clients reconnect to the same addresses
        # Every acknowledged append was on disk (sync_interval: always) before its ack.
        stored = asyncio.run(stream_messages(cluster.urls, route.stream))
        assert [(m.seq, m.data) for m in stored] == list(zip(seqs, payloads, strict=True))

        record = json.loads(json.dumps(cluster.to_json()))
        pid = record["servers"][0]["pid"]
        assert pid == cluster.servers[0].pid > 0
        NatsCluster.from_json(record).stop()  # by pid only, like another process would
        with pytest.raises(ProcessLookupError):  # gone, and reaped
            os.kill(pid, 0)
    finally:
        cluster.stop()


def test_start_retries_with_new_ports_when_one_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import socket

    import boxoffice_api.cluster.nats as nats_module

    real_free_port = nats_module.free_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        picks = iter([taken_port])  # the first choice is the port another process holds
        monkeypatch.setattr(
            nats_module, "free_port", lambda host: next(picks, None) or real_free_port(host)
        )
        cluster = NatsCluster(tmp_path / "nats", size=1)
        cluster.start()
        try:
            assert cluster.servers[0].client_port != taken_port
            assert b"address already in use" in Path(cluster.servers[0].log_file).read_bytes()
            assert cluster.alive("n1")
        finally:
            cluster.stop()
