"""Commands and results as values: the wire form every state change travels in.

Every state change of the engine is one command in and one result out
(``cpp/include/boxoffice/command.h``). Both have one compact binary encoding (varints,
shortest form only, so a value has exactly one encoding). A command's encoding is also its
journal record. A process that is not the engine's owner builds commands with
:func:`encode_command`, the owner applies them with :meth:`boxoffice.Engine.apply_encoded`,
and the caller reads the answer with :func:`decode_result`. A refusal travels as a result
with its code; the exception is built only when the caller asks for it
(:meth:`Result.unwrap`).

    import boxoffice as bo
    from boxoffice.commands import decode_result, encode_command

    engine = bo.Engine()
    data = engine.apply_encoded(encode_command("CREATE_USER", now=1.0))
    user_id = decode_result(data).unwrap()      # 1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import _core
from ._core import SaleSettings, ScheduleSpec
from .errors import BoxOfficeError

__all__ = ["OPS", "Result", "decode_command", "decode_result", "encode_command"]

OPS: dict[str, int] = dict(_core.OPS)
"""Every op name (``"HOLD"``) -> its value (journal record type, ``boxoffice.batch.Op``)."""


def encode_command(
    op: str,
    *,
    now: float,
    user: int = 0,
    token: int = 0,
    target: int = 0,
    arg: int = 0,
    quantity: int = 0,
    grade: str = "",
    key: str = "",
    seats: Sequence[int] = (),
    concert: tuple[str, str, str, Sequence[ScheduleSpec], SaleSettings | None] | None = None,
) -> bytes:
    """One command in its wire encoding (the same bytes the journal records).

    Args:
        op: an op name of :data:`OPS` (``"JOIN"``, ``"HOLD"``, ...).
        now: the command's time in seconds since the Unix epoch (stored in microseconds).
        user, token: the acting user and their queue token.
        target: concert (``JOIN``, ``GATE``), schedule (``HOLD``) or reservation.
        arg: seat (``RELEASE_SEAT``) or amount in won (``CHARGE``).
        quantity, grade: ``HOLD`` best-available: how many adjacent seats, which grade.
        key: the idempotency key (``HOLD``, ``CHARGE``, ``PAY``; "" = none).
        seats: ``HOLD`` with explicit seats.
        concert: ``CREATE_CONCERT``: ``(title, artist, venue, schedules, sale or None)``.

    Raises:
        InvalidArgument: unknown op, ``now`` outside [0, 1e11) s, or ``CREATE_CONCERT``
            without ``concert``.
    """
    return _core.encode_command(
        op,
        now=now,
        user=user,
        token=token,
        target=target,
        arg=arg,
        quantity=quantity,
        grade=grade,
        key=key,
        seats=seats,
        concert=concert,
    )


def decode_command(data: bytes) -> dict[str, Any]:
    """An encoded command (or journal record) as a dict; see ``_core.decode_record``.

    Raises:
        DataLoss: the bytes are not one whole command in its only encoding.
    """
    return _core.decode_record(data)


@dataclass(frozen=True, slots=True)
class Result:
    """What applying one command gave.

    Attributes:
        code: ``"OK"`` or the refusal's stable error code (``"SEAT_UNAVAILABLE"``, ...).
        value: on success the op's value: a user id (``CREATE_USER``), a ``QueueToken``
            (``JOIN``, ``STATUS``, ``LEAVE``, ``GATE``), a ``Reservation`` (``HOLD``,
            ``RELEASE_SEAT``, ``CANCEL``, ``REFUND``), a ``Charge``, a ``Payment``, a
            ``Concert`` (``CREATE_CONCERT``), or None (``ADVANCE``); None on a refusal.
        error: on a refusal, its :class:`~boxoffice.errors.BoxOfficeError` (not raised).
    """

    code: str
    value: object
    error: BoxOfficeError | None

    @property
    def ok(self) -> bool:
        """Whether the command was applied."""
        return self.error is None

    def unwrap(self) -> object:
        """The value, or raises the refusal's exception."""
        if self.error is not None:
            raise self.error
        return self.value


def decode_result(data: bytes) -> Result:
    """An encoded result (from :meth:`boxoffice.Engine.apply_encoded`) as a :class:`Result`.

    Raises:
        DataLoss: the bytes are not one whole result in its only encoding.
    """
    code, value, error = _core.decode_result(data)
    if error is not None and not isinstance(error, BoxOfficeError):
        raise TypeError(f"not a boxoffice error: {error!r}")
    return Result(code, value, error)
