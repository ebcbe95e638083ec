"""The store, the secrets and the operators' endpoints, hardened (docs/reliability.md).

- The store is the server user's alone: another local user (``nobody``) cannot open the
  store, its WAL, its shared-memory file or its lock, nor the directory the server made;
  an older store readable by others is tightened at start.
- The pre-queue shuffle's seed is random per store and secret, and a replay of the journal
  still rebuilds the state (the store keeps the seed).
- ``/metrics`` needs the admin key (``X-Admin-Key`` or ``Authorization: Bearer``) unless
  ``BOXOFFICE_METRICS_PUBLIC``; ``/healthz`` stays open.
- A store on a filesystem short of space answers ``/healthz`` 503 ``STORE_UNAVAILABLE``, also
  right after a restart (a real tmpfs mounted by the test).
- Guessable ``BOXOFFICE_JWT_SECRET`` and ``BOXOFFICE_ADMIN_KEY`` values stop the start (exit 2).

The permission and disk tests need root (CI runs as root): to drop to ``nobody`` and to mount.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from problems import problem

import boxoffice as bo
from boxoffice import sim
from boxoffice_api.testing import concert_body, section, serve_command, server_env

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setuid, mount)")
STORE_FILES = ("", "-wal", "-shm", ".lock")
# A system interpreter nobody may run (the virtual environment's may sit in root's home).
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/usr/local/bin:/bin")

# Run as nobody: tries to read each file, then the secrets table through SQLite.
NOBODY_READS = r"""
import json, sqlite3, sys
out = {}
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f:
            f.read(1)
        out[path] = "read"
    except OSError as exc:
        out[path] = type(exc).__name__
try:
    db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=1)
    out["api_meta"] = [list(row) for row in db.execute("SELECT key, value FROM api_meta")]
except sqlite3.Error as exc:
    out["api_meta"] = type(exc).__name__
print(json.dumps(out))
"""


def as_nobody() -> None:
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every local user may enter and list (0755), as /var/lib often is; pytest's
    own tmp_path is 0700 and would hide the store whatever its mode."""
    path = Path(tempfile.mkdtemp(prefix="boxoffice-shared-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- 2. the store is the server user's alone -----------------------------------------------


@ROOT_ONLY
@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no system python3 for the nobody child")
def test_another_local_user_cannot_read_a_store_the_server_created(start_server, shared_dir):
    db = shared_dir / "data" / "boxoffice" / "store.db"  # the server creates both directories
    server = start_server(db=db)
    api = httpx.Client(base_url=server.base_url, timeout=30)
    signed_up = api.post("/v1/users", json={"email": "a@example.com", "password": "x7-Qp!lumen-42"})
    assert signed_up.status_code == 201, signed_up.text  # an argon2 hash in the store
    api.close()
    files = [f"{db}{suffix}" for suffix in STORE_FILES]
    assert all(os.path.exists(f) for f in files)  # -wal and -shm exist while it runs

    directories = [shared_dir / "data", db.parent]
    created_modes = [mode(d) for d in directories]
    # As the server made them; then in directories others may enter: the files themselves
    # refuse them too.
    for opened in (False, True):
        for d in directories if opened else []:
            d.chmod(0o755)
        seen = subprocess.run(
            [str(SYSTEM_PYTHON), "-c", NOBODY_READS, *files],
            preexec_fn=as_nobody,
            cwd="/",
            capture_output=True,
            timeout=60,
            check=True,
        )
        result = json.loads(seen.stdout)
        assert all(result[f] == "PermissionError" for f in files), (opened, result)
        assert result["api_meta"] == "OperationalError", result  # not the jwt_secret
    for f in files:
        assert mode(f) == 0o600, (f, oct(mode(f)))
    assert created_modes == [0o700, 0o700]  # each directory it created
    assert mode(shared_dir) == 0o755  # an existing one is left as it is


def test_an_older_store_readable_by_others_is_tightened_at_start_with_warnings(
    start_server, tmp_path
):
    """A store as every server made it before: files 0644, seed 0, left by a SIGKILL (so the
    -wal and -shm files are there too)."""
    db = tmp_path / "old.db"
    crash = (
        "import os, signal, sys, boxoffice as bo\n"
        "engine = bo.Engine(sys.argv[1])  # seed 0, the library's default\n"
        "engine.create_user(now=1.0)\n"
        "engine.wait_durable()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", crash, str(db)], timeout=60)
    files = [f"{db}{suffix}" for suffix in STORE_FILES]
    for f in files:
        os.chmod(f, 0o644)

    server = start_server(db=db)
    for f in files:
        assert mode(f) == 0o600, (f, oct(mode(f)))
    log = server.log.read_text()
    assert log.count("tightened to 0600") == len(files), log
    assert "0o644" in log
    assert "pre-queue shuffle seed is 0" in log
    health = httpx.get(f"{server.base_url}/healthz", timeout=30).json()
    assert health["users"] == 1  # recovered as it was


# --- 6. the pre-queue shuffle's seed is secret --------------------------------------------


PRE_QUEUE_USERS = 10  # 10! orders: two random seeds agree with probability 3e-7


def join_pre_queue(server: Any, opens_at: datetime) -> tuple[int, list[dict[str, str]]]:
    """Creates a concert opening at ``opens_at`` (capacity 1) and has users 0..9 join its
    pre-queue in that order; returns the concert id and each user's headers."""
    admin = {"X-Admin-Key": server.env["BOXOFFICE_ADMIN_KEY"]}
    concert = concert_body(
        title="Pre-queue",
        sections=[section("A", 1, 4, "R", 1000)],
        opens_at=opens_at.isoformat().replace("+00:00", "Z"),
        queue_capacity=1,
    )
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        created = http.post("/v1/admin/concerts", json=concert, headers=admin)
        assert created.status_code == 201, created.text
        cid: int = created.json()["id"]
        users: list[dict[str, str]] = []
        for i in range(PRE_QUEUE_USERS):
            credentials = {"email": f"pre{i}@example.com", "password": "x7-Qp!lumen-42"}
            assert http.post("/v1/users", json=credentials).status_code == 201
            token = http.post("/v1/auth/token", json=credentials).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            joined = http.post(f"/v1/concerts/{cid}/queue", headers=auth)
            assert joined.status_code in (200, 201), joined.text
            assert joined.json()["status"] == "WAITING" and joined.json()["position"] is None
            users.append(auth | {"X-Queue-Token": joined.json()["queue_token"]})
    return cid, users


def queue_order(server: Any, cid: int, users: list[dict[str, str]]) -> list[int]:
    """The users (0..9) in their queue order after the opening: ACTIVE first, then by
    position."""
    places: list[tuple[int, int]] = []
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for i, headers in enumerate(users):
            state = http.get(f"/v1/concerts/{cid}/queue", headers=headers).json()
            places.append((-1 if state["status"] == "ACTIVE" else state["position"], i))
    assert sorted(p for p, _ in places) == list(range(-1, PRE_QUEUE_USERS - 1)), places
    return [i for _, i in sorted(places)]


def store_seed(db: Path, tmp_path: Path) -> int:
    copy = tmp_path / f"copy-{db.name}"
    sim.copy_store(db, copy)
    engine = bo.Engine(copy)
    try:
        return engine.seed
    finally:
        engine.close()


def test_two_new_stores_shuffle_the_same_pre_queue_differently_and_replay_exactly(
    start_server, tmp_path
):
    one, two = start_server(), start_server()
    opens_at = datetime.now(UTC) + timedelta(seconds=5)
    joined = [join_pre_queue(server, opens_at) for server in (one, two)]
    while datetime.now(UTC) < opens_at + timedelta(seconds=0.2):
        time.sleep(0.1)
    orders = [
        queue_order(s, cid, users) for s, (cid, users) in zip((one, two), joined, strict=True)
    ]
    assert joined[0][0] == joined[1][0]  # the same concert id: seed 0 drew the same order
    assert orders[0] != orders[1], orders

    seeds = [store_seed(s.db, tmp_path) for s in (one, two)]
    assert 0 not in seeds and seeds[0] != seeds[1]
    for server, seed in zip((one, two), seeds, strict=True):
        # The journal alone rebuilds the state: replay uses the seed the store keeps.
        result = sim.replay(server.db)
        assert result.matches, (result.replayed_hash, result.recovered_hash)
        assert result.engine.seed == seed
        # The seed is in no answer and no log line.
        metrics = httpx.get(
            f"{server.base_url}/metrics",
            headers={"X-Admin-Key": server.env["BOXOFFICE_ADMIN_KEY"]},
            timeout=30,
        )
        for text in (metrics.text, httpx.get(f"{server.base_url}/healthz").text):
            assert str(seed) not in text
            assert f"{seed:x}" not in text
        assert str(seed) not in server.log.read_text()


# --- 7. /metrics needs the admin key ------------------------------------------------------


def test_metrics_need_the_admin_key_and_healthz_stays_open(server):
    key = server.env["BOXOFFICE_ADMIN_KEY"]
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        problem(http.get("/metrics"), 403, "ADMIN_KEY_INVALID")
        problem(http.get("/metrics", headers={"X-Admin-Key": key + "x"}), 403, "ADMIN_KEY_INVALID")
        wrong_bearer = {"Authorization": f"Bearer {key[:-1]}"}
        problem(http.get("/metrics", headers=wrong_bearer), 403, "ADMIN_KEY_INVALID")
        basic = {"Authorization": f"Basic {key}"}
        problem(http.get("/metrics", headers=basic), 403, "ADMIN_KEY_INVALID")
        for headers in ({"X-Admin-Key": key}, {"Authorization": f"Bearer {key}"}):
            r = http.get("/metrics", headers=headers)
            assert r.status_code == 200, r.text
            assert "boxoffice_revenue_won" in r.text or "boxoffice_users" in r.text
        health = http.get("/healthz")
        assert health.status_code == 200
        assert set(health.json()) == {
            "status",
            "last_event_seq",
            "concerts",
            "users",
            "password_hash_profile",
        }


def test_metrics_can_be_made_public_by_the_operator(start_server):
    server = start_server(metrics_public="true")
    r = httpx.get(f"{server.base_url}/metrics", timeout=30)
    assert r.status_code == 200 and "boxoffice_users" in r.text


# --- 8b. a store short of space is not healthy ---------------------------------------------


FREE_BYTES_MIN = 2 * 1024 * 1024


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for the test (unmounted after it)."""
    path = Path(tempfile.mkdtemp(prefix="boxoffice-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)])
    if mounted.returncode != 0:
        path.rmdir()
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)
        path.rmdir()


def fill(disk: Path, leave_bytes: int) -> Path:
    """Fills ``disk`` with one file until about ``leave_bytes`` stay free."""
    st = os.statvfs(disk)
    filler = disk / "filler"
    with filler.open("wb") as f:
        f.truncate(0)
        chunk = b"\0" * (1 << 20)
        remaining = st.f_bavail * st.f_frsize - leave_bytes
        while remaining > 0:
            remaining -= f.write(chunk[: min(len(chunk), remaining)])
    return filler


@ROOT_ONLY
def test_a_restart_on_a_full_disk_reports_unhealthy_until_space_is_freed(start_server, small_disk):
    db = small_disk / "store.db"
    server = start_server(db=db, store_free_bytes_min=str(FREE_BYTES_MIN))
    try:
        admin = {"X-Admin-Key": server.env["BOXOFFICE_ADMIN_KEY"]}
        http = httpx.Client(base_url=server.base_url, timeout=30)
        assert (
            http.post(
                "/v1/users", json={"email": "d@example.com", "password": "x7-Qp!lumen-42"}
            ).status_code
            == 201
        )
        filler = fill(small_disk, leave_bytes=FREE_BYTES_MIN // 4)
        # Noticed while running, before any write fails.
        body = problem(http.get("/healthz"), 503, "STORE_UNAVAILABLE")
        assert "BOXOFFICE_STORE_FREE_BYTES_MIN" in body["detail"]
        http.close()

        server.kill()  # and back up on the same full disk
        server.launch()  # not start(): it waits for a 200, and this one answers 503
        health = None
        deadline = time.monotonic() + 30
        while health is None and time.monotonic() < deadline:
            assert server.proc.poll() is None, server.log.read_text()
            try:
                health = httpx.get(f"{server.base_url}/healthz", timeout=1)
            except httpx.TransportError:
                time.sleep(0.05)
        assert health is not None, server.log.read_text()
        problem(health, 503, "STORE_UNAVAILABLE")
        assert int(health.headers["Retry-After"]) >= 1
        assert "store short of space" in server.log.read_text()

        filler.unlink()  # the operator frees space: healthy again, no restart needed
        assert httpx.get(f"{server.base_url}/healthz", timeout=30).status_code == 200
        events = httpx.get(f"{server.base_url}/v1/admin/events", headers=admin, timeout=30)
        assert events.status_code == 200
    finally:
        server.stop()  # before the unmount


# --- 8c. guessable secrets stop the start -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JWT_SECRET", "a" * 32),  # the weak secret the outside attack used
        ("ADMIN_KEY", "test-admin-key-0123456789"),  # these tests' old key
    ],
)
def test_a_guessable_secret_stops_the_server_with_exit_code_2(tmp_path, name, value):
    proc = subprocess.Popen(
        serve_command(tmp_path / "store.db", "--port", "0"),
        env=server_env(**{name.lower(): value}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        pytest.fail(f"the server started with a guessable BOXOFFICE_{name}")
    assert proc.returncode == 2, err
    message = err.decode()
    assert f"BOXOFFICE_{name}" in message and "too weak" in message, message
    assert value not in message and value not in out.decode()
    assert not (tmp_path / "store.db").exists()  # refused before the store is touched
