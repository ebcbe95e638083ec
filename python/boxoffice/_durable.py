"""Waiting for the journal from asyncio without a thread.

A server has many requests waiting for their journal groups at once. The journal signals an
eventfd after every group commit (``Journal::AddDurableListener``); each event loop that waits
watches its own eventfd (``loop.add_reader``) and, on a wake-up, settles every future whose
sequence number is durable now. One wake-up per group commit, on the loop's own thread: no
thread per waiter, no waiter thread at all, and no GIL hand-off per request or per group.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from .errors import BoxOfficeError, StoreClosed


@dataclass
class _LoopWaits:
    """One event loop's eventfd and its pending waits, a heap of (seq, order, future)."""

    fd: int
    pending: list[tuple[int, int, asyncio.Future[int]]] = field(default_factory=list)


class DurableWaiter:
    """Resolves asyncio futures when journal sequence numbers become durable.

    Args:
        engine: a durable :class:`boxoffice.Engine` (held weakly: a waiter never keeps its
            store open). Its ``_poll_durable(seq)`` answers True (durable), False (not yet) or
            raises ``boxoffice.errors.StoreError`` subclasses when ``seq`` never will be;
            ``_add_durable_listener()`` gives an eventfd the journal signals.
    """

    def __init__(self, engine: Any) -> None:
        self._engine = weakref.ref(engine)
        self._loops: dict[asyncio.AbstractEventLoop, _LoopWaits] = {}
        self._lock = threading.Lock()  # guards _loops (loops may run in several threads)
        self._order = itertools.count()
        self._stopped = False
        # Before the engine (and with it the journal, which closes the fds) goes away, the
        # loops stop watching the fds.
        weakref.finalize(engine, _unwatch_all, self._loops, self._lock)

    async def wait(self, seq: int) -> int:
        """Waits until journal record ``seq`` is durable; returns ``seq``.

        Raises:
            boxoffice.errors.StoreClosed: the waiter (or the store) was closed first.
            boxoffice.errors.StoreUnavailable: the journal writer failed.
            boxoffice.errors.InvalidArgument: ``seq`` was never appended.
        """
        engine = self._engine()
        if engine is None or self._stopped:
            raise StoreClosed("the store is closed")
        if engine._poll_durable(seq):
            return seq
        loop = asyncio.get_running_loop()
        waits = self._loops.get(loop)
        watched_now = waits is None
        if waits is None:
            waits = self._watch(loop, engine)
        future: asyncio.Future[int] = loop.create_future()
        heapq.heappush(waits.pending, (seq, next(self._order), future))
        del engine
        if watched_now:
            # A commit between the poll above and the listener's creation signalled no fd of
            # this loop: look again now that one is there. (A loop already watching has its fd
            # on the list, and a commit after the poll leaves it readable until read.)
            self._wake(waits)
        return await future

    def _watch(self, loop: asyncio.AbstractEventLoop, engine: Any) -> _LoopWaits:
        with self._lock:
            for old in [other for other in self._loops if other.is_closed()]:
                with contextlib.suppress(BoxOfficeError):  # a closed store closed it already
                    engine._remove_durable_listener(self._loops.pop(old).fd)
            waits = _LoopWaits(engine._add_durable_listener())
            self._loops[loop] = waits
        loop.add_reader(waits.fd, self._wake, waits)
        return waits

    def _wake(self, waits: _LoopWaits) -> None:
        """On the loop's thread, after a group commit: settles what is durable now."""
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(waits.fd)
        engine = self._engine()
        if engine is None:
            return
        while waits.pending:
            seq, _, future = waits.pending[0]
            try:
                durable = engine._poll_durable(seq)
            except StoreClosed:
                return  # the store is closing: Engine.close settles every wait (stop)
            except BoxOfficeError as exc:  # the writer failed: this seq never will be durable
                heapq.heappop(waits.pending)
                if not future.done():
                    future.set_exception(exc)
                continue
            if not durable:
                return  # and neither is any later sequence
            heapq.heappop(waits.pending)
            if not future.done():  # else the waiting request was cancelled
                future.set_result(seq)

    def stop(self, error: BaseException | None) -> None:
        """After the store closed: settles every pending wait (durable when ``error`` is None,
        as closing writes every appended record first; else ``error``); later waits get
        ``StoreClosed``. Thread-safe."""
        self._stopped = True
        with self._lock:
            loops = list(self._loops.items())
        for loop, waits in loops:
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                _settle_all(loop, waits, error)
            else:
                with contextlib.suppress(RuntimeError):  # closed meanwhile: nobody waits
                    loop.call_soon_threadsafe(_settle_all, loop, waits, error)


def _settle_all(
    loop: asyncio.AbstractEventLoop, waits: _LoopWaits, error: BaseException | None
) -> None:
    loop.remove_reader(waits.fd)
    while waits.pending:
        seq, _, future = heapq.heappop(waits.pending)
        if future.done():
            continue
        if error is None:
            future.set_result(seq)
        else:
            future.set_exception(error)


def _unwatch_all(loops: dict[asyncio.AbstractEventLoop, _LoopWaits], lock: threading.Lock) -> None:
    with lock:
        items = list(loops.items())
        loops.clear()
    for loop, waits in items:
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                loop.remove_reader(waits.fd)
