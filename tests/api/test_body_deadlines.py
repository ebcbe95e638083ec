"""The body deadlines of BodyLimitMiddleware (api/boxoffice_api/app.py): one timer for all the
bodies being read, each cancelled at its own deadline, in any event loop the app runs in."""

from __future__ import annotations

import asyncio

from boxoffice_api.app import BodyDeadlines


async def _read(deadlines: BodyDeadlines, arrives: asyncio.Event) -> str:
    """A body read as the middleware reads it: "read", or "timed out" at the deadline."""
    task = asyncio.current_task()
    assert task is not None
    deadlines.start(task)
    try:
        await arrives.wait()
    except asyncio.CancelledError:
        if not deadlines.stop(task) or task.uncancel() > 0:
            raise
        return "timed out"
    finally:
        deadlines.stop(task)
    return "read"


async def _reads(deadlines: BodyDeadlines) -> list[str]:
    never, soon = asyncio.Event(), asyncio.Event()
    slow = [asyncio.create_task(_read(deadlines, never)) for _ in range(3)]
    fast = asyncio.create_task(_read(deadlines, soon))
    await asyncio.sleep(0)
    soon.set()  # this body arrives before its deadline
    # (A bound for a broken timer, far beyond the deadlines.)
    outcomes = await asyncio.wait_for(asyncio.gather(fast, *slow), 30)
    # Read after the others timed out; it leaves the timer armed when the loop ends.
    outcomes.append(await _read(deadlines, soon))
    return outcomes


def test_each_body_times_out_at_its_own_deadline_with_one_timer_for_all() -> None:
    deadlines = BodyDeadlines(timeout_s=0.05)
    assert asyncio.run(_reads(deadlines)) == ["read", "timed out", "timed out", "timed out", "read"]
    # Served again in another event loop (a timer of the first may still be pending there).
    assert asyncio.run(_reads(deadlines)) == ["read", "timed out", "timed out", "timed out", "read"]


def test_a_cancellation_of_its_own_is_not_taken_for_a_deadline() -> None:
    async def run() -> None:
        deadlines = BodyDeadlines(timeout_s=60)
        task = asyncio.create_task(_read(deadlines, asyncio.Event()))
        await asyncio.sleep(0)
        task.cancel()  # a server shutting down, say
        try:
            await task
        except asyncio.CancelledError:
            return
        raise AssertionError("the cancellation was swallowed")

    asyncio.run(run())
