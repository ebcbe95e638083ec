"""The hold rate limit: hold attempts per user per concert in any 60 s (a moving window).

A hoarder who may hold only ``max_seats_per_user`` seats can still churn: hold, cancel, hold
again, or probe for seats with hold after hold. Every ``POST /v1/reservations`` whose access
and queue tokens verify counts, successful or not, against the key (user, the queue token's
concert); past ``holds_per_minute`` the answer is 429 ``HOLD_RATE_LIMITED`` with
``Retry-After`` (when the oldest attempt in the window leaves it). A refused attempt is not
counted, so a client that waits ``Retry-After`` gets through.

The algorithm is the ``limits`` library's moving window (``RateLimitItemPerMinute`` and the
``MovingWindowSupport`` storage interface; :meth:`HoldRateLimiter.hit` calls the storage as
limits' ``MovingWindowRateLimiter.hit`` does, with a cheaper key); its storage here is
:class:`WindowStorage`, not limits' ``MemoryStorage``. That one (limits 5.8) keeps a list for
every key it has ever seen and sweeps all of them from a timer thread every 10 ms after each
hit: with 1,000 live keys a sweep took 4.7 ms, with 100,000 keys 0.6 s, and 100,000 keys were
still there after their windows ended — a drop with many fans would pay that on every hold.
``WindowStorage`` has no thread: a key keeps the times inside its window (at most ``limit`` of
them), keys whose window ended are dropped as new keys arrive, and at most ``keys_max`` keys
are kept (the least recently hit is dropped first, which forgets its count: the limit can only
get more lenient, never stricter). The storage is swappable: a shared one (limits' Redis
storage) would make the count cluster-wide; today each server process counts its own attempts.
"""

from __future__ import annotations

import bisect
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable

from limits import RateLimitItemPerMinute
from limits.storage import MovingWindowSupport, Storage

from .errors import ApiError

KEYS_MAX = 50_000
"""Keys (user, concert) the hold limiter tracks at once. A key costs about 360 B with one
attempt in its window and 520 B with 20 (measured with tracemalloc), so at most ~26 MB."""


class _Window:
    """The last ``limit`` acquisition times of one key, oldest first, in seconds."""

    __slots__ = ("expiry_s", "times")

    def __init__(self, expiry_s: float) -> None:
        self.expiry_s = expiry_s
        self.times = array("d")


class WindowStorage(Storage, MovingWindowSupport):
    """An in-process, bounded, thread-free storage for limits' moving-window strategy.

    Not thread-safe: every call comes from the event loop's thread (the routes are async).

    Args:
        keys_max: keys tracked at once (least recently hit dropped first).
        clock: seconds of a monotonic clock (a test can pass its own).
    """

    def __init__(self, keys_max: int = KEYS_MAX, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        if keys_max < 1:
            raise ValueError("keys_max must be at least 1")
        self._keys_max = keys_max
        self._clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def __len__(self) -> int:
        return len(self._windows)

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Records ``amount`` entries at now unless that makes more than ``limit`` within the
        last ``expiry`` seconds; returns whether it did."""
        if amount > limit or amount < 1:
            return False
        now = self._clock()
        window = self._windows.get(key)
        if window is None:
            window = self._new_window(key, float(expiry), now)
        else:
            self._windows.move_to_end(key)
        times = window.times
        start = now - expiry
        if times and times[0] <= start:  # entries that left the window never count again
            del times[: bisect.bisect_right(times, start)]
        # Refused if the (limit - amount + 1)-th newest entry is still inside the window.
        nth = limit - amount + 1
        if len(times) >= nth and times[-nth] > start:
            return False
        times.extend([now] * amount)
        if len(times) > limit:  # nor can entries older than the newest `limit`
            del times[: len(times) - limit]
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest entry inside the window, or now if none; entries inside it)."""
        now = self._clock()
        window = self._windows.get(key)
        live = [t for t in window.times if t > now - expiry] if window is not None else []
        return (live[0] if live else now, len(live))

    def _new_window(self, key: str, expiry_s: float, now: float) -> _Window:
        # Amortized clean-up: each new key drops up to two keys whose window has ended, from
        # the least recently hit end, so the keys kept are about those hit in the last window.
        for _ in range(2):
            oldest = next(iter(self._windows.values()), None)
            if oldest is None or (oldest.times and oldest.times[-1] > now - oldest.expiry_s):
                break
            self._windows.popitem(last=False)
        if len(self._windows) >= self._keys_max:
            self._windows.popitem(last=False)
        window = self._windows[key] = _Window(expiry_s)
        return window

    # The rest of limits' Storage interface: the counter strategies are not supported.

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError("WindowStorage supports the moving window only")

    def get(self, key: str) -> int:
        raise NotImplementedError("WindowStorage supports the moving window only")

    def get_expiry(self, key: str) -> float:
        raise NotImplementedError("WindowStorage supports the moving window only")

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        count = len(self._windows)
        self._windows.clear()
        return count

    def clear(self, key: str) -> None:
        self._windows.pop(key, None)


class HoldRateLimiter:
    """Hold attempts per user per concert per minute (a moving 60 s window).

    Args:
        holds_per_minute: attempts allowed per key in any 60 s; ``None`` or 0 switches the
            limit off.
        keys_max, clock: see :class:`WindowStorage`.
    """

    def __init__(
        self,
        holds_per_minute: int | None,
        keys_max: int = KEYS_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._item = (
            RateLimitItemPerMinute(holds_per_minute, namespace="HOLDS")
            if holds_per_minute
            else None
        )
        self._clock = clock
        self.storage = WindowStorage(keys_max, clock)
        self._expiry_s = self._item.get_expiry() if self._item is not None else 0

    def hit(self, user_id: int, concert_id: int) -> None:
        """Counts one hold attempt of ``user_id`` on ``concert_id``.

        Raises:
            ApiError: 429 ``HOLD_RATE_LIMITED`` with ``retry_after_s`` (seconds until the
                oldest attempt leaves the window) when the limit is reached; not counted.
        """
        item = self._item
        if item is None:
            return
        # What limits' MovingWindowRateLimiter.hit does, with a key that costs one f-string:
        # its key_for builds and escapes a namespaced key, ~10 µs of a 150 µs hold.
        key = f"{user_id}/{concert_id}"
        if self.storage.acquire_entry(key, item.amount, self._expiry_s):
            return
        oldest_s, _ = self.storage.get_moving_window(key, item.amount, self._expiry_s)
        raise ApiError(
            429,
            "HOLD_RATE_LIMITED",
            f"at most {item.amount} hold attempts per minute per user for this concert; "
            "retry later",
            retry_after_s=max(1.0, oldest_s + self._expiry_s - self._clock()),
        )
