"""The engine's calls as coroutines: one API over the embedded engine and over a cluster.

HTTP handlers call ``await service.engine_api.hold(...)``; whether the engine lives in this
process (:class:`EmbeddedEngineApi`: the call applies at once, then waits until its journal
group is durable) or in the replicas of a cluster (``cluster.remote_engine.RemoteEngine``: the
command is appended to the replicated log and answered by a replica) is decided once, when the
service starts. Every method has the name, arguments and answer of the ``boxoffice.Engine``
method it stands for. A state change is always a command in its wire form
(``boxoffice.commands.encode_command``) and its answer the decoded result, so both ways
apply exactly the same thing (``tests/cluster/test_remote_engine.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import boxoffice as bo
from boxoffice.commands import decode_result, encode_command

if TYPE_CHECKING:
    from .security import QueueClaims
    from .service import Service

SeatStatus = Literal["AVAILABLE", "HELD", "SOLD"]

READS: dict[str, bool] = {
    # engine reads -> whether they take ``now``
    "concert": True,
    "concerts": True,
    "live_token": True,
    "schedules": True,
    "seats": True,
    "reservation": True,
    "reservations": True,
    "balance": True,
    "history": True,
    "stats": True,
    "events": False,
    "state_hash": False,
    # properties
    "user_count": False,
    "concert_count": False,
    "last_event_seq": False,
    "clock": False,
}
"""The reads :meth:`EngineApi._read` may name (the engine's read methods and properties);
a replica answers these and its own ``gated_page`` (``cluster/replica.py``)."""


class EngineApi:
    """``boxoffice.Engine``'s calls as coroutines. Subclasses say how a command is applied
    (:meth:`_apply_encoded`; ``EmbeddedEngineApi`` overrides the commands instead, to call the
    engine's typed methods) and how a read is answered (:meth:`_read`).

    Errors are the engine's (``boxoffice.errors``), plus what the subclass documents.
    """

    async def _apply_encoded(self, command: bytes) -> bytes:
        """Applies one encoded command; answers its encoded result."""
        raise NotImplementedError

    async def _read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Answers the engine read ``method(*args, **kwargs)`` (without ``now``)."""
        raise NotImplementedError

    async def _apply(self, op: str, now: float, **fields: Any) -> Any:
        result = await self._apply_encoded(encode_command(op, now=now, **fields))
        return decode_result(result).unwrap()

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

    async def queue_status(
        self,
        user_id: int,
        token_id: int,
        *,
        now: float,
        concert_id: int | None = None,
        claims: QueueClaims | None = None,
    ) -> bo.QueueToken:
        """A poll. The token's concert and its verified claims (:class:`QueueClaims`: user,
        join sequence and join time) let a cluster worker answer it from a queue digest
        without a log write (``RemoteEngine.queue_status``); the embedded engine needs
        neither."""
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
        status: SeatStatus | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
        now: float,
    ) -> list[Any]:
        """The gate (a command: it counts as a poll), then one page of the seats
        (``boxoffice.Engine.gated_seats``)."""
        raise NotImplementedError

    # -- reads

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
        """The sequence number of the last domain event."""
        seq: int = await self._read("last_event_seq")
        return seq

    async def concert_count(self) -> int:
        """Concerts are numbered 1..concert_count."""
        count: int = await self._read("concert_count")
        return count

    async def user_count(self) -> int:
        """Users are numbered 1..user_count."""
        count: int = await self._read("user_count")
        return count

    async def state_hash(self) -> int:
        """The engine's ``state_hash`` (equal on every replica at the same log position)."""
        digest: int = await self._read("state_hash")
        return digest


class EmbeddedEngineApi(EngineApi):
    """:class:`EngineApi` over the engine of this process's ``Service`` (a durable store).

    A command applies at once on the event loop's thread and is answered once its journal
    group is durable (``Service.command``); a read waits until every command applied before
    it is durable (``Service.read``), so no answer shows a change a crash could take back.
    """

    def __init__(self, service: Service) -> None:
        self._service = service

    # Commands call the engine's typed methods, not the encoded path: the same Engine::Apply
    # underneath, without encoding and decoding each command (about 6 us per call).

    async def create_user(self, *, now: float) -> int:
        async with self._service.command():
            return self._service.engine.create_user(now=now)

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
        async with self._service.command():
            return self._service.engine.create_concert(
                title=title, artist=artist, venue=venue, schedules=schedules, sale=sale, now=now
            )

    async def join_queue(self, user_id: int, concert_id: int, *, now: float) -> bo.QueueToken:
        async with self._service.command():
            return self._service.engine.join_queue(user_id, concert_id, now=now)

    async def queue_status(
        self,
        user_id: int,
        token_id: int,
        *,
        now: float,
        concert_id: int | None = None,
        claims: QueueClaims | None = None,
    ) -> bo.QueueToken:
        async with self._service.command():
            return self._service.engine.queue_status(user_id, token_id, now=now)

    async def leave_queue(self, user_id: int, token_id: int, *, now: float) -> bo.QueueToken:
        async with self._service.command():
            return self._service.engine.leave_queue(user_id, token_id, now=now)

    async def check_gate(
        self, user_id: int, token_id: int, concert_id: int, *, now: float
    ) -> bo.QueueToken:
        async with self._service.command():
            return self._service.engine.check_gate(user_id, token_id, concert_id, now=now)

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
        async with self._service.command():
            return self._service.engine.hold(
                user_id, token_id, schedule_id, seat_ids, quantity=quantity, grade=grade,
                idempotency_key=idempotency_key, now=now,
            )  # fmt: skip

    async def release_seat(
        self, user_id: int, reservation_id: int, seat_id: int, *, now: float
    ) -> bo.Reservation:
        async with self._service.command():
            return self._service.engine.release_seat(user_id, reservation_id, seat_id, now=now)

    async def cancel(self, user_id: int, reservation_id: int, *, now: float) -> bo.Reservation:
        async with self._service.command():
            return self._service.engine.cancel(user_id, reservation_id, now=now)

    async def charge(
        self, user_id: int, amount: int, *, idempotency_key: str = "", now: float
    ) -> bo.Charge:
        async with self._service.command():
            return self._service.engine.charge(
                user_id, amount, idempotency_key=idempotency_key, now=now
            )

    async def pay(
        self,
        user_id: int,
        token_id: int,
        reservation_id: int,
        *,
        idempotency_key: str = "",
        now: float,
    ) -> bo.Payment:
        async with self._service.command():
            return self._service.engine.pay(
                user_id, token_id, reservation_id, idempotency_key=idempotency_key, now=now
            )

    async def refund(self, user_id: int, reservation_id: int, *, now: float) -> bo.Reservation:
        async with self._service.command():
            return self._service.engine.refund(user_id, reservation_id, now=now)

    async def _read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        service = self._service
        async with service.read():
            member = getattr(service.engine, method)
            if not callable(member):
                return member
            if READS[method]:
                kwargs["now"] = service.now()
            return member(*args, **kwargs)

    async def gated_seats(
        self,
        user_id: int,
        token_id: int,
        concert_id: int,
        schedule_id: int,
        status: SeatStatus | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
        now: float,
    ) -> list[Any]:
        """The gate and the page under the engine's one lock (nothing changes in between)."""
        service = self._service
        async with service.command():
            page: list[Any] = service.engine.gated_seats(
                user_id, token_id, concert_id, schedule_id, status, after=after, limit=limit,
                now=now,
            )  # fmt: skip
        return page
