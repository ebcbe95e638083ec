"""Structured logs (structlog): one JSON object per line on stderr, never a secret.

Request lines carry method, route template, status, duration and client address; bodies,
headers and tokens are never logged. Lines of the standard library's loggers (uvicorn's own,
asyncio's, the edge's) are rendered the same way, with their ``logger`` name: a log shipper
reads one format.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure(level: str = "info", json: bool = True) -> None:
    """Configures structlog (and the stdlib root logger, which uvicorn uses) at ``level``."""
    numeric = _LEVELS.get(level, logging.ERROR)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    add_level_and_time: list[structlog.types.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *add_level_and_time,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # The standard library's records (uvicorn runs with log_config=None, so its loggers
    # propagate here) through the same processors and renderer, named by their logger.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *add_level_and_time],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)


def get_logger() -> structlog.stdlib.BoundLogger:
    """The API's structlog logger (``logger.info("event", key=value, ...)``)."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger("boxoffice.api")
    return logger


class RepeatFilter(logging.Filter):
    """Lets one message through at most ``burst`` times per ``interval_s`` seconds.

    A message is its logger, level and first line (the template, before ``%`` arguments), so
    a line repeated in a loop, such as asyncio's "socket.accept() out of system resource"
    with its traceback once per failed accept, cannot fill the disk. The first record passed
    after a suppression says how many were suppressed. At most ``keys_max`` messages are
    tracked (the oldest windows are forgotten beyond), so the filter's memory is bounded.
    """

    def __init__(
        self,
        burst: int = 5,
        interval_s: float = 60.0,
        keys_max: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.interval_s = interval_s
        self.keys_max = keys_max
        self.clock = clock
        # message -> [window start, records passed in it, records suppressed since last pass]
        self._windows: dict[tuple[str, int, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        key = (record.name, record.levelno, template.split("\n", 1)[0][:200])
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.interval_s:
            suppressed = int(window[2]) if window is not None else 0
            if window is None and len(self._windows) >= self.keys_max:
                del self._windows[next(iter(self._windows))]
            window = self._windows[key] = [now, 0, float(suppressed)]
        if window[1] >= self.burst:
            window[2] += 1
            return False
        window[1] += 1
        if window[2]:
            record.msg = f"{record.msg} ({int(window[2])} like it suppressed)"
            window[2] = 0
        return True
