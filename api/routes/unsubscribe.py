"""One-click unsubscribe (RFC 8058): the links in bulk email's ``List-Unsubscribe``.

No login: the signed token names the recipient and the namespace. ``POST`` (what mailbox
providers send, body ``List-Unsubscribe=One-Click``, and the page's button) suppresses
the recipient at once, whatever the body; ``GET`` only shows a page with that button,
because link scanners and previews follow every link in a message.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from notifq.api.deps import CtxDep
from notifq.core import suppression
from notifq.core.unsubscribe import InvalidToken, Keys

log = logging.getLogger(__name__)
router = APIRouter(prefix="/unsubscribe", tags=["unsubscribe"])
INVALID: dict[int | str, dict[str, Any]] = {
    400: {"description": "Link not valid (a page)", "content": {"text/html": {}}}
}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 4rem auto">
<h1>{title}</h1><p>{text}</p>{form}</body></html>
"""


def _page(title: str, text: str, form: str = "", status: int = 200) -> HTMLResponse:
    body = PAGE.format(title=html.escape(title), text=html.escape(text), form=form)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _verify(ctx: CtxDep, token: str) -> tuple[str, str] | None:
    try:
        return Keys.parse(ctx.settings.unsubscribe_keys).verify(token)
    except InvalidToken as exc:
        log.info("unsubscribe: refused a token: %s", exc)
        return None


def _invalid() -> HTMLResponse:
    return _page("Link not valid", "This unsubscribe link is not valid (or too old).", status=400)


@router.get("/{token}", response_class=HTMLResponse, responses=INVALID)
async def confirm(ctx: CtxDep, token: str) -> HTMLResponse:
    """A page with the button that unsubscribes (a GET never does)."""
    found = _verify(ctx, token)
    if found is None:
        return _invalid()
    form = (
        f'<form method="post" action="{html.escape(token)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return _page("Unsubscribe", f"Stop sending email to {found[1]}?", form)


@router.post("/{token}", response_class=HTMLResponse, responses=INVALID)
async def unsubscribe(ctx: CtxDep, token: str) -> HTMLResponse:
    """One-click unsubscribe: the recipient is suppressed in the token's namespace."""
    found = _verify(ctx, token)
    if found is None:
        return _invalid()
    namespace, recipient = found
    await suppression.add(
        ctx.pool, namespace, [recipient], "unsubscribe", source="list-unsubscribe"
    )
    log.info("unsubscribe: a recipient of namespace %s unsubscribed", namespace)
    return _page("Unsubscribed", f"{recipient} will get no more email from this sender.")
