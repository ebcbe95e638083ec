"""The engine's API over the cluster: what an HTTP worker calls instead of ``boxoffice.Engine``.

Every method has the name, arguments and answer of the ``boxoffice.Engine`` method it stands
for, as a coroutine. A state change becomes a command appended to the shard's log
(:meth:`ClusterClient.apply`); its answer is the replica's result, so it is replicated when it
is answered. A read is answered by a replica that has applied at least every message
acknowledged before the read began (:class:`LogHead`): a user's read sees their writes, through
any worker. Reads answer :class:`~.wire.View` objects with the engine views' attributes.

``now`` is the worker's clock (seconds); the engine never moves its clock back, so a worker
whose clock is behind only makes its commands run at the engine's time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import boxoffice as bo
from boxoffice.commands import decode_result, encode_command

from .client import ClusterClient


class LogHead:
    """The stream's last sequence, fetched at most once at a time: concurrent callers share
    the next fetch that *starts* after they asked, so each sees every message acknowledged
    before its call (a read after a write, through any worker, sees the write).

    Args:
        js: a ``nats.js.JetStreamContext``.
        stream: the shard's stream.
    """

    def __init__(self, js: Any, stream: str) -> None:
        self._js = js
        self._stream = stream
        self._started = 0  # fetches started
        self._done = 0  # the generation of the last fetch that finished
        self._value = 0
        self._error: BaseException | None = None
        self._running = False
        self._changed = asyncio.Event()

    async def latest(self) -> int:
        """The stream's last sequence as of some moment after this call began.

        Raises:
            nats.errors.TimeoutError and other NATS errors of the fetch.
        """
        needed = self._started + 1
        while self._done < needed:
            if not self._running:
                self._running = True
                asyncio.get_running_loop().create_task(self._fetch())
            self._changed.clear()
            await self._changed.wait()
            if self._error is not None and self._done >= needed:
                raise self._error
        return self._value

    async def _fetch(self) -> None:
        self._started += 1
        generation = self._started
        try:
            info = await self._js.stream_info(self._stream)
            self._value = max(self._value, int(info.state.last_seq))
            self._error = None
        except Exception as exc:
            self._error = exc
        finally:
            self._done = generation
            self._running = False
            self._changed.set()


class RemoteEngine:
    """``boxoffice.Engine``'s calls as coroutines over one shard (see the module's docstring).

    Args:
        client: the worker's :class:`ClusterClient` of the shard.
        head: the shard's :class:`LogHead`.

    Errors are the engine's (``boxoffice.errors``), plus
    ``boxoffice_api.cluster.log.LogUnavailable`` (no quorum: nothing was appended, or a retry
    is de-duplicated) and :class:`~.client.ResultUnavailable` (appended, no replica answered).
    """

    def __init__(self, client: ClusterClient, head: LogHead) -> None:
        self._client = client
        self._head = head

    async def _apply(self, op: str, now: float, **fields: Any) -> Any:
        return decode_result(
            await self._client.apply(encode_command(op, now=now, **fields))
        ).unwrap()

    async def _read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._client.read(method, *args, min_seq=await self._head.latest(), **kwargs)

    # -- commands (through the log)

    async def create_user(self, *, now: float) -> int:
        user: int = await self._apply("CREATE_USER", now)
        return user

    async def create_concert(
        self,
        *,
        title: str,
        artist: str = "",
        venue: str = "",
        schedules: Sequence[bo.ScheduleSpec],
        sale: bo.SaleSettings | None = None,
        now: float,
    ) -> bo.Concert:
        concert: bo.Concert = await self._apply(
            "CREATE_CONCERT", now, concert=(title, artist, venue, list(schedules), sale)
        )
        return concert

    async def join_queue(self, user_id: int, concert_id: int, *, now: float) -> bo.QueueToken:
        token: bo.QueueToken = await self._apply("JOIN", now, user=user_id, target=concert_id)
        return token

    async def queue_status(self, user_id: int, token_id: int, *, now: float) -> bo.QueueToken:
        token: bo.QueueToken = await self._apply("STATUS", now, user=user_id, token=token_id)
        return token

    async def leave_queue(self, user_id: int, token_id: int, *, now: float) -> bo.QueueToken:
        token: bo.QueueToken = await self._apply("LEAVE", now, user=user_id, token=token_id)
        return token

    async def check_gate(
        self, user_id: int, token_id: int, concert_id: int, *, now: float
    ) -> bo.QueueToken:
        token: bo.QueueToken = await self._apply(
            "GATE", now, user=user_id, token=token_id, target=concert_id
        )
        return token

    async def hold(
        self,
        user_id: int,
        token_id: int,
        schedule_id: int,
        seat_ids: Sequence[int] | None = None,
        *,
        quantity: int = 0,
        grade: str = "",
        idempotency_key: str = "",
        now: float,
    ) -> bo.Reservation:
        reservation: bo.Reservation = await self._apply(
            "HOLD",
            now,
            user=user_id,
            token=token_id,
            target=schedule_id,
            seats=list(seat_ids or ()),
            quantity=quantity,
            grade=grade,
            key=idempotency_key,
        )
        return reservation

    async def release_seat(
        self, user_id: int, reservation_id: int, seat_id: int, *, now: float
    ) -> bo.Reservation:
        reservation: bo.Reservation = await self._apply(
            "RELEASE_SEAT", now, user=user_id, target=reservation_id, arg=seat_id
        )
        return reservation

    async def cancel(self, user_id: int, reservation_id: int, *, now: float) -> bo.Reservation:
        reservation: bo.Reservation = await self._apply(
            "CANCEL", now, user=user_id, target=reservation_id
        )
        return reservation

    async def charge(
        self, user_id: int, amount: int, *, idempotency_key: str = "", now: float
    ) -> bo.Charge:
        charge: bo.Charge = await self._apply(
            "CHARGE", now, user=user_id, arg=amount, key=idempotency_key
        )
        return charge

    async def pay(
        self,
        user_id: int,
        token_id: int,
        reservation_id: int,
        *,
        idempotency_key: str = "",
        now: float,
    ) -> bo.Payment:
        payment: bo.Payment = await self._apply(
            "PAY", now, user=user_id, token=token_id, target=reservation_id, key=idempotency_key
        )
        return payment

    async def refund(self, user_id: int, reservation_id: int, *, now: float) -> bo.Reservation:
        reservation: bo.Reservation = await self._apply(
            "REFUND", now, user=user_id, target=reservation_id
        )
        return reservation

    async def gated_seats(
        self,
        user_id: int,
        token_id: int,
        concert_id: int,
        schedule_id: int,
        status: str | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
        now: float,
    ) -> list[Any]:
        """The gate through the log (a poll), then the page from a replica that applied it."""
        await self.check_gate(user_id, token_id, concert_id, now=now)
        page: list[Any] = await self._read(
            "gated_page", token_id, concert_id, schedule_id, status, after=after, limit=limit
        )
        return page

    # -- reads (by a replica; ``now`` is the replica's clock, never ahead of the log)

    async def concert(self, concert_id: int, *, now: float) -> Any:
        return await self._read("concert", concert_id)

    async def concerts(
        self,
        query: str = "",
        *,
        starts_from: float | None = None,
        starts_to: float | None = None,
        now: float,
    ) -> list[Any]:
        found: list[Any] = await self._read(
            "concerts", query, starts_from=starts_from, starts_to=starts_to
        )
        return found

    async def schedules(self, concert_id: int, *, now: float) -> list[Any]:
        found: list[Any] = await self._read("schedules", concert_id)
        return found

    async def reservation(self, user_id: int, reservation_id: int, *, now: float) -> Any:
        return await self._read("reservation", user_id, reservation_id)

    async def reservations(self, user_id: int, *, now: float) -> list[Any]:
        found: list[Any] = await self._read("reservations", user_id)
        return found

    async def balance(self, user_id: int, *, now: float) -> int:
        balance: int = await self._read("balance", user_id)
        return balance

    async def history(self, user_id: int, *, now: float) -> list[Any]:
        found: list[Any] = await self._read("history", user_id)
        return found

    async def stats(self, concert_id: int, *, now: float) -> Any:
        return await self._read("stats", concert_id)

    async def events(self, after: int = 0, limit: int = 1000) -> list[Any]:
        found: list[Any] = await self._read("events", after, limit)
        return found

    async def last_event_seq(self) -> int:
        seq: int = await self._read("last_event_seq")
        return seq

    async def state_hash(self) -> int:
        digest: int = await self._read("state_hash")
        return digest
