"""The operator's liveness/readiness endpoint, served by leader and standby alike.

Kopf's own liveness endpoint exists only while Kopf runs, i.e. on the leader; a
standby must answer too, or Kubernetes would restart it forever and a rolling
update would never see it Ready. This endpoint says whether the process is
healthy: its Lease loop is alive and, on the leader, Kopf is still running.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)

Status = Callable[[], tuple[bool, dict[str, object]]]
"""Returns (healthy, details for the response body)."""


async def serve(endpoint: str, status: Status) -> web.AppRunner:
    """Serve ``status`` at ``endpoint`` (``http://host:port/path``) until cleaned up."""
    parts = urllib.parse.urlsplit(endpoint)

    async def handle(_: web.Request) -> web.Response:
        ok, details = status()
        return web.json_response(details, status=200 if ok else 503)

    app = web.Application()
    app.add_routes([web.get(parts.path or "/healthz", handle)])
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, parts.hostname or "0.0.0.0", parts.port or 8080)
    await site.start()
    log.info("health endpoint at %s", endpoint)
    return runner
