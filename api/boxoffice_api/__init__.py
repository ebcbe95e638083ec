"""boxoffice_api: the HTTP service of boxoffice (FastAPI), a thin layer over the engine.

``create_app(settings)`` builds the app; ``boxoffice serve`` runs it with uvicorn. The
contract is ``docs/http-api.md`` and the checked-in OpenAPI document ``api/openapi.json``.
"""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
