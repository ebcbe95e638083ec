"""The analyst export agrees with the engine's own counts and ledger."""

import sqlite3

import boxoffice as bo
from boxoffice.export import frames


def drop(engine: bo.Engine) -> float:
    """A small drop with every ending: paid, expired, canceled, refunded. Returns the time."""
    sections = [bo.SectionSpec("A", 2, 10, "VIP", 150_000), bo.SectionSpec("B", 3, 10, "R", 90_000)]
    sale = bo.SaleSettings(queue_capacity=5, hold_ttl_s=60)
    concert = engine.create_concert(
        title="export", schedules=[bo.ScheduleSpec(2e9, sections)], sale=sale, now=0
    )
    schedule = concert.schedules[0].id
    now = 10.0
    for n in range(12):
        user = engine.create_user(now=now)
        engine.charge(user, 500_000, now=now)
        token = engine.join_queue(user, concert.id, now=now)
        if token.status != "ACTIVE":
            continue
        res = engine.hold(user, token.id, schedule, quantity=1 + n % 3, now=now)
        if n % 5 == 1:
            engine.cancel(user, res.id, now=now)
            engine.leave_queue(user, token.id, now=now)
        elif n % 5 == 2:
            engine.leave_queue(user, token.id, now=now)  # the hold will expire
        else:
            engine.pay(user, token.id, res.id, now=now)
            if n % 5 == 3:
                engine.refund(user, res.id, now=now)
        now += 1.0
    return now + 120.0  # every hold has expired by then


def test_frames_agree_with_stats_and_ledger(tmp_path):
    engine = bo.Engine(tmp_path / "store.db")
    now = drop(engine)
    tables = frames(engine, now=now)
    stats = engine.stats(1, now=now)

    seats = tables["seats"]
    assert len(seats) == stats.seats_total == 50
    assert (seats["status"] == "SOLD").sum() == stats.seats_sold > 0
    assert (seats["status"] == "HELD").sum() == stats.seats_held == 0

    reservations = tables["reservations"]
    for status, count in [
        ("CONFIRMED", stats.reservations_confirmed),
        ("EXPIRED", stats.reservations_expired),
        ("CANCELED", stats.reservations_canceled),
        ("REFUNDED", stats.reservations_refunded),
    ]:
        assert (reservations["status"] == status).sum() == count > 0, status

    payments = tables["payments"]
    assert len(payments) == stats.payments
    assert payments[payments["status"] == "SUCCEEDED"]["amount"].sum() == stats.revenue > 0
    assert (payments["status"] == "REFUNDED").sum() == stats.reservations_refunded

    # Money: what was charged is in wallets or in revenue.
    history = tables["history"]
    charged = history[history["kind"] == "CHARGE"]["amount"].sum()
    assert tables["balances"]["balance"].sum() + stats.revenue == charged
    assert set(history["kind"]) == {"CHARGE", "PAYMENT", "REFUND"}

    events = tables["events"]
    assert list(events["seq"]) == list(range(1, engine.last_event_seq + 1))
    assert str(events["at"].dtype).startswith("datetime64")
    assert "ReservationExpired" in set(events["type"])
    engine.close()


def test_catalog_tables_match_the_state_after_close(tmp_path):
    path = tmp_path / "store.db"
    engine = bo.Engine(path)
    now = drop(engine)
    engine.advance(now=now)
    tables = frames(engine, now=now)
    engine.close()

    con = sqlite3.connect(path)
    seats = con.execute(
        "SELECT id, label, grade, price, status FROM catalog_seats ORDER BY id"
    ).fetchall()
    expected = tables["seats"][["seat_id", "label", "grade", "price", "status"]]
    assert seats == [tuple(row) for row in expected.itertuples(index=False)]
    users = dict(con.execute("SELECT id, balance FROM catalog_users").fetchall())
    balances = tables["balances"]
    assert users == dict(zip(balances["user_id"], balances["balance"], strict=True))
    (title, capacity, hold_ttl_us, rate) = con.execute(
        "SELECT title, queue_capacity, hold_ttl_us, admission_per_minute FROM catalog_concerts"
    ).fetchone()
    assert (title, capacity, hold_ttl_us, rate) == ("export", 5, 60_000_000, None)
    assert con.execute("SELECT seats_total FROM catalog_schedules").fetchone() == (50,)
    meta = dict(con.execute("SELECT key, value FROM catalog_meta").fetchall())
    assert meta["clock_us"] == round(now * 1e6)
    con.close()
