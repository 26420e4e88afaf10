"""Entry point: ``notifq-operator`` runs the Kopf operator (one active replica)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import kopf
from prometheus_client import start_http_server

from notifq.core.settings import get_operator_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="notifq-operator", description=__doc__)
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=None,
        help="watch only these namespaces (default: all)",
    )
    parser.add_argument(
        "--liveness",
        default=os.environ.get("NOTIFQ_LIVENESS_ENDPOINT", "http://0.0.0.0:8080/healthz"),
        help="liveness endpoint URL ('' to disable)",
    )
    args = parser.parse_args(argv)
    settings = get_operator_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # one "Timer succeeded" line per campaign per second is noise; keep warnings
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    from notifq.operator import handlers  # noqa: F401 - registers the handlers

    # Standalone: one active replica (the chart uses strategy Recreate); Kopf's
    # peering is not leader election, so replicas would all pause each other.
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=args.namespace is None,
            namespaces=args.namespace or [],
            liveness_endpoint=args.liveness or None,
        )
    )


if __name__ == "__main__":
    main()
