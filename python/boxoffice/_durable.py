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
from collections.abc import Callable


class DurableWaiter:
    """Resolves asyncio futures when journal sequence numbers become durable.

    Args:
        wait_durable: blocks (without the GIL) until a sequence number is durable; raises
            ``boxoffice.errors.StoreError`` subclasses when it never will be.
        durable_seq: a sequence number already known to be durable (the recovered tail).
    """

    def __init__(self, wait_durable: Callable[[int], object], durable_seq: int = 0) -> None:
        self._wait_durable = wait_durable
        self._durable_seq = durable_seq
        self._cond = threading.Condition()
        self._pending: list[tuple[int, int, asyncio.AbstractEventLoop, asyncio.Future[int]]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

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
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if self._stopped and not self._pending:
                    return
                target = max(item[0] for item in self._pending)
            error: BaseException | None = None
            try:
                self._wait_durable(target)
            except BaseException as exc:  # handed to the waiters, who re-raise it
                error = exc
            with self._cond:
                if error is None:
                    self._durable_seq = max(self._durable_seq, target)
                done = []
                while self._pending and self._pending[0][0] <= target:
                    done.append(heapq.heappop(self._pending))
            for seq, _, loop, future in done:
                # A closed loop raises RuntimeError: nobody is waiting there any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, future, seq, error)


def _settle(future: asyncio.Future[int], seq: int, error: BaseException | None) -> None:
    if future.done():  # the waiting request was cancelled
        return
    if error is None:
        future.set_result(seq)
    else:
        future.set_exception(error)
