"""Subject and body templates, rendered per recipient in a Jinja2 sandbox.

Templates see only ``recipient``, ``index`` and ``campaign`` (the resource name).
Undefined names are errors, and the operator renders every template once with a
sample recipient before it accepts a campaign, so a typo fails the campaign with
a clear message instead of failing every message.

Most templates only substitute variables (``Hello {{ recipient }}``). Those are
rendered by joining their literal parts and values, which is several times
cheaper than Jinja's per-call context set-up and gives the same text; anything
else (filters, conditions, loops, attribute access) goes through the sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import SandboxedEnvironment

from notifq.core.errors import TemplateError

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)

DEFAULT_SUBJECT = "Notification from {{ campaign }}"
DEFAULT_BODY = "Hello {{ recipient }}, this is campaign {{ campaign }}."
VARIABLES = frozenset({"recipient", "index", "campaign"})


class _Substitution:
    """A template made only of literal text and plain variables."""

    def __init__(self, parts: list[tuple[bool, str]]) -> None:
        self.parts = parts

    def render(self, ctx: Mapping[str, Any]) -> str:
        return "".join(str(ctx[v]) if is_var else v for is_var, v in self.parts)


def _substitution(source: str) -> _Substitution | None:
    """The fast form of ``source``, or None when it needs Jinja."""
    tree = _ENV.parse(source)
    parts: list[tuple[bool, str]] = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append((False, child.data))
            elif isinstance(child, nodes.Name) and child.name in VARIABLES:
                parts.append((True, child.name))
            else:
                return None
    return _Substitution(parts)


class MessageTemplate:
    """A compiled subject/body pair for one campaign."""

    def __init__(self, campaign: str, subject_source: str, body_source: str) -> None:
        self.campaign = campaign
        self._subject = _compile("subject", subject_source)
        self._body = _compile("body", body_source)

    def render(self, recipient: str, index: int) -> tuple[str, str]:
        """Subject and body for one recipient."""
        ctx = {"recipient": recipient, "index": index, "campaign": self.campaign}
        try:
            return self._subject.render(ctx), self._body.render(ctx)
        except JinjaTemplateError as exc:
            raise TemplateError(f"template failed to render: {exc}") from exc

    def check(self) -> None:
        """Render once with a sample recipient; raises :class:`TemplateError`."""
        self.render("sample@example.com", 0)


def _compile(field: str, source: str) -> Any:
    try:
        return _substitution(source) or _ENV.from_string(source)
    except JinjaTemplateError as exc:
        raise TemplateError(f"{field} template does not compile: {exc}") from exc
