"""Subject and body templates, rendered per recipient in a Jinja2 sandbox.

Templates see only ``recipient``, ``index`` and ``campaign`` (the resource name).
Undefined names are errors, and the operator renders every template once with a
sample recipient before it accepts a campaign, so a typo fails the campaign with
a clear message instead of failing every message.
"""

from __future__ import annotations

from jinja2 import StrictUndefined, Template
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import SandboxedEnvironment

from notifq.core.errors import TemplateError

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)

DEFAULT_SUBJECT = "Notification from {{ campaign }}"
DEFAULT_BODY = "Hello {{ recipient }}, this is campaign {{ campaign }}."


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


def _compile(field: str, source: str) -> Template:
    try:
        return _ENV.from_string(source)
    except JinjaTemplateError as exc:
        raise TemplateError(f"{field} template does not compile: {exc}") from exc
