"""Structured logs (structlog): one JSON object per line on stderr, never a secret.

Request lines carry method, route template, status, duration and client address; bodies,
headers and tokens are never logged.
"""

from __future__ import annotations

import logging
import sys

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure(level: str = "info", json: bool = True) -> None:
    """Configures structlog (and the stdlib root logger, which uvicorn uses) at ``level``."""
    numeric = _LEVELS.get(level, logging.ERROR)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )


def get_logger() -> structlog.stdlib.BoundLogger:
    """The API's structlog logger (``logger.info("event", key=value, ...)``)."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger("boxoffice.api")
    return logger
