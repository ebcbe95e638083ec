"""The edge's coalescing transport (api/boxoffice_api/server.py): the writes of one event-loop
iteration leave in one call, in order, and nothing is lost or reordered by closing."""

from __future__ import annotations

import asyncio
from typing import Any

from boxoffice_api.server import CoalescingTransport


class Recorder(asyncio.Transport):
    """A transport that records what is done to it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Any] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.calls.append(bytes(data))

    def close(self) -> None:
        self.calls.append("close")
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


def test_writes_of_one_iteration_leave_in_one_call_and_close_flushes_first() -> None:
    async def run() -> list[Any]:
        inner = Recorder()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(memoryview(b"body"))
        assert inner.calls == []  # not yet: at the end of this iteration
        assert transport.get_write_buffer_size() == 23
        await asyncio.sleep(0)
        transport.write(b"next")
        transport.close()  # what is pending goes first
        transport.write(b"late")  # after close: dropped, as a closing transport drops it
        await asyncio.sleep(0)
        return inner.calls

    assert asyncio.run(run()) == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next", "close"]
