"""Simulated ticket drops through the real engine, in virtual time, for analysts.

A seeded crowd (arrival model + behaviour) meets a venue and the sale settings under test;
every command goes through :meth:`boxoffice.Engine.apply_batch`, so the engine decides every
outcome and the simulator only decides what users try and when. Results are pandas
DataFrames (one row per user; a time series) and a :class:`Summary` checked against the
engine's own state. ``docs/simulation.md`` describes the models, parameters and numbers.

Example::

    from boxoffice import sim

    config = sim.SimConfig(
        users=200_000,
        seed=7,
        venue=sim.Venue(seats=20_000),
        sale=sim.Sale(queue_capacity=2_000, hold_ttl_s=180),
        arrivals=sim.BurstArrivals(early_fraction=0.2),
    )
    result = sim.run(config)
    print(result.summary.format())
    result.timeseries.plot(x="t_s", y=["waiting", "active", "seats_sold"])
    result.users.groupby("outcome", observed=True).size()

``replay``, ``recorded_arrivals`` and ``rerun`` read a server's store (its journal): see
``boxoffice.sim.replay``.

Requires pandas (the ``analysis`` extra) and, for ``progress=True``, tqdm.
"""

from __future__ import annotations

from .models import (
    ArrivalModel,
    Behaviour,
    BurstArrivals,
    CsvArrivals,
    Grade,
    PoissonArrivals,
    Sale,
    SimConfig,
    Venue,
)
from .outcomes import OUTCOMES, TOKEN_ENDS
from .replay import (
    JournalCompacted,
    ReplayResult,
    copy_store,
    recorded_arrivals,
    replay,
    rerun,
)
from .runner import SimResult, SimulationError, run
from .summary import Summary, fairness

__all__ = [
    "OUTCOMES",
    "TOKEN_ENDS",
    "ArrivalModel",
    "Behaviour",
    "BurstArrivals",
    "CsvArrivals",
    "Grade",
    "JournalCompacted",
    "PoissonArrivals",
    "ReplayResult",
    "Sale",
    "SimConfig",
    "SimResult",
    "SimulationError",
    "Summary",
    "Venue",
    "copy_store",
    "fairness",
    "recorded_arrivals",
    "replay",
    "rerun",
    "run",
]
