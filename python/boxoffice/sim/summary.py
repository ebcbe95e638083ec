"""The results of a simulated drop: the per-user DataFrame and the summary, checked against
the engine's own state.

Every number of the summary that the engine knows is read from the engine (``stats``, the
seat map, the reservations, the wallets' histories, the domain events); the simulator's own
bookkeeping is only used to cross-check it. A disagreement is listed in
``Summary.problems`` (and makes ``boxoffice simulate`` exit with status 1).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .outcomes import OUTCOMES, TOKEN_ENDS

if TYPE_CHECKING:
    import pandas as pd

    from .outcomes import DropRecord

__all__ = ["Summary", "fairness"]


@dataclass(frozen=True)
class Summary:
    """The headline numbers of one drop (counts, seconds after the opening, won).

    Attributes:
        users, seats, seed: the size of the drop and its seed.
        end_reason: ``"sold_out"`` (every seat SOLD), ``"all_done"`` (every user finished;
            the engine then ran on until every hold, session and abandon timeout had fired) or
            ``"horizon"`` (``SimConfig.horizon_s`` reached).
        end_s: when the simulation stopped.
        sold: SOLD seats (engine stats; equal to the seat map's SOLD seats).
        sold_out, sell_out_s: whether every seat was SOLD, and at which tick.
        buyers: users who paid (= CONFIRMED reservations in the engine).
        revenue_won: the concert's revenue account in the ledger (engine stats), equal to the
            PAYMENT entries of the wallets' histories and to what the buyers paid.
        admitted: tokens the engine admitted (ACTIVE at some point), ``never_admitted`` the
            users who arrived but never were.
        wait_p50_s, wait_p90_s, wait_p99_s: percentiles of the admitted users' wait, from
            joining the queue to the engine's admission (``QueueAdmitted`` event), in seconds;
            None when nobody was admitted. Users never admitted are not counted.
        gave_up: users who quit while waiting (left, or stopped polling).
        abandoned: tokens the engine ended as ABANDONED (stopped polling longer than the
            abandon timeout).
        expired_holds: reservations that expired unpaid (engine stats).
        payment_failures: payments refused for lack of balance.
        fairness_displacement: mean absolute rank displacement between arrival order and
            admission order, over admitted users, in places (0 = strictly first come, first
            served). See :func:`fairness`.
        fairness_normalized: the same divided by its expectation for a random order,
            ``(n² - 1) / 3n`` (0 = FIFO, about 1 = a lottery).
        oversold: seats listed by CONFIRMED reservations beyond the distinct seats that are
            SOLD in the seat map (read from the engine); must be 0.
        problems: disagreements between the engine's numbers (empty when consistent).
    """

    users: int
    seats: int
    seed: int
    end_reason: str
    end_s: float
    sold: int
    sold_out: bool
    sell_out_s: float | None
    buyers: int
    revenue_won: int
    admitted: int
    never_admitted: int
    wait_p50_s: float | None
    wait_p90_s: float | None
    wait_p99_s: float | None
    gave_up: int
    abandoned: int
    expired_holds: int
    payment_failures: int
    fairness_displacement: float
    fairness_normalized: float
    oversold: int
    problems: tuple[str, ...]

    @property
    def consistent(self) -> bool:
        """True when every cross-check passed and nothing is oversold."""
        return not self.problems and self.oversold == 0

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready plain values (``problems`` as a list)."""
        out = asdict(self)
        out["problems"] = list(self.problems)
        out["consistent"] = self.consistent
        return out

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON object."""
        return json.dumps(self.to_dict(), indent=2)

    def format(self) -> str:
        """A readable multi-line report."""

        def secs(v: float | None) -> str:
            return "-" if v is None else f"{v:,.0f} s"

        if self.sell_out_s is None:
            sell_out = "not sold out"
        else:
            sell_out = f"sold out at +{self.sell_out_s:,.0f} s"
        share = self.sold / self.seats if self.seats else 0.0
        rows = [
            ("sold", f"{self.sold:,} / {self.seats:,} seats ({share:.1%}), {sell_out}"),
            ("revenue", f"{self.revenue_won:,} won (ledger)"),
            ("buyers", f"{self.buyers:,}"),
            ("admitted", f"{self.admitted:,} (never admitted: {self.never_admitted:,})"),
            (
                "wait p50 / p90 / p99",
                f"{secs(self.wait_p50_s)} / {secs(self.wait_p90_s)} / {secs(self.wait_p99_s)}",
            ),
            ("gave up waiting", f"{self.gave_up:,}"),
            ("abandoned tokens", f"{self.abandoned:,}"),
            ("expired holds", f"{self.expired_holds:,}"),
            ("payment failures", f"{self.payment_failures:,}"),
            (
                "fairness",
                f"mean rank displacement {self.fairness_displacement:,.1f} places "
                f"({self.fairness_normalized:.3f} of a random order)",
            ),
            ("oversold", f"{self.oversold:,}"),
            (
                "consistency",
                "ok (engine stats = seat map = reservations = ledger; invariants hold)"
                if self.consistent
                else "FAILED: " + "; ".join(self.problems),
            ),
            ("stopped", f"{self.end_reason} at +{self.end_s:,.0f} s of virtual time"),
        ]
        return "\n".join(f"  {name:<22} {value}" for name, value in rows)


def fairness(arrival_order: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], float, float]:
    """Rank displacement between arrival and admission order.

    Args:
        arrival_order: the admitted users' arrival ranks (any increasing key, e.g. user ids
            numbered in arrival order), listed in admission order; shape ``(n,)``.

    Returns:
        ``(displacement, mean, normalized)``: per user (in the given order) admission rank
        minus arrival rank among the admitted (positive = admitted later than their arrival
        entitled them to); the mean absolute displacement in places; and that mean divided by
        ``(n² - 1) / 3n``, its expectation under a uniformly random order (0 when n < 2).
    """
    keys = np.asarray(arrival_order)
    n = len(keys)
    arrival_rank = np.empty(n, dtype=np.int64)
    arrival_rank[np.argsort(keys, kind="stable")] = np.arange(n)
    displacement = np.arange(n, dtype=np.int64) - arrival_rank
    if n < 2:
        return displacement, 0.0, 0.0
    mean = float(np.abs(displacement).mean())
    return displacement, mean, mean / ((n * n - 1) / (3 * n))


def _percentile(values: npt.NDArray[np.float64], q: float) -> float | None:
    return None if len(values) == 0 else round(float(np.percentile(values, q)), 6)


def finish(
    drop: DropRecord, *, end_tick: int, end_reason: str, sold_out_tick: int | None
) -> tuple[Summary, pd.DataFrame]:
    """Reads the engine at the end of ``drop`` into the summary and the per-user frame."""
    import pandas as pd

    config = drop.config
    pop = drop.pop
    engine = drop.engine
    n = drop.n
    tick_s = config.tick_s
    end_s = end_tick * tick_s
    now = (drop.opens_us + end_tick * drop.tick_us) / 1e6

    kind = np.concatenate([np.zeros(0, np.int8), *drop.event_kind])
    who = np.concatenate([np.zeros(0, np.int64), *drop.event_user])
    at = np.concatenate([np.zeros(0, np.float64), *drop.event_at]) - config.opens_at

    admitted_users = who[kind == 0]
    problems: list[str] = []
    if len(np.unique(admitted_users)) != len(admitted_users):
        problems.append("a user was admitted twice")
    admitted_s = np.full(n, np.nan)
    admitted_s[admitted_users] = at[kind == 0]
    displacement, fair_mean, fair_norm = fairness(admitted_users)
    rank = np.full(n, -1, dtype=np.int64)
    rank[admitted_users] = np.arange(len(admitted_users))
    shift = np.zeros(n, dtype=np.int64)
    shift[admitted_users] = displacement
    ends = (kind >= 1) & (kind <= 4)
    token_end = np.zeros(n, dtype=np.int8)
    token_end[who[ends]] = kind[ends]
    ended_s = np.full(n, np.nan)
    ended_s[who[ends]] = at[ends]
    holds_expired = np.bincount(who[kind == 5], minlength=n)

    joined_s = np.where(drop.joined, drop.joined_tick * tick_s, np.nan)
    wait_s = admitted_s - joined_s
    was_admitted = rank >= 0
    waits = wait_s[was_admitted]
    grade_names = ["any", *(g.name for g in config.venue.grades)]

    def nullable(values: npt.NDArray[np.int64]) -> pd.Series[Any]:
        return pd.Series(values, dtype="Int64").where(was_admitted)

    users = pd.DataFrame(
        {
            "user_id": np.arange(1, n + 1, dtype=np.int64),
            "arrived_s": pop.arrival_s,
            "joined_s": joined_s,
            "prequeue": drop.joined & (drop.joined_tick < 0),
            "token_id": drop.token,
            "admitted_s": admitted_s,
            "wait_s": wait_s,
            "admission_rank": nullable(rank),
            "displacement": nullable(shift),
            "seats_wanted": pop.seats_wanted,
            "grade_wanted": pd.Categorical.from_codes(pop.grade, pd.Index(grade_names)),
            "outcome": pd.Categorical.from_codes(drop.outcome, pd.Index(list(OUTCOMES))),
            "token_end": pd.Categorical.from_codes(token_end, pd.Index(list(TOKEN_ENDS))),
            "ended_s": ended_s,
            "hold_failures": drop.hold_failures,
            "reservation_id": drop.reservation,
            "seats_bought": drop.seats_bought,
            "paid_won": drop.paid_won,
            "payment_failures": drop.payment_failures,
            "topped_up": drop.topped_up,
            "holds_expired": holds_expired,
            "balance_won": drop.balance,
        }
    )

    # Cross-checks against the engine's own state.
    stats = engine.stats(drop.concert_id, now=now)
    sold_ids = np.array(
        [s.id for s in engine.seats(drop.schedule_id, "SOLD", now=now)], dtype=np.int64
    )
    buyers = np.flatnonzero(drop.outcome == OUTCOMES.index("bought"))
    seat_refs: list[int] = []
    confirmed_won = 0
    ledger_won = 0
    for i in buyers.tolist():
        res = engine.reservation(i + 1, int(drop.reservation[i]), now=now)
        if res.status != "CONFIRMED":
            problems.append(f"user {i + 1} paid, but reservation {res.id} is {res.status}")
        seat_refs.extend(res.seat_ids)
        confirmed_won += res.amount
        ledger_won += sum(h.amount for h in engine.history(i + 1, now=now) if h.kind == "PAYMENT")
    refs = np.asarray(seat_refs, dtype=np.int64)
    oversold = len(refs) - len(np.intersect1d(np.unique(refs), sold_ids))
    checks = [
        ("SOLD seats in the seat map", len(sold_ids), stats.seats_sold),
        ("seats of CONFIRMED reservations", len(refs), stats.seats_sold),
        ("CONFIRMED reservations", stats.reservations_confirmed, len(buyers)),
        ("seats the buyers asked for", int(drop.seats_bought.sum()), stats.seats_sold),
        ("what the buyers paid", int(drop.paid_won.sum()), stats.revenue),
        ("amounts of CONFIRMED reservations", confirmed_won, stats.revenue),
        ("PAYMENT entries of the wallets", ledger_won, stats.revenue),
        ("QueueAdmitted events", len(admitted_users), stats.queue_admitted_total),
        ("QueueAbandoned events", int((kind == 2).sum()), stats.queue_abandoned_total),
        ("ReservationExpired events", int(holds_expired.sum()), stats.reservations_expired),
    ]
    problems += [f"{name}: {got} != {want}" for name, got, want in checks if got != want]
    engine.check_invariants()  # raises boxoffice.errors.InternalError when one is broken

    outcome = drop.outcome
    quit_codes = (OUTCOMES.index("gave_up"), OUTCOMES.index("stopped_polling"))
    gave_up = int(np.isin(outcome, quit_codes).sum())
    summary = Summary(
        users=n,
        seats=drop.seats_total,
        seed=config.seed,
        end_reason=end_reason,
        end_s=end_s,
        sold=stats.seats_sold,
        sold_out=stats.seats_sold == drop.seats_total,
        sell_out_s=None if sold_out_tick is None else sold_out_tick * tick_s,
        buyers=stats.reservations_confirmed,
        revenue_won=stats.revenue,
        admitted=stats.queue_admitted_total,
        never_admitted=int((drop.joined & ~was_admitted).sum()),
        wait_p50_s=_percentile(waits, 50),
        wait_p90_s=_percentile(waits, 90),
        wait_p99_s=_percentile(waits, 99),
        gave_up=gave_up,
        abandoned=stats.queue_abandoned_total,
        expired_holds=stats.reservations_expired,
        payment_failures=int(drop.payment_failures.sum()),
        fairness_displacement=round(fair_mean, 6),
        fairness_normalized=round(fair_norm, 6),
        oversold=oversold,
        problems=tuple(problems),
    )
    return summary, users
