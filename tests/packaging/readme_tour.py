"""The README's engine tour, then the durable store reopened; run by test_wheel.py with the
fresh environment's interpreter, in an empty directory. Prints one JSON line of what it saw.

Between two writes, the store is read through the standard library's sqlite3 (as
``boxoffice.sim.replay`` and the HTTP service do): with two SQLite copies in the process, that
connection's close deletes the engine's write-ahead log, and the reopened store lacks the
second, acknowledged, write.
"""

from __future__ import annotations

import json
import os
import sqlite3

import boxoffice as bo
from boxoffice import errors

eng = bo.Engine("drop.db")
fan = eng.create_user(now=0)
concert = eng.create_concert(
    title="IU 2027 World Tour",
    artist="IU",
    venue="KSPO Dome",
    schedules=[
        bo.ScheduleSpec(
            1.8e9, [bo.SectionSpec("A", rows=10, seats_per_row=20, grade="VIP", price=165_000)]
        )
    ],
    sale=bo.SaleSettings(queue_capacity=200, hold_ttl_s=300),
    now=0,
)
schedule = concert.schedules[0].id
token = eng.join_queue(fan, concert.id, now=10)
res = eng.hold(fan, token.id, schedule, quantity=2, grade="VIP", now=20)
refused = None
try:
    eng.pay(fan, token.id, res.id, now=30)
except errors.InsufficientBalance as e:
    refused = [e.code, e.http_status]
eng.charge(fan, 500_000, idempotency_key="top-up-1", now=40)
payment = eng.pay(fan, token.id, res.id, now=50)
eng.check_invariants()
eng.wait_durable()

reader = sqlite3.connect("drop.db")
reader.execute("SELECT count(*) FROM sqlite_master").fetchone()
reader.close()
eng.charge(fan, 1_000, idempotency_key="top-up-2", now=60)
eng.wait_durable()
balance = eng.balance(fan, now=70)
eng.close()

with bo.Engine("drop.db") as again:
    reopened = again.balance(fan, now=80)
    again.check_invariants()

sqlite_files = set()
with open("/proc/self/maps") as maps:
    for line in maps:
        path = line.split()[-1]
        if os.path.basename(path).startswith("libsqlite3"):
            sqlite_files.add(os.path.realpath(path))
seen = {
    "module": bo.__file__,
    "status": str(res.status),
    "seats": len(res.seat_ids),
    "amount": res.amount,
    "refused": refused,
    "paid": payment.amount,
    "balance": balance,
    "reopened": reopened,
    "sqlite_files": sorted(sqlite_files),
}
print(json.dumps(seen))
