"""The API's documentation pages, served whole by the server itself: ``/docs`` (Swagger UI),
``/redoc`` (ReDoc) and the document they render, ``/openapi.json``.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank without internet
(air-gapped networks, CI, a strict Content-Security-Policy). Here their scripts, style sheet
and icon come from ``/docs/assets/``: the files the ``fastapi-offline`` package ships (Swagger
UI, Apache 2.0; ReDoc, MIT; the package itself, MIT), kept up to date by its releases. ReDoc's
page uses no web fonts (it would fetch them from Google).

Each page is a route of its own, so metrics and access logs count it under its path rather
than as an unmatched request. None is in the OpenAPI document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from ..errors import ApiError

OPENAPI_PATH = "/openapi.json"
ASSETS_PATH = "/docs/assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
# The files the pages load, by the name they are asked for; anything else is 404.
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"})
# The assets change only with the fastapi-offline package, i.e. with a new server install.
ASSETS_CACHE_CONTROL = "public, max-age=86400"

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    """The prefix a reverse proxy serves the app under (ASGI ``root_path``), or ""."""
    root: str = request.scope.get("root_path", "")
    return root


def _title(request: Request) -> str:
    title: str = request.app.title
    return title


@router.get(OPENAPI_PATH)
async def openapi_document(request: Request) -> JSONResponse:
    """The OpenAPI document of the app (as ``api/openapi.json`` has it)."""
    document: dict[str, Any] = request.app.openapi()
    return JSONResponse(document)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI on the OpenAPI document, with its assets from this server."""
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=root + OPENAPI_PATH,
        title=f"{_title(request)} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc on the OpenAPI document, with its script from this server and no web fonts."""
    root = _root(request)
    return get_redoc_html(
        openapi_url=root + OPENAPI_PATH,
        title=f"{_title(request)} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )


@router.get(ASSETS_PATH + "/{name}")
async def docs_asset(name: str) -> FileResponse:
    """One file of the documentation pages. Errors: 404 ``NOT_FOUND`` for any other name."""
    if name not in ASSETS:
        raise ApiError(404, "NOT_FOUND", f"no documentation asset {name!r}")
    return FileResponse(ASSETS_DIR / name, headers={"Cache-Control": ASSETS_CACHE_CONTROL})
