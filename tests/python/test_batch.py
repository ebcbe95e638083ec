"""The batch API: the same results and the same state as the equivalent single calls."""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import pytest
from batch_oracle import FIELDS, Outcome, apply_single, batch_outcome, command

import boxoffice as bo
from boxoffice.batch import COMMAND_DTYPE, RESULT_DTYPE, Op

T0 = 1_000.0
T0_US = 1_000_000_000
SEC = 1_000_000

SECTIONS = (bo.SectionSpec("A", 2, 5, "VIP", 100_000), bo.SectionSpec("B", 2, 4, "R", 60_000))


def make_twins(make_engine, *, seed: int = 3, **sale):
    """Two engines in the same state, each with one concert."""
    twins = []
    for _ in range(2):
        eng = make_engine(seed=seed)
        concert = eng.create_concert(
            title="Twin",
            schedules=[bo.ScheduleSpec(1.8e9, list(SECTIONS))],
            sale=bo.SaleSettings(**sale),
            now=T0,
        )
        twins.append((eng, concert))
    return twins


def events_of(eng: bo.Engine) -> list[tuple[object, ...]]:
    return [
        (
            e.seq,
            e.type,
            e.at,
            e.user_id,
            e.concert_id,
            e.token_id,
            e.reservation_id,
            e.amount,
            e.value,
        )
        for e in eng.events(0, 1_000_000)
    ]


def run_and_compare(twins, rows: list[tuple[int, ...]]) -> list[Outcome]:
    (batch_eng, _concert), (single_eng, single_concert) = twins
    cmds = np.array(rows, dtype=COMMAND_DTYPE)
    results = batch_eng.apply_batch(cmds)
    assert results.dtype == RESULT_DTYPE
    assert results.shape == (len(rows),)
    outcomes = []
    for i, cmd in enumerate(cmds):
        expected = apply_single(single_eng, single_concert, cmd)
        got = batch_outcome(results[i], expected)
        assert got == expected, f"command {i} ({Op(int(cmd['op'])).name}): {got} != {expected}"
        outcomes.append(expected)
    return outcomes


def test_a_scripted_drop_matches_single_calls(make_engine):
    twins = make_twins(make_engine, queue_capacity=2, abandon_timeout_s=600.0)
    t = T0_US + SEC
    rows = [
        command(Op.CREATE_USER, t),
        command(Op.CREATE_USER, t),
        command(Op.CREATE_USER, t),
        command(Op.CREATE_USER, t),
        command(Op.JOIN, t + 1, user=1, target=1),
        command(Op.JOIN, t + 2, user=2, target=1),
        command(Op.JOIN, t + 3, user=3, target=1),  # WAITING, position 0
        command(Op.JOIN, t + 4, user=3, target=1),  # the same token again
        command(Op.STATUS, t + 5, user=3, token=3),
        command(Op.CHARGE, t + 6, user=1, arg=500_000),
        command(Op.CHARGE, t + 7, user=2, arg=0),  # INVALID_AMOUNT
        command(Op.HOLD, t + 8, user=1, token=1, target=1, arg=1, quantity=2),
        command(Op.HOLD, t + 9, user=2, token=2, target=1, arg=2, quantity=2),  # seat 2 taken
        command(Op.HOLD, t + 10, user=2, token=2, target=1, quantity=2, grade=2),  # best
        command(Op.HOLD, t + 10, user=2, token=2, target=1, quantity=3, grade=0),  # best
        command(Op.GATE, t + 10, user=3, token=3, target=1),  # QUEUE_NOT_ACTIVE
        command(Op.GATE, t + 10, user=2, token=2, target=1),
        command(Op.HOLD, t + 11, user=3, token=3, target=1, arg=5, quantity=1),  # not ACTIVE
        command(Op.RELEASE_SEAT, t + 12, user=1, target=1, arg=2),
        command(Op.RELEASE_SEAT, t + 12, user=1, target=1, arg=9),  # not in it
        command(Op.PAY, t + 13, user=2, token=2, target=1),  # not theirs
        command(Op.PAY, t + 14, user=2, token=2, target=2),  # insufficient balance
        command(Op.PAY, t + 15, user=1, token=1, target=1),
        command(Op.STATUS, t + 16, user=3, token=3),  # admitted by the payment
        command(Op.STATUS, t + 16, user=1, token=1),  # completed
        command(Op.REFUND, t + 17, user=1, target=1),
        command(Op.REFUND, t + 18, user=1, target=1),  # not confirmed any more
        command(Op.CANCEL, t + 19, user=2, target=2),
        command(Op.CANCEL, t + 19, user=2, target=2),  # not pending
        command(Op.LEAVE, t + 20, user=3, token=3),
        command(Op.LEAVE, t + 20, user=3, token=3),
        command(Op.JOIN, t + 21, user=4, target=99),  # unknown concert
        command(Op.JOIN, t + 21, user=99, target=1),  # unknown user
        command(Op.CHARGE, -SEC, user=1, arg=100),  # invalid now
        command(Op.HOLD, t + 22, user=2, token=2, target=1, arg=11, quantity=1),
        command(Op.ADVANCE, t + 400 * SEC),  # that hold expires
        command(Op.CANCEL, t + 401 * SEC, user=2, target=4),  # HOLD_EXPIRED
        command(Op.CHARGE, t + 5 * SEC, user=2, arg=1_000),  # an older now: acts at the clock
    ]
    outcomes = run_and_compare(twins, rows)
    (a, _), (b, _) = twins
    codes = [o[0] for o in outcomes]
    assert codes.count("OK") >= 20
    assert {
        "INVALID_AMOUNT",
        "SEAT_UNAVAILABLE",
        "QUEUE_NOT_ACTIVE",
        "SEAT_NOT_IN_RESERVATION",
        "RESERVATION_NOT_FOUND",
        "INSUFFICIENT_BALANCE",
        "RESERVATION_NOT_CONFIRMED",
        "RESERVATION_NOT_PENDING",
        "CONCERT_NOT_FOUND",
        "USER_NOT_FOUND",
        "INVALID_ARGUMENT",
        "HOLD_EXPIRED",
    } <= set(codes)
    assert a.state_hash() == b.state_hash()
    assert events_of(a) == events_of(b)
    assert a.clock == b.clock


def test_random_command_streams_match_single_calls(make_engine):
    seed = 20_270_301
    rng = random.Random(seed)
    twins = make_twins(
        make_engine,
        queue_capacity=6,
        admission_per_minute=120,
        hold_ttl_s=60.0,
        session_ttl_s=300.0,
        abandon_timeout_s=30.0,
        max_seats_per_user=5,
    )
    knowledge = Knowledge()
    now = T0_US + SEC
    total = 0
    for _ in range(40):
        rows = []
        for _ in range(60):
            now += rng.randrange(0, SEC)
            rows.append(knowledge.random_command(rng, now))
        outcomes = run_and_compare(twins, rows)
        knowledge.learn(rows, outcomes)
        total += sum(1 for o in outcomes if o[0] == "OK")
        (a, _), (b, _) = twins
        assert a.state_hash() == b.state_hash(), f"seed {seed}"
    (a, _), (b, _) = twins
    a.check_invariants()
    assert events_of(a) == events_of(b)
    assert total > 600, "the stream should mostly succeed, not only fail"
    assert knowledge.paid > 0


OP_WEIGHTS = {
    Op.CREATE_USER: 0.3,
    Op.ADVANCE: 0.5,
    Op.JOIN: 3,
    Op.STATUS: 2,
    Op.LEAVE: 0.5,
    Op.HOLD: 5,  # 3 explicit seats, 2 best-available
    Op.RELEASE_SEAT: 1,
    Op.CANCEL: 1,
    Op.CHARGE: 2,
    Op.PAY: 4,
    Op.REFUND: 1,
}


@dataclass
class Knowledge:
    """What the generator learned from earlier results, to aim commands at live things."""

    users: list[int] = field(default_factory=list)
    tokens: dict[int, int] = field(default_factory=dict)
    reservations: dict[int, list[int]] = field(default_factory=dict)
    paid: int = 0

    def random_command(self, rng: random.Random, now: int) -> tuple[int, ...]:
        if len(self.users) < 3:
            return self.create_user(now)
        user = rng.choice(self.users) if rng.random() < 0.97 else rng.randrange(0, 200)
        token = self.tokens.get(user, rng.randrange(0, 50))
        owned = self.reservations.get(user) or [rng.randrange(0, 50)]
        res = rng.choice(owned[-3:])
        op = rng.choices(list(OP_WEIGHTS), weights=list(OP_WEIGHTS.values()))[0]
        if op is Op.CREATE_USER and len(self.users) < 12:
            return self.create_user(now)
        if op in (Op.CREATE_USER, Op.ADVANCE):
            return command(Op.ADVANCE, now + rng.randrange(0, 30 * SEC))
        if op is Op.JOIN:
            return command(op, now, user=user, target=1 if rng.random() < 0.95 else 2)
        if op in (Op.STATUS, Op.LEAVE):
            return command(op, now, user=user, token=token)
        if op is Op.HOLD and rng.random() < 0.6:
            quantity = rng.randrange(0, 4)
            first = rng.randrange(1, 19)
            return command(op, now, user=user, token=token, target=1, arg=first, quantity=quantity)
        if op is Op.HOLD:  # arg 0: best-available
            return command(
                op,
                now,
                user=user,
                token=token,
                target=1,
                quantity=rng.randrange(1, 4),
                grade=rng.randrange(0, 3),
            )
        if op is Op.RELEASE_SEAT:
            return command(op, now, user=user, target=res, arg=rng.randrange(1, 19))
        if op in (Op.CANCEL, Op.REFUND):
            return command(op, now, user=user, target=res)
        if op is Op.CHARGE:
            amount = rng.choice([0, -5, 60_000, 100_000, 250_000, 20_000_000])
            return command(op, now, user=user, arg=amount)
        if op is Op.PAY:
            return command(op, now, user=user, token=token, target=res)
        raise AssertionError(op)

    def create_user(self, now: int) -> tuple[int, ...]:
        self.users.append(len(self.users) + 1)  # user ids are dense from 1
        return command(Op.CREATE_USER, now)

    def learn(self, rows: list[tuple[int, ...]], outcomes: list[Outcome]) -> None:
        for row, (code, _, id_, _) in zip(rows, outcomes, strict=True):
            cmd = dict(zip(FIELDS, row, strict=True))
            op = Op(cmd["op"])
            if code != "OK":
                continue
            if op is Op.CREATE_USER:
                assert id_ in self.users
            elif op is Op.JOIN:
                assert id_ is not None
                self.tokens[cmd["user"]] = id_
            elif op is Op.HOLD:
                assert id_ is not None
                self.reservations.setdefault(cmd["user"], []).append(id_)
            elif op is Op.PAY:
                self.paid += 1


def test_batch_of_nothing_changes_nothing(make_engine):
    (eng, _), _ = make_twins(make_engine)
    before = eng.state_hash()
    results = eng.apply_batch(np.zeros(0, dtype=COMMAND_DTYPE))
    assert results.shape == (0,)
    assert results.dtype == RESULT_DTYPE
    assert eng.state_hash() == before


def test_strided_command_arrays_are_accepted(make_engine):
    twins = make_twins(make_engine)
    rows = [command(Op.CREATE_USER, T0_US + i) for i in range(6)]
    cmds = np.array(rows, dtype=COMMAND_DTYPE)
    (a, _), (b, _) = twins
    strided = a.apply_batch(cmds[::2])
    contiguous = b.apply_batch(np.ascontiguousarray(cmds[::2]))
    assert strided.tolist() == contiguous.tolist()
    assert [int(r["id"]) for r in strided] == [1, 2, 3]
    assert a.state_hash() == b.state_hash()


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros(3, dtype=RESULT_DTYPE),
        np.zeros(3, dtype=np.int64),
        np.zeros((2, 2), dtype=COMMAND_DTYPE),
        [(1, 0, 0, 0, 0, 0, 0, 0, 0)],
        None,
    ],
    ids=["result-dtype", "int64", "2-d", "list", "none"],
)
def test_wrong_input_is_a_type_error(make_engine, bad):
    (eng, _), _ = make_twins(make_engine)
    before = eng.state_hash()
    with pytest.raises(TypeError):
        eng.apply_batch(bad)
    assert eng.state_hash() == before


def test_unknown_op_is_an_error_result_not_a_crash(make_engine):
    (eng, _), _ = make_twins(make_engine)
    before = eng.state_hash()
    cmds = np.zeros(2, dtype=COMMAND_DTYPE)
    cmds["op"] = [200, len(Op)]
    cmds["now_us"] = T0_US
    results = eng.apply_batch(cmds)
    assert all(int(r["code"]) != 0 for r in results)
    assert eng.state_hash() == before
