"""Runs a simulated drop through the real engine, one ``apply_batch`` call per virtual tick.

The simulator keeps, for every user, only what that user knows (their stage, token,
reservation, wallet) and decides what they try next; the engine decides every outcome. Each
tick ``k`` (time ``opens_at + k * tick_s``) becomes one batch of commands, all at that time,
in this order: arrivals join (in arrival order), waiting users who give up leave, waiting
users due to poll poll, admitted users due to act hold, top up, pay, cancel and leave (each
group in user order). The results decide each user's next step; nothing else does.

Waiting users are kept in a poll wheel with one slot per tick of the poll interval: a user
who joins at tick ``k`` polls at ``k + P``, ``k + 2P``, ... so each tick touches one slot
and no per-user Python loop ever runs. The engine's domain events, read after every batch,
give the exact admission and end of every token (also of users who stopped polling).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

from .. import Engine, Limits, ScheduleSpec
from ..batch import COMMAND_DTYPE, ERROR_CODE_NAMES, Op
from .models import Population, SimConfig, draw_population
from .outcomes import OUTCOMES
from .summary import Summary, finish

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

__all__ = ["SimResult", "SimulationError", "run"]

IntArray: TypeAlias = npt.NDArray[np.int64]

CHUNK_COMMANDS = 250_000
"""Most commands per ``apply_batch`` call (events are read between calls)."""

# Error codes the users expect (anything else is a bug, raised as SimulationError).
_CODE = {name: i for i, name in enumerate(ERROR_CODE_NAMES)}
OK = 0
QUEUE_FULL = _CODE["QUEUE_FULL"]
SEAT_UNAVAILABLE = _CODE["SEAT_UNAVAILABLE"]
QUEUE_TOKEN_EXPIRED = _CODE["QUEUE_TOKEN_EXPIRED"]
INSUFFICIENT_BALANCE = _CODE["INSUFFICIENT_BALANCE"]
HOLD_EXPIRED = _CODE["HOLD_EXPIRED"]
RESERVATION_NOT_PENDING = _CODE["RESERVATION_NOT_PENDING"]
INVALID_AMOUNT = _CODE["INVALID_AMOUNT"]
BALANCE_LIMIT_EXCEEDED = _CODE["BALANCE_LIMIT_EXCEEDED"]

TOKEN_WAITING, TOKEN_ACTIVE, TOKEN_EXPIRED = 0, 1, 2

# What a user is doing (the simulator's view; index of the user's next step).
NOT_ARRIVED, WAITING, JOIN_RETRY, CHOOSING, HOLDING, TOPUP, EXITING, DONE = range(8)
# Stages JOIN_RETRY..EXITING act at their next_tick (the `scheduled` list).

_OUT = {name: i for i, name in enumerate(OUTCOMES)}

_EVENTS = {
    "QueueAdmitted": 0,
    "QueueLeft": 1,
    "QueueAbandoned": 2,
    "QueueSessionExpired": 3,
    "QueueCompleted": 4,
    "ReservationExpired": 5,
}


_type_of = attrgetter("type")
_user_of = attrgetter("user_id")
_at_of = attrgetter("at")


class _KindsByType(dict[str, int]):
    """Event type name -> kind in ``_EVENTS``, -1 for the types the results do not need."""

    def __missing__(self, name: str) -> int:
        kind = _EVENTS.get(name, -1)
        self[name] = kind
        return kind


class SimulationError(RuntimeError):
    """The engine answered something no user expects (a bug); the message gives the seed."""


@dataclass
class SimResult:
    """What a simulated drop produced.

    Attributes:
        config: the configuration that was run.
        summary: the headline numbers (:class:`boxoffice.sim.Summary`).
        users: one row per user (``config.users`` rows): see ``docs/simulation.md``.
        timeseries: one row every ``sample_every_s`` of virtual time, and one at the end.
        engine: the engine after the drop (query it at ``now >= engine.clock``).
        concert_id, schedule_id: the concert and schedule on sale.
        commands: commands applied through ``apply_batch``.
        commands_by_op: those commands per :class:`boxoffice.Op` name (the load a server
            would have seen: ``STATUS`` is the polls).
        wall_s: real seconds the run took (not part of the deterministic results).
    """

    config: SimConfig
    summary: Summary
    users: pd.DataFrame
    timeseries: pd.DataFrame
    engine: Engine
    concert_id: int
    schedule_id: int
    commands: int
    commands_by_op: dict[str, int]
    wall_s: float


class _Batch:
    """One tick's commands, as groups of one op each, filled into one array."""

    def __init__(self) -> None:
        self.groups: list[tuple[int, IntArray, dict[str, Any]]] = []
        self.size = 0

    def add(self, op: Op, users: IntArray, **fields: Any) -> slice:
        """Adds ``op`` for ``users`` (0-based indices); returns its slice of the results."""
        start = self.size
        self.groups.append((int(op), users, fields))
        self.size += len(users)
        return slice(start, self.size)

    def build(self, now_us: int) -> npt.NDArray[np.void]:
        cmds = np.zeros(self.size, dtype=COMMAND_DTYPE)
        cmds["now_us"] = now_us
        i = 0
        for op, users, fields in self.groups:
            k = len(users)
            if k:
                cmds["op"][i : i + k] = op
                cmds["user"][i : i + k] = users + 1
                for name, value in fields.items():
                    cmds[name][i : i + k] = value
            i += k
        return cmds


class _Drop:
    """The state of one running simulation (arrays indexed by user index = user id - 1)."""

    def __init__(
        self,
        config: SimConfig,
        pop: Population,
        on_commands: Callable[[npt.NDArray[np.void]], None] | None = None,
    ) -> None:
        self.config = config
        self.on_commands = on_commands
        self.pop = pop
        n = config.users
        self.n = n
        self.tick_us = round(config.tick_s * 1e6)
        self.opens_us = round(config.opens_at * 1e6)
        self.poll_ticks = config.ticks(config.poll_interval_s)
        seats_total = config.venue.seats
        limits = Limits(event_retention_max=n + 4 * CHUNK_COMMANDS + 100_000)
        self.engine = Engine(seed=config.seed, limits=limits)
        self.first_tick = min(int(pop.arrival_tick[0]), 0)
        setup_s = (self.opens_us + (self.first_tick - 1) * self.tick_us) / 1e6
        concert = self.engine.create_concert(
            title="boxoffice simulate",
            artist="simulated crowd",
            venue=f"{seats_total} seats",
            schedules=[ScheduleSpec(config.opens_at + 30 * 86_400, config.venue.sections())],
            sale=config.sale.settings(config.opens_at),
            now=setup_s,
        )
        self.concert_id = concert.id
        self.schedule_id = concert.schedules[0].id
        self.seats_total = seats_total
        self.commands = 0
        self.op_counts = np.zeros(len(Op), dtype=np.int64)

        self.stage = np.full(n, NOT_ARRIVED, dtype=np.int8)
        self.outcome = np.full(n, -1, dtype=np.int8)
        self.next_tick = np.zeros(n, dtype=np.int64)
        self.token = np.zeros(n, dtype=np.int64)
        self.joined_tick = np.zeros(n, dtype=np.int64)
        self.joined = np.zeros(n, dtype=np.bool_)
        self.grade_now = pop.grade.astype(np.uint8)
        self.reservation = np.zeros(n, dtype=np.int64)
        self.amount = np.zeros(n, dtype=np.int64)
        self.balance = np.zeros(n, dtype=np.int64)
        self.paid_won = np.zeros(n, dtype=np.int64)
        self.seats_bought = np.zeros(n, dtype=np.int64)
        self.hold_failures = np.zeros(n, dtype=np.int64)
        self.payment_failures = np.zeros(n, dtype=np.int64)
        self.topped_up = np.zeros(n, dtype=np.bool_)
        self.slots: list[IntArray] = [np.zeros(0, np.int64) for _ in range(self.poll_ticks)]
        self.scheduled: IntArray = np.zeros(0, np.int64)  # users in JOIN_RETRY..EXITING
        self.next_arrival = 0
        self.event_kind: list[npt.NDArray[np.int8]] = []
        self.event_user: list[IntArray] = []
        self.event_at: list[npt.NDArray[np.float64]] = []
        self._kinds_by_type = _KindsByType()

        self._setup(setup_s)

    # -- engine calls ----------------------------------------------------------------------

    def _setup(self, now_s: float) -> None:
        """Creates every user (ids 1..n in arrival order) and funds the funded wallets."""
        now_us = round(now_s * 1e6)
        ids = np.arange(self.n, dtype=np.int64)
        batch = _Batch()
        created = batch.add(Op.CREATE_USER, ids)
        limit = self.engine.limits.charge_amount_max
        if self.config.behaviour.balance_won > limit:
            raise ValueError(f"balance_won must be at most the engine's charge_amount_max {limit}")
        funded = ids[self.pop.balance_won > 0]
        charged = batch.add(Op.CHARGE, funded, arg=self.pop.balance_won[funded])
        results = self._apply(batch.build(now_us), read_events=False)
        self._expect(results[created], Op.CREATE_USER, ids, OK)
        if not np.array_equal(results["id"][created], ids + 1):
            raise SimulationError("the engine must be fresh: user ids are not 1..users")
        self._expect(results[charged], Op.CHARGE, funded, OK)
        self.balance[funded] = results["value"][charged]
        self.event_cursor = self.engine.last_event_seq  # setup events are not needed

    def _apply(self, cmds: npt.NDArray[np.void], *, read_events: bool = True) -> Any:
        if self.on_commands is not None:
            self.on_commands(cmds)
        parts = []
        for start in range(0, len(cmds), CHUNK_COMMANDS):
            parts.append(self.engine.apply_batch(cmds[start : start + CHUNK_COMMANDS]))
            if read_events:
                self.read_events()
        self.commands += len(cmds)
        self.op_counts += np.bincount(cmds["op"], minlength=len(Op))
        return np.concatenate(parts) if len(parts) != 1 else parts[0]

    def read_events(self) -> None:
        """Keeps the events the results need, as arrays (kind, user index, at)."""
        kinds_by_type = self._kinds_by_type
        limit = self.engine.limits.list_limit_max
        while batch := self.engine.events(after=self.event_cursor, limit=limit):
            if batch[0].seq != self.event_cursor + 1:
                raise SimulationError(
                    f"events {self.event_cursor + 1}..{batch[0].seq - 1} were dropped before "
                    f"they were read (seed {self.config.seed}); raise event_retention_max"
                )
            self.event_cursor = batch[-1].seq
            # C-level loops (map, fromiter): a drop has millions of events.
            kinds = np.fromiter(
                map(kinds_by_type.__getitem__, map(_type_of, batch)), np.int8, len(batch)
            )
            keep = np.flatnonzero(kinds >= 0)
            if len(keep):
                kept = [batch[i] for i in keep.tolist()]
                self.event_kind.append(kinds[keep])
                self.event_user.append(np.fromiter(map(_user_of, kept), np.int64, len(kept)) - 1)
                self.event_at.append(np.fromiter(map(_at_of, kept), np.float64, len(kept)))

    def _expect(self, results: Any, op: Op, users: IntArray, *allowed: int) -> None:
        codes = results["code"]
        bad = codes != allowed[0]
        for code in allowed[1:]:
            bad &= codes != code
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SimulationError(
                f"{op.name} for user {int(users[i]) + 1} answered "
                f"{ERROR_CODE_NAMES[int(codes[i])]}, which no simulated user expects "
                f"(seed {self.config.seed}; reproduce with the same SimConfig)"
            )

    # -- one tick --------------------------------------------------------------------------

    def step(self, k: int) -> None:
        """Plays tick ``k``: builds its batch from the users' plans, applies it, reacts."""
        pop = self.pop
        stage = self.stage
        p_ticks = self.poll_ticks
        end = int(np.searchsorted(pop.arrival_tick, k, side="right"))
        arrivals = np.arange(self.next_arrival, end, dtype=np.int64)
        self.next_arrival = end
        sched = self.scheduled
        due = np.sort(sched[self.next_tick[sched] == k])
        due_stage = stage[due]
        joiners = np.concatenate([due[due_stage == JOIN_RETRY], arrivals])
        choosers = due[due_stage == CHOOSING]
        holders = due[due_stage == HOLDING]
        payers = holders[pop.pays[holders]]
        decliners = holders[~pop.pays[holders]]
        toppers = due[due_stage == TOPUP]
        exiters = due[due_stage == EXITING]
        slot = k % p_ticks
        members = self.slots[slot]
        quitting = pop.give_up_tick[members] <= k
        quitters = members[quitting]
        pollers = members[~quitting]
        leavers = quitters[pop.tidy[quitters]]
        tidy_decliners = decliners[pop.tidy[decliners]]
        unpaid = exiters[self.outcome[exiters] == _OUT["payment_failed"]]
        cancels = np.sort(np.concatenate([tidy_decliners, unpaid]))
        exits = np.sort(np.concatenate([tidy_decliners, exiters]))
        pays = np.sort(np.concatenate([payers, toppers]))
        shortfall = self.amount[toppers] - self.balance[toppers]

        b = _Batch()
        s_join = b.add(Op.JOIN, joiners, target=self.concert_id)
        s_leave_q = b.add(Op.LEAVE, leavers, token=self.token[leavers])
        s_poll = b.add(Op.STATUS, pollers, token=self.token[pollers])
        s_hold = b.add(
            Op.HOLD,
            choosers,
            token=self.token[choosers],
            target=self.schedule_id,
            quantity=pop.seats_wanted[choosers],
            grade=self.grade_now[choosers],
        )
        s_charge = b.add(Op.CHARGE, toppers, arg=shortfall)
        s_pay = b.add(Op.PAY, pays, token=self.token[pays], target=self.reservation[pays])
        s_cancel = b.add(Op.CANCEL, cancels, target=self.reservation[cancels])
        s_exit = b.add(Op.LEAVE, exits, token=self.token[exits])
        res = self._apply(b.build(self.opens_us + k * self.tick_us)) if b.size else None

        # Users who quit without a command, or whose last command was just sent.
        self._finish(quitters[~pop.tidy[quitters]], "stopped_polling")
        self._finish(decliners, "declined")
        stage[exiters] = DONE
        newly_waiting = np.zeros(0, np.int64)
        scheduled_new: list[IntArray] = []
        if res is not None:
            newly_waiting = self._joined(res[s_join], joiners, k, scheduled_new)
            self._expect(res[s_leave_q], Op.LEAVE, leavers, OK)
            self._finish(leavers, "gave_up")
            still = self._polled(res[s_poll], pollers, k, scheduled_new)
            pollers = pollers[still]
            self._held(res[s_hold], choosers, k)
            self._charged(res[s_charge], toppers)
            self._paid(res[s_pay], pays, k)
            self._expect(
                res[s_cancel], Op.CANCEL, cancels, OK, HOLD_EXPIRED, RESERVATION_NOT_PENDING
            )
            self._expect(res[s_exit], Op.LEAVE, exits, OK)
        self.slots[slot] = np.concatenate([pollers, newly_waiting])
        keep = np.concatenate([sched, *scheduled_new])
        keep_stage = stage[keep]
        keep = keep[(keep_stage >= JOIN_RETRY) & (keep_stage <= EXITING)]
        self.scheduled = np.unique(keep)

    def _finish(self, users: IntArray, outcome: str) -> None:
        self.stage[users] = DONE
        self.outcome[users] = _OUT[outcome]

    def _quit(self, users: IntArray, outcome: str, k: int) -> None:
        """Users who give up after being admitted: tidy ones cancel and leave next tick."""
        self.outcome[users] = _OUT[outcome]
        tidy = self.pop.tidy[users]
        self.stage[users[~tidy]] = DONE
        self.stage[users[tidy]] = EXITING
        self.next_tick[users[tidy]] = k + 1

    def _admitted(self, users: IntArray, k: int) -> None:
        self.stage[users] = CHOOSING
        self.next_tick[users] = k + self.pop.choose_ticks[users]

    def _joined(self, res: Any, users: IntArray, k: int, scheduled: list[IntArray]) -> IntArray:
        """JOIN results: ACTIVE at once, WAITING (returned: they poll from now on) or full."""
        self._expect(res, Op.JOIN, users, OK, QUEUE_FULL)
        ok = res["code"] == OK
        joined = users[ok]
        self.token[joined] = res["id"][ok]
        self.joined[joined] = True
        self.joined_tick[joined] = k
        active = joined[res["status"][ok] == TOKEN_ACTIVE]
        self._admitted(active, k)
        full = users[~ok]
        self.stage[full] = JOIN_RETRY
        self.next_tick[full] = k + self.poll_ticks
        scheduled += [active, full]
        waiting: IntArray = joined[res["status"][ok] == TOKEN_WAITING]
        self.stage[waiting] = WAITING
        return waiting

    def _polled(self, res: Any, users: IntArray, k: int, scheduled: list[IntArray]) -> Any:
        """STATUS results; returns the mask of users still waiting."""
        self._expect(res, Op.STATUS, users, OK)
        status = res["status"]
        active = users[status == TOKEN_ACTIVE]
        self._admitted(active, k)
        scheduled.append(active)
        self._finish(users[status == TOKEN_EXPIRED], "token_expired")
        return status == TOKEN_WAITING

    def _held(self, res: Any, users: IntArray, k: int) -> None:
        self._expect(res, Op.HOLD, users, OK, SEAT_UNAVAILABLE, QUEUE_TOKEN_EXPIRED)
        code = res["code"]
        ok = code == OK
        held = users[ok]
        self.stage[held] = HOLDING
        self.reservation[held] = res["id"][ok]
        self.amount[held] = res["value"][ok]
        self.next_tick[held] = k + self.pop.pay_ticks[held]
        missed = users[code == SEAT_UNAVAILABLE]
        self.hold_failures[missed] += 1
        switch = missed[self.pop.switches_grade[missed]]
        self.grade_now[switch] = 0
        out = self.hold_failures[missed] >= self.config.behaviour.hold_attempts
        self._quit(missed[out], "no_seats", k)
        again = missed[~out]
        self.next_tick[again] = k + self.pop.choose_ticks[again]
        self._finish(users[code == QUEUE_TOKEN_EXPIRED], "session_expired")

    def _charged(self, res: Any, users: IntArray) -> None:
        # A top-up the ledger refuses (over a limit) leaves the payment after it to fail.
        self._expect(res, Op.CHARGE, users, OK, INVALID_AMOUNT, BALANCE_LIMIT_EXCEEDED)
        ok = res["code"] == OK
        self.balance[users[ok]] = res["value"][ok]
        self.topped_up[users] = True

    def _paid(self, res: Any, users: IntArray, k: int) -> None:
        allowed = (INSUFFICIENT_BALANCE, HOLD_EXPIRED, QUEUE_TOKEN_EXPIRED, RESERVATION_NOT_PENDING)
        self._expect(res, Op.PAY, users, OK, *allowed)
        code = res["code"]
        ok = code == OK
        bought = users[ok]
        self._finish(bought, "bought")
        self.paid_won[bought] = res["value"][ok]
        self.balance[bought] -= res["value"][ok]
        self.seats_bought[bought] = self.pop.seats_wanted[bought]
        short = users[code == INSUFFICIENT_BALANCE]
        self.payment_failures[short] += 1
        retry = self.pop.tops_up[short] & ~self.topped_up[short]
        self.stage[short[retry]] = TOPUP
        self.next_tick[short[retry]] = k + self.pop.topup_ticks[short[retry]]
        self._quit(short[~retry], "payment_failed", k)
        late = users[code == HOLD_EXPIRED]
        self._quit(late, "hold_expired", k)
        self._finish(users[code == QUEUE_TOKEN_EXPIRED], "session_expired")
        # The sale cancels a hold whose payment failed: hold again, with the money now there.
        released = users[code == RESERVATION_NOT_PENDING]
        self.reservation[released] = 0
        self._admitted(released, k)

    # -- the end ---------------------------------------------------------------------------

    def close_outcomes(self) -> None:
        """Gives users still on their way an outcome that says where they were."""
        stage = self.stage
        self.outcome[stage == NOT_ARRIVED] = _OUT["not_arrived"]
        self.outcome[stage == WAITING] = _OUT["waiting"]
        self.outcome[stage == JOIN_RETRY] = _OUT["queue_full"]
        shopping = np.isin(stage, (CHOOSING, HOLDING, TOPUP))
        self.outcome[shopping] = _OUT["shopping"]

    def live(self) -> bool:
        """Whether any user still has something to do (arrive, poll or act)."""
        return (
            self.next_arrival < self.n
            or len(self.scheduled) > 0
            or any(len(s) > 0 for s in self.slots)
        )


def run(
    config: SimConfig,
    *,
    progress: bool = False,
    on_commands: Callable[[npt.NDArray[np.void]], None] | None = None,
) -> SimResult:
    """Runs one simulated drop through a fresh in-memory engine.

    Args:
        config: the crowd, venue, sale and clock (:class:`boxoffice.sim.SimConfig`).
        progress: show a tqdm progress bar of seats sold on standard error (only when it
            is a terminal, and tqdm is installed).
        on_commands: called with every array of batch commands (``COMMAND_DTYPE``) before
            it is applied, in order: applying them all to a fresh engine with the same
            seed, limits and concert replays the drop (``bench/workload.py`` records the
            standard benchmark workload this way).

    Returns:
        A :class:`SimResult`: the per-user and time-series DataFrames, the summary and the
        engine itself. The same config gives equal DataFrames and summary.

    Raises:
        ValueError: a model cannot be drawn (e.g. a CSV with too few rows), or asks for more
            than an engine limit allows.
        SimulationError: the engine answered something no user expects (a bug).
        boxoffice.errors.InternalError: an invariant of the engine is broken (a bug).
    """
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    pop = draw_population(config, rng)
    drop = _Drop(config, pop, on_commands)
    engine = drop.engine
    tick_s = config.tick_s
    sample_ticks = max(1, round(config.sample_every_s / tick_s))
    horizon_tick = math.floor(config.horizon_s / tick_s + 1e-9)
    settle_ticks = config.ticks(
        max(config.sale.hold_ttl_s, config.sale.session_ttl_s, config.sale.abandon_timeout_s)
    )
    samples: list[dict[str, float | int]] = []
    sold_out_tick: int | None = None
    settle_until: int | None = None
    end_reason = "horizon"

    bar: Any = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(
                total=drop.seats_total, unit="seat", desc="seats sold", leave=False, disable=None
            )
        except ImportError:  # the bar is a nicety: run without it
            bar = None
    sold_before = 0
    k = drop.first_tick
    try:
        while True:
            if settle_until is None:
                drop.step(k)
            now = (drop.opens_us + k * drop.tick_us) / 1e6
            stats = engine.stats(drop.concert_id, now=now)
            drop.read_events()  # deadlines fired by the query (after everyone is done)
            if k % sample_ticks == 0:
                samples.append(_sample(k * tick_s, stats))
            if bar is not None and (stats.seats_sold != sold_before or k % 10 == 0):
                bar.set_postfix_str(f"t={k * tick_s:+.0f}s waiting={stats.queue_waiting:,}", False)
                bar.update(stats.seats_sold - sold_before)
            sold_before = stats.seats_sold
            if sold_out_tick is None and stats.seats_sold == drop.seats_total:
                sold_out_tick = k
                if config.stop_at_sell_out:
                    end_reason = "sold_out"
                    break
            if settle_until is None and not drop.live():
                # Everyone is done: let the engine's timeouts end every hold and token.
                settle_until = k + settle_ticks
                end_reason = "all_done"
            if settle_until is not None and k >= settle_until:
                break
            if k >= horizon_tick:
                break  # end_reason stays "horizon" unless everyone was done already
            k += 1
    finally:
        if bar is not None:
            bar.close()
    end_s = k * tick_s
    if not samples or samples[-1]["t_s"] != end_s:
        samples.append(_sample(end_s, stats))
    drop.close_outcomes()
    summary, users = finish(drop, end_tick=k, end_reason=end_reason, sold_out_tick=sold_out_tick)
    import pandas as pd

    timeseries = pd.DataFrame(samples)
    return SimResult(
        config=config,
        summary=summary,
        users=users,
        timeseries=timeseries,
        engine=engine,
        concert_id=drop.concert_id,
        schedule_id=drop.schedule_id,
        commands=drop.commands,
        commands_by_op={op.name: int(drop.op_counts[op]) for op in Op},
        wall_s=time.perf_counter() - started,
    )


def _sample(t_s: float, stats: Any) -> dict[str, float | int]:
    return {
        "t_s": t_s,
        "waiting": stats.queue_waiting,
        "active": stats.queue_active,
        "seats_available": stats.seats_available,
        "seats_held": stats.seats_held,
        "seats_sold": stats.seats_sold,
        "revenue_won": stats.revenue,
        "admitted_total": stats.queue_admitted_total,
        "abandoned_total": stats.queue_abandoned_total,
        "holds_expired_total": stats.reservations_expired,
    }
