"""The HTTP API through a whole one-machine cluster (``boxoffice cluster up``): 3 nats-servers,
2 replicas, 2 stateless workers sharing one port; real processes, SIGKILL, stopped by pid."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from boxoffice_api import testing
from boxoffice_api.cluster.nats import NatsCluster
from boxoffice_api.cluster.processes import pid_alive, stop_pid
from boxoffice_api.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple 42"
J = {"Content-Type": "application/json"}


def boxoffice(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "boxoffice.cli", *args],
        capture_output=True, text=True, timeout=180, check=False, env=env,
    )  # fmt: skip


class Cluster:
    """A ``cluster up`` record and an HTTP client for its workers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.record: dict[str, Any] = json.loads((directory / "cluster.json").read_text())
        self.url: str = self.record["url"]
        self.admin = {"X-Admin-Key": self.record["admin_key"]}
        self.nats = NatsCluster.from_json(self.record["nats"])

    def pids(self) -> list[int]:
        pids = [int(s["pid"]) for s in self.record["nats"]["servers"]]
        return pids + [int(c["pid"]) for c in self.record["replicas"] + self.record["workers"]]

    def fan(self, client: httpx.Client, email: str) -> dict[str, str]:
        """Signs ``email`` up, logs in, joins concert 1: the headers of its requests."""
        client.post("/v1/users", json={"email": email, "password": PASSWORD}, headers=J)
        login = client.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        queue = client.post("/v1/concerts/1/queue", headers=auth).json()
        return auth | {"X-Queue-Token": queue["queue_token"]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("cluster")
    env = dict(os.environ, BOXOFFICE_APPEND_TIMEOUT_S="4")
    up = boxoffice(
        "cluster", "up", "--dir", str(directory), "--port", str(free_port()), "--demo", env=env
    )
    record_path = directory / "cluster.json"
    started = Cluster(directory) if record_path.exists() else None
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert started is not None
        yield started
    finally:
        down = boxoffice("cluster", "down", "--dir", str(directory))
        if started is not None:
            # Servers a test restarted have pids the record never saw: stopped here.
            restarted = [s.pid for s in started.nats.servers if s.pid > 0]
            started.nats.stop()
            for pid in started.pids():
                stop_pid(pid, grace_s=1.0)
            assert not any(pid_alive(pid) for pid in started.pids() + restarted)
        assert down.returncode == 0 or started is None, down.stderr


def walkthrough() -> str:
    section = (ROOT / "README.md").read_text().split("## A drop over HTTP", 1)[1]
    return str(re.findall(r"```bash\n(.*?)```", section, re.S)[0])


def test_the_readme_walkthrough_runs_unchanged_against_the_cluster(cluster: Cluster) -> None:
    env = dict(os.environ, B=cluster.url, BOXOFFICE_ADMIN_KEY=cluster.record["admin_key"])
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walkthrough()],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert '{"id":1,"title":"IU 2027 World Tour","venue":"KSPO Dome"}' in lines
    assert '{"status":"ACTIVE","position":null,"eta_s":null,"poll_after_s":5}' in lines
    assert '{"status":409,"code":"INSUFFICIENT_BALANCE"}' in lines
    assert '{"status":"SUCCEEDED","amount":330000,"balance":170000}' in lines
    assert '{"queue_active":0,"seats_sold":2,"revenue":330000}' in lines


def test_health_and_metrics_show_the_log_head_and_each_replicas_lag(cluster: Cluster) -> None:
    names = {r["name"] for r in cluster.record["replicas"]}
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        deadline = time.monotonic() + 20
        while True:  # the replicas report every second; the ticks (10 a second) go on meanwhile
            health = client.get("/healthz")
            assert health.status_code == 200, health.text
            state = health.json()["cluster"]
            replicas = {r["name"]: r for r in state["replicas"]}
            if set(replicas) == names and all(r["lag"] < 50 for r in replicas.values()):
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.5)
        assert state["shard"] == "main" and state["log_last_seq"] >= 1
        for r in replicas.values():
            assert r["applied_seq"] + r["lag"] == state["log_last_seq"]
            assert 0 <= r["age_s"] < 10

        metrics = client.get("/metrics", headers=cluster.admin)
        assert metrics.status_code == 200, metrics.text
        text = metrics.text
        stats = client.get("/v1/admin/concerts/1/stats", headers=cluster.admin).json()

    def sample(name: str, labels: str) -> float:
        found = re.search(rf"^{name}{{{labels}}} (\S+)$", text, re.M)
        assert found, f"{name}{{{labels}}} is not in the metrics"
        return float(found.group(1))

    assert sample("boxoffice_cluster_log_last_seq", 'shard="main"') >= state["log_last_seq"]
    for name in names:
        labels = f'replica="{name}",shard="main"'
        assert sample("boxoffice_cluster_replica_applied_seq", labels) >= 1
        assert sample("boxoffice_cluster_replica_lag_messages", labels) >= 0
    assert sample("boxoffice_seats_sold", 'concert_id="1"') == stats["seats_sold"]
    assert sample("boxoffice_cluster_appends_total", 'shard="main"') >= 0


def test_a_token_naming_no_user_is_401_as_on_a_single_server(cluster: Cluster) -> None:
    import jwt

    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        headers = cluster.fan(client, "nobody@example.com")
        claims = jwt.decode(
            headers["Authorization"].split()[1], options={"verify_signature": False}
        )
        forged = jwt.encode(claims | {"sub": "987654321"}, cluster.record["jwt_secret"], "HS256")
        for path in ("/v1/me/balance", "/v1/me/reservations", "/v1/me"):
            answer = client.get(path, headers={"Authorization": f"Bearer {forged}"})
            assert answer.status_code == 401, answer.text
            assert answer.json()["code"] == "UNAUTHENTICATED"
        charge = client.post(
            "/v1/me/balance/charges",
            json={"amount": 1000},
            headers={"Authorization": f"Bearer {forged}"},
        )
        assert charge.status_code == 401, charge.text


def test_the_web_pages_and_the_dashboards_reads_are_served_by_the_workers(
    cluster: Cluster,
) -> None:
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        for page in ("/", "/admin", "/concerts/1/wait", "/concerts/1/seats"):
            answer = client.get(page)
            assert answer.status_code == 200, (page, answer.text)
            assert answer.headers["content-type"].startswith("text/html")
        newest = client.get("/v1/admin/concerts", params={"limit": 5}, headers=cluster.admin)
        assert newest.status_code == 200, newest.text
        concerts = newest.json()
        assert concerts and concerts[-1]["id"] == 1 and concerts[0]["sale"]["queue_capacity"] >= 1


def test_a_worker_killed_mid_flight_loses_nothing_and_a_retry_answers_once(
    cluster: Cluster,
) -> None:
    """Holds with Idempotency-Keys are in flight on both workers when one is SIGKILLed; every
    hold whose answer was lost is retried with its key (through the survivor): each key ends
    with exactly one reservation, and the retry answers the first result."""
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        fans = [cluster.fan(client, f"kill{i}@example.com") for i in range(8)]
        for headers in fans:
            client.post("/v1/me/balance/charges", json={"amount": 1_000_000}, headers=headers)

    def hold(i: int) -> httpx.Response | None:
        headers = fans[i % len(fans)] | {"Idempotency-Key": f"kill-{i}"} | J
        body = {"schedule_id": 2, "quantity": 1}
        try:  # a new connection per hold: the kernel spreads them over both workers
            with httpx.Client(base_url=cluster.url, timeout=30) as client:
                return client.post("/v1/reservations", json=body, headers=headers)
        except httpx.TransportError:
            return None  # the worker died with the request

    victim = cluster.record["workers"][0]["pid"]
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(hold, i) for i in range(32)]
        time.sleep(0.05)
        stop_pid(victim, grace_s=0.0, sig=signal.SIGKILL)
        first = [f.result() for f in futures]
    retried = {i: hold(i) for i, r in enumerate(first) if r is None or r.status_code >= 500}
    answers = {i: r for i, r in enumerate(first) if r is not None and r.status_code < 500}
    answers |= {i: r for i, r in retried.items() if r is not None}
    assert len(answers) == 32, f"no answer for {set(range(32)) - set(answers)}"
    by_key = {i: r.json()["id"] for i, r in answers.items() if r.status_code == 201}
    assert len(set(by_key.values())) == len(by_key)  # one reservation per key, never two
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        held = [
            r["id"]
            for headers in fans
            for r in client.get("/v1/me/reservations", headers=headers).json()["items"]
            if r["schedule_id"] == 2
        ]
        again = {i: hold(i) for i in list(by_key)[:4]}  # a retry after success: the first result
    assert sorted(held) == sorted(by_key.values())
    for i, r in again.items():
        assert r is not None and r.json()["id"] == by_key[i]


def test_boxoffice_drop_against_the_cluster_passes_its_consistency_check(
    cluster: Cluster,
) -> None:
    done = boxoffice(
        "drop", "--url", cluster.url, "--users", "120", "--admin-key",
        cluster.record["admin_key"], "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(done.stdout)["ok"]


def waiting_fans(
    cluster: Cluster, client: httpx.Client, n: int
) -> tuple[int, list[dict[str, str]]]:
    """A new concert with one ACTIVE place and ``n`` + 1 fans in its line: the concert and the
    headers of the ``n`` WAITING ones (positions 0..n-1)."""
    body = testing.concert_body(queue_capacity=1, abandon_timeout_s=600)
    concert = client.post("/v1/admin/concerts", json=body, headers=cluster.admin).json()["id"]
    fans = []
    for i in range(n + 1):
        email = f"line{concert}-{i}@example.com"
        client.post("/v1/users", json={"email": email, "password": PASSWORD}, headers=J)
        login = client.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        joined = client.post(f"/v1/concerts/{concert}/queue", headers=auth)
        assert joined.status_code == 201, joined.text
        fans.append(auth | {"X-Queue-Token": joined.json()["queue_token"]})
    return concert, fans[1:]


def poll_each_worker(url: str, concert: int, fan: dict[str, str]) -> httpx.Response:
    """A poll on a new connection (the kernel spreads connections over the workers)."""
    with httpx.Client(base_url=url, timeout=30) as fresh:
        return fresh.get(f"/v1/concerts/{concert}/queue", headers=fan)


def test_two_of_three_servers_down_writes_are_503_and_nothing_acknowledged_is_lost(
    cluster: Cluster,
) -> None:
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        headers = cluster.fan(client, "quorum@example.com")
        first = client.post("/v1/me/balance/charges", json={"amount": 1000}, headers=headers)
        assert first.status_code == 201
        concert, line = waiting_fans(cluster, client, 3)
        for _ in range(12):  # every worker learns the WAITING tokens (an engine answer each)
            for fan in line:
                assert poll_each_worker(cluster.url, concert, fan).status_code == 200
        down = [s.name for s in cluster.nats.servers[:2]]
        for name in down:
            cluster.nats.kill(name)
        try:
            refused = client.post(
                "/v1/me/balance/charges", json={"amount": 1000}, headers=headers | J
            )
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "STORE_UNAVAILABLE"
            assert "Retry-After" in refused.headers
            # Polls are still answered, from the last queue digest, with the line as it was.
            for _ in range(4):
                for position, fan in enumerate(line):
                    poll = poll_each_worker(cluster.url, concert, fan)
                    assert poll.status_code == 200, poll.text
                    assert (poll.json()["status"], poll.json()["position"]) == (
                        "WAITING",
                        position,
                    )
            still = client.post(
                "/v1/me/balance/charges", json={"amount": 1000}, headers=headers | J
            )
            assert still.status_code == 503, still.text  # the polls were answered without a quorum
        finally:
            for name in down:  # the writes below wait for the stream's election
                cluster.nats.restart(name, wait=False)
        deadline = time.monotonic() + 60
        while True:  # the stream elects a leader again
            after = client.post("/v1/me/balance/charges", json={"amount": 1000}, headers=headers)
            if after.status_code == 201 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert after.status_code == 201, after.text
        balance = client.get("/v1/me/balance", headers=headers).json()["balance"]
        # The acknowledged charges are there; the refused ones are there at most once each (a
        # 503 may be appended after its deadline), never twice.
        assert balance in (2000, 3000, 4000)
        metrics = client.get("/metrics", headers=cluster.admin)
        assert metrics.status_code == 200, metrics.text
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(metrics.text)
            for sample in family.samples
        }
        digest_polls = (("answered_from", "digest"), ("shard", "main"))
        assert samples[("boxoffice_cluster_polls_total", digest_polls)] > 0
        digest_age = (("concert_id", str(concert)), ("shard", "main"))
        assert samples[("boxoffice_cluster_queue_digest_age_seconds", digest_age)] >= 0


def test_admin_key_prints_the_clusters_key(cluster: Cluster) -> None:
    done = boxoffice("admin-key", "--cluster-dir", str(cluster.directory))
    assert (done.returncode, done.stdout.strip()) == (0, cluster.record["admin_key"])
    assert (cluster.directory / "cluster.json").stat().st_mode & 0o077 == 0  # holds secrets


def test_a_killed_replica_ages_in_health_while_the_other_serves(cluster: Cluster) -> None:
    victim = cluster.record["replicas"][0]
    os.kill(int(victim["pid"]), signal.SIGKILL)  # the fixture's clean-up finds it gone
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        deadline = time.monotonic() + 30
        # The other replica answers (a read sent to the dead one may time out), and an answer
        # may list no reports when reading the bucket timed out under load: asked again.
        while True:
            health = client.get("/healthz")
            if health.status_code == 200:
                replicas = {r["name"]: r for r in health.json()["cluster"]["replicas"]}
                dead = replicas.get(victim["name"])
                alive = [r for name, r in replicas.items() if name != victim["name"]]
                if (
                    dead is not None
                    and dead["age_s"] > 3
                    and dead["lag"] > 0
                    and alive
                    and all(r["age_s"] < 3 for r in alive)
                ):
                    break
            assert time.monotonic() < deadline, health.text
            time.sleep(0.5)
