"""The engine's state as pandas DataFrames, for analysts.

``frames(engine, now=...)`` reads the whole state through the public query API (so it sees
exactly what users see at ``now``: expired holds are gone) and returns one DataFrame per
table. Times are pandas UTC timestamps; money is integer won. Works on in-memory and durable
engines alike; for a store written by a server, open it with ``boxoffice.Engine(path)``
(while the server is stopped: a store has one writer).

Tables (columns):
    seats: schedule_id, concert_id, seat_id, label, section, row, number, grade, price, status
    reservations: reservation_id, user_id, concert_id, schedule_id, status, seat_count,
        amount, created_at, expires_at, ended_at, payment_id
    payments: payment_id, reservation_id, user_id, concert_id, amount, status, paid_at
    balances: user_id, balance
    history: entry_id, user_id, kind, amount, balance_after, at, reservation_id
    events: seq, type, at, user_id, concert_id, token_id, reservation_id, amount, value

Requires pandas (``pip install pandas``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The fields of a domain event, in the order the event tables show them.
EVENT_COLUMNS = (
    "seq",
    "type",
    "at",
    "user_id",
    "concert_id",
    "token_id",
    "reservation_id",
    "amount",
    "value",
)

if TYPE_CHECKING:
    import pandas as pd

    from . import Engine

__all__ = ["frames"]


def _frame(rows: list[dict[str, Any]], columns: list[str], times: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame(rows, columns=columns)
    for col in times:
        df[col] = pd.to_datetime(df[col], unit="s", utc=True)
    return df


def frames(engine: Engine, *, now: float) -> dict[str, pd.DataFrame]:
    """Every table of the engine's state at ``now`` (seconds since the epoch).

    Returns:
        ``{"seats", "reservations", "payments", "balances", "history", "events"}`` ->
        DataFrame, with the columns listed in the module docstring. Events are those still
        retained in memory (``Limits.event_retention_max``).

    Raises:
        ImportError: pandas is not installed.
    """
    seats: list[dict[str, Any]] = []
    for concert_id in range(1, engine.concert_count + 1):
        for schedule in engine.schedules(concert_id, now=now):
            seats.extend(
                {
                    "schedule_id": schedule.id,
                    "concert_id": concert_id,
                    "seat_id": s.id,
                    "label": s.label,
                    "section": s.section,
                    "row": s.row,
                    "number": s.number,
                    "grade": s.grade,
                    "price": s.price,
                    "status": s.status,
                }
                for s in engine.seats(schedule.id, now=now)
            )
    reservations: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    balances: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for user_id in range(1, engine.user_count + 1):
        for r in engine.reservations(user_id, now=now):
            reservations.append(
                {
                    "reservation_id": r.id,
                    "user_id": r.user_id,
                    "concert_id": r.concert_id,
                    "schedule_id": r.schedule_id,
                    "status": r.status,
                    "seat_count": len(r.seat_ids),
                    "amount": r.amount,
                    "created_at": r.created_at,
                    "expires_at": r.expires_at,
                    "ended_at": r.ended_at,
                    "payment_id": r.payment_id,
                }
            )
            if r.payment_id is not None:
                payments.append(
                    {
                        "payment_id": r.payment_id,
                        "reservation_id": r.id,
                        "user_id": r.user_id,
                        "concert_id": r.concert_id,
                        "amount": r.amount,
                        "status": "REFUNDED" if r.status == "REFUNDED" else "SUCCEEDED",
                        "paid_at": r.ended_at,
                    }
                )
        balances.append({"user_id": user_id, "balance": engine.balance(user_id, now=now)})
        history.extend(
            {
                "entry_id": h.id,
                "user_id": h.user_id,
                "kind": h.kind,
                "amount": h.amount,
                "balance_after": h.balance_after,
                "at": h.at,
                "reservation_id": h.reservation_id,
            }
            for h in engine.history(user_id, now=now)
        )
    events: list[dict[str, Any]] = []
    after = 0
    while batch := engine.events(after=after, limit=engine.limits.list_limit_max):
        events.extend(
            {
                "seq": e.seq,
                "type": e.type,
                "at": e.at,
                "user_id": e.user_id,
                "concert_id": e.concert_id,
                "token_id": e.token_id,
                "reservation_id": e.reservation_id,
                "amount": e.amount,
                "value": e.value,
            }
            for e in batch
        )
        after = batch[-1].seq
    payments.sort(key=lambda p: p["payment_id"])
    history.sort(key=lambda h: h["entry_id"])
    return {
        "seats": _frame(
            seats,
            [
                "schedule_id",
                "concert_id",
                "seat_id",
                "label",
                "section",
                "row",
                "number",
                "grade",
                "price",
                "status",
            ],
            (),
        ),
        "reservations": _frame(
            reservations,
            [
                "reservation_id",
                "user_id",
                "concert_id",
                "schedule_id",
                "status",
                "seat_count",
                "amount",
                "created_at",
                "expires_at",
                "ended_at",
                "payment_id",
            ],
            ("created_at", "expires_at", "ended_at"),
        ),
        "payments": _frame(
            payments,
            [
                "payment_id",
                "reservation_id",
                "user_id",
                "concert_id",
                "amount",
                "status",
                "paid_at",
            ],
            ("paid_at",),
        ),
        "balances": _frame(balances, ["user_id", "balance"], ()),
        "history": _frame(
            history,
            ["entry_id", "user_id", "kind", "amount", "balance_after", "at", "reservation_id"],
            ("at",),
        ),
        "events": _frame(events, list(EVENT_COLUMNS), ("at",)),
    }
