"""The engine against the plain-Python reference model (``reference_model.py``).

Random command streams (Hypothesis stateful, and seeded plain-random long runs) go through
``boxoffice.Engine`` and ``ReferenceModel`` side by side: tiny concerts, a few users, short
TTLs, time jumps that land exactly on deadlines. After every command the result (or the
exception class, code and details) must be the same, and then the whole observable state:
clock, events, concerts, schedules, seats, stats, reservations, balances, histories.
``check_invariants`` runs on both after every step.

A failure prints a self-contained Python script that replays the commands on the engine. The
driver that applies a command to both sides and compares them is the helper module
``model_driver.py`` (shared with the deterministic simulator ``dst.py``).
Knobs (environment variables):
    BOXOFFICE_HYPOTHESIS_EXAMPLES  examples of the stateful test (default 200)
    BOXOFFICE_HYPOTHESIS_STEPS     steps per example (default 50)
    BOXOFFICE_HYPOTHESIS_SEED      fixes Hypothesis' seed (reproducible run, no database)
    BOXOFFICE_RANDOM_STEPS         steps of each seeded long run (default 5000)
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from model_driver import ACTIONS, DataChooser, Driver, RandomChooser, diff, norm
from reference_model import ModelLimits, ReferenceModel

import boxoffice as bo
from boxoffice import errors

# --- Hypothesis stateful test ---------------------------------------------------------------

EXAMPLES = int(os.environ.get("BOXOFFICE_HYPOTHESIS_EXAMPLES", "200"))
STEPS = int(os.environ.get("BOXOFFICE_HYPOTHESIS_STEPS", "50"))
FIXED_SEED = os.environ.get("BOXOFFICE_HYPOTHESIS_SEED")


class EngineMatchesModel(RuleBasedStateMachine):
    """Random command streams through the engine and the reference model in lock step."""

    def __init__(self) -> None:
        super().__init__()
        self.driver: Driver | None = None

    def d(self) -> Driver:
        assert self.driver is not None
        return self.driver

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        self.driver = Driver.start(DataChooser(data))

    @invariant()
    def same_state(self) -> None:
        if self.driver is not None:
            self.driver.compare_state()

    def teardown(self) -> None:
        if self.driver is not None:
            self.driver.observe_tokens(RandomChooser(random.Random(0)))
            self.driver.compare_state()

    @rule(data=st.data())
    def jump_small(self, data: st.DataObject) -> None:
        self.d().jump_small(DataChooser(data))

    @rule(data=st.data())
    def jump_to_deadline(self, data: st.DataObject) -> None:
        self.d().jump_to_deadline(DataChooser(data))

    @rule(data=st.data())
    def jump_to_deadline_again(self, data: st.DataObject) -> None:
        self.d().jump_to_deadline(DataChooser(data))

    @rule(data=st.data())
    def jump_large(self, data: st.DataObject) -> None:
        self.d().jump_large(DataChooser(data))

    @rule(data=st.data())
    def jump_back(self, data: st.DataObject) -> None:
        self.d().jump_back(DataChooser(data))

    @rule(data=st.data())
    def invalid_now(self, data: st.DataObject) -> None:
        self.d().invalid_now(DataChooser(data))

    @rule(data=st.data())
    def create_user(self, data: st.DataObject) -> None:
        self.d().create_user(DataChooser(data))

    @rule(data=st.data())
    def create_concert(self, data: st.DataObject) -> None:
        self.d().create_concert(DataChooser(data))

    @rule(data=st.data())
    def join_queue(self, data: st.DataObject) -> None:
        self.d().join_queue(DataChooser(data))

    @rule(data=st.data())
    def join_queue_again(self, data: st.DataObject) -> None:
        self.d().join_queue(DataChooser(data))

    @rule(data=st.data())
    def queue_status(self, data: st.DataObject) -> None:
        self.d().queue_status(DataChooser(data))

    @rule(data=st.data())
    def leave_queue(self, data: st.DataObject) -> None:
        self.d().leave_queue(DataChooser(data))

    @rule(data=st.data())
    def check_gate(self, data: st.DataObject) -> None:
        self.d().check_gate(DataChooser(data))

    @rule(data=st.data())
    def observe_tokens(self, data: st.DataObject) -> None:
        self.d().observe_tokens(DataChooser(data))

    @rule(data=st.data())
    def hold_seats(self, data: st.DataObject) -> None:
        self.d().hold_seats(DataChooser(data))

    @rule(data=st.data())
    def hold_seats_again(self, data: st.DataObject) -> None:
        self.d().hold_seats(DataChooser(data))

    @rule(data=st.data())
    def hold_best(self, data: st.DataObject) -> None:
        self.d().hold_best(DataChooser(data))

    @rule(data=st.data())
    def release_seat(self, data: st.DataObject) -> None:
        self.d().release_seat(DataChooser(data))

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.d().cancel(DataChooser(data))

    @rule(data=st.data())
    def charge(self, data: st.DataObject) -> None:
        self.d().charge(DataChooser(data))

    @rule(data=st.data())
    def charge_again(self, data: st.DataObject) -> None:
        self.d().charge(DataChooser(data))

    @rule(data=st.data())
    def pay(self, data: st.DataObject) -> None:
        self.d().pay(DataChooser(data))

    @rule(data=st.data())
    def pay_again(self, data: st.DataObject) -> None:
        self.d().pay(DataChooser(data))

    @rule(data=st.data())
    def buy(self, data: st.DataObject) -> None:
        self.d().buy(DataChooser(data))

    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        self.d().refund(DataChooser(data))

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        self.d().replay(DataChooser(data))

    @rule(data=st.data())
    def queries(self, data: st.DataObject) -> None:
        self.d().queries(DataChooser(data))


EngineMatchesModel.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
if FIXED_SEED is not None:
    hypothesis_seed(int(FIXED_SEED))(EngineMatchesModel)

TestEngineMatchesModel = EngineMatchesModel.TestCase


# --- seeded plain-random long runs ----------------------------------------------------------

RANDOM_STEPS = int(os.environ.get("BOXOFFICE_RANDOM_STEPS", "5000"))


@pytest.mark.parametrize("seed", [20240601, 7])
def test_random_long_run(seed: int, tmp_path: Path) -> None:
    """Thousands of random steps; on failure the seed and a replay script are printed."""
    rng = random.Random(seed)
    ch = RandomChooser(rng)
    names = [name for name, weight in ACTIONS for _ in range(weight)]
    driver: Driver | None = None
    step = -1
    failure = ""
    try:
        driver = Driver.start(ch)
        for step in range(RANDOM_STEPS):
            getattr(driver, rng.choice(names))(ch)
            driver.compare_state(full=step % 10 == 9 or step == RANDOM_STEPS - 1)
    except AssertionError as exc:
        failure = str(exc).split("--- reproduce on the engine ---")[0]
    if failure:
        where = tmp_path / f"repro_seed_{seed}.py"
        if driver is not None:
            where.write_text(driver.script() + "\n")
            failure += "\n".join(["last commands:", *driver.trace[-12:]])
        pytest.fail(
            f"seed={seed} step={step}: {failure}\n"
            f"replay script (engine calls): {where}\n"
            f"rerun: pytest {__file__}::test_random_long_run[{seed}]",
            pytrace=False,
        )


# --- crafted scenarios: orderings that random streams rarely reach -------------------------


def lockstep(scenario: Callable[[Any], list[object]], **limits: Any) -> None:
    """Runs `scenario` on a fresh engine and a fresh model; their observations must match."""
    engine_seen = norm(scenario(bo.Engine(seed=12345, limits=bo.Limits(**limits))))
    model_seen = norm(scenario(ReferenceModel(seed=12345, limits=ModelLimits(**limits))))
    lines = diff(engine_seen, model_seen)
    assert not lines, "engine and model disagree:\n" + "\n".join(lines[:30])


def one_section_concert(x: Any, now: float, **sale: Any) -> Any:
    return x.create_concert(
        title="crafted",
        schedules=[bo.ScheduleSpec(2e9, [bo.SectionSpec("A", 1, 4, "R", 10_000)])],
        sale=bo.SaleSettings(**sale),
        now=now,
    )


def queue_events(x: Any) -> list[object]:
    return [e for e in x.events(0, 10**6) if e.type.startswith("Queue")]


def test_abandons_at_the_tick_instant_come_before_the_admission() -> None:
    """Two WAITING tokens whose abandon deadlines fall on the admission tick both end."""

    def scenario(x: Any) -> list[object]:
        t0 = 1000.0
        c = one_section_concert(
            x, t0, queue_capacity=1, admission_per_minute=6, abandon_timeout_s=4.0,
            poll_interval_s=1.0,
        )  # fmt: skip
        a, b, d = (x.create_user(now=t0) for _ in range(3))
        ta = x.join_queue(a, c.id, now=t0)  # ACTIVE; the next admission is due at t0 + 10
        tb = x.join_queue(b, c.id, now=t0)
        td = x.join_queue(d, c.id, now=t0)
        x.leave_queue(a, ta.id, now=t0)  # a free slot, an admission tick at t0 + 10
        for t in (t0 + 3, t0 + 6):  # both abandon deadlines move to t0 + 10
            x.queue_status(b, tb.id, now=t)
            x.queue_status(d, td.id, now=t)
        x.advance(now=t0 + 10)
        return [*queue_events(x), x.stats(c.id, now=t0 + 10)]

    lockstep(scenario)


def test_every_deadline_kind_due_at_one_instant_fires_in_kind_order() -> None:
    """Hold expiry, session expiry (which admits the next token), abandon, idempotency."""

    def scenario(x: Any) -> list[object]:
        t0 = 1000.0
        c = one_section_concert(
            x, t0, queue_capacity=1, admission_per_minute=60, session_ttl_s=10.0,
            hold_ttl_s=10.0, abandon_timeout_s=10.0, poll_interval_s=1.0,
        )  # fmt: skip
        a, b = x.create_user(now=t0), x.create_user(now=t0)
        ta = x.join_queue(a, c.id, now=t0)
        tb = x.join_queue(b, c.id, now=t0)
        r = x.hold(a, ta.id, c.schedules[0].id, quantity=2, idempotency_key="k", now=t0)
        x.charge(a, 5, idempotency_key="k", now=t0)
        seen: list[object] = [tb, r, x.queue_status(b, tb.id, now=t0)]
        x.advance(now=t0 + 10)  # b's abandon deadline (t0 + 10) loses to the admission
        seen += [x.queue_status(b, tb.id, now=t0 + 10), x.reservation(a, r.id, now=t0 + 10)]
        seen += [x.charge(a, 6, idempotency_key="k", now=t0 + 10)]  # the key has expired
        return [*seen, *x.events(0, 10**6)]

    lockstep(scenario, idempotency_ttl_s=10.0)


def test_eta_counts_at_most_the_last_1024_admissions() -> None:
    def scenario(x: Any) -> list[object]:
        t0 = 1000.0
        c = one_section_concert(x, t0, queue_capacity=1)
        users = [x.create_user(now=t0) for _ in range(1102)]
        for i, u in enumerate(users[:1100]):
            now = t0 + i * 0.04  # 1100 admissions within 44 s
            x.leave_queue(u, x.join_queue(u, c.id, now=now).id, now=now)
        now = t0 + 50
        x.join_queue(users[1100], c.id, now=now)
        waiting = x.join_queue(users[1101], c.id, now=now)
        return [waiting, x.queue_status(users[1101], waiting.id, now=now + 20)]

    lockstep(scenario)


def test_prequeue_shuffle_and_admission_order() -> None:
    def scenario(x: Any) -> list[object]:
        t0 = 1000.0
        c = one_section_concert(
            x, t0, opens_at=t0 + 30, queue_capacity=2, admission_per_minute=30,
            abandon_timeout_s=60.0,
        )  # fmt: skip
        users = [x.create_user(now=t0) for _ in range(12)]
        tokens = [x.join_queue(u, c.id, now=t0 + i) for i, u in enumerate(users)]
        x.leave_queue(users[3], tokens[3].id, now=t0 + 20)  # leaves the pre-queue
        x.advance(now=t0 + 30)
        seen: list[object] = [
            x.queue_status(u, t.id, now=t0 + 31) for u, t in zip(users, tokens, strict=True)
        ]
        x.advance(now=t0 + 100)
        return [*seen, *queue_events(x)]

    lockstep(scenario)


def attempt(f: Callable[[], object]) -> object:
    """The result of `f`, or the error code it raised (an observation either way)."""
    try:
        return f()
    except errors.BoxOfficeError as exc:
        return ("raised", exc.code, exc.seat_id)


def test_best_available_prefers_runs_without_an_orphan() -> None:
    def scenario(x: Any) -> list[object]:
        t0 = 1000.0
        sections = [
            bo.SectionSpec("A", 1, 3, "R", 10_000),
            bo.SectionSpec("B", 1, 4, "R", 20_000),
            bo.SectionSpec("C", 2, 6, "VIP", 30_000),
        ]
        c = x.create_concert(
            title="seats",
            schedules=[bo.ScheduleSpec(2e9, sections)],
            sale=bo.SaleSettings(queue_capacity=5, max_seats_per_reservation=4),
            now=t0,
        )
        schedule = c.schedules[0].id
        users = [x.create_user(now=t0) for _ in range(5)]
        tokens = [x.join_queue(u, c.id, now=t0).id for u in users]
        seen: list[object] = []
        asks: list[tuple[int, int, str]] = [
            (0, 2, ""),  # A has 3 (orphan), B has 4: B-1-1..2
            (1, 2, "VIP"),  # C row 1 has 6: C-1-1..2
            (2, 1, ""),  # A 3 -> 2 left, no orphan: A-1-1
            (3, 1, ""),  # A 2 (orphan), B 2 (orphan), C-1 4: C-1-3
            (4, 3, "VIP"),  # C row 1 has 3 left: an exact fit, C-1-4..6
        ]
        for who, quantity, grade in asks:
            hold = partial(x.hold, users[who], tokens[who], schedule, quantity=quantity)
            seen.append(attempt(partial(hold, grade=grade, now=t0)))
        # Fragment C row 2 with an explicit hold, then ask again.
        seats = [s.id for s in x.seats(schedule, now=t0) if s.label.startswith("C-2-")]
        seen.append(attempt(partial(x.hold, users[0], tokens[0], schedule, [seats[2]], now=t0)))
        for quantity in (1, 2, 2, 3, 1):
            hold = partial(x.hold, users[1], tokens[1], schedule, quantity=quantity)
            seen.append(attempt(partial(hold, grade="VIP", now=t0)))
        return [*seen, *x.seats(schedule, now=t0)]

    lockstep(scenario)


def test_max_seats_per_user_counts_held_and_sold_seats() -> None:
    def scenario(x: Any) -> list[object]:
        t0 = 1000.0
        c = one_section_concert(x, t0, queue_capacity=1, max_seats_per_user=3)
        schedule = c.schedules[0].id
        u = x.create_user(now=t0)
        x.charge(u, 100_000, now=t0)
        token = x.join_queue(u, c.id, now=t0).id
        first = x.hold(u, token, schedule, quantity=2, now=t0)
        seen: list[object] = [first, x.pay(u, token, first.id, now=t0 + 1)]
        token = x.join_queue(u, c.id, now=t0 + 2).id  # the paid token completed
        seen.append(attempt(lambda: x.hold(u, token, schedule, quantity=2, now=t0 + 3)))
        second = x.hold(u, token, schedule, quantity=1, now=t0 + 4)
        seen.append(attempt(lambda: x.hold(u, token, schedule, quantity=1, now=t0 + 5)))
        seen.append(x.release_seat(u, second.id, second.seat_ids[0], now=t0 + 6))
        seen.append(attempt(lambda: x.hold(u, token, schedule, quantity=2, now=t0 + 7)))
        seen.append(x.refund(u, first.id, now=t0 + 8))
        seen.append(attempt(lambda: x.hold(u, token, schedule, quantity=2, now=t0 + 9)))
        return [*seen, x.stats(c.id, now=t0 + 10)]

    lockstep(scenario)
