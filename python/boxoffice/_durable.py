"""Waiting for the journal from asyncio without a thread per waiter.

A server has many requests waiting for their journal groups at once. ``asyncio.to_thread``
per request would park each in the default executor (a handful of threads), so at most a
handful of waits could share one group commit. Instead one thread per engine waits for the
highest sequence anyone asked for and wakes every asyncio future at or below it: many
requests, one ``wait_durable`` call, one group.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
import weakref
from collections.abc import Callable


class DurableWaiter:
    """Resolves asyncio futures when journal sequence numbers become durable.

    Args:
        wait_durable: blocks (without the GIL) until a sequence number is durable; raises
            ``boxoffice.errors.StoreError`` subclasses when it never will be. A bound method is
            held weakly, so the waiter thread never keeps its engine alive.
        durable_seq: a sequence number already known to be durable (the recovered tail).
    """

    IDLE_CHECK_S = 5.0  # an idle thread looks this often whether its engine still exists

    def __init__(self, wait_durable: Callable[[int], object], durable_seq: int = 0) -> None:
        self._wait_ref: Callable[[], Callable[[int], object] | None]
        if hasattr(wait_durable, "__self__"):
            self._wait_ref = weakref.WeakMethod(wait_durable)
        else:
            self._wait_ref = lambda: wait_durable
        self._durable_seq = durable_seq
        self._cond = threading.Condition()
        self._pending: list[tuple[int, int, asyncio.AbstractEventLoop, asyncio.Future[int]]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False
        # The thread waits on the condition (nothing pending); else it is inside a
        # wait_durable call and takes the new waiters when that returns: no notify needed,
        # which spares the event loop a lock hand-off to that thread per request.
        self._idle = False

    async def wait(self, seq: int) -> int:
        """Waits until journal record ``seq`` is durable; returns ``seq``.

        Raises:
            boxoffice.errors.StoreClosed: the waiter (or the store) was closed first.
            boxoffice.errors.StoreUnavailable: the journal writer failed.
        """
        if seq <= self._durable_seq:
            return seq
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        with self._cond:
            if self._stopped:
                from .errors import StoreClosed

                raise StoreClosed("the store is closed")
            heapq.heappush(self._pending, (seq, next(self._order), loop, future))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="boxoffice-durable-waiter", daemon=True
                )
                self._thread.start()
            elif self._idle:
                self._cond.notify()
        return await future

    def stop(self) -> None:
        """Stops the thread; waits still pending get ``StoreClosed``."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._idle = True
                while not self._pending and not self._stopped:
                    self._cond.wait(self.IDLE_CHECK_S)
                    if not self._pending and self._wait_ref() is None:
                        self._stopped = True  # the engine is gone: nothing left to wait for
                self._idle = False
                if self._stopped and not self._pending:
                    return
                batch = list(self._pending)
            target = max(item[0] for item in batch)
            error = self._wait(target)
            if error is None:
                self._finish(target, None)
                continue
            # The batch failed as a whole: one waiter may have asked for a sequence that was
            # never appended. Wait for each on its own so that one error stays its own.
            for seq in sorted({item[0] for item in batch}):
                self._finish(seq, self._wait(seq))

    def _wait(self, seq: int) -> BaseException | None:
        wait_durable = self._wait_ref()
        if wait_durable is None:
            from .errors import StoreClosed

            return StoreClosed("the engine was garbage-collected")
        try:
            wait_durable(seq)
        except BaseException as exc:  # handed to the waiters, who re-raise it
            return exc
        finally:
            del wait_durable
        return None

    def _finish(self, target: int, error: BaseException | None) -> None:
        """Settles every pending waiter at or below ``target`` with ``error`` (None: durable)."""
        with self._cond:
            if error is None:
                self._durable_seq = max(self._durable_seq, target)
            done = []
            while self._pending and self._pending[0][0] <= target:
                done.append(heapq.heappop(self._pending))
        # One wake-up per event loop for the whole group (each call_soon_threadsafe writes to
        # the loop's self-pipe and makes this thread and the loop trade the GIL once more).
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}
        for seq, _, loop, future in done:
            by_loop.setdefault(loop, []).append((future, seq))
        for loop, settled in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, settled, error)


def _settle(settled: list[tuple[asyncio.Future[int], int]], error: BaseException | None) -> None:
    for future, seq in settled:
        if future.done():  # the waiting request was cancelled
            continue
        if error is None:
            future.set_result(seq)
        else:
            future.set_exception(error)
