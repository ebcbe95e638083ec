"""The single-call oracle of the batch API: one ``COMMAND_DTYPE`` record applied through the
engine's single calls, and a batch result put in the same form, so the two can be compared.
A helper module, not a test module: ``test_batch.py`` and the deterministic simulator
``dst.py`` both import it.
"""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import boxoffice as bo
from boxoffice import errors
from boxoffice.batch import COMMAND_DTYPE, ERROR_CODE_NAMES, Op

FIELDS: tuple[str, ...] = COMMAND_DTYPE.names or ()
"""The fields of a command record, in ``COMMAND_DTYPE`` order."""

TOKEN_STATES = {"WAITING": 0, "ACTIVE": 1, "EXPIRED": 2}
RESERVATION_STATES = {"PENDING": 0, "CONFIRMED": 1, "EXPIRED": 2, "CANCELED": 3, "REFUNDED": 4}

Outcome = tuple[str, int | None, int | None, int | None]
"""(code, state, id, value); None where the batch result does not define the field."""


class GradeNames(Protocol):
    """What :func:`apply_single` reads of a concert (a ``bo.Concert`` has it): the grade names,
    so that a best-available hold's grade number (1-based, 0 = any) becomes a name."""

    @property
    def grades(self) -> Sequence[str]: ...


def command(op: Op, now_us: int, **fields: int) -> tuple[int, ...]:
    """One ``COMMAND_DTYPE`` record as a tuple (the fields not given are 0)."""
    rec = {"op": int(op), "now_us": now_us, **fields}
    return tuple(rec.get(name, 0) for name in FIELDS)


def apply_single(eng: bo.Engine, concert: GradeNames, cmd) -> Outcome:
    """Applies one COMMAND_DTYPE record through the single-call API."""
    op = Op(int(cmd["op"]))
    now = int(cmd["now_us"]) / 1e6
    user, token, target, arg = (int(cmd[k]) for k in ("user", "token", "target", "arg"))
    quantity, grade = int(cmd["quantity"]), int(cmd["grade"])
    try:
        if op is Op.ADVANCE:
            eng.advance(now=now)
            return ("OK", None, None, None)
        if op is Op.CREATE_USER:
            return ("OK", None, eng.create_user(now=now), None)
        if op in (Op.JOIN, Op.STATUS, Op.LEAVE):
            if op is Op.JOIN:
                t = eng.join_queue(user, target, now=now)
            elif op is Op.STATUS:
                t = eng.queue_status(user, token, now=now)
            else:
                t = eng.leave_queue(user, token, now=now)
            position = -1 if t.position is None else t.position
            state = TOKEN_STATES[t.status]
            if op is Op.JOIN:
                return ("OK", state, t.id, position)
            if op is Op.STATUS:
                return ("OK", state, None, position)
            return ("OK", state, None, None)
        if op is Op.GATE:
            t = eng.check_gate(user, token, target, now=now)
            position = -1 if t.position is None else t.position
            return ("OK", TOKEN_STATES[t.status], t.id, position)
        if op is Op.HOLD and arg != 0:  # explicit seats arg .. arg + quantity - 1
            seats = list(range(arg, arg + quantity))
            r = eng.hold(user, token, target, seats, now=now)
            return ("OK", None, r.id, r.amount)
        if op is Op.HOLD:  # arg 0: best-available of the grade-th grade (0 = any)
            name = "" if grade == 0 else concert.grades[grade - 1]
            r = eng.hold(user, token, target, quantity=quantity, grade=name, now=now)
            return ("OK", None, r.id, r.amount)
        if op is Op.RELEASE_SEAT:
            r = eng.release_seat(user, target, arg, now=now)
            return ("OK", RESERVATION_STATES[r.status], None, None)
        if op is Op.CANCEL:
            r = eng.cancel(user, target, now=now)
            return ("OK", RESERVATION_STATES[r.status], None, None)
        if op is Op.CHARGE:
            c = eng.charge(user, arg, now=now)
            return ("OK", None, c.entry_id, c.balance)
        if op is Op.PAY:
            p = eng.pay(user, token, target, now=now)
            return ("OK", None, p.id, p.amount)
        if op is Op.REFUND:
            r = eng.refund(user, target, now=now)
            return ("OK", None, None, r.amount)
    except errors.BoxOfficeError as e:
        return (e.code, None, None, None)
    raise AssertionError(f"unhandled op {op}")


def batch_outcome(result, expected: Outcome) -> Outcome:
    """The batch result, restricted to the fields ``expected`` defines."""
    code = int(result["code"])
    name = "OK" if code == 0 else ERROR_CODE_NAMES[code]
    if name != "OK":
        return (name, None, None, None)
    _, state, id_, value = expected
    return (
        name,
        None if state is None else int(result["status"]),
        None if id_ is None else int(result["id"]),
        None if value is None else int(result["value"]),
    )
