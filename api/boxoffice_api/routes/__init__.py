"""One router per resource (``APIRouter(prefix, tags)``), each a thin layer over the engine."""
