"""boxoffice: the engine behind a ticket drop.

An admission queue (waiting room), a seat inventory with expiring holds and a
double-entry payment ledger, as one deterministic state machine written in C++
(``boxoffice._core``). Every command takes ``now`` (float seconds since the Unix
epoch); the engine never reads a clock, so simulations pass virtual time and
servers pass ``time.time()``. Errors are :mod:`boxoffice.errors` exceptions with a
stable ``code``. The exact rules are in ``docs/engine-rules.md``.

Example::

    import boxoffice as bo
    eng = bo.Engine()
    user = eng.create_user(now=0)
    hall = [bo.SectionSpec("A", 10, 20, "VIP", 165000)]
    concert = eng.create_concert(
        title="IU 2027", schedules=[bo.ScheduleSpec(1.8e9, hall)], now=0)
    token = eng.join_queue(user, concert.id, now=1)           # ACTIVE: the queue is empty
    seat = eng.seats(concert.schedules[0].id, now=2)[0]
    res = eng.hold(user, token.id, concert.schedules[0].id, [seat.id], now=3)
    eng.charge(user, 165000, now=4)
    eng.pay(user, token.id, res.id, now=5)                     # seats SOLD, token EXPIRED
"""

from __future__ import annotations

import contextlib
import os
import threading
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import numpy.typing as npt

from . import errors
from ._core import (
    Charge,
    Concert,
    ConcertStats,
    Event,
    HistoryEntry,
    Limits,
    Payment,
    QueueDigest,
    QueueToken,
    Reservation,
    SaleSettings,
    Schedule,
    ScheduleSpec,
    Seat,
    SectionSpec,
)
from ._core import Engine as _CoreEngine
from ._durable import DurableWaiter
from .batch import COMMAND_DTYPE, RESULT_DTYPE, Op
from .errors import BoxOfficeError

__all__ = [
    "COMMAND_DTYPE",
    "RESULT_DTYPE",
    "BoxOfficeError",
    "Charge",
    "Concert",
    "ConcertStats",
    "Engine",
    "Event",
    "HistoryEntry",
    "Limits",
    "Op",
    "Payment",
    "QueueDigest",
    "QueueToken",
    "Reservation",
    "SaleSettings",
    "Schedule",
    "ScheduleSpec",
    "Seat",
    "SectionSpec",
    "__version__",
    "errors",
]

try:  # the installed distribution's version, the one `boxoffice --version` prints
    __version__ = version("boxoffice")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"


class Engine(_CoreEngine):
    """The boxoffice engine: in memory, or durable in one SQLite file; safe to share
    between threads.

    ``Engine()`` keeps everything in memory. ``Engine(path)`` opens or creates a durable
    store (and its missing parent directories): the state is recovered from the latest
    snapshot plus a replay of the journal, every command is journaled before it applies, and
    :meth:`wait_durable` blocks until it is committed (group commit). Reopening the same
    file gives back the same state, equal in :meth:`state_hash`.

    Args:
        path: the SQLite file of a durable store, or None for in memory.
        durability: ``"full"`` (fsync every group: nothing acknowledged is ever lost),
            ``"normal"`` (survives a process crash; an OS crash or power loss may roll back
            the last groups) or ``"off"`` (survives a process crash only; an OS crash may
            corrupt the file). See ``cpp/include/boxoffice/journal.h``.
        group_commit_interval_s: the shortest time, in seconds (0 ..= 1), from the start of
            one group commit to the next. Commands that arrive sooner wait, up to this long,
            and share the next group's fsync: under many concurrent writers it trades up to
            one interval of latency for far fewer fsyncs; a command after a quiet interval is
            written at once. 0 (the default): a group is written as soon as the writer is
            free. The HTTP server uses 0.001 (``docs/operations.md``).
        snapshot_every_records: journal records between automatic snapshots (0: only on
            :meth:`close`).
        seed: draws the pre-queue shuffles (same seed and commands, same state); a reopened
            store keeps the seed and limits it was created with.
        limits: the named limits (:class:`Limits`).
        snapshot: the bytes of :meth:`snapshot_bytes`: an in-memory engine with exactly
            that state (its own seed and limits; ``path`` must be None). Replicas of the
            scale-out deployment start from one.

    Raises:
        boxoffice.errors.StoreUnavailable: the directory cannot be created or is not writable.
        boxoffice.errors.StoreLocked: another writer has the store open.
        boxoffice.errors.StoreVersionUnsupported: written by a newer boxoffice.
        boxoffice.errors.DataLoss: damage beyond a torn tail (which is ignored and logged),
            or ``snapshot`` bytes that are not a whole, valid snapshot (whose state
            passes every invariant).
        boxoffice.errors.InvalidArgument: both ``path`` and ``snapshot``, or a
            ``group_commit_interval_s`` outside 0 ..= 1.

    Every other method is the C++ core's (see ``_core.pyi`` and ``docs/engine-rules.md``):
    each takes ``now`` in float seconds and raises :class:`boxoffice.errors.BoxOfficeError`
    subclasses.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        durability: str = "full",
        group_commit_interval_s: float = 0.0,
        snapshot_every_records: int = 1_000_000,
        seed: int = 0,
        limits: Limits | None = None,
        snapshot: bytes | None = None,
    ) -> None:
        if path is not None:
            # "opens or creates": the store's directory too (`Engine("var/drop.db")` on a fresh
            # checkout). When it cannot be made, opening the store says why (StoreUnavailable).
            with contextlib.suppress(OSError):
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        super().__init__(
            None if path is None else os.fspath(path),
            durability=durability,
            group_commit_interval_s=group_commit_interval_s,
            snapshot_every_records=snapshot_every_records,
            seed=seed,
            limits=limits,
            snapshot=snapshot,
        )
        self.path = None if path is None else os.fspath(path)
        self.durability = durability if path is not None else None
        self._close_lock = threading.Lock()
        self._waiter: DurableWaiter | None = None

    def wait_durable(self, seq: int | None = None) -> int:
        """Blocks (GIL released) until journal record ``seq`` is durable.

        Args:
            seq: a journal sequence number; by default :attr:`last_seq`, the last command
                this thread applied on this engine.

        Returns:
            The sequence number waited for (0 for an in-memory engine, which returns at once).

        Raises:
            boxoffice.errors.StoreClosed: the store was closed before ``seq`` was written.
            boxoffice.errors.StoreUnavailable: the journal writer failed (disk full, I/O error).
        """
        if self.path is None:
            return 0
        seq = self.last_seq if seq is None else seq
        self._wait_durable(seq)
        return seq

    async def wait_durable_async(self, seq: int | None = None) -> int:
        """:meth:`wait_durable` for asyncio: never blocks the event loop.

        The journal signals an eventfd after each group commit and the running loop watches
        it, so any number of concurrent requests share one group commit and one wake-up,
        without a thread. Pass ``seq`` (read :attr:`last_seq` right after the command) when
        the command ran in another thread.

        Raises:
            boxoffice.errors.StoreClosed, boxoffice.errors.StoreUnavailable: as
            :meth:`wait_durable`.
        """
        seq = self.last_seq if seq is None else seq
        if self.path is None:
            return 0
        if self._closed:  # a command after close() was applied in memory only
            raise errors.StoreClosed("the store was closed; nothing more is journaled")
        with self._close_lock:
            if self._waiter is None:
                self._waiter = DurableWaiter(self)
            waiter = self._waiter
        return await waiter.wait(seq)

    def snapshot(self) -> None:
        """Saves a snapshot of the whole state now and compacts the journal behind it.

        Raises:
            boxoffice.errors.StoreClosed: an in-memory engine, or a closed store.
        """
        self._snapshot()

    def close(self) -> None:
        """Takes a last snapshot and closes the store (idempotent; no-op in memory).

        The engine keeps working in memory afterwards, but nothing more is journaled.
        """
        with self._close_lock:
            if self.path is not None and not self._closed:
                self._closed = True
                try:
                    self._close()
                except BaseException as exc:
                    if self._waiter is not None:
                        self._waiter.stop(exc)
                    raise
                if self._waiter is not None:
                    self._waiter.stop(None)

    def check_store(self) -> None:
        """Returns while the store accepts commands (always, in memory).

        Raises:
            boxoffice.errors.StoreUnavailable: the journal writer failed (disk full, I/O
                error); every command is refused until the process restarts on a fixed store.
            boxoffice.errors.StoreClosed: the store was closed.
        """
        if self.path is not None:
            self._store_status()

    @property
    def recovery(self) -> dict[str, int | bool]:
        """What opening the store did: ``created``, ``snapshot_seq``, ``replayed`` records,
        ``torn_groups_skipped`` and ``last_seq``. Raises StoreClosed in memory."""
        return self._recovery()

    _closed = False

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def apply_batch(self, commands: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
        """Applies many commands in one call, in order, with the GIL released.

        Args:
            commands: 1-D array of :data:`boxoffice.COMMAND_DTYPE` records
                (see :mod:`boxoffice.batch` for the fields of each op).

        Returns:
            A new array of :data:`boxoffice.RESULT_DTYPE` records, one per command.
            Failures do not raise: each result carries its error ``code``.

        Raises:
            TypeError: ``commands`` is not a 1-D array of ``COMMAND_DTYPE``.
        """
        if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE:
            raise TypeError("commands must be a numpy array of boxoffice.COMMAND_DTYPE")
        if commands.ndim != 1:
            raise TypeError("commands must be one-dimensional")
        commands = np.ascontiguousarray(commands)
        results = np.zeros(commands.shape[0], dtype=RESULT_DTYPE)
        self._apply_batch(commands.view(np.uint8).data, results.view(np.uint8).data)
        return results
