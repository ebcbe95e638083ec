"""The test clock (``X-Admin-Key``): read it and move it forward. These routes exist only on a
server started in test mode (``BOXOFFICE_TEST_CLOCK``); elsewhere the path is 404 like any
unknown one, and the OpenAPI document of a production server does not list it.

Moving the clock fires every deadline up to the new time at once (holds expire, sessions end,
waiting users are admitted), as the next request would: the engine fires deadlines at the
``now`` it is given, and this route gives it the new one.
"""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import Admin, ServiceDep
from ..errors import ApiError
from ..schemas import ClockAdvance, ClockOut, utc
from ..service import Service, TestClock
from .responses import problems

router = APIRouter(prefix="/v1/admin/test-clock", tags=["test mode"], dependencies=[Admin])

TEST_CLOCK_END_S = 221_845_392_000.0
"""9000-01-01T00:00:00Z: the clock goes no further (an answer's timestamps are dates, and a
year past 9999 has none), so repeated large steps cannot make every answer fail."""


def _clock(service: Service) -> TestClock:
    # The router is included only in test mode, where the service always has a test clock.
    assert service.test_clock is not None
    return service.test_clock


@router.get(
    "", responses=problems(403), summary="Read the test clock", operation_id="read_test_clock"
)
async def read_test_clock(service: ServiceDep) -> ClockOut:
    """The server's time and how far it is ahead of the wall clock. Errors: 403
    ``ADMIN_KEY_INVALID``."""
    clock = _clock(service)
    return ClockOut(now=utc(clock.now()), offset_s=clock.offset_s)


@router.post(
    "",
    responses=problems(403, 413),
    summary="Move the test clock forward",
    operation_id="advance_test_clock",
)
async def advance_test_clock(body: ClockAdvance, service: ServiceDep) -> ClockOut:
    """Moves the server's clock ``seconds`` forward (never back) and fires every deadline up to
    the new time: a hold whose ``expires_at`` is passed is EXPIRED when this answers. Errors:
    403 ``ADMIN_KEY_INVALID``; 422 ``INVALID_ARGUMENT`` for a negative or too large step, or
    one past 9000-01-01 (where the clock stops)."""
    clock = _clock(service)
    if clock.now() + body.seconds > TEST_CLOCK_END_S:
        raise ApiError(
            422,
            "INVALID_ARGUMENT",
            f"the test clock stops at {utc(TEST_CLOCK_END_S).isoformat()}: "
            "timestamps after it cannot be written",
        )
    now = clock.advance(body.seconds)
    async with service.command():
        service.engine.advance(now=now)
    return ClockOut(now=utc(now), offset_s=clock.offset_s)
