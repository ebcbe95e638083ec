"""A typed Python client of the boxoffice HTTP API (``pip install 'boxoffice[client]'``).

:class:`Client` (blocking) and :class:`AsyncClient` (asyncio) have the same methods, one per
API operation, named as its OpenAPI operation id (``sign_up``, ``log_in``, ``join_queue``,
``wait_until_active``, ``hold_seats``, ``pay``, ``charge_balance``, ...). They keep the access
token and the queue tokens, generate idempotency keys, honour ``poll_after_s`` and
``Retry-After``, answer the dataclasses of :mod:`boxoffice.client.models` and raise the
:mod:`boxoffice.errors` class of each problem's ``code``::

    from boxoffice.client import Client

    with Client("http://127.0.0.1:8000") as fan:
        fan.sign_up("fan@example.com", "lantern-velvet-4817")
        fan.log_in("fan@example.com", "lantern-velvet-4817")
        fan.charge_balance(200_000)
        fan.wait_until_active(concert_id=1)
        schedule = fan.list_schedules(1)[0]
        reservation = fan.hold_seats(schedule.id, quantity=2)
        payment = fan.pay(reservation.id)

The client speaks only HTTP: it imports nothing of the server (``boxoffice_api``), and works
against one server or a cluster's load balancer alike.
"""

from __future__ import annotations

from ._clients import DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT_S, AsyncClient, Client, Observer
from .errors import (
    AdminKeyInvalid,
    EmailTaken,
    HoldRateLimited,
    HttpError,
    InvalidCredentials,
    LoginThrottled,
    Overloaded,
    RateLimited,
    RequestTooLarge,
    TokenExpired,
    TooManyPasswordChecks,
    Unauthenticated,
    WeakPassword,
)
from .models import (
    AccessToken,
    Balance,
    Charge,
    Concert,
    Event,
    HistoryEntry,
    Page,
    Payment,
    QueueStatus,
    Reservation,
    Sale,
    Schedule,
    Seat,
    ServerHealth,
    Stats,
    TestClock,
    User,
)

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_TIMEOUT_S",
    "AccessToken",
    "AdminKeyInvalid",
    "AsyncClient",
    "Balance",
    "Charge",
    "Client",
    "Concert",
    "EmailTaken",
    "Event",
    "HistoryEntry",
    "HoldRateLimited",
    "HttpError",
    "InvalidCredentials",
    "LoginThrottled",
    "Observer",
    "Overloaded",
    "Page",
    "Payment",
    "QueueStatus",
    "RateLimited",
    "RequestTooLarge",
    "Reservation",
    "Sale",
    "Schedule",
    "Seat",
    "ServerHealth",
    "Stats",
    "TestClock",
    "TokenExpired",
    "TooManyPasswordChecks",
    "Unauthenticated",
    "User",
    "WeakPassword",
]
