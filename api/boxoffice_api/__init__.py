"""boxoffice_api: the HTTP service of boxoffice (FastAPI), a thin layer over the engine.

``create_app(settings)`` builds the app; ``boxoffice serve`` runs it with uvicorn. The
contract is ``docs/http-api.md`` and the checked-in OpenAPI document ``api/openapi.json``.

``create_app`` and ``Settings`` are imported on first use: the ``boxoffice`` command line loads
this package's subcommands (:mod:`.cli`) on every start, and the server's dependencies (an
optional extra, seconds to import) are needed only when a server runs.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .settings import Settings

__all__ = ["Settings", "__version__", "create_app"]

try:  # the installed distribution's version (this package ships in the boxoffice wheel)
    __version__ = version("boxoffice")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = {"create_app": ".app", "Settings": ".settings"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
