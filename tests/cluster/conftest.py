"""Fixtures of the cluster tests: real nats-server processes on 127.0.0.1, stopped by pid.

``nats_cluster`` is one 3-server cluster for the whole session (a RAFT cluster takes seconds to
form); before each test any server a previous test killed is restarted and every server is
ready again. Tests that kill servers use their own shard (``shard``), so that their streams do
not disturb one another. ``nats_single`` is a 1-server install (R1 streams).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from nats_helpers import heal

from boxoffice_api.cluster.nats import NatsCluster

_shards = itertools.count(1)


def running_cluster(factory: pytest.TempPathFactory, size: int) -> Iterator[NatsCluster]:
    cluster = NatsCluster(factory.mktemp(f"nats{size}"), size=size)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def nats_cluster_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    yield from running_cluster(tmp_path_factory, 3)


@pytest.fixture
def nats_cluster(nats_cluster_session: NatsCluster) -> NatsCluster:
    """The session's 3-server cluster, every server running and ready."""
    heal(nats_cluster_session)
    return nats_cluster_session


@pytest.fixture(scope="session")
def nats_single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """One nats-server (no cluster block) for R1 streams."""
    yield from running_cluster(tmp_path_factory, 1)


@pytest.fixture
def shard() -> str:
    """A shard name no other test of this session uses."""
    return f"t{next(_shards)}"
