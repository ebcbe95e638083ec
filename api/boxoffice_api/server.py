"""Running the HTTP service: ``serve(overrides)`` builds the settings, the app and uvicorn.

``boxoffice serve`` (python/boxoffice/cli.py) parses its flags and calls :func:`serve`; the
engine package never imports this one at module level.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from .app import create_app
from .logs import configure
from .settings import Settings


def serve(overrides: dict[str, Any]) -> int:
    """Runs the HTTP service until SIGINT/SIGTERM; returns the exit status (2: bad settings).

    Args:
        overrides: settings given on the command line, over the ``BOXOFFICE_*`` variables.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:  # its text would echo the values, secrets included
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            print(f"boxoffice serve: BOXOFFICE_{name}: {error['msg']}", file=sys.stderr)
        return 2
    configure(settings.log_level, settings.log_json)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,  # the app logs each request itself, as JSON
        lifespan="on",
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        limit_concurrency=settings.max_connections,
    )
    return 0
