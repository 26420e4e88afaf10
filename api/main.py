"""Entry point: ``notifq-api [serve]`` runs the API with uvicorn; account commands:

- ``notifq-api create-admin --email E [--kube-user U] [--kube-group G ...]`` creates an
  account or updates its password and Kubernetes identity (user default ``notifq:<E>``);
- ``notifq-api set-password --email E`` sets a new password and revokes its tokens;
- ``notifq-api remove-admin --email E`` deletes the account (its tokens stop working).

Passwords come from ``NOTIFQ_ADMIN_PASSWORD`` or, when that is unset, from the first line
of standard input. There is no default.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import uvicorn
from psycopg_pool import AsyncConnectionPool

from notifq.core.settings import CommonSettings, get_api_settings
from notifq.core.startup import freeze_startup_objects

log = logging.getLogger(__name__)


def _password() -> str | None:
    password = os.environ.get("NOTIFQ_ADMIN_PASSWORD")
    if password is None:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        log.error("no password: set NOTIFQ_ADMIN_PASSWORD or pass it on standard input")
        return None
    return password


def _with_pool(work: Callable[[AsyncConnectionPool], Awaitable[object]]) -> int:
    from notifq.core.db import open_pool

    async def run() -> None:
        pool = await open_pool(CommonSettings().database_url, max_size=1)
        try:
            await work(pool)
        finally:
            await pool.close()

    try:
        asyncio.run(run())
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    return 0


def _create_admin(email: str, kube_user: str | None, kube_groups: list[str]) -> int:
    from notifq.api.app import ensure_admin

    password = _password()
    if password is None:
        return 2
    status = _with_pool(lambda pool: ensure_admin(pool, email, password, kube_user, kube_groups))
    if status == 0:
        log.info("admin %s is ready", email)
    return status


def _set_password(email: str) -> int:
    from notifq.api import accounts, security

    password = _password()
    if password is None:
        return 2

    async def work(pool: AsyncConnectionPool) -> None:
        admin = await accounts.by_email(pool, email)
        if admin is None:
            raise ValueError(f"no account {email}")
        await accounts.set_password(pool, admin.id, security.hash_password(password))

    status = _with_pool(work)
    if status == 0:
        log.info("new password for %s; its tokens are revoked", email)
    return status


def _remove_admin(email: str) -> int:
    from notifq.api import accounts

    async def work(pool: AsyncConnectionPool) -> None:
        if not await accounts.remove(pool, email):
            raise ValueError(f"no account {email}")

    status = _with_pool(work)
    if status == 0:
        log.info("account %s removed; its tokens are revoked", email)
    return status


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="notifq-api", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the REST API (default)")
    for p in (parser, serve):
        p.add_argument("--host", default=os.environ.get("NOTIFQ_API_HOST", "0.0.0.0"))
        p.add_argument("--port", type=int, default=int(os.environ.get("NOTIFQ_API_PORT", "8000")))
    admin = sub.add_parser(
        "create-admin", help="create an account, or set its password and Kubernetes identity"
    )
    admin.add_argument("--email", required=True)
    admin.add_argument("--kube-user", help="Kubernetes user (default notifq:<email>)")
    admin.add_argument(
        "--kube-group", action="append", default=[], help="a Kubernetes group (repeatable)"
    )
    for command, text in (
        ("set-password", "set an account's password (revokes its tokens)"),
        ("remove-admin", "remove an account (revokes its tokens)"),
    ):
        sub.add_parser(command, help=text).add_argument("--email", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=CommonSettings().log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "create-admin":
        sys.exit(_create_admin(args.email, args.kube_user, args.kube_group))
    if args.command == "set-password":
        sys.exit(_set_password(args.email))
    if args.command == "remove-admin":
        sys.exit(_remove_admin(args.email))
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve(args.host, args.port))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (uvicorn's choice too), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _serve(host: str, port: int) -> None:
    """The REST API and, when ``reports_port`` is set, the aggregated reports API; either
    stopping stops the other (each passes SIGTERM on to the other as uvicorn restores the
    handler it replaced)."""
    from notifq.api.app import create_app

    settings = get_api_settings()
    app = create_app(settings)
    # full collections had stopped every request for 105-120 ms every 4-7 s under load
    freeze_startup_objects()
    # X-Forwarded-For is believed only from the trusted proxies (login limiter keys, logs).
    config = uvicorn.Config(
        app,
        host,
        port,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
    )
    servers = [uvicorn.Server(config)]
    async with AsyncExitStack() as stack:
        if settings.reports_port:
            from notifq.api.reports_server import build_server

            servers.append(await build_server(settings, stack))
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for s in servers:
            s.should_exit = True
        await asyncio.gather(*tasks)


if __name__ == "__main__":
    main()
