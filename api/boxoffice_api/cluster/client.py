"""A worker's way to change state in a cluster: a command in, its result out.

``await client.apply(command)`` appends the encoded command to the shard's log (batched with
the other commands of this process, :class:`~.log.Batcher`), waits for the quorum's
acknowledgement, then asks the replicas for the results of that message (one request per
message, shared by every command in it) and answers this command's encoded result
(``boxoffice.commands.decode_result`` reads it). A result is known only once a replica has
applied the message, so every answer reflects the replicated state.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import boxoffice.errors as bo_errors

from . import frames
from .replica import ERROR_HEADER, query_subject, results_subject
from .wire import error_from_wire, from_wire

if TYPE_CHECKING:
    from .log import Batcher


class ResultUnavailable(bo_errors.StoreUnavailable):
    """The command was appended (it will be applied) but no replica returned its result in
    time; a retry with the same idempotency key gets the first result. Over HTTP: 503
    ``STORE_UNAVAILABLE`` with ``Retry-After``.

    Attributes:
        seq: the stream sequence of the message holding the command.
    """

    def __init__(self, message: str, seq: int, retry_after_s: float = 1.0) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.seq = seq


class ClusterClient:
    """Appends commands and fetches their results, for one shard.

    Args:
        nc: a connected ``nats.aio.client.Client``.
        batcher: the shard's :class:`~.log.Batcher` (over that connection's JetStream).
        shard: the shard's name (the results subject).
        result_timeout_s: how long to wait for a replica's answer per request.
        result_deadline_s: how long to keep asking before :class:`ResultUnavailable`.
    """

    def __init__(
        self,
        nc: Any,
        batcher: Batcher,
        shard: str,
        *,
        result_timeout_s: float = 2.0,
        result_deadline_s: float = 10.0,
    ) -> None:
        self._nc = nc
        self._batcher = batcher
        self._subject = results_subject(shard)
        self._query_subject = query_subject(shard)
        self._timeout_s = result_timeout_s
        self._deadline_s = result_deadline_s
        self._pending: dict[int, asyncio.Task[list[bytes]]] = {}

    async def apply(self, command: bytes) -> bytes:
        """Appends ``command`` (an encoded command) and answers its encoded result.

        Raises:
            boxoffice_api.cluster.log.LogUnavailable: no quorum acknowledged the append in
                time (the command was not appended, or will be de-duplicated on a retry).
            ResultUnavailable: appended, but no replica answered in time.
        """
        seq, index = await self._batcher.submit(command)
        task = self._pending.get(seq)
        if task is None:
            task = asyncio.create_task(self._results(seq))
            self._pending[seq] = task

            def forget(_: object) -> None:
                self._pending.pop(seq, None)

            task.add_done_callback(forget)
        results: list[bytes] = await asyncio.shield(task)
        return results[index]

    async def read(self, method: str, *args: Any, min_seq: int = 0, **kwargs: Any) -> Any:
        """One engine read (``replica.READS``: ``"reservation"``, ``"balance"``, ...) answered
        by a replica that has applied at least message ``min_seq``; the engine's view types
        come back as :class:`~.wire.View` objects with the same attributes.

        Raises:
            boxoffice.errors.BoxOfficeError: the engine's answer was an error (the same class).
            ResultUnavailable: no replica answered in time.
        """
        import json

        request = json.dumps(
            {"method": method, "args": list(args), "kwargs": kwargs, "min_seq": min_seq}
        ).encode()
        reply = await self._request(self._query_subject, request, min_seq)
        answer = json.loads(reply.data)
        if "error" in answer:
            raise error_from_wire(answer["error"])
        return from_wire(answer["value"])

    async def _request(self, subject: str, payload: bytes, seq: int) -> Any:
        """A request answered by some replica, retried until the deadline."""
        from nats.errors import NoRespondersError
        from nats.errors import TimeoutError as NatsTimeout

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._deadline_s
        while True:
            timeout = min(self._timeout_s, deadline - loop.time())
            if timeout <= 0:
                raise ResultUnavailable(f"no replica answered (message {seq})", seq)
            try:
                return await self._nc.request(subject, payload, timeout=timeout)
            except (NatsTimeout, NoRespondersError, TimeoutError):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))

    async def _results(self, seq: int) -> list[bytes]:
        reply = await self._request(self._subject, str(seq).encode(), seq)
        error = (reply.headers or {}).get(ERROR_HEADER)
        if error is not None:
            raise ResultUnavailable(f"message {seq}: the replica answered {error}", seq)
        return frames.decode_batch(reply.data)
