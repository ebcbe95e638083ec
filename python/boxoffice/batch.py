"""The batch interface: many engine commands in one call, as NumPy records.

Simulations and replays fill an array of ``COMMAND_DTYPE`` records and pass it to
:meth:`boxoffice.Engine.apply_batch`, which applies them in order through the same C++
code as the single calls (``cpp/include/boxoffice/batch.h``) with the GIL released, and
returns one ``RESULT_DTYPE`` record per command.

Command fields (all integers):
    op: an :class:`Op` (every op but ``CREATE_CONCERT``, which needs a seat map).
    grade: ``HOLD`` best-available only: 0 = any grade, k = the concert's k-th grade
        (1-based, ``Concert.grades``).
    quantity: seats for ``HOLD``.
    now_us: time in microseconds since the Unix epoch.
    user, token: the acting user and their queue token.
    target: concert (``JOIN``, ``GATE``), schedule (``HOLD``) or reservation
        (``RELEASE_SEAT``, ``CANCEL``, ``PAY``, ``REFUND``).
    arg: ``HOLD``: the first of ``quantity`` explicit seats (``arg .. arg + quantity - 1``),
        or 0 for the best ``quantity`` adjacent seats of ``grade``; the seat
        (``RELEASE_SEAT``) or the amount in won (``CHARGE``).

Result fields:
    code: 0 for success, else the index of the error code in :data:`ERROR_CODE_NAMES`.
    status: token status (0 WAITING, 1 ACTIVE, 2 EXPIRED) for queue ops; reservation status
        (0 PENDING, 1 CONFIRMED, 2 EXPIRED, 3 CANCELED, 4 REFUNDED) for reservation ops.
    id: the user (``CREATE_USER``), token (queue ops), reservation (``HOLD``, ...), history
        entry (``CHARGE``) or payment (``PAY``).
    value: position (queue ops, -1 when not WAITING), amount (reservation ops, ``PAY``) or
        balance after (``CHARGE``).
"""

from __future__ import annotations

import enum

import numpy as np
import numpy.typing as npt

from . import _core

__all__ = ["COMMAND_DTYPE", "ERROR_CODE_NAMES", "RESULT_DTYPE", "Op", "commands"]


class Op(enum.IntEnum):
    """The engine's operations: the one enum of ``cpp/include/boxoffice/command.h``.

    The values are the C++ ones (journal record types); importing this module checks them
    against the extension (``_core.OPS``), so a change on one side fails at once.
    """

    ADVANCE = 0
    CREATE_USER = 1
    CREATE_CONCERT = 2
    JOIN = 3
    STATUS = 4
    LEAVE = 5
    GATE = 6
    HOLD = 7
    RELEASE_SEAT = 8
    CANCEL = 9
    CHARGE = 10
    PAY = 11
    REFUND = 12


if {op.name: op.value for op in Op} != _core.OPS:
    raise ImportError(f"boxoffice.batch.Op differs from the extension's ops: {_core.OPS}")


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
        ("status", "u1"),
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
