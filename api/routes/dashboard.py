"""The dashboard: one page of ES modules and CSS, served as static files from the API's
own origin (no build step, no CDN, so it works on air-gapped clusters).

The page talks to the same REST API as any client, with a bearer token it keeps in
``sessionStorage``; it gets no data the API does not already serve.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PREFIX = "/dashboard"

SECURITY_HEADERS = {
    # Only our own scripts, styles and API; nothing inline, nothing from elsewhere.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate (ETag) on every load, so an upgraded pod's files are picked up at once.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    """The dashboard is the API's home page."""
    return RedirectResponse(f"{PREFIX}/")


class DashboardFiles(StaticFiles):
    """Static files with the dashboard's security and cache headers."""

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(SECURITY_HEADERS)
        return response


def mount(app: FastAPI) -> None:
    """Serve the dashboard at ``/dashboard/`` (``/`` redirects there)."""
    if not (STATIC_DIR / "index.html").is_file():
        # A package built without its data files: keep the API up, just without the page.
        log.warning("dashboard files missing from %s; not serving the dashboard", STATIC_DIR)
        return
    app.include_router(router)
    app.mount(PREFIX, DashboardFiles(directory=STATIC_DIR, html=True), name="dashboard")
