"""What a simulated drop records, shared by the runner that fills it and the summary that reads
it: the names of the per-user outcomes and token ends, and :class:`DropRecord`, the state of a
finished run as the summary sees it.

The modules depend one way: ``runner`` imports ``summary`` and this module; ``summary`` imports
only this module, so it never needs the runner's internals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .. import Engine
    from .models import Population, SimConfig

__all__ = ["OUTCOMES", "TOKEN_ENDS", "DropRecord"]

IntArray: TypeAlias = npt.NDArray[np.int64]

OUTCOMES: tuple[str, ...] = (
    "bought",  # paid: seats SOLD
    "gave_up",  # quit while waiting, leaving the queue
    "stopped_polling",  # quit while waiting by closing the tab (the engine ends the token)
    "no_seats",  # admitted, but every hold attempt found no seats
    "declined",  # held seats, chose not to pay
    "payment_failed",  # payment refused for lack of balance, no (more) top-up
    "hold_expired",  # paid after the hold had expired
    "session_expired",  # the session ended before the user finished
    "token_expired",  # the token ended between two polls
    "waiting",  # still waiting when the simulation stopped
    "shopping",  # admitted and still shopping when the simulation stopped
    "queue_full",  # could not join (queue full) by the end
    "not_arrived",  # arrives after the end
)
"""Per-user outcomes (the ``outcome`` column), in code order."""

TOKEN_ENDS: tuple[str, ...] = ("", "LEFT", "ABANDONED", "SESSION_EXPIRED", "COMPLETED")
"""How each user's token ended (the ``token_end`` column; "" = live or never joined)."""


class DropRecord(Protocol):
    """A finished simulated drop, as the summary reads it. Arrays have one entry per user
    (index = user id - 1, shape ``(n,)``); times are ticks or microseconds as named; money is
    in won.

    Attributes:
        config, pop, engine: the configuration, the drawn population, the engine after the run.
        n: users; seats_total: seats on sale; concert_id, schedule_id: what was on sale.
        opens_us, tick_us: the opening instant and the tick length, in microseconds.
        event_kind, event_user, event_at: the kept domain events, in chunks: kind (0
            admitted, 1..4 the index in :data:`TOKEN_ENDS`, 5 a hold expired), user index and
            time in seconds.
        joined, joined_tick, token: whether and when (tick) each user joined, their token id.
        outcome: the index in :data:`OUTCOMES` of each user's outcome.
        reservation, seats_bought, paid_won, balance: each user's reservation id, seats
            bought, won paid and wallet balance as the user saw them.
        hold_failures, payment_failures, topped_up: refused holds and payments, and whether
            the user topped the wallet up.
    """

    config: SimConfig
    pop: Population
    engine: Engine
    n: int
    seats_total: int
    concert_id: int
    schedule_id: int
    opens_us: int
    tick_us: int
    event_kind: list[npt.NDArray[np.int8]]
    event_user: list[IntArray]
    event_at: list[npt.NDArray[np.float64]]
    joined: npt.NDArray[np.bool_]
    joined_tick: IntArray
    token: IntArray
    outcome: npt.NDArray[np.int8]
    reservation: IntArray
    seats_bought: IntArray
    paid_won: IntArray
    balance: IntArray
    hold_failures: IntArray
    payment_failures: IntArray
    topped_up: npt.NDArray[np.bool_]
