"""A full disk (a file-size limit on the server process): the journal writer fails, the server
refuses every change with 503 STORE_UNAVAILABLE instead of applying it in memory, reads that
could show an unjournaled change are refused too, /healthz says so, and a restart on a fixed
disk has exactly the acknowledged changes."""

from __future__ import annotations

import resource

FILE_SIZE_MAX = 600_000  # bytes: a few hundred charges fit, then every write fails (EFBIG)


def limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_MAX, FILE_SIZE_MAX))


def test_a_failed_journal_refuses_changes_and_loses_nothing_acknowledged(start_server, api_for):
    server = start_server(snapshot_every_records="0")
    server.stop()  # restart the same store under the file-size limit
    server.preexec = limit_file_size
    server.start()
    api = api_for(server.base_url)
    fan = api.user()
    acknowledged = 0
    refused = None
    for _ in range(20_000):
        r = api.charge(fan, 1)
        if r.status_code != 201:
            refused = r
            break
        acknowledged += 1
    assert refused is not None, "the file-size limit was never reached"
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "STORE_UNAVAILABLE"
    assert "Retry-After" in refused.headers
    assert str(server.db) not in refused.text  # file names stay in the log

    # Every later change is refused. The charge in flight when the writer failed was applied
    # in memory but never journaled, so a read would show it: reads are refused as well.
    assert api.charge(fan, 1000).status_code == 503
    balance = api.http.get("/v1/me/balance", headers=fan)
    assert balance.status_code == 503 and balance.json()["code"] == "STORE_UNAVAILABLE"
    health = api.http.get("/healthz")
    assert health.status_code == 503 and health.json()["code"] == "STORE_UNAVAILABLE"

    server.kill()
    server.preexec = None
    server.start()
    api = api_for(server.base_url)
    login = api.http.get("/v1/me/balance", headers=fan)  # the access token survives
    assert login.status_code == 200, login.text
    assert login.json()["balance"] == acknowledged
    assert api.http.get("/healthz").status_code == 200
    assert api.charge(fan, 5).json()["balance"] == acknowledged + 5
