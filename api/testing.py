"""Serve an app on a free loopback port from a background thread (tests, benchmarks).

The app's own event loop runs in that thread, so its async clients live there,
and callers use plain HTTP: the same path as production.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(
    app: FastAPI, timeout: float = 60, trusted_proxies: list[str] | None = None
) -> Iterator[str]:
    """Run ``app`` with uvicorn until the block ends; yields its base URL.
    ``trusted_proxies``: as the setting (default: loopback, i.e. the caller)."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
        forwarded_allow_ips=trusted_proxies if trusted_proxies is not None else ["127.0.0.1"],
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start (see its log)")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
