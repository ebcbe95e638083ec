"""The hoarding attack against a real ``boxoffice serve --demo``.

Before the per-user limits, one account held all 2,400 seats of a demo schedule in 0.9 s:
hold after hold of ``max_seats_per_reservation`` (4) seats, many in flight at once. This
program starts its own server on 127.0.0.1 with a temporary store and the demo concert, signs
one account up, takes its queue token, then sends ``--attempts`` holds of 4 best-available
seats of the first schedule, ``--concurrency`` at a time, and prints what the account got: the
answers by status and code, the seats it holds (its reservations) and the schedule's held
seats (admin stats). ``--set name=value`` passes a server setting (``holds_per_minute=0``
switches the hold rate limit off). Bounded in connections and time; the server is stopped by
its pid.

    .venv/bin/python bench/attack_hoard.py [--attempts 700] [--concurrency 16] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from boxoffice_api.testing import ServerProcess, serve_command, server_env

ADMIN_KEY = secrets.token_urlsafe(32)  # the server refuses a guessable one
PASSWORD = "lantern-velvet-4817"
START_TIMEOUT_S = 60.0


def start_server(workdir: Path, settings: dict[str, str]) -> ServerProcess:
    """``boxoffice serve --demo`` on a fresh store in ``workdir``, started."""
    env = server_env(admin_key=ADMIN_KEY, log_level="warning", access_log="false", **settings)
    command = serve_command(workdir / "store.db", "--demo")
    server = ServerProcess(log=workdir / "server.log", env=env, command=command)
    return server.start(START_TIMEOUT_S)


async def attack(url: str, attempts: int, concurrency: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        creds = {"email": "hoarder@example.com", "password": PASSWORD}
        (await http.post("/v1/users", json=creds)).raise_for_status()
        token = (await http.post("/v1/auth/token", json=creds)).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        concert = (await http.get("/v1/concerts", headers=auth)).json()["items"][0]
        schedule = concert["schedules"][0]
        joined = (await http.post(f"/v1/concerts/{concert['id']}/queue", headers=auth)).json()
        fan = auth | {"X-Queue-Token": joined["queue_token"]}
        body = {
            "schedule_id": schedule["id"],
            "quantity": concert["sale"]["max_seats_per_reservation"],
        }
        answers: collections.Counter[str] = collections.Counter()
        todo = iter(range(attempts))

        async def worker() -> None:
            for _ in todo:
                r = await http.post("/v1/reservations", json=body, headers=fan)
                answers[f"{r.status_code} {r.json().get('code', '')}".strip()] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed_s = time.perf_counter() - started
        mine = (await http.get("/v1/me/reservations", headers=auth)).json()["items"]
        admin = {"X-Admin-Key": ADMIN_KEY}
        stats = (await http.get(f"/v1/admin/concerts/{concert['id']}/stats", headers=admin)).json()
        return {
            "schedule_seats": schedule["seats_total"],
            "sale": {
                k: concert["sale"][k] for k in ("max_seats_per_reservation", "max_seats_per_user")
            },
            "attempts": attempts,
            "concurrency": concurrency,
            "elapsed_s": round(elapsed_s, 2),
            "answers": dict(answers.most_common()),
            "seats_held_by_the_account": sum(
                len(x["seats"]) for x in mine if x["status"] in ("PENDING", "CONFIRMED")
            ),
            "seats_held_in_the_concert": stats["seats_held"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=700, help="holds sent (700 x 4 > 2,400)")
    parser.add_argument("--concurrency", type=int, default=16, help="holds in flight at once")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    with (
        tempfile.TemporaryDirectory(prefix="boxoffice-hoard-") as tmp,
        start_server(Path(tmp), settings) as server,
    ):
        answer = asyncio.run(attack(server.url, args.attempts, args.concurrency))
        print(json.dumps(answer, indent=2))


if __name__ == "__main__":
    main()
