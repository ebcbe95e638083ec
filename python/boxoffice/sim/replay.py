"""Replay a server's journal through a fresh engine, and re-run a recorded drop.

A server's store (one SQLite file) keeps every command it applied in its journal until a
snapshot compacts it. :func:`replay` copies the store (a consistent copy, even while the
server writes), feeds every journal record through a fresh :class:`boxoffice.Engine` and
compares the result with the state the store itself recovers: equal ``state_hash()`` values
mean the journal alone rebuilds the server's state. :func:`recorded_arrivals` lists who joined
which queue when, and :func:`rerun` sends those very arrivals through the simulator under
other sale settings. ``docs/simulation.md`` ("Replay") describes it.

Example::

    from boxoffice import sim

    result = sim.replay("var/boxoffice.db")
    print(result.matches, result.records, f"{result.seconds:.3f} s")
    events = result.events()  # the replayed drop's domain events, as a DataFrame
    bigger = sim.rerun("var/boxoffice.db", sale=sim.Sale(queue_capacity=500))
    print(bigger.summary.format())
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import Engine, Limits
from .._core import decode_record, journal_records
from ..export import EVENT_COLUMNS
from .models import CsvArrivals, Sale, SimConfig, Venue
from .runner import SimResult, run

if TYPE_CHECKING:
    import pandas as pd

StorePath = str | os.PathLike[str]


class JournalCompacted(ValueError):
    """The store's journal no longer starts at seq 1: a snapshot compacted it.

    Attributes:
        path: the store.
        compacted_seq: the last sequence number that is gone (records ``1..compacted_seq``).
    """

    def __init__(self, path: StorePath, compacted_seq: int) -> None:
        self.path = os.fspath(path)
        self.compacted_seq = compacted_seq
        super().__init__(
            f"{self.path}: the journal was compacted at seq {compacted_seq} (a snapshot "
            f"replaced records 1..{compacted_seq}), so it cannot be replayed from the "
            "start. To keep a journal whole, replay a store that never reached the "
            "server's snapshot_every_records (BOXOFFICE_SNAPSHOT_EVERY_RECORDS), and copy it "
            "while the server is still running: closing a store (SIGTERM, Ctrl-C) takes a "
            "last snapshot and compacts the journal."
        )


def copy_store(src: StorePath, dst: StorePath) -> None:
    """Copies the SQLite store ``src`` to ``dst`` with SQLite's online backup API.

    The copy is one consistent state of the database, also while a server is writing to
    ``src`` (a WAL reader never blocks the writer). ``dst`` is overwritten.

    Raises:
        FileNotFoundError: ``src`` does not exist.
    """
    if not os.path.isfile(src):
        raise FileNotFoundError(f"no store file at {os.fspath(src)}")
    source = sqlite3.connect(os.fspath(src))  # only read (one read transaction)
    try:
        target = sqlite3.connect(os.fspath(dst))
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()


@contextmanager
def _copy(path: StorePath) -> Iterator[Path]:
    """A consistent copy of the store in a temporary directory (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="boxoffice-replay-") as tmp:
        copy = Path(tmp) / "store.db"
        copy_store(path, copy)
        yield copy


def _whole_journal(path: StorePath, copy: Path) -> list[bytes]:
    first_seq, records = journal_records(os.fspath(copy))
    if first_seq > 1:
        raise JournalCompacted(path, first_seq - 1)
    return records


@dataclass
class ReplayResult:
    """What :func:`replay` did.

    Attributes:
        path: the store replayed (the original, not the temporary copy).
        records: journal records fed through the fresh engine.
        seconds: wall time of the replay itself (decoding and applying the records).
        replayed_hash: ``state_hash()`` of the fresh engine after the replay.
        recovered_hash: ``state_hash()`` of the engine the store recovers (snapshot + journal).
        matches: the two hashes are equal.
        engine: the replayed engine, for any further query (its clock is the journal's last
            command; queries take ``now`` as usual).
    """

    path: str
    records: int
    seconds: float
    replayed_hash: int
    recovered_hash: int
    matches: bool
    engine: Engine

    def events(self) -> pd.DataFrame:
        """Every domain event the replayed engine kept (``event_retention_max``), oldest
        first, one row each: ``seq``, ``type``, ``at`` (epoch seconds), ``user_id``,
        ``concert_id``, ``token_id``, ``reservation_id``, ``amount`` (won), ``value``."""
        import pandas as pd

        rows: list[tuple[Any, ...]] = []
        after, page = 0, self.engine.limits.list_limit_max
        while batch := self.engine.events(after=after, limit=page):
            rows.extend(tuple(getattr(e, column) for column in EVENT_COLUMNS) for e in batch)
            after = batch[-1].seq
        return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))


def replay(
    path: StorePath, *, seed: int | None = None, limits: Limits | None = None
) -> ReplayResult:
    """Replays the journal of the store at ``path`` through a fresh engine.

    The store is copied first (:func:`copy_store`), so a running server's store can be
    replayed. Every journal record goes through ``Engine(seed=seed, limits=limits)`` in
    sequence order, by the same code that applied it on the server; the result is compared
    with the state the copy recovers when opened as ``Engine(copy)``.

    Args:
        path: the store, e.g. a server's ``--db`` file.
        seed, limits: the fresh engine's; by default the store's own (those it was created
            with), which the hashes need to match. ``boxoffice serve`` gives every new store
            a random, secret seed (the pre-queue shuffles), kept in the store.

    Raises:
        JournalCompacted: the journal does not start at seq 1 (a snapshot compacted it).
        FileNotFoundError: no file at ``path``.
        boxoffice.errors.BoxOfficeError: the store is damaged or not a store (``DataLoss``,
            ``StoreUnavailable``, ...).
    """
    with _copy(path) as copy:
        records = _whole_journal(path, copy)
        recovered = Engine(copy)
        try:
            engine = Engine(
                seed=recovered.seed if seed is None else seed,
                limits=recovered.limits if limits is None else limits,
            )
            start = time.perf_counter()
            for record in records:
                engine._replay_record(record)
            seconds = time.perf_counter() - start
            replayed_hash = engine.state_hash()
            recovered_hash = recovered.state_hash()
        finally:
            recovered.close()
    return ReplayResult(
        path=os.fspath(path),
        records=len(records),
        seconds=seconds,
        replayed_hash=replayed_hash,
        recovered_hash=recovered_hash,
        matches=replayed_hash == recovered_hash,
        engine=engine,
    )


def _arrivals(records: list[bytes]) -> pd.DataFrame:
    import pandas as pd

    joins: dict[tuple[int, int], float] = {}
    for record in records:
        command = decode_record(record)
        if command["type"] == "JOIN" or command["op"] == "JOIN":
            joins.setdefault((command["user"], command["target"]), command["now"])
    frame = pd.DataFrame(
        [(user, concert, at) for (user, concert), at in joins.items()],
        columns=["user", "concert", "joined_at"],
    )
    frame = frame.astype({"user": "int64", "concert": "int64", "joined_at": "float64"})
    return frame.sort_values("joined_at", kind="stable").reset_index(drop=True)


def recorded_arrivals(path: StorePath) -> pd.DataFrame:
    """Who joined which queue, and when, from the join commands of the store's journal.

    Returns:
        One row per user and concert (their first join; a rejoin after leaving is not a new
        arrival), in join order: ``user`` (engine user id), ``concert`` (concert id),
        ``joined_at`` (the time the server gave the command, epoch seconds).

    Raises:
        JournalCompacted, FileNotFoundError, boxoffice.errors.BoxOfficeError: as
        :func:`replay`.
    """
    with _copy(path) as copy:
        return _arrivals(_whole_journal(path, copy))


def rerun(
    path: StorePath,
    *,
    sale: Sale | None = None,
    venue: Venue | None = None,
    concert_id: int | None = None,
    progress: bool = False,
    **config: Any,
) -> SimResult:
    """Re-runs a recorded drop in the simulator: the recorded arrivals, other settings.

    The arrivals of one concert (:func:`recorded_arrivals`) become a :class:`CsvArrivals`
    relative to the concert's recorded opening (its ``opens_at``, or its creation when it
    opened at once), one simulated user per recorded one, and :func:`boxoffice.sim.run`
    sends them through a fresh engine. Only the arrivals are replayed: what each user then
    does is the simulator's behaviour model (``behaviour=``).

    Args:
        path: the store.
        sale: the sale settings under test; by default the recorded concert's own.
        venue: by default the recorded concert's seat count (the simulator's grades).
        concert_id: the concert whose arrivals to use; by default the one most users joined.
        progress: as :func:`boxoffice.sim.run`.
        **config: any other :class:`SimConfig` field (``seed``, ``behaviour``, ``tick_s``,
            ``horizon_s``, ...).

    Raises:
        ValueError: the journal holds no join (for ``concert_id``).
        JournalCompacted, FileNotFoundError, boxoffice.errors.BoxOfficeError: as
        :func:`replay`.
    """
    with _copy(path) as copy:
        arrivals = _arrivals(_whole_journal(path, copy))
        if concert_id is None and len(arrivals):
            concert_id = int(arrivals["concert"].value_counts(sort=True).index[0])
        arrivals = arrivals[arrivals["concert"] == concert_id]
        if concert_id is None or arrivals.empty:
            raise ValueError(f"{os.fspath(path)}: no user joined the queue of {concert_id}")
        recovered = Engine(copy)
        try:
            concert = recovered.concert(concert_id, now=recovered.clock)
        finally:
            recovered.close()
        recorded = concert.sale
        opens_at = recorded.opens_at if recorded.opens_at is not None else concert.created_at
        if sale is None:
            sale = Sale(
                queue_capacity=recorded.queue_capacity,
                admission_per_minute=recorded.admission_per_minute,
                session_ttl_s=recorded.session_ttl_s,
                hold_ttl_s=recorded.hold_ttl_s,
                max_seats_per_reservation=recorded.max_seats_per_reservation,
                release_on_payment_failure=recorded.release_on_payment_failure,
                abandon_timeout_s=recorded.abandon_timeout_s,
                poll_interval_s=min(recorded.poll_interval_s, recorded.abandon_timeout_s),
            )
        if venue is None:
            venue = Venue(seats=sum(s.seats_total for s in concert.schedules))
        csv = copy.with_name("arrivals.csv")
        (arrivals["joined_at"] - opens_at).rename("arrived_s").to_csv(csv, index=False)
        sim_config = SimConfig(
            users=len(arrivals),
            venue=venue,
            sale=sale,
            arrivals=CsvArrivals(csv),
            opens_at=opens_at,
        )
        if config:
            sim_config = replace(sim_config, **config)
        return run(sim_config, progress=progress)
