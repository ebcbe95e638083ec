"""The pytest plugin (``boxoffice_api.testing.plugin``, entry point ``pytest11``) and the test
clock it relies on.

A third party's test file, with no conftest, runs in its own pytest process in a temporary
directory: it gets the fixtures from the installed package alone. The test clock exists only
in test mode (``BOXOFFICE_TEST_CLOCK``), which refuses a store ever served without it.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from boxoffice_api import Settings, create_app, store_files
from boxoffice_api.service import Service, TestClock
from boxoffice_api.testing import ServerError, ServerProcess, serve_command, server_env
from boxoffice_api.testing.harness import AppHarness, ServerHarness, asgi_client
from boxoffice_api.testing.plugin import new_admin_key

# What docs/testing.md shows: hold, let the hold expire through the test clock, hold again, pay;
# through a real server and through the app in the test's process, with the typed client.
THIRD_PARTY_TEST = """\
import pytest


@pytest.fixture(params=["boxoffice_server", "boxoffice_app"])
def bo(request):
    return request.getfixturevalue(request.param)


def test_an_expired_hold_frees_the_seat_and_a_new_hold_is_paid(bo):
    concert = bo.concert(hold_ttl_s=300)
    fan = bo.fan()  # signed up, logged in, 1,000,000 won in the wallet
    fan.wait_until_active(concert["id"])
    schedule = fan.list_schedules(concert["id"])[0]
    first = fan.hold_seats(schedule.id, quantity=1, grade="VIP")

    bo.advance(301)  # past expires_at at once: no sleeping
    assert fan.get_reservation(first.id).status == "EXPIRED"

    again = fan.hold_seats(schedule.id, quantity=1, grade="VIP")
    assert fan.pay(again.id).status == "SUCCEEDED"
    assert fan.get_balance().balance == 1_000_000 - again.amount
"""

# The same with raw HTTP requests (the harness's httpx client): no client extra needed.
RAW_HTTP_TEST = """\
def test_an_expired_hold_frees_the_seat_and_a_new_hold_is_paid(boxoffice_server):
    bo = boxoffice_server
    concert = bo.concert(hold_ttl_s=300)
    schedule_id = concert["schedules"][0]["id"]
    token = bo.active_token(bo.funded_user(), concert["id"])
    seat = bo.seats(token, schedule_id)[0]
    hold = {"schedule_id": schedule_id, "seat_ids": [seat["id"]]}
    first = bo.http.post("/v1/reservations", json=hold, headers=token.headers)
    assert first.status_code == 201, first.text

    bo.advance(301)  # past expires_at at once: no sleeping
    expired = bo.http.get(f"/v1/reservations/{first.json()['id']}", headers=token.headers)
    assert expired.json()["status"] == "EXPIRED"

    again = bo.http.post("/v1/reservations", json=hold, headers=token.headers)
    assert again.status_code == 201, again.text
    pay = {"reservation_id": again.json()["id"]}
    paid = bo.http.post("/v1/payments", json=pay, headers=token.headers)
    assert paid.status_code == 201, paid.text
"""

OTHER_FIXTURES_TEST = """\
def test_the_engine_fixture(boxoffice_engine):
    assert boxoffice_engine.create_user(now=0) == 1


def test_the_in_process_app_fixture(boxoffice_app):
    concert = boxoffice_app.concert()
    token = boxoffice_app.active_token(boxoffice_app.funded_user(), concert["id"])
    assert token.joined["status"] == "ACTIVE"
    assert boxoffice_app.http.get("/healthz").json()["test_clock"] is True


def test_a_failure_shows_the_server_log(boxoffice_server):
    assert boxoffice_server.http.get("/healthz").json()["status"] == "broken"
"""


def run_pytest(directory: Path, test_file: str, source: str) -> subprocess.CompletedProcess[str]:
    """pytest on ``source`` in ``directory``, in a process of its own (no conftest, no ini: the
    fixtures come from the installed plugin)."""
    (directory / test_file).write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_third_party_test_holds_lets_the_hold_expire_and_pays(tmp_path):
    assert len(THIRD_PARTY_TEST.splitlines()) < 30
    result = run_pytest(tmp_path, "test_third_party.py", THIRD_PARTY_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout  # a real server, and the app in the test's process


def test_the_same_test_in_raw_http_requests(tmp_path):
    result = run_pytest(tmp_path, "test_raw_http.py", RAW_HTTP_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_other_fixtures_and_the_server_log_of_a_failed_test(tmp_path):
    result = run_pytest(tmp_path, "test_fixtures.py", OTHER_FIXTURES_TEST)
    assert "1 failed, 2 passed" in result.stdout, result.stdout + result.stderr
    # The failed test's report ends with the server's log: its start and the request it made.
    log = result.stdout.split("boxoffice server log", 1)[1]
    assert "Application startup complete." in log and '"route": "/healthz"' in log


# --- the test clock ---------------------------------------------------------------------


def test_the_test_clock_only_goes_forward():
    wall = iter([1000.0, 1000.0, 1001.0, 1001.0])
    clock = TestClock(lambda: next(wall))
    assert clock.now() == 1000.0
    assert clock.advance(300) == 1300.0
    assert clock.now() == 1301.0  # the wall clock goes on beneath it
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="only goes forward"):
            clock.advance(bad)
    assert clock.offset_s == 300


def app_settings(db: Path, *, test_clock: bool, admin_key: str) -> Settings:
    return Settings(
        db=db,
        admin_key=admin_key,
        test_clock=test_clock,
        password_hash_profile="cheapest",
        log_level="warning",
    )


def test_advancing_fires_the_deadlines_at_once_and_is_the_admins_only(tmp_path):
    key = new_admin_key()
    app = create_app(app_settings(tmp_path / "store.db", test_clock=True, admin_key=key))
    with asgi_client(app) as http:
        bo = AppHarness(http, key, app)
        concert = bo.concert(hold_ttl_s=60)
        token = bo.active_token(bo.funded_user(), concert["id"])
        schedule_id = concert["schedules"][0]["id"]
        seat_ids = [bo.seats(token, schedule_id)[0]["id"]]
        hold = {"schedule_id": schedule_id, "seat_ids": seat_ids}
        assert http.post("/v1/reservations", json=hold, headers=token.headers).status_code == 201
        engine = app.state.service.engine
        events_before = engine.last_event_seq
        clock = bo.advance(61)
        assert clock["offset_s"] == 61
        # The advance itself fired the expiry (ReservationExpired), before any other request.
        assert engine.last_event_seq == events_before + 1
        assert bo.clock()["offset_s"] == 61
        step = {"seconds": -1}
        back = http.post("/v1/admin/test-clock", json=step, headers=bo.admin_headers)
        assert back.status_code == 422 and back.json()["code"] == "INVALID_ARGUMENT"
        # Ten-year steps (the most one step takes) stop short of 9000-01-01, and the server
        # keeps answering: the clock never reaches years that cannot be written.
        ten_years = {"seconds": 10 * 366 * 86_400}
        answers = [
            http.post("/v1/admin/test-clock", json=ten_years, headers=bo.admin_headers)
            for _ in range(800)
        ]
        assert answers[0].status_code == 200
        assert answers[-1].status_code == 422, answers[-1].text
        assert "9000-01-01" in answers[-1].json()["detail"]
        assert bo.clock()["now"].startswith("8")  # still readable
        assert http.get("/healthz").status_code == 200
        anyone = http.post("/v1/admin/test-clock", json={"seconds": 1})
        assert anyone.status_code == 403 and anyone.json()["code"] == "ADMIN_KEY_INVALID"
        assert http.get("/healthz").json()["test_clock"] is True
        assert "/v1/admin/test-clock" in http.get("/openapi.json").json()["paths"]


def test_without_test_mode_there_is_no_test_clock(tmp_path):
    key = new_admin_key()
    app = create_app(app_settings(tmp_path / "store.db", test_clock=False, admin_key=key))
    with asgi_client(app) as http:
        admin = {"X-Admin-Key": key}
        r = http.post("/v1/admin/test-clock", json={"seconds": 301}, headers=admin)
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
        assert http.get("/v1/admin/test-clock", headers=admin).status_code == 404
        assert "test_clock" not in http.get("/healthz").json()
        assert "/v1/admin/test-clock" not in http.get("/openapi.json").json()["paths"]


def test_the_test_clock_is_for_an_embedded_store_only():
    with pytest.raises(ValidationError, match="embedded store"):
        Settings(
            cluster="nats://127.0.0.1:4222",
            test_clock=True,
            jwt_secret=new_admin_key(),
            admin_key=new_admin_key(),
        )


def open_and_close(db: Path, *, test_clock: bool) -> None:
    """Serves ``db`` once (opens and closes the service, as a server start and stop do)."""
    Service(app_settings(db, test_clock=test_clock, admin_key=new_admin_key())).close()


def test_test_mode_refuses_a_store_served_without_it(tmp_path):
    db = tmp_path / "store.db"
    open_and_close(db, test_clock=True)  # a new store, made in test mode
    open_and_close(db, test_clock=True)  # and served in test mode again
    open_and_close(db, test_clock=False)  # then once on the wall clock
    with pytest.raises(store_files.TestClockRefused, match="served without the test clock"):
        open_and_close(db, test_clock=True)
    open_and_close(db, test_clock=False)  # the refusal left the store as it was


def test_test_mode_refuses_a_store_older_than_the_record(tmp_path):
    import boxoffice as bo

    db = tmp_path / "store.db"
    bo.Engine(db).close()  # a store with no clock record (made before it, or by the engine)
    with pytest.raises(store_files.TestClockRefused):
        open_and_close(db, test_clock=True)


def test_a_refused_server_says_why_in_one_line(tmp_path):
    db = tmp_path / "store.db"
    key = new_admin_key()
    with ServerProcess(log=tmp_path / "wall.log", db=db, env=server_env(admin_key=key)):
        pass  # served once on the wall clock
    refused = ServerProcess(
        log=tmp_path / "test.log", db=db, env=server_env(admin_key=key, test_clock="1")
    )
    with pytest.raises(ServerError, match="exited 3"):
        refused.start()
    log = refused.log.read_text()
    assert "Traceback" not in log
    [line] = [line for line in log.splitlines() if "TEST_CLOCK_REFUSED" in line]
    assert "served without the test clock" in line and '"level": "error"' in line


def test_the_server_harness_moves_a_real_servers_clock(tmp_path):
    key = new_admin_key()
    process = ServerProcess(  # test mode by the command line's flag
        log=tmp_path / "server.log",
        command=serve_command(tmp_path / "store.db", "--test-clock"),
        env=server_env(admin_key=key),
    )
    with process:
        harness = ServerHarness(process, key)
        try:
            assert httpx.get(f"{harness.url}/healthz").json()["test_clock"] is True
            assert harness.advance(86_400)["offset_s"] == 86_400
            assert harness.pid == process.pid and "Uvicorn running" in harness.log_tail()
        finally:
            harness.close()


def test_the_plugin_is_registered_by_entry_point():
    from importlib.metadata import entry_points

    [plugin] = [ep for ep in entry_points(group="pytest11") if ep.name == "boxoffice"]
    assert plugin.value == "boxoffice_api.testing.plugin"


def test_loading_the_plugin_imports_no_server_dependency():
    # pytest loads the plugin in every project that installs boxoffice, even without the
    # server extra: the plugin and its harness import only the standard library and pytest.
    code = textwrap.dedent(
        """
        import sys
        import boxoffice_api.testing.plugin
        heavy = {"httpx", "fastapi", "starlette", "uvicorn", "boxoffice._core"} & set(sys.modules)
        print(sorted(heavy))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
