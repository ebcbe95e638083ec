"""boxoffice: the engine behind a ticket drop.

An admission queue (waiting room), a seat inventory with expiring holds and a
double-entry payment ledger, as one deterministic state machine written in C++
(``boxoffice._core``). Every command takes ``now`` (float seconds since the Unix
epoch); the engine never reads a clock, so simulations pass virtual time and
servers pass ``time.time()``. Errors are :mod:`boxoffice.errors` exceptions with a
stable ``code``. The exact rules are in ``docs/engine-rules.md``.

Example::

    import boxoffice as bo
    eng = bo.Engine()
    user = eng.create_user(now=0)
    hall = [bo.SectionSpec("A", 10, 20, "VIP", 165000)]
    concert = eng.create_concert(
        title="IU 2027", schedules=[bo.ScheduleSpec(1.8e9, hall)], now=0)
    token = eng.join_queue(user, concert.id, now=1)           # ACTIVE: the queue is empty
    seat = eng.seats(concert.schedules[0].id, now=2)[0]
    res = eng.hold(user, token.id, concert.schedules[0].id, [seat.id], now=3)
    eng.charge(user, 165000, now=4)
    eng.pay(user, token.id, res.id, now=5)                     # seats SOLD, token EXPIRED
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import errors
from ._core import (
    Charge,
    Concert,
    ConcertStats,
    Event,
    HistoryEntry,
    Limits,
    Payment,
    QueueToken,
    Reservation,
    SaleSettings,
    Schedule,
    ScheduleSpec,
    Seat,
    SectionSpec,
)
from ._core import Engine as _CoreEngine
from .batch import COMMAND_DTYPE, RESULT_DTYPE, Op
from .errors import BoxOfficeError

__all__ = [
    "COMMAND_DTYPE",
    "RESULT_DTYPE",
    "BoxOfficeError",
    "Charge",
    "Concert",
    "ConcertStats",
    "Engine",
    "Event",
    "HistoryEntry",
    "Limits",
    "Op",
    "Payment",
    "QueueToken",
    "Reservation",
    "SaleSettings",
    "Schedule",
    "ScheduleSpec",
    "Seat",
    "SectionSpec",
    "errors",
]


class Engine(_CoreEngine):
    """The boxoffice engine, in memory, safe to share between threads.

    ``Engine(seed=0, limits=None)``: ``seed`` draws the pre-queue shuffles (same seed,
    same draw); ``limits`` (:class:`Limits`) bounds every collection and amount.

    All methods are those of the C++ core (see ``_core.pyi`` and ``docs/engine-rules.md``);
    each takes ``now`` in float seconds and raises :class:`boxoffice.errors.BoxOfficeError`
    subclasses. This class adds :meth:`apply_batch`.
    """

    def apply_batch(self, commands: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
        """Applies many commands in one call, in order, with the GIL released.

        Args:
            commands: 1-D array of :data:`boxoffice.COMMAND_DTYPE` records
                (see :mod:`boxoffice.batch` for the fields of each op).

        Returns:
            A new array of :data:`boxoffice.RESULT_DTYPE` records, one per command.
            Failures do not raise: each result carries its error ``code``.

        Raises:
            TypeError: ``commands`` is not a 1-D array of ``COMMAND_DTYPE``.
        """
        if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE:
            raise TypeError("commands must be a numpy array of boxoffice.COMMAND_DTYPE")
        if commands.ndim != 1:
            raise TypeError("commands must be one-dimensional")
        commands = np.ascontiguousarray(commands)
        results = np.zeros(commands.shape[0], dtype=RESULT_DTYPE)
        self._apply_batch(commands.view(np.uint8).data, results.view(np.uint8).data)
        return results
