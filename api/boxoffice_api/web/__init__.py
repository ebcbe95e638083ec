"""The fan's pages and the operator's dashboard, served by the API's own app (docs/web.md).

The pages are server-rendered HTML (Jinja2) with a little plain JavaScript, and every number
on them comes from the public HTTP API, called from the browser with the visitor's own
credentials (kept in ``sessionStorage``): the access JWT, the queue token, the admin key. The
server renders no engine state into a page, so the pages work the same in front of one embedded
server or a cluster's workers.

- ``/``: sign up or log in, search the concerts, join a queue.
- ``/concerts/{id}/wait``: the waiting room (position, people ahead, ETA, a progress bar); it
  polls at the server's ``poll_after_s`` (or ``Retry-After``) and moves on by itself once ACTIVE.
  It is what every fan of a drop loads, so it stays small: one HTML page, one style sheet and
  two small scripts, all cacheable.
- ``/concerts/{id}/seats``: the seat map; a click holds or releases a seat, or the best N
  adjacent seats are held; a countdown to ``expires_at``; charge and pay.
- ``/reservations/{id}/receipt``: the receipt of a payment.
- ``/admin``: every concert's queue, admissions per minute, holds, sales and revenue, polled
  from ``GET /v1/admin/concerts/{id}/stats``, with sparklines; a form that creates a concert.

Assets are files of this package (``static/``), served from ``/web/static/``; no CDN, no build
step. Every page answers with a Content-Security-Policy allowing only this origin, so no
inline script or style runs. None of these routes is in the OpenAPI document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..errors import ApiError

__all__ = ["router"]

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_PATH = "/web/static"
# The files the pages load, by name and media type; anything else is 404.
STATIC_FILES = {
    "web.css": "text/css; charset=utf-8",
    "common.js": "text/javascript; charset=utf-8",
    "fan.js": "text/javascript; charset=utf-8",
    "wait.js": "text/javascript; charset=utf-8",
    "seats.js": "text/javascript; charset=utf-8",
    "receipt.js": "text/javascript; charset=utf-8",
    "admin.js": "text/javascript; charset=utf-8",
}
# Fans reload the waiting page; its assets are asked again only after this, and then answered
# 304 by their ETag when unchanged (they change only with a new server install).
STATIC_CACHE_CONTROL = "public, max-age=300"
# Only this origin's scripts, styles and API: no inline script can run, whatever a concert's
# title holds (the pages also set every text with textContent, never as markup).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
ID_MAX = 2**63 - 1

_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(include_in_schema=False)
PageId = Annotated[int, PathParam(ge=1, le=ID_MAX)]


def _page(request: Request, template: str, **context: object) -> HTMLResponse:
    """``template`` rendered with the app's root path (a reverse proxy's prefix) and
    ``context``."""
    root: str = request.scope.get("root_path", "")
    html = _templates.get_template(template).render(root=root, static=root + STATIC_PATH, **context)
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/")
async def fan_home(request: Request) -> HTMLResponse:
    """Sign up or log in; the concerts, searchable; join a queue."""
    return _page(request, "home.html")


@router.get("/concerts/{concert_id}/wait")
async def waiting_room(request: Request, concert_id: PageId) -> HTMLResponse:
    """The waiting room of one concert's queue."""
    return _page(request, "wait.html", concert_id=concert_id)


@router.get("/concerts/{concert_id}/seats")
async def seat_map(request: Request, concert_id: PageId) -> HTMLResponse:
    """The seat map of a concert's schedules: hold, release, best N seats, charge and pay."""
    return _page(request, "seats.html", concert_id=concert_id)


@router.get("/reservations/{reservation_id}/receipt")
async def receipt(request: Request, reservation_id: PageId) -> HTMLResponse:
    """The receipt of a paid reservation."""
    return _page(request, "receipt.html", reservation_id=reservation_id)


@router.get("/admin")
async def dashboard(request: Request) -> HTMLResponse:
    """The operator's live dashboard and the create-a-concert form."""
    return _page(request, "admin.html")


@router.get(STATIC_PATH + "/{name}")
async def static_file(name: str) -> FileResponse:
    """One of the pages' assets (``STATIC_FILES``); 404 ``NOT_FOUND`` for any other name."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise ApiError(404, "NOT_FOUND", f"no web asset {name!r}")
    return FileResponse(
        STATIC_DIR / name,
        media_type=media_type,
        headers={"Cache-Control": STATIC_CACHE_CONTROL, "X-Content-Type-Options": "nosniff"},
    )
