"""How a worker answers polls from queue digests (``RemoteEngine.queue_status``), without NATS:
an in-process engine stands for the log and the replicas, so a quorum loss is one switch.

The same behaviour against real nats-servers and replicas is in ``test_remote_engine.py`` and
``test_cluster_http.py`` (two of three servers SIGKILLed); these cover what a real cluster
makes slow to reach: a touch that fails while the log is down, a damaged digest, an older one.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import nats.errors
import pytest

import boxoffice as bo
from boxoffice_api.cluster.client import ClusterClient
from boxoffice_api.cluster.log import LogUnavailable
from boxoffice_api.cluster.remote_engine import LogHead, QueueDigests, RemoteEngine
from boxoffice_api.security import QueueClaims

T0 = 1_900_000_000.0


class Cluster:
    """An engine behind the two calls a worker makes: appends (``apply``) and reads."""

    def __init__(self) -> None:
        self.engine = bo.Engine()
        self.down = False
        self.appends = 0
        self.last_seen = 0  # LogHead's: the head as this worker last fetched it

    async def apply(self, command: bytes) -> bytes:
        if self.down:
            raise LogUnavailable("no quorum", retry_after_s=2.0)
        self.appends += 1
        return self.engine.apply_encoded(command)

    async def read(self, method: str, *args: Any, min_seq: int = 0, **kwargs: Any) -> Any:
        if self.down:
            raise nats.errors.TimeoutError
        return getattr(self.engine, method)(*args, now=self.engine.clock, **kwargs)

    async def latest(self) -> int:  # LogHead's
        if self.down:
            raise nats.errors.TimeoutError
        self.last_seen = self.appends
        return self.appends

    def publish_digest(self, digests: QueueDigests, concert_id: int) -> None:
        """What a replica does every second."""
        data = self.engine.queue_digest(concert_id, now=self.engine.clock)
        digests.offer(concert_id, self.appends, data)


Line = tuple[Cluster, RemoteEngine, int, list[bo.QueueToken]]


@pytest.fixture
def line() -> Line:
    """A concert with one ACTIVE place and three WAITING fans, joined through the worker."""
    cluster = Cluster()
    remote = RemoteEngine(cast(ClusterClient, cluster), cast(LogHead, cluster))

    async def setup() -> tuple[int, list[bo.QueueToken]]:
        users = [await remote.create_user(now=T0) for _ in range(4)]
        sale = bo.SaleSettings(queue_capacity=1, abandon_timeout_s=60)
        spec = [bo.ScheduleSpec(2e9, [bo.SectionSpec("A", 1, 2, "R", 1)])]
        concert = await remote.create_concert(title="t", schedules=spec, sale=sale, now=T0)
        tokens = [await remote.join_queue(u, concert.id, now=T0 + 1) for u in users]
        return concert.id, tokens

    concert_id, tokens = asyncio.run(setup())
    cluster.publish_digest(remote.digests, concert_id)
    return cluster, remote, concert_id, tokens


def test_a_known_waiting_token_is_answered_from_the_digest_as_the_engine_would(line: Line) -> None:
    cluster, remote, concert_id, tokens = line

    async def run() -> None:
        for position, token in enumerate(tokens[1:]):
            answer = await remote.queue_status(
                token.user_id, token.id, now=T0 + 2, concert_id=concert_id
            )
            engine = cluster.engine.live_token(token.user_id, concert_id, now=cluster.engine.clock)
            assert (answer.status, answer.position) == ("WAITING", position)
            assert engine is not None
            assert (answer.eta_s, answer.poll_after_s) == (engine.eta_s, engine.poll_after_s)
        assert remote.polls == {"digest": 3, "replica": 0, "log": 0}
        # Someone else's token, or the right token under another concert: not from the digest.
        with pytest.raises(bo.errors.QueueTokenInvalid):
            await remote.queue_status(
                tokens[0].user_id, tokens[1].id, now=T0 + 2, concert_id=concert_id
            )
        assert remote.polls["digest"] == 3

    asyncio.run(run())


def test_without_a_quorum_polls_answer_from_the_last_digest_even_after_a_failed_touch(
    line: Line,
) -> None:
    cluster, remote, concert_id, tokens = line
    token = tokens[2]

    async def run() -> None:
        cluster.down = True
        # 31 s after the join, half the abandon timeout: the poll sends a touch, which fails.
        answer = await remote.queue_status(
            token.user_id, token.id, now=T0 + 32, concert_id=concert_id
        )
        assert (answer.status, answer.position) == ("WAITING", 1)
        await asyncio.gather(*remote._touches)
        assert remote.touch_failures == 1
        # The token is still known: polls keep their answer while the log is down.
        for _ in range(3):
            again = await remote.queue_status(
                token.user_id, token.id, now=T0 + 33, concert_id=concert_id
            )
            assert (again.status, again.position) == ("WAITING", 1)
        await asyncio.gather(*remote._touches)
        # A token the digest cannot answer (ACTIVE) needs the engine: 503 while it is down.
        with pytest.raises(LogUnavailable):
            await remote.queue_status(
                tokens[0].user_id, tokens[0].id, now=T0 + 33, concert_id=concert_id
            )
        cluster.down = False
        appends = cluster.appends
        await remote.queue_status(token.user_id, token.id, now=T0 + 34, concert_id=concert_id)
        await asyncio.gather(*remote._touches)
        assert cluster.appends == appends + 1  # the touch goes through once the log is back

    asyncio.run(run())


def test_an_older_or_damaged_digest_never_replaces_the_held_one(line: Line) -> None:
    cluster, remote, concert_id, _ = line
    held = remote.digests.last(concert_id)
    assert held is not None
    remote.digests.offer(concert_id, cluster.appends - 1, b"\x01older")  # a replica behind
    remote.digests.offer(concert_id, cluster.appends + 1, b"\x07damaged")
    remote.digests.offer(
        concert_id + 1,
        cluster.appends + 1,
        cluster.engine.queue_digest(concert_id, now=cluster.engine.clock),
    )
    assert remote.digests.last(concert_id) is held
    assert remote.digests.last(concert_id + 1) is None  # it named another concert
    assert remote.digests.damaged == 2


def test_a_token_that_left_through_this_worker_is_asked_of_the_engine_at_once(
    line: Line,
) -> None:
    _, remote, concert_id, tokens = line
    token = tokens[1]

    async def run() -> None:
        await remote.leave_queue(token.user_id, token.id, now=T0 + 3)
        # The held digest still shows it WAITING; the worker knows better.
        answer = await remote.queue_status(
            token.user_id, token.id, now=T0 + 4, concert_id=concert_id
        )
        assert (answer.status, answer.ended_reason) == ("EXPIRED", "LEFT")
        assert remote.polls["digest"] == 0

    asyncio.run(run())


def test_a_digest_behind_the_log_head_is_not_fresh_once_its_clock_is_old(line: Line) -> None:
    """A replica stuck behind the log keeps publishing its old state; a worker that has seen
    a later head stops answering from it once its clock is ``FRESH_S`` old."""
    cluster, remote, concert_id, tokens = line
    token = tokens[3]

    async def run() -> None:
        late = await remote.create_user(now=T0 + 2)  # the log moves on...
        await remote.join_queue(late, concert_id, now=T0 + 2)
        await cluster.latest()  # ...and this worker sees its head (a read, a health probe)
        assert remote.digests.fresh(concert_id, T0 + 2, cluster.last_seen) is not None
        answer = await remote.queue_status(
            token.user_id, token.id, now=T0 + 2, concert_id=concert_id
        )
        assert remote.polls["digest"] == 1 and answer.position == 2
        # Ten seconds on by the clock, the digest (engine clock T0 + 1) is too old to trust.
        assert remote.digests.fresh(concert_id, T0 + 11, cluster.last_seen) is None
        await remote.queue_status(token.user_id, token.id, now=T0 + 11, concert_id=concert_id)
        assert remote.polls["digest"] == 1  # the engine answered
        # While the log stands still at the digest's sequence, its age does not matter.
        cluster.publish_digest(remote.digests, concert_id)
        assert remote.digests.fresh(concert_id, T0 + 500, cluster.last_seen) is not None

    asyncio.run(run())


def test_a_line_with_nobody_waiting_is_forgotten(line: Line) -> None:
    cluster, remote, concert_id, tokens = line

    async def run() -> None:
        for token in tokens[1:]:
            await remote.leave_queue(token.user_id, token.id, now=T0 + 3)

    asyncio.run(run())
    assert remote.digests.ages(T0 + 3) == [(concert_id, 2.0)]
    cluster.publish_digest(remote.digests, concert_id)  # the line's last digest: empty
    assert remote.digests.last(concert_id) is None
    assert remote.digests.ages(T0 + 3) == []  # no age exported for a finished line


def test_a_worker_that_never_saw_a_token_answers_its_first_poll_from_the_claims(
    line: Line,
) -> None:
    cluster, _, concert_id, tokens = line
    # A second worker on the same cluster: it has the digest, and has seen no engine answer.
    second = RemoteEngine(cast(ClusterClient, cluster), cast(LogHead, cluster))
    cluster.publish_digest(second.digests, concert_id)
    token = tokens[2]
    claims = QueueClaims(token.user_id, concert_id, token.id, token.join_seq, token.joined_at)

    async def run() -> None:
        # Without the claims: the engine is asked (a log write, as before).
        await second.queue_status(token.user_id, token.id, now=T0 + 2, concert_id=concert_id)
        assert second.polls == {"digest": 0, "replica": 0, "log": 1}
        third = RemoteEngine(cast(ClusterClient, cluster), cast(LogHead, cluster))
        cluster.publish_digest(third.digests, concert_id)
        appends = cluster.appends
        for _ in range(3):
            answer = await third.queue_status(
                token.user_id, token.id, now=T0 + 3, concert_id=concert_id, claims=claims
            )
            assert (answer.status, answer.position, answer.id) == ("WAITING", 1, token.id)
        await asyncio.gather(*third._touches)
        assert third.polls == {"digest": 3, "replica": 0, "log": 0}
        assert cluster.appends == appends  # joined 2 s ago: no touch due yet
        # Half the abandon timeout after the join, one touch: the join counted as the first.
        await third.queue_status(
            token.user_id, token.id, now=T0 + 32, concert_id=concert_id, claims=claims
        )
        await asyncio.gather(*third._touches)
        assert cluster.appends == appends + 1
        # The claims name their user: another user's poll with them is the engine's refusal,
        # even at a worker with a fresh digest that has never seen the token.
        fourth = RemoteEngine(cast(ClusterClient, cluster), cast(LogHead, cluster))
        cluster.publish_digest(fourth.digests, concert_id)
        with pytest.raises(bo.errors.QueueTokenInvalid):
            await fourth.queue_status(
                tokens[3].user_id, token.id, now=T0 + 33, concert_id=concert_id, claims=claims
            )
        assert fourth.polls["digest"] == 0

    asyncio.run(run())


def test_a_token_that_left_through_this_worker_is_not_answered_from_its_claims(
    line: Line,
) -> None:
    _, remote, concert_id, tokens = line
    token = tokens[3]
    claims = QueueClaims(token.user_id, concert_id, token.id, token.join_seq, token.joined_at)

    async def run() -> None:
        left = await remote.leave_queue(token.user_id, token.id, now=T0 + 2)
        assert left.status == "EXPIRED"
        # The digest (a second behind) still has it WAITING; the worker knows better.
        assert remote.digests.last(concert_id) is not None
        answer = await remote.queue_status(
            token.user_id, token.id, now=T0 + 2, concert_id=concert_id, claims=claims
        )
        assert answer.status == "EXPIRED"
        assert remote.polls["digest"] == 0

    asyncio.run(run())
