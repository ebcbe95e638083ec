"""The batch interface: many engine commands in one call, as NumPy records.

Simulations and replays fill an array of ``COMMAND_DTYPE`` records and pass it to
:meth:`boxoffice.Engine.apply_batch`, which applies them in order through the same C++
code as the single calls (``cpp/include/boxoffice/batch.h``) with the GIL released, and
returns one ``RESULT_DTYPE`` record per command.

Command fields (all integers):
    op: an :class:`Op`.
    grade: ``HOLD_BEST`` only: 0 = any grade, k = the concert's k-th grade (1-based,
        ``Concert.grades``).
    quantity: seats for ``HOLD`` (seats ``arg .. arg + quantity - 1``) and ``HOLD_BEST``.
    now_us: time in microseconds since the Unix epoch.
    user, token: the acting user and their queue token.
    target: concert (``JOIN``), schedule (``HOLD``, ``HOLD_BEST``) or reservation
        (``RELEASE_SEAT``, ``CANCEL``, ``PAY``, ``REFUND``).
    arg: first seat (``HOLD``), seat (``RELEASE_SEAT``) or amount in won (``CHARGE``).

Result fields:
    code: 0 for success, else the index of the error code in :data:`ERROR_CODE_NAMES`.
    state: token state (0 WAITING, 1 ACTIVE, 2 EXPIRED) for queue ops; reservation status
        (0 PENDING, 1 CONFIRMED, 2 EXPIRED, 3 CANCELED, 4 REFUNDED) for reservation ops.
    id: the user (``CREATE_USER``), token (``JOIN``), reservation (``HOLD*``), history entry
        (``CHARGE``) or payment (``PAY``) created.
    value: position (``JOIN``/``STATUS``, -1 when not WAITING), amount (``HOLD*``, ``PAY``,
        ``REFUND``) or balance after (``CHARGE``).
"""

from __future__ import annotations

import enum

import numpy as np
import numpy.typing as npt

from . import _core

__all__ = ["COMMAND_DTYPE", "ERROR_CODE_NAMES", "RESULT_DTYPE", "Op", "commands"]


class Op(enum.IntEnum):
    """Batch operations (values fixed by ``BatchOp`` in ``batch.h``)."""

    ADVANCE = 0
    CREATE_USER = 1
    JOIN = 2
    STATUS = 3
    LEAVE = 4
    HOLD = 5
    HOLD_BEST = 6
    RELEASE_SEAT = 7
    CANCEL = 8
    CHARGE = 9
    PAY = 10
    REFUND = 11


COMMAND_DTYPE = np.dtype(
    [
        ("op", "u1"),
        ("grade", "u1"),
        ("quantity", "u2"),
        ("reserved", "u4"),
        ("now_us", "i8"),
        ("user", "i8"),
        ("token", "i8"),
        ("target", "i8"),
        ("arg", "i8"),
    ]
)
RESULT_DTYPE = np.dtype(
    [
        ("code", "u2"),
        ("state", "u1"),
        ("reserved0", "u1"),
        ("reserved1", "u4"),
        ("id", "i8"),
        ("value", "i8"),
    ]
)

ERROR_CODE_NAMES: tuple[str, ...] = tuple(
    sorted(_core.ERROR_CODES, key=lambda name: _core.ERROR_CODES[name][2])
)
"""Error code names indexed by the numeric ``code`` of a result."""


def commands(count: int) -> npt.NDArray[np.void]:
    """A zeroed array of ``count`` commands (``COMMAND_DTYPE``) to fill in."""
    return np.zeros(count, dtype=COMMAND_DTYPE)
